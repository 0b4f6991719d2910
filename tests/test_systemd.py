"""The systemd units: each directive is commented, `systemd-analyze verify` finds nothing to say,
and `systemd-analyze security` rates the services' exposure at 2.0 or less.

The checks that run systemd-analyze skip when it is not installed (Debian: apt-get install -y
systemd). They never start a unit, so they need no running systemd and no root.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "systemd"
DAEMON, SYNC, TIMER = "spmirror.service", "spmirror-sync.service", "spmirror-sync.timer"
ALL_UNITS = (DAEMON, SYNC, TIMER)
SHIPPED_BINARY = "/usr/local/bin/spmirror"
MAX_EXPOSURE = 2.0
# Directives where the daemon and the one-shot sync differ on purpose; all others must match.
DIFFERENT_BY_DESIGN = {
    "Description", "Type", "NotifyAccess", "ExecStart", "ExecReload", "WatchdogSec", "Restart",
    "RestartSec", "RestartPreventExitStatus", "TimeoutStartSec", "TimeoutStopSec", "WantedBy",
}

ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (Debian: apt-get install -y systemd)"
)


def directives(text: str) -> list[tuple[int, str, str, str]]:
    """(line number, section, key, value) for each directive; continuation lines join their key."""
    found: list[tuple[int, str, str, str]] = []
    section = ""
    continued = False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if continued:
            continued = stripped.endswith("\\")
            continue
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("["):
            section = stripped.strip("[]")
            continue
        key, _, value = stripped.partition("=")
        found.append((number, section, key.strip(), value.strip()))
        continued = stripped.endswith("\\")
    return found


def values(unit: str) -> dict[str, list[str]]:
    """Every value of every key in the unit, in order (keys such as SystemCallFilter= repeat)."""
    result: dict[str, list[str]] = {}
    for _, _, key, value in directives((UNITS / unit).read_text()):
        result.setdefault(key, []).append(value)
    return result


def console_script() -> Path | None:
    """The installed `spmirror` script: beside this interpreter (a venv), else on PATH."""
    beside = Path(sys.executable).with_name("spmirror")
    if beside.is_file():
        return beside
    found = shutil.which("spmirror")
    return Path(found) if found else None


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SYSTEMD_COLORS="0", SYSTEMD_PAGER="cat", SYSTEMD_LOG_COLOR="0")
    return subprocess.run(
        [ANALYZE, *args], capture_output=True, text=True, encoding="utf-8", errors="replace",
        env=env, timeout=60,
    )


@pytest.fixture
def installed_units(tmp_path: Path) -> Path:
    """The three units copied to a temporary directory with ExecStart= pointing at the real script.

    verify insists that ExecStart='s program exists, and /usr/local/bin/spmirror usually does not
    where the tests run. User=spmirror needs no such help: verify does not look users up (they are
    resolved when the unit starts), so a missing spmirror user is not reported and not faked here.
    """
    script = console_script()
    if script is None:
        pytest.skip("the spmirror console script is not installed (pip install -e .)")
    for name in ALL_UNITS:
        text = (UNITS / name).read_text()
        rewritten = re.sub(
            rf"^ExecStart={re.escape(SHIPPED_BINARY)}(?= )", f'ExecStart="{script}"', text, flags=re.M
        )
        (tmp_path / name).write_text(rewritten)
    return tmp_path


@pytest.mark.parametrize("unit", ALL_UNITS)
def test_every_directive_has_a_comment_directly_above(unit):
    """Each directive in the unit is preceded by its own comment line saying what it does."""
    # systemd has no end-of-line comments (`Type=notify # x` sets Type to "notify # x"), so the
    # comment must be the line above.
    lines = (UNITS / unit).read_text().splitlines()
    bare = [
        f"{unit}:{number}: {key}="
        for number, _, key, _ in directives("\n".join(lines))
        if number == 1 or not lines[number - 2].lstrip().startswith(("#", ";"))
    ]
    assert not bare, "directives without a comment line above them:\n" + "\n".join(bare)


def test_daemon_is_a_notify_service_that_does_not_restart_on_a_config_error():
    """The daemon is Type=notify and RestartPreventExitStatus= holds exit 2 (usage/config error)."""
    daemon = values(DAEMON)
    assert daemon["Type"] == ["notify"]
    assert "2" in " ".join(daemon["RestartPreventExitStatus"]).split()
    assert daemon["Restart"] == ["on-failure"]
    assert daemon["ExecStart"] == [f"{SHIPPED_BINARY} run"]


def test_sync_service_is_a_oneshot_started_by_the_timer():
    """The timer starts the one-shot `spmirror sync` 2 min after boot and 5 min after each start."""
    sync, timer = values(SYNC), values(TIMER)
    assert sync["Type"] == ["oneshot"]
    assert sync["ExecStart"] == [f"{SHIPPED_BINARY} sync"]
    assert "Install" not in {section for _, section, _, _ in directives((UNITS / SYNC).read_text())}
    assert timer["OnBootSec"] == ["2min"] and timer["OnUnitActiveSec"] == ["5min"]
    assert timer["RandomizedDelaySec"] == ["30"] and timer["Persistent"] == ["true"]


def test_sync_service_has_the_daemons_user_credential_and_sandbox():
    """Both services share every directive except the few that differ by design, so they stay in step."""
    daemon = {k: v for k, v in values(DAEMON).items() if k not in DIFFERENT_BY_DESIGN}
    sync = {k: v for k, v in values(SYNC).items() if k not in DIFFERENT_BY_DESIGN}
    assert sync == daemon


@needs_analyze
def test_systemd_analyze_verify_finds_nothing_to_report(installed_units):
    """`systemd-analyze verify` exits 0 and prints no warning for the three units."""
    # verify exits 0 even for an unknown key or an unparsable value, so any output is a failure.
    # --man=no: checking Documentation=man:... pages needs man-db and the pages installed.
    result = analyze("verify", "--man=no", *(str(installed_units / name) for name in ALL_UNITS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (result.stdout + result.stderr).strip() == ""


@needs_analyze
def test_systemd_analyze_verify_does_report_a_misspelled_directive(installed_units):
    """The verify check above can fail: a misspelled key in a copy of the daemon is reported."""
    unit = installed_units / DAEMON
    unit.write_text(unit.read_text().replace("\nProtectSystem=", "\nProtectSytem="))
    result = analyze("verify", "--man=no", str(unit))
    assert "ProtectSytem" in result.stdout + result.stderr


@needs_analyze
@pytest.mark.parametrize("unit", [DAEMON, SYNC])
def test_exposure_level_is_at_most_two(unit):
    """`systemd-analyze security --offline=yes` rates the service's overall exposure at 2.0 or less."""
    result = analyze("security", "--offline=yes", str(UNITS / unit))
    if "offline" in result.stderr and "unrecognized option" in result.stderr:
        pytest.skip("systemd-analyze is older than systemd 250 and has no --offline")
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout
