"""The real `spmirror` command in a subprocess: exit codes, output, and what it leaves on disk."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from mirror.store.sqlite.schema import SCHEMA_VERSION

from conftest import API_KEY
from mirror.cli import COMMANDS, build_parser
from mirror.simulator.server import SimulatorServer

CUSTOMERS = 120


def clean_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """The test process's environment without SPMIRROR_* or systemd variables, plus `settings`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SPMIRROR_") and k not in ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY",
                                                          "CONFIGURATION_DIRECTORY")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")  # no user config file is picked up
    env.update(settings)
    return env


def spmirror(*args: str, env: dict[str, str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mirror", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def server():
    with SimulatorServer(customers=CUSTOMERS, seed=5, api_key=API_KEY) as sim:
        yield sim


@pytest.fixture(scope="module")
def synced(server, tmp_path_factory):
    """One `spmirror sync` run into a fresh database, shared by the tests that read its results."""
    home = tmp_path_factory.mktemp("cli")
    db = home / "state" / "mirror.db"
    env = clean_env(home, SPMIRROR_API_URL=server.url, SPMIRROR_API_KEY=server.api_key, SPMIRROR_DB=str(db))
    result = spmirror("sync", env=env, cwd=home)
    return result, db, env, home


def test_sync_exits_0_and_prints_a_json_sync_finished_line(synced):
    """`spmirror sync` exits 0 and, off a terminal, logs one JSON sync_finished line with counts and run_id."""
    result, db, _env, _home = synced
    assert result.returncode == 0, result.stderr
    finished = [e for e in json_lines(result.stdout) if e["event"] == "sync_finished"]
    assert len(finished) == 1
    event = finished[0]
    assert event["result"] == "ok" and event["exit_code"] == 0 and event["error"] is None
    assert event["created"] == CUSTOMERS and event["listed"] == CUSTOMERS and event["pages"] == 3
    assert event["deleted"] == 0 and event["api_calls"] >= 3
    runs = sqlite3.connect(db).execute("SELECT run_id, result FROM sync_runs").fetchall()
    assert runs == [(event["run_id"], "ok")]
    assert result.stderr == ""


def test_database_file_is_created_owner_only(synced):
    """The mirror file (and its WAL companions) are created with mode 0600."""
    result, db, _env, _home = synced
    assert result.returncode == 0
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    for companion in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        if companion.exists():
            assert stat.S_IMODE(companion.stat().st_mode) == 0o600


def test_status_json_gives_counts_and_the_last_run(synced):
    """`spmirror status --json` prints one JSON object with counts, rows by state and the last run."""
    _result, db, env, home = synced
    status = spmirror("status", "--json", env=env, cwd=home)
    assert status.returncode == 0, status.stderr
    summary = json.loads(status.stdout)
    assert summary["customers"] == CUSTOMERS
    assert summary["sync_state"] == {"synced": CUSTOMERS}
    assert summary["schema_version"] == SCHEMA_VERSION
    assert summary["account"]["api_url"] == env["SPMIRROR_API_URL"]
    assert summary["notes"] > 0 and summary["projects"] > 0
    assert summary["deleted_customers"] == 0 and summary["delete_candidates"] == 0
    assert summary["last_run"]["result"] == "ok" and summary["last_run"]["created"] == CUSTOMERS
    assert summary["last_success"]["run_id"] == summary["last_run"]["run_id"]
    assert Path(summary["database"]) == db


def test_status_text_shows_counts_and_last_sync(synced):
    """`spmirror status` prints a readable summary naming the customer count and the last result."""
    _result, _db, env, home = synced
    status = spmirror("status", env=env, cwd=home)
    assert status.returncode == 0, status.stderr
    assert f"customers       {CUSTOMERS}" in status.stdout
    assert f"synced {CUSTOMERS}" in status.stdout
    assert "last sync" in status.stdout and " ok" in status.stdout


def test_status_without_a_database_exits_2(tmp_path):
    """`spmirror status` on a path with no mirror says so and exits 2, without creating the file."""
    db = tmp_path / "none.db"
    status = spmirror("status", env=clean_env(tmp_path, SPMIRROR_DB=str(db)), cwd=tmp_path)
    assert status.returncode == 2
    assert "no mirror" in status.stderr
    assert not db.exists()


@pytest.mark.parametrize("command", [None, *COMMANDS, "webhooks subscribe"])
def test_help_works_for_every_command(tmp_path, command):
    """`--help` prints usage for the program and every subcommand and exits 0, with no key set; every one lists
    the global options."""
    args = ["--help"] if command is None else [*command.split(), "--help"]
    result = spmirror(*args, env=clean_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: spmirror" + ("" if command is None else f" {command}"))
    for option in ("--db PATH", "--config PATH", "--debug"):
        assert option in result.stdout, option


def test_every_command_takes_the_global_options_before_or_after_its_name():
    """Each command and subcommand parses --db, --config and --debug on either side of its name."""
    parser = build_parser()
    required = {"resolve": ["7", "--take", "local"], "webhooks": ["list"]}
    for name in COMMANDS:
        rest = required.get(name, [])
        before = parser.parse_args(["--db", "a.db", "--config", "c.toml", "--debug", name, *rest])
        after = parser.parse_args([name, *rest, "--db", "a.db", "--config", "c.toml", "--debug"])
        for args in (before, after):
            assert (args.command, args.db, args.config, args.debug) == (name, "a.db", "c.toml", True), name
        assert parser.parse_args([name, *rest]).db is None


def test_the_help_list_matches_each_command(tmp_path):
    """The line `spmirror --help` shows for each command (from the table, without importing it) is the one the
    command's own module registers."""
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    assert {a.dest: a.help for a in commands._choices_actions} == {n: h for n, (_m, h) in COMMANDS.items()}


def test_global_options_work_before_and_after_the_command(synced, tmp_path):
    """`--db` and `--config` select the mirror whether given before or after `status`, and --db wins over
    SPMIRROR_DB; `spmirror config` says the path came from --db."""
    _result, db, _env, _home = synced
    env = clean_env(tmp_path, SPMIRROR_DB=str(tmp_path / "other.db"))
    config = tmp_path / "spmirror-test.toml"
    config.write_text(f'[database]\npath = "{db}"\n')
    for args in (["--db", str(db), "status", "--json"], ["status", "--json", "--db", str(db)],
                 ["--config", str(config), "status", "--json"], ["status", "--config", str(config), "--json"]):
        result = spmirror(*args, env=env if "--db" in args else clean_env(tmp_path), cwd=tmp_path)
        assert result.returncode == 0, (args, result.stderr)
        assert json.loads(result.stdout)["customers"] == CUSTOMERS, args
    assert not (tmp_path / "other.db").exists()
    shown = spmirror("config", "--json", "--db", str(db), env=env, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    path = json.loads(shown.stdout)["settings"]["database"]["path"]
    assert path["value"] == str(db) and path["origin"]["name"] == "--db"


HEAVY = ("httpx", "sqlalchemy", "sqlmodel", "apscheduler", "uvicorn")
LOADED = """\
import sys
from mirror.cli import main
try:
    main(sys.argv[1:]) if sys.argv[1:] else None
except SystemExit:
    pass
print("HEAVY=" + ",".join(m for m in {heavy!r} if m in sys.modules))
"""


@pytest.mark.parametrize("argv", [[], ["--help"], ["config"], ["demo", "--help"]])
def test_starting_loads_no_heavy_library(tmp_path, argv):
    """Importing the CLI, `--help`, `config` and a command's --help import none of httpx, SQLAlchemy, SQLModel,
    APScheduler or uvicorn: each command imports what it needs when it runs."""
    script = LOADED.format(heavy=HEAVY)
    result = subprocess.run([sys.executable, "-c", script, *argv], env=clean_env(tmp_path), cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "HEAVY=", result.stdout


def test_status_loads_no_heavy_library(synced, tmp_path):
    """`spmirror status` reads a real mirror with the standard library's sqlite3: no SQLAlchemy, httpx,
    APScheduler or uvicorn is imported (it answers as fast as --help)."""
    _result, db, _env, _home = synced
    result = subprocess.run([sys.executable, "-c", LOADED.format(heavy=HEAVY), "--db", str(db), "status"],
                            env=clean_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"customers       {CUSTOMERS}" in result.stdout
    assert result.stdout.splitlines()[-1] == "HEAVY=", result.stdout


def test_missing_key_exits_2_naming_the_variable(tmp_path):
    """Without an API key, `spmirror sync` exits 2 and tells the user about SPMIRROR_API_KEY."""
    env = clean_env(tmp_path, SPMIRROR_DB=str(tmp_path / "m.db"), SPMIRROR_API_URL="http://127.0.0.1:9/apidata.php")
    result = spmirror("sync", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "SPMIRROR_API_KEY" in result.stderr
    assert not (tmp_path / "m.db").exists()


def test_bad_config_value_exits_2_naming_the_key(tmp_path):
    """A malformed setting exits 2 with a message naming the setting and the bad value."""
    env = clean_env(tmp_path, SPMIRROR_DB=str(tmp_path / "m.db"), SPMIRROR_API_KEY="k",
                    SPMIRROR_SYNC_MASS_DELETE_SHARE="abc")
    result = spmirror("sync", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "mass_delete_share" in result.stderr and "SPMIRROR_SYNC_MASS_DELETE_SHARE" in result.stderr
    assert "'abc'" in result.stderr


def test_unknown_argument_exits_2(tmp_path):
    """An argument spmirror does not know is a usage error: exit 2."""
    result = spmirror("sync", "--no-such-flag", env=clean_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert "--no-such-flag" in result.stderr


def test_unreachable_api_exits_75(tmp_path):
    """With nothing listening at the API URL, `spmirror sync` gives up quickly and exits 75."""
    with socket.socket() as sock:  # a port that was free a moment ago and now has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    db = tmp_path / "m.db"
    env = clean_env(tmp_path, SPMIRROR_API_URL=f"http://127.0.0.1:{port}/apidata.php", SPMIRROR_API_KEY="k",
                    SPMIRROR_DB=str(db), SPMIRROR_API_ATTEMPTS="2", SPMIRROR_API_DEADLINE="5s")
    result = spmirror("sync", env=env, cwd=tmp_path)
    assert result.returncode == 75, result.stderr
    assert "Error:" in result.stderr and "nothing was deleted" in result.stderr
    finished = [e for e in json_lines(result.stdout) if e["event"] == "sync_finished"]
    assert finished and finished[0]["result"] == "incomplete" and finished[0]["exit_code"] == 75
    assert sqlite3.connect(db).execute("SELECT result FROM sync_runs").fetchall() == [("incomplete",)]


def test_api_key_never_reaches_output_or_database(tmp_path):
    """Through retries, faults and a failed run, the key appears in no output and in no byte of the database files."""
    key = "sk-CLICANARY-0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a"
    db = tmp_path / "m.db"
    env = clean_env(tmp_path, SPMIRROR_API_KEY=key, SPMIRROR_DB=str(db), SPMIRROR_API_ATTEMPTS="3",
                    SPMIRROR_API_DEADLINE="10s", SPMIRROR_LOGGING_LEVEL="debug", SPMIRROR_SYNC_ENRICH="true")
    outputs = []
    with SimulatorServer(customers=150, seed=9, api_key=key) as sim:
        env["SPMIRROR_API_URL"] = sim.url
        sim.faults.script("429", action="getallcustomers", retry_after=0)
        sim.faults.script("503", action="getallcustomers")
        for kind in ("html", "truncate", "drop", "500"):  # enrichment may give up: logged, not fatal
            sim.faults.script(kind, action="getcustomerofproject")
        ok = spmirror("sync", env=env, cwd=tmp_path)
        assert ok.returncode == 0, ok.stderr
        sim.account.delete_customer(sim.account.ids()[3])
        sim.faults.script("503", count=200, action="getallcustomers")
        env["SPMIRROR_API_ATTEMPTS"] = "2"
        failed = spmirror("sync", env=env, cwd=tmp_path)
        assert failed.returncode == 75
        outputs += [ok.stdout, ok.stderr, failed.stdout, failed.stderr]
        assert sum(sim.account.call_counts().values()) > 10
    unreachable = spmirror("sync", env=env | {"SPMIRROR_API_URL": sim.url}, cwd=tmp_path)  # server now stopped
    assert unreachable.returncode == 75
    outputs += [unreachable.stdout, unreachable.stderr]
    retried = [e for e in json_lines(ok.stdout) if e["event"] == "api_retried"]
    assert retried, "the faults should have caused logged retries"
    for text in outputs:
        assert key not in text
    files = [p for p in tmp_path.iterdir() if p.name.startswith("m.db")]
    assert db in files
    for path in files:
        assert key.encode() not in path.read_bytes(), path.name
    errors = sqlite3.connect(db).execute("SELECT error FROM sync_runs WHERE error IS NOT NULL").fetchall()
    assert errors and all(key not in e[0] for e in errors)


def test_demo_runs_end_to_end(tmp_path):
    """`spmirror demo` syncs a fresh simulator three times and narrates the creates, updates and deletes."""
    db = tmp_path / "demo.db"
    result = spmirror("demo", "--db", str(db), "--customers", "400", "--port", "0", env=clean_env(tmp_path),
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "1. First sync into" in out and ": 400 customers from 9 pages" in out
    assert "3. Second sync: 3 created, 4 updated," in out and "2 missing (delete candidates)" in out
    assert "4. Third sync: deletes confirmed by a second complete walk: 2 deleted" in out
    assert "The mirror now holds 401 customers." in out
    assert "(created): None -> 'demo0@example.com.au'" in out and "(deleted):" in out
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM customers").fetchone() == (401,)
    assert con.execute("SELECT count(*) FROM deleted_customers").fetchone() == (2,)
    con.close()


def block_after(text: str, heading: str) -> str:
    """The indented lines under the line starting with `heading`, up to the next unindented line."""
    lines = text.split(heading, 1)[1].splitlines()[1:]
    taken = []
    for line in lines:
        if not line.startswith("  "):
            break
        taken.append(line)
    return "\n".join(taken)


def run_in_shell(block: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """Paste `block` into bash, as a user would (stopping at the first command that fails)."""
    return subprocess.run(["bash", "-e", "-c", block], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def start_printed_simulator(line: str, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    proc = subprocess.Popen(shlex.split(line), env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    ready = proc.stdout.readline()
    assert ready.startswith("Solar Proof simulator listening on"), ready + proc.stderr.read()
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()


def test_the_commands_demo_prints_work_as_printed(tmp_path):
    """The demo ends with the exact commands to inspect its database and to sync it against a simulator of the
    same account; pasted into a shell, each works: status, the SQL, a new simulator, the export line and a sync."""
    env = clean_env(tmp_path)
    result = spmirror("--db", "demo/mirror.db", "demo", "--customers", "120", "--port", "0", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    look = block_after(out, "Look inside")
    assert "--db demo/mirror.db status" in look and 'sqlite3 demo/mirror.db "SELECT' in look
    if shutil.which("sqlite3") is None:  # the SQL lines need the sqlite3 shell; the rest does not
        look = "\n".join(line for line in look.splitlines() if "--db demo/mirror.db status" in line)
    shown = run_in_shell(look, env, tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "customers       121" in shown.stdout
    simulate, here = out.split("Sync it yourself", 1)[1].split("then here:", 1)
    started = start_printed_simulator(block_after(simulate, "terminal"), env, tmp_path)
    try:
        pasted = run_in_shell(here, env, tmp_path)
    finally:
        stop(started)
    assert pasted.returncode == 0, pasted.stderr
    finished = [e for e in json_lines(pasted.stdout) if e["event"] == "sync_finished"]
    assert [e["result"] for e in finished] == ["ok"]
    assert finished[0]["listed"] == 120  # the same account again, without the demo's changes
    assert "last sync" in pasted.stdout and " ok" in pasted.stdout


@pytest.mark.timeout(30)
def test_simulate_prints_its_url_and_key_then_serves(tmp_path):
    """`python -m mirror simulate --port 0` prints the two ready lines and serves the listing there."""
    proc = subprocess.Popen([sys.executable, "-m", "mirror", "simulate", "--port", "0", "--customers", "10"],
                            env=clean_env(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        second = proc.stdout.readline()
        assert first.startswith("Solar Proof simulator listening on http://127.0.0.1:")
        url = first.rsplit(" ", 1)[1].strip()
        assert url.endswith("/apidata.php") and not url.endswith(":0/apidata.php")
        assert second == "API key: demo-key\n"
        page = httpx.get(url, params={"action": "getallcustomers", "api_key": "demo-key", "page": 1}, timeout=10)
        assert page.status_code == 200 and len(page.json()) == 10
        assert proc.stdout.readline() == "To sync a mirror against it, in another shell:\n"
        paste = [proc.stdout.readline() for _ in range(3)]
    finally:
        stop(proc)
    assert paste[0] == f"  export SPMIRROR_API_URL={url} SPMIRROR_API_KEY=demo-key\n"


@pytest.mark.timeout(60)
def test_the_lines_simulate_prints_sync_against_it(tmp_path):
    """Pasted into a shell, the lines `spmirror simulate` prints sync a new mirror from it and show its status."""
    env = clean_env(tmp_path)
    proc = start_printed_simulator(f"{sys.executable} -m mirror simulate --port 0 --customers 60 --api-key "
                                   "'k$y with space'", env, tmp_path)
    try:
        lines = [proc.stdout.readline() for _ in range(5)]
        assert lines[1].startswith("To sync a mirror against it")
        pasted = run_in_shell("".join(lines[2:5]), env, tmp_path)
    finally:
        stop(proc)
    assert pasted.returncode == 0, pasted.stderr
    finished = [e for e in json_lines(pasted.stdout) if e["event"] == "sync_finished"]
    assert finished and finished[0]["result"] == "ok" and finished[0]["created"] == 60
    assert "customers       60" in pasted.stdout
    assert (tmp_path / "simulated.db").exists()


def test_no_command_module_imports_the_cli():
    """The CLI imports commands, never the other way round: the shared parts live in mirror.arguments."""
    import ast

    root = Path(__file__).resolve().parent.parent / "mirror" / "commands"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n == "mirror.cli" or n.startswith("mirror.cli.") for n in names), path.name
