"""A postgresql:// URL as the mirror's address: parsed, masked, and a server that is not there.

No PostgreSQL server is needed: the URLs point at a port nothing listens on, which is how a
server that is down looks to spmirror. The password is a canary that must appear nowhere.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mirror.store.location import Location, redact_url

PASSWORD = "PgPassCANARY-4d1e"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again on return: connections are refused


def _run(*args: str, url: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPMIRROR_")}
    env.update(SPMIRROR_DB=url, SPMIRROR_API_KEY="sk-test-0123456789abcdef", SPMIRROR_API_URL="http://127.0.0.1:9/x",
               HOME=str(tmp_path))
    return subprocess.run([sys.executable, "-m", "mirror", *args], env=env, capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)


@pytest.mark.parametrize(("text", "kind", "shown"), [
    ("mirror.db", "sqlite", "mirror.db"),
    ("sqlite:///data/mirror.db", "sqlite", "data/mirror.db"),
    ("sqlite:////var/lib/spmirror/mirror.db", "sqlite", "/var/lib/spmirror/mirror.db"),
    ("postgresql://team@db.example/crm", "postgres", "postgresql://team@db.example/crm"),
    (f"postgresql://team:{PASSWORD}@db.example:5433/crm?sslmode=require", "postgres",
     "postgresql://team:***@db.example:5433/crm?sslmode=require"),
    ("postgres://team@db.example/crm", "postgres", "postgres://team@db.example/crm"),
])
def test_a_location_is_a_file_or_a_server_and_never_shows_a_password(text, kind, shown):
    location = Location.parse(text)
    assert location.kind == kind
    assert str(location) == shown
    assert PASSWORD not in str(location) and PASSWORD not in redact_url(text)


@pytest.mark.parametrize("command", [["sync"], ["sync", "--dry-run"], ["status"], ["run"], ["resolve", "1", "--take",
                                                                                                   "remote"]])
def test_a_server_that_is_down_is_one_line_without_the_password(command, tmp_path):
    """Every command that opens the mirror says it cannot reach the server, names the URL with the
    password masked, and never shows the password, in its output or its log."""
    url = f"postgresql://spmirror:{PASSWORD}@127.0.0.1:{_closed_port()}/crm?options=-csearch_path%3Dmirror"
    result = _run(*command, url=url, tmp_path=tmp_path)
    output = result.stdout + result.stderr
    assert PASSWORD not in output
    assert "Traceback" not in result.stderr.split("Error:")[-1]
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert "cannot connect to PostgreSQL" in errors[0] and "spmirror:***@127.0.0.1" in errors[0], errors[0]
    assert result.returncode in (75, 2), result.returncode


def test_sync_against_a_server_that_is_down_exits_75_to_be_retried(tmp_path):
    """A server that is down is a reason to try again later (cron, systemd), not a usage error."""
    url = f"postgresql://spmirror:{PASSWORD}@127.0.0.1:{_closed_port()}/crm"
    result = _run("sync", url=url, tmp_path=tmp_path)
    assert result.returncode == 75, result.stderr
    assert "Try: check that the PostgreSQL server is up" in result.stderr


def test_a_password_in_the_query_string_is_masked_too(tmp_path):
    """libpq takes ?password=... as well as user:password@: neither is ever shown."""
    url = f"postgresql://spmirror@127.0.0.1:{_closed_port()}/crm?password={PASSWORD}&sslpassword={PASSWORD}x"
    assert PASSWORD not in redact_url(url) and "password=***" in redact_url(url)
    for command in (["sync"], ["status"], ["config"]):
        result = _run(*command, url=url, tmp_path=tmp_path)
        assert PASSWORD not in result.stdout + result.stderr, command


def test_an_at_sign_in_the_password_is_refused_before_connecting(tmp_path):
    """libpq would read `ter2Pw@127.0.0.1` as the host and print it: a piece of the password."""
    url = f"postgresql://spmirror:Hun@{PASSWORD}@127.0.0.1:{_closed_port()}/crm"
    result = _run("sync", url=url, tmp_path=tmp_path)
    assert result.returncode == 2, result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert "write an @ in the user or password as %40" in result.stderr
