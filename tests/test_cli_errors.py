"""What a user sees when something is wrong, through the real `spmirror` in a subprocess: one `Error:` line
saying what and where, one `Try:` line, an exit code a service manager can act on (2: fix something, 75: try
later), and never a traceback unless --debug asks for it."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mirror.simulator.server import SimulatorServer

KEY = "sk-ERRORCANARY-1a2b3c4d5e6f7a8b9c0d"
FAST = {"SPMIRROR_API_ATTEMPTS": "3", "SPMIRROR_API_DEADLINE": "20s"}


def clean_env(home: Path, **settings: str) -> dict[str, str]:
    """The environment without SPMIRROR_* or systemd variables, with no user config, plus `settings`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SPMIRROR_") and k not in ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY",
                                                          "CONFIGURATION_DIRECTORY")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "xdg"), **settings)
    return env


def spmirror(*args: str, env: dict[str, str], cwd: Path, **options) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mirror", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120, **options)


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def assert_one_error(result: subprocess.CompletedProcess, code: int, *phrases: str) -> str:
    """Exit `code`; stderr is exactly an Error line and a Try line, naming each phrase; no traceback anywhere
    but the JSON log. Returns the Error line."""
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("Error: ") and lines[1].startswith("Try: "), result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, (phrase, result.stderr)
    assert "Traceback" not in result.stderr
    assert all("Traceback" not in line for line in result.stdout.splitlines() if not line.startswith("{"))
    assert KEY not in result.stdout + result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def server():
    with SimulatorServer(customers=60, seed=3, api_key=KEY) as sim:
        yield sim


# -- the URL and the key -----------------------------------------------------------------------


def test_a_wrong_path_exits_2_at_once_naming_the_url(server, tmp_path):
    """A URL whose path is not apidata.php gets the web server's 404 page: exit 2 on the first try, saying no API is
    there and to check [api] url (not 'unexpected' exit 1, not the status twice)."""
    url = server.url.replace("/apidata.php", "/wrong.php")
    env = clean_env(tmp_path, SPMIRROR_API_URL=url, SPMIRROR_API_KEY=KEY, **FAST)
    result = spmirror("--db", str(tmp_path / "m.db"), "sync", env=env, cwd=tmp_path)
    error = assert_one_error(result, 2, "no Solar Proof API at this URL", "'404 Not Found'", "check [api] url",
                             "wrong.php")
    assert error.count("404") == 2
    assert not [e for e in events(result.stdout) if e["event"] == "api_retried"]


class HtmlEverywhere(http.server.BaseHTTPRequestHandler):
    """Any request gets the same web page with HTTP 200, as a web site's front page would."""

    PAGE = b"<!DOCTYPE html><html><head><title>Acme Solar - Home</title></head><body>Welcome!</body></html>"
    requests = 0

    def answer(self) -> None:
        type(self).requests += 1
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.PAGE)))
        self.end_headers()
        self.wfile.write(self.PAGE)

    do_GET = do_POST = answer

    def log_message(self, *args) -> None:
        pass


def test_a_web_page_answering_everything_exits_2_after_the_retries(tmp_path):
    """A URL that answers every request with an HTML page is retried (a broken PHP script answers so too), then
    named as not the API: exit 2, not 75's 'try again later'."""
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HtmlEverywhere)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{site.server_address[1]}/apidata.php"
        env = clean_env(tmp_path, SPMIRROR_API_URL=url, SPMIRROR_API_KEY=KEY, **FAST)
        env["SPMIRROR_API_ATTEMPTS"] = "2"  # one backoff (up to 0.5 s) shows the retry
        result = spmirror("sync", "--db", str(tmp_path / "m.db"), env=env, cwd=tmp_path)
    finally:
        site.shutdown()
        site.server_close()
    assert_one_error(result, 2, "no Solar Proof API at this URL", "2 tries in a row", "'Acme Solar - Home'",
                     "check [api] url")
    assert HtmlEverywhere.requests == 2


def test_an_unknown_host_exits_2_without_retrying(tmp_path):
    """A host name that does not exist (the reserved .invalid domain) is a typo: exit 2 at once, naming the host;
    not retried and reported as an outage."""
    host = "solarproof.invalid"
    try:
        socket.getaddrinfo(host, 443)
    except socket.gaierror as exc:
        if exc.errno != socket.EAI_NONAME:
            pytest.skip(f"this machine's resolver cannot say {host} does not exist ({exc})")
    env = clean_env(tmp_path, SPMIRROR_API_URL=f"https://{host}/apidata.php", SPMIRROR_API_KEY=KEY, **FAST)
    result = spmirror("sync", "--db", str(tmp_path / "m.db"), env=env, cwd=tmp_path)
    assert_one_error(result, 2, f"'{host}' does not exist", "check [api] url")
    assert not [e for e in events(result.stdout) if e["event"] == "api_retried"]


def test_a_refused_key_exits_2_pointing_at_the_key(server, tmp_path):
    """A key the API refuses says so and exits 2."""
    env = clean_env(tmp_path, SPMIRROR_API_URL=server.url, SPMIRROR_API_KEY="not-the-key-at-all", **FAST)
    result = spmirror("sync", "--db", str(tmp_path / "m.db"), env=env, cwd=tmp_path)
    assert_one_error(result, 2, "the API refused the key", "check [api] key")


def test_webhook_calls_that_fail_exit_2_or_75(server, tmp_path):
    """`spmirror webhooks subscribe` refused for its key exits 2 pointing at the key; with the API unreachable it
    exits 75, try later (not 1, 'unexpected')."""
    hook = "https://mirror.example.com.au/webhooks/t0ken"
    env = clean_env(tmp_path, SPMIRROR_API_URL=server.url, SPMIRROR_API_KEY="not-the-key", SPMIRROR_API_ATTEMPTS="1")
    refused = spmirror("webhooks", "subscribe", "--url", hook, "--db", str(tmp_path / "m.db"), env=env, cwd=tmp_path)
    assert_one_error(refused, 2, "subscribing customer_created", "check [api] key")
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env["SPMIRROR_API_URL"] = f"http://127.0.0.1:{port}/apidata.php"
    down = spmirror("webhooks", "subscribe", "--url", hook, "--db", str(tmp_path / "m.db"), env=env, cwd=tmp_path)
    assert_one_error(down, 75, "again later")


# -- the database file ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["sync"], ["retry", "--all"], ["webhooks", "list"], ["demo", "--port", "0"]])
def test_a_database_under_a_file_exits_2_naming_the_file(server, tmp_path, command):
    """--db below an existing file (a mistyped path) exits 2 naming the file in the way, for every command that
    opens the database; no traceback."""
    (tmp_path / "notes.txt").write_text("not a directory")
    for db in ("notes.txt/mirror.db", "notes.txt/more/mirror.db"):
        env = clean_env(tmp_path, SPMIRROR_API_URL=server.url, SPMIRROR_API_KEY=KEY)
        result = spmirror(*command, "--db", db, env=env, cwd=tmp_path)
        assert_one_error(result, 2, "notes.txt is a file, not a directory", db, "--db PATH")


def test_a_directory_given_as_the_database_exits_2(server, tmp_path):
    """--db naming a directory says so."""
    (tmp_path / "mirror.db").mkdir()
    env = clean_env(tmp_path, SPMIRROR_API_URL=server.url, SPMIRROR_API_KEY=KEY)
    result = spmirror("retry", "--all", "--db", "mirror.db", env=env, cwd=tmp_path)
    assert_one_error(result, 2, "mirror.db")


def test_a_file_that_is_not_a_mirror_exits_2_from_sync(server, tmp_path):
    """`spmirror sync --db` naming a file that is not a SQLite mirror: one line naming it, exit 2, nothing sent."""
    (tmp_path / "notes.db").write_text("my shopping list, not a database")
    env = clean_env(tmp_path, SPMIRROR_API_URL=server.url, SPMIRROR_API_KEY=KEY)
    writes = len(server.account.write_log())
    result = spmirror("sync", "--db", "notes.db", env=env, cwd=tmp_path)
    assert_one_error(result, 2, "notes.db", "not a usable SQLite database", "--db")
    assert len(server.account.write_log()) == writes
    assert (tmp_path / "notes.db").read_text() == "my shopping list, not a database"


def test_debug_shows_the_traceback_and_the_json_log_keeps_it(server, tmp_path):
    """With --debug the traceback is printed to stderr before the Error line; without it, only the JSON log line
    (command_failed, for a service's journal) holds it."""
    (tmp_path / "notes.txt").write_text("")
    env = clean_env(tmp_path, SPMIRROR_API_URL=server.url, SPMIRROR_API_KEY=KEY)
    plain = spmirror("sync", "--db", "notes.txt/mirror.db", env=env, cwd=tmp_path)
    assert_one_error(plain, 2)
    [failed] = [e for e in events(plain.stdout) if e["event"] == "command_failed"]
    assert "Traceback" in failed["exception"] and failed["exit_code"] == 2
    debug = spmirror("--debug", "sync", "--db", "notes.txt/mirror.db", env=env, cwd=tmp_path)
    assert debug.returncode == 2
    assert debug.stderr.startswith("Traceback (most recent call last):")
    assert "FileExistsError" in debug.stderr and "\nError: notes.txt is a file" in debug.stderr


def held_to_file_modes() -> list[str]:
    """A command prefix under which file modes bind: none for a normal user; for root (whom no mode stops), root
    without the capabilities that override them (setpriv drops them from the bounding set before exec)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("as root, needs setpriv(1) to run without CAP_DAC_OVERRIDE")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


def test_a_read_only_database_exits_2_saying_so(server, tmp_path):
    """A mirror file this user may read but not write (mode 0444) exits 2 saying it is read-only and what to do,
    for the sync and for commands that only touch the file; the file is left as it was."""
    db = tmp_path / "mirror.db"
    env = clean_env(tmp_path, SPMIRROR_API_URL=server.url, SPMIRROR_API_KEY=KEY)
    assert spmirror("sync", "--db", str(db), env=env, cwd=tmp_path).returncode == 0
    for extra in ("-wal", "-shm"):
        assert not Path(f"{db}{extra}").exists()  # closed cleanly: everything is in the file itself
    db.chmod(0o444)
    before = db.read_bytes()
    prefix = held_to_file_modes()
    for command in (["sync"], ["retry", "--all"], ["resolve", str(server.account.ids()[0]), "--take", "remote"]):
        result = subprocess.run([*prefix, sys.executable, "-m", "mirror", *command, "--db", str(db)], env=env,
                                cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert_one_error(result, 2, f"{db} is read-only for this user", "writable", "ls -l")
    assert db.read_bytes() == before
    assert stat.S_IMODE(db.stat().st_mode) == 0o444


def test_a_read_only_folder_exits_2_naming_what_cannot_be_made(server, tmp_path):
    """In a folder this user may not write, SQLite cannot make the file's -wal and -shm, nor spmirror its lock: a
    read-only database, and a lock that cannot be made beside it, each get their own line, exit 2."""
    folder = tmp_path / "shared"
    folder.mkdir()
    db = folder / "mirror.db"
    env = clean_env(tmp_path, SPMIRROR_API_URL=server.url, SPMIRROR_API_KEY=KEY)
    assert spmirror("sync", "--db", str(db), env=env, cwd=tmp_path).returncode == 0
    Path(f"{db}.sync.lock").unlink()  # as if the file had been copied here, alone
    for path in (db, folder):
        path.chmod(0o555 if path == folder else 0o444)
    prefix = held_to_file_modes()
    try:
        run = [*prefix, sys.executable, "-m", "mirror", "--db", str(db)]
        retry = subprocess.run([*run, "retry", "--all"], env=env, cwd=tmp_path, capture_output=True, text=True)
        assert_one_error(retry, 2, f"{db} is read-only for this user")
        sync = subprocess.run([*run, "sync"], env=env, cwd=tmp_path, capture_output=True, text=True)
        assert_one_error(sync, 2, f"cannot create {db}.sync.lock", f"may not write in {folder}", f"ls -ld {folder}")
    finally:
        folder.chmod(0o755)


def test_a_full_disk_exits_75(server, tmp_path):
    """A disk that fills up during the first sync (a 256 KiB tmpfs in a private mount namespace) exits 75, try
    again later, with one line naming the file; no traceback."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1)")
    disk = tmp_path / "disk"
    disk.mkdir()
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "mount", "-t", "tmpfs", "-o",
                            "size=256k", "tmpfs", str(disk)], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a private namespace here: {probe.stderr.strip()}")
    env = clean_env(tmp_path, SPMIRROR_API_URL=server.url, SPMIRROR_API_KEY=KEY)
    mounted = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
               'mount -t tmpfs -o size=256k tmpfs "$0" && exec "$@"', str(disk)]
    result = subprocess.run([*mounted, sys.executable, "-m", "mirror", "sync", "--db", str(disk / "mirror.db")],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert_one_error(result, 75, "the disk holding", "is full", "free some space")
