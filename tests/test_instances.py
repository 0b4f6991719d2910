"""Several accounts on one host: two `spmirror run` daemons started the way systemd starts
spmirror@franchise1 and spmirror@franchise2, each against its own simulator (its own account).

No systemd is needed: the test reads systemd/spmirror@.service and does for each instance what
systemd would, inside a temporary root R standing for "/": it expands %i, creates
R/var/lib/<StateDirectory> and passes it as STATE_DIRECTORY, passes R/etc/<ConfigurationDirectory>
as CONFIGURATION_DIRECTORY, copies each LoadCredential= source into a private directory passed as
CREDENTIALS_DIRECTORY, sets each Environment= (absolute paths moved under R), and runs the daemon
with R as its working directory (systemd's "/"), shared by both. So a unit that gives two
instances one directory, or code that ignores one of those variables, makes the two collide.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from polling import free_port, wait_until
from mirror.simulator.server import SimulatorServer
from test_systemd import UNITS, directives

TEMPLATE = UNITS / "spmirror@.service"
# Distinctive keys, so either one turning up in the other's output or files is easy to find.
ACCOUNTS = {
    "franchise1": dict(customers=30, seed=21, api_key="sk-LEAKCANARY-franchise1-0a1b2c3d4e5f6a7b8c9d"),
    "franchise2": dict(customers=45, seed=22, api_key="sk-LEAKCANARY-franchise2-9f8e7d6c5b4a3f2e1d0c"),
}
CLEARED_ENV = ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY", "CONFIGURATION_DIRECTORY", "NOTIFY_SOCKET",
               "WATCHDOG_USEC", "WATCHDOG_PID", "XDG_CONFIG_HOME")


@dataclass
class Instance:
    """One spmirror@NAME as systemd would set it up under the root `root`."""

    name: str
    sim: SimulatorServer
    root: Path
    logs: Path
    base_env: dict[str, str]  # what every process on the host gets; an admin's shell, say
    env: dict[str, str] = field(default_factory=dict)
    state: Path = Path()
    config: Path = Path()
    credentials: Path = Path()
    webhook_port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def db(self) -> Path:
        return self.state / "mirror.db"

    def under_root(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def prepare(self, service: dict[str, list[str]]) -> None:
        """Write the instance's config.toml and key, then build its directories and environment
        from the unit's directives, as systemd does when it starts the instance."""
        expand = lambda value: value.replace("%i", self.name)  # noqa: E731
        self.config = self.root / "etc" / expand(service["ConfigurationDirectory"][0])
        self.config.mkdir(parents=True, exist_ok=True)
        self.webhook_port = free_port()
        token = hashlib.sha256(self.name.encode()).hexdigest()
        # Each instance its own [webhooks] listen port, as the unit's comments tell people to.
        (self.config / "config.toml").write_text(
            f'[api]\nurl = "{self.sim.url}"\n\n[sync]\ninterval = "1h"\n\n'
            f'[daemon]\nwatch_interval = "0.2s"\n\n[logging]\nformat = "json"\n\n'
            f'[webhooks]\nlisten = "127.0.0.1:{self.webhook_port}"\ntoken = "{token}"\n'
        )
        key_file = self.config / "api_key"
        key_file.write_text(self.sim.api_key + "\n")
        key_file.chmod(0o600)

        self.state = self.root / "var" / "lib" / expand(service["StateDirectory"][0])
        self.state.mkdir(parents=True, mode=0o700, exist_ok=True)
        self.credentials = self.root / "run" / "credentials" / f"spmirror@{self.name}.service"
        self.credentials.mkdir(parents=True)
        for entry in service.get("LoadCredential", []):
            credential, _, source = expand(entry).partition(":")
            assert self.under_root(source).is_file(), f"LoadCredential= source {source} was not created"
            shutil.copyfile(self.under_root(source), self.credentials / credential)
        self.env = dict(self.base_env, STATE_DIRECTORY=str(self.state), CONFIGURATION_DIRECTORY=str(self.config),
                        CREDENTIALS_DIRECTORY=str(self.credentials))
        for entry in service.get("Environment", []):
            for assignment in expand(entry).split():
                name, _, value = assignment.partition("=")
                self.env[name] = str(self.under_root(value)) if value.startswith("/") else value

    def start(self) -> None:
        with open(self.logs / f"{self.name}.stdout", "wb") as out, open(self.logs / f"{self.name}.stderr", "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "mirror", "run"], env=self.env, cwd=self.root,
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL)

    def output(self) -> str:
        return ((self.logs / f"{self.name}.stdout").read_text(errors="replace")
                + (self.logs / f"{self.name}.stderr").read_text(errors="replace"))

    def synced(self) -> bool:
        """True once this daemon holds its database's run lock and a sync there finished ok; fails
        at once, with the output, if the daemon exited."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            pytest.fail(f"spmirror@{self.name} exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
        run_lock = self.state / "mirror.db.run.lock"
        if not run_lock.exists() or not run_lock.read_text().startswith(f"pid {self.proc.pid} "):
            return False  # not this daemon's database (yet): a sync another one finished does not count
        if not self.db.exists():
            return False
        con = sqlite3.connect(self.db, timeout=10)
        try:
            return bool(con.execute("SELECT count(*) FROM sqlite_master WHERE name = 'sync_runs'").fetchone()[0]
                        and con.execute("SELECT count(*) FROM sync_runs WHERE result = 'ok'").fetchone()[0])
        finally:
            con.close()

    def open_paths(self) -> set[Path]:
        """Every file the daemon has open now (its /proc/PID/fd links), sockets and pipes left out."""
        assert self.proc is not None
        fds = Path(f"/proc/{self.proc.pid}/fd")
        paths = set()
        for fd in fds.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue  # closed meanwhile
            if target.startswith("/"):
                paths.add(Path(target.removesuffix(" (deleted)")))
        return paths

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            return None


def service_directives() -> dict[str, list[str]]:
    """The [Service] directives of the template, every value of each key in order."""
    found: dict[str, list[str]] = {}
    for _, section, key, value in directives(TEMPLATE.read_text()):
        if section == "Service":
            found.setdefault(key, []).append(value)
    return found


def snapshot(directory: Path) -> dict[str, str]:
    """Each file under `directory` (relative path) with the hash of its content and its mode."""
    return {str(p.relative_to(directory)): f"{hashlib.sha256(p.read_bytes()).hexdigest()} {p.stat().st_mode:o}"
            for p in sorted(directory.rglob("*")) if p.is_file()}


def mirrored(db: Path) -> set[tuple[int, str]]:
    con = sqlite3.connect(db, timeout=10)
    try:
        return set(con.execute("SELECT pkcustomerid, customeremail FROM customers"))
    finally:
        con.close()


def account_of(sim: SimulatorServer) -> set[tuple[int, str]]:
    return {(i, sim.account.read_shape(i)["customer_email"]) for i in sim.account.ids()}


@pytest.fixture
def instances(tmp_path):
    """franchise1 and franchise2, each with its own simulator, prepared but not started."""
    root, logs = tmp_path / "root", tmp_path / "logs"
    root.mkdir()
    logs.mkdir()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("SPMIRROR_") and k not in CLEARED_ENV}
    # The spmirror user's home, as systemd sets HOME for User=; no config file is found there.
    base_env.update(HOME=str(root / "var" / "lib" / "spmirror"), PYTHONUNBUFFERED="1")
    service = service_directives()
    made: list[Instance] = []
    try:
        for name, account in ACCOUNTS.items():
            sim = SimulatorServer(**account).start()
            made.append(Instance(name, sim, root, logs, base_env))
            made[-1].prepare(service)
        yield made
    finally:
        for instance in made:
            instance.stop()
            instance.sim.stop()


def test_two_instances_mirror_their_own_accounts_into_their_own_directories(instances):
    """Each instance mirrors its own account into its own state directory, listens on its own
    webhook port, holds only its own files open, and leaves the other's files and every config
    and credential file untouched."""
    one, two = instances
    root = one.root
    untouched = {"etc": snapshot(root / "etc"), "run": snapshot(root / "run")}
    for instance in instances:
        instance.start()
    # Every instance is looked at on each poll, so one that exits fails the test at once.
    wait_until(lambda: all([instance.synced() for instance in instances]), 20, "each instance's first sync")

    # Its own files, and only those, are open: a daemon writing the other's database, lock or
    # state file would hold it open.
    for instance, other in ((one, two), (two, one)):
        opened = {p for p in instance.open_paths() if p.is_relative_to(root)}
        assert instance.db in opened, opened
        assert all(p.is_relative_to(instance.state) for p in opened), (instance.name, opened)
        run_lock = instance.state / "mirror.db.run.lock"
        assert run_lock.read_text().startswith(f"pid {instance.proc.pid} "), run_lock.read_text()

    # Each mirror holds its own account's customers, pinned to its own API.
    for instance in instances:
        assert mirrored(instance.db) == account_of(instance.sim), instance.name
        # The README's way to look at one instance: SPMIRROR_DB=/var/lib/spmirror/NAME/mirror.db.
        status = subprocess.run([sys.executable, "-m", "mirror", "status", "--json"], cwd=root,
                                env=dict(instance.base_env, SPMIRROR_DB=str(instance.db)),
                                capture_output=True, text=True, timeout=30)
        assert status.returncode == 0, status.stdout + status.stderr
        summary = json.loads(status.stdout)
        assert summary["account"]["api_url"] == instance.sim.url
        assert summary["customers"] == ACCOUNTS[instance.name]["customers"]
        assert summary["daemon"]["pid"] == instance.proc.pid
    assert not mirrored(one.db) & mirrored(two.db)  # the seeds give the two accounts other emails

    # Each webhook receiver listens on the port of its own config.toml.
    for instance in instances:
        listening = [json.loads(line) for line in instance.output().splitlines()
                     if line.startswith("{") and '"webhooks_listening"' in line]
        assert [event["port"] for event in listening] == [instance.webhook_port], instance.output()[-3000:]
        with socket.create_connection(("127.0.0.1", instance.webhook_port), timeout=5):
            pass

    for instance in instances:
        assert instance.stop() == 0, instance.output()[-3000:]

    # Nothing was written outside the two state directories: not in the shared working directory,
    # not beside the state directories, not in a config or credential directory.
    written = {p for p in root.rglob("*") if p.is_file() and not p.is_relative_to(root / "etc")
               and not p.is_relative_to(root / "run")}
    strays = {p for p in written if not (p.is_relative_to(one.state) or p.is_relative_to(two.state))}
    assert not strays, strays
    assert {p.name for p in (root / "var" / "lib" / "spmirror").iterdir()} == set(ACCOUNTS)
    for instance in instances:
        assert all(re.fullmatch(r"mirror\.db(-wal|-shm|\.run\.lock|\.sync\.lock)?", p.name)
                   for p in instance.state.iterdir()), sorted(instance.state.iterdir())
    assert {"etc": snapshot(root / "etc"), "run": snapshot(root / "run")} == untouched

    # Neither key appears in either instance's output or files.
    for instance in instances:
        everything = instance.output().encode() + b"".join(p.read_bytes() for p in instance.state.iterdir())
        for account in ACCOUNTS.values():
            assert account["api_key"].encode() not in everything, instance.name
