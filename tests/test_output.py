"""What a person reads: `spmirror sync` on a terminal (a pseudo-terminal here) and off one, and `spmirror status`.

Every command runs as `python -m mirror` in a subprocess against a real simulator and real
files; setup syncs run in-process to keep the module fast.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import API_KEY
from mirror.commands.sync import sync_once
from mirror.config import load_settings
from mirror.simulator.server import SimulatorServer
from sqlite_edit import edit

CUSTOMERS = 300  # six full pages and an empty seventh
PAGES = 7
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colours of the console log (not the line erasing)


@dataclass
class Output:
    code: int
    raw: str  # everything the terminal received, control sequences included

    def frames(self, label: str) -> list[str]:
        """Each status line drawn for `label` ("pull" or "push"), in order."""
        text = ANSI.sub("", self.raw).replace("\n", "\r")
        parts = (part.removesuffix("\x1b[K") for part in text.split("\r"))
        return [part for part in parts if part.startswith(label + " ")]

    def screen(self) -> list[str]:
        """The lines left on the screen at the end (what a carriage return and erase left standing)."""
        lines = []
        for physical in ANSI.sub("", self.raw).split("\n"):
            shown = ""
            for piece in physical.split("\r"):
                erased = "\x1b[K" in piece
                piece = piece.replace("\x1b[K", "")
                shown = piece + ("" if erased else shown[len(piece):])
            if shown.strip():
                lines.append(shown.rstrip())
        return lines


class Mirror:
    """A mirror file of the module's simulator, and `spmirror` run on it as a user would."""

    def __init__(self, sim: SimulatorServer, home: Path, **env: str):
        self.sim, self.home, self.db = sim, home, home / "mirror.db"
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("SPMIRROR_") and k not in ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY",
                                                                   "CONFIGURATION_DIRECTORY")}
        self.env.update(XDG_CONFIG_HOME=str(home / "xdg"), SPMIRROR_API_URL=sim.url, SPMIRROR_API_KEY=sim.api_key,
                        SPMIRROR_DB=str(self.db), TERM="xterm", **env)

    def sync_in_process(self) -> None:
        settings = load_settings(env={k: v for k, v in self.env.items() if k.startswith("SPMIRROR_")})
        assert sync_once(settings)[0] == 0

    def run(self, *args: str) -> subprocess.CompletedProcess:
        """`spmirror ARGS` with its output piped, as cron or a script runs it."""
        return subprocess.run([sys.executable, "-m", "mirror", *args], env=self.env, cwd=self.home,
                              capture_output=True, text=True, timeout=60)

    def on_terminal(self, *args: str, columns: int = 160, **env: str) -> Output:
        """`spmirror ARGS` on a pseudo-terminal (stdin, stdout and stderr), read to the end."""
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
        process = subprocess.Popen([sys.executable, "-m", "mirror", *args], env={**self.env, **env}, cwd=self.home,
                                   stdin=slave, stdout=slave, stderr=slave, close_fds=True)
        os.close(slave)
        received = []
        try:
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the last holder of the terminal's other end has exited
                    break
                if not chunk:
                    break
                received.append(chunk)
        finally:
            os.close(master)
        code = process.wait(timeout=60)
        return Output(code, b"".join(received).decode("utf-8", "replace"))


@pytest.fixture(scope="module")
def sim():
    with SimulatorServer(customers=CUSTOMERS, seed=23, api_key=API_KEY) as server:
        yield server


@pytest.fixture
def mirror(sim, tmp_path):
    sim.faults.reset()
    return Mirror(sim, tmp_path)


def edit_remote(sim: SimulatorServer, ids: list[int], tag: str) -> None:
    for remote_id in ids:
        sim.account.edit_customer(remote_id, phone2=f"0400 {tag} {remote_id % 1000:03d}")


def bulk_edit(mirror: Mirror, rows: int) -> None:
    """A person's bulk UPDATE of the first `rows` rows, to a value no other test writes (the
    simulator is shared, and an UPDATE to the value a row holds is no edit)."""
    edit(mirror.db, f"UPDATE customers SET customercompanyname = 'Bulk {mirror.home.name}' "
                    f"WHERE id IN (SELECT id FROM customers ORDER BY id LIMIT {rows})")


def test_a_first_import_shows_a_bar_a_rate_an_unknown_total_and_one_summary_line(mirror):
    """A first sync on a terminal draws pages "of ?" with a rate (no made-up time left), ends with a
    full bar, and leaves one human line in place of the sync_finished record."""
    out = mirror.on_terminal("sync")
    assert out.code == 0, out.raw
    pulls = out.frames("pull")
    assert pulls and all(" of ?" in frame and "time left ?" in frame for frame in pulls[:-1]), pulls
    assert all(re.search(r"customers at [\d,.]+/s", frame) for frame in pulls), pulls
    assert re.fullmatch(rf"pull █+  page {PAGES} of {PAGES} · {CUSTOMERS} customers at [\d,.]+/s · done", pulls[-1])
    assert not any("eta" in frame or " 0s" in frame for frame in pulls)
    screen = out.screen()
    assert len(screen) == 1, screen
    assert re.fullmatch(rf"Pulled {CUSTOMERS} customers \({CUSTOMERS} new\) in [\d.]+ s", screen[0])
    assert "sync_finished" not in out.raw


def test_a_later_walk_estimates_its_total_from_the_last_complete_walk(mirror):
    """The second sync reads "page 1 of ~7" with a bar and a time left, taken from the first walk."""
    mirror.sync_in_process()
    out = mirror.on_terminal("sync")
    assert out.code == 0, out.raw
    first = out.frames("pull")[0]
    assert re.fullmatch(rf"pull █+░+  page 1 of ~{PAGES} · 50 customers at [\d,.]+/s · [\d.]+ s left", first), first
    assert out.screen() == [out.screen()[0]] and "(no changes)" in out.screen()[0]


def test_the_push_shows_n_of_m_with_a_rate_and_the_summary_counts_the_edits(mirror):
    """60 local edits show as "updates n of 60" with a rate, and the summary says "pushed 60 edits"."""
    mirror.sync_in_process()
    bulk_edit(mirror, 60)
    out = mirror.on_terminal("sync")
    assert out.code == 0, out.raw
    pushes = out.frames("push")
    assert pushes[0].endswith("updates 0 of 60 at ?/s · time left ?"), pushes
    assert re.fullmatch(r"push █+  updates 60 of 60 at [\d,.]+/s · done", pushes[-1]), pushes
    (summary,) = out.screen()
    assert re.fullmatch(rf"Pulled {CUSTOMERS} customers \(.*\) and pushed 60 edits in [\d.]+ s", summary), summary


def test_245_remote_edits_are_one_line_on_a_terminal_and_245_events_in_the_json_log(sim, tmp_path):
    """The same 245 remote edits: one summary line on a terminal, one console line each with
    `spmirror -v` (as with level debug), and 245 customer_updated events in the JSON log off a terminal."""
    quiet, verbose, piped = (Mirror(sim, tmp_path / name) for name in ("quiet", "verbose", "piped"))
    for mirror in (quiet, verbose, piped):
        mirror.home.mkdir()
        mirror.sync_in_process()
    edit_remote(sim, sim.account.ids()[:245], "245")

    out = quiet.on_terminal("sync")
    assert out.code == 0, out.raw
    assert out.screen() == [out.screen()[0]], out.screen()
    assert re.fullmatch(rf"Pulled {CUSTOMERS} customers \(245 changed\) in [\d.]+ s", out.screen()[0])
    assert "customer_updated" not in out.raw

    loud = verbose.on_terminal("-v", "sync")
    assert loud.code == 0, loud.raw
    assert sum("customer_updated" in line for line in loud.screen()) == 245
    assert loud.screen()[-1].startswith(f"Pulled {CUSTOMERS} customers (245 changed)")

    result = piped.run("sync")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]  # every line is JSON: no summary
    assert sum(e["event"] == "customer_updated" for e in events) == 245
    assert [e["event"] for e in events][-1] == "sync_finished" and "\x1b" not in result.stdout


def test_a_log_line_during_the_walk_stands_on_its_own_line(mirror):
    """A warning logged while the status line is up (a 429 on the first page) gets a line of its
    own, never the tail of a progress line, and the summary follows it."""
    mirror.sync_in_process()
    bulk_edit(mirror, 1)
    mirror.sim.faults.script("429", action="getallcustomers", retry_after=0)
    out = mirror.on_terminal("sync")
    assert out.code == 0, out.raw
    screen = out.screen()
    assert len(screen) == 2 and re.match(r"\S+Z \[warning\s*\] api_retried ", screen[0]), screen
    assert screen[1].startswith(f"Pulled {CUSTOMERS} customers") and "pushed 1 edit " in screen[1]


def test_the_summary_names_the_rows_a_person_must_settle(mirror):
    """A conflict left by the sync ends the summary with "1 conflict: spmirror status"."""
    mirror.sync_in_process()
    target = mirror.sim.account.ids()[5]
    edit(mirror.db, f"UPDATE customers SET customerphone2 = '0400 local' WHERE pkcustomerid = {target}")
    edit_remote(mirror.sim, [target], "remote")
    out = mirror.on_terminal("sync")
    assert out.code == 0, out.raw
    (summary,) = out.screen()
    assert summary.endswith("; 1 conflict: spmirror status"), summary


def test_status_lists_ten_rows_then_says_how_many_more_and_all_lists_them_all(mirror):
    """After a bulk edit of 60 rows, status lists 10 and "and 50 more (spmirror status --all)";
    --limit 3 lists 3; --all lists all 60; --json keeps its fields and counts the rows it did not list."""
    mirror.sync_in_process()
    bulk_edit(mirror, 60)
    listed = re.compile(r"^  pending  \d+ ")

    short = mirror.run("status")
    assert short.returncode == 0 and short.stderr == "", short.stderr
    lines = short.stdout.splitlines()
    assert "by sync_state   pending 60, synced 240" in lines
    assert "rows not synced (first 10 of 60):" in lines
    assert sum(bool(listed.match(line)) for line in lines) == 10
    assert lines[-1] == "  and 50 more (spmirror status --all)"

    everything = mirror.run("status", "--all")
    assert everything.returncode == 0, everything.stderr
    assert sum(bool(listed.match(line)) for line in everything.stdout.splitlines()) == 60
    assert "more (spmirror status --all)" not in everything.stdout

    three = mirror.run("status", "--limit", "3").stdout.splitlines()
    assert sum(bool(listed.match(line)) for line in three) == 3 and three[-1] == "  and 57 more (spmirror status --all)"

    summary = json.loads(mirror.run("status", "--json").stdout)
    assert len(summary["rows_needing_attention"]) == 10 and summary["rows_needing_attention_count"] == 60
    assert summary["sync_state"] == {"pending": 60, "synced": 240} and summary["customers"] == CUSTOMERS
    assert len(json.loads(mirror.run("status", "--json", "--all").stdout)["rows_needing_attention"]) == 60


def test_status_names_what_the_last_sync_pushed_and_failed_to_push(mirror):
    """The last-sync lines name pushed and push errors (and --json has them)."""
    mirror.sync_in_process()
    bulk_edit(mirror, 3)
    edit(mirror.db, "UPDATE customers SET customeremail = 'not an email' WHERE id = (SELECT max(id) FROM customers)")
    mirror.sync_in_process()
    status = mirror.run("status")
    assert status.returncode == 0, status.stderr
    assert "                pushed 3, push errors 1, conflicts 0" in status.stdout.splitlines(), status.stdout
    last = json.loads(mirror.run("status", "--json").stdout)["last_run"]
    assert (last["pushed"], last["push_errors"]) == (3, 1)


@pytest.mark.parametrize("content", [None, b"this is not a database, it is a shopping list\n" * 20])
def test_status_errors_go_to_stderr_with_exit_2(tmp_path, sim, content):
    """No mirror, or a file that is not one: one Error and one Try line on stderr, exit 2, no traceback."""
    mirror = Mirror(sim, tmp_path)
    if content is not None:
        mirror.db.write_bytes(content)
    status = mirror.run("status")
    assert status.returncode == 2 and status.stdout == ""
    lines = status.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("Error: ") and lines[1].startswith("Try: "), status.stderr
    assert str(mirror.db) in lines[0]
    assert mirror.db.exists() == (content is not None)


def test_the_summary_wording_counts_and_plurals():
    """The summary reads as a sentence: plurals, thousands separators, each side only if it ran."""
    from mirror.commands.sync import SyncReport, render_summary
    from mirror.sync.push import PushReport

    report = SyncReport("run", listed=100_000, created=3, updated=12, deleted=1, delete_candidates=2, result="ok",
                        push=PushReport(updated=3, created=1, restored=1))
    assert render_summary(report, 19.4, states={"synced": 99_990, "conflict": 1, "error": 2, "pending": 1}) == (
        "Pulled 100,000 customers (3 new, 12 changed, 1 deleted, 2 missing) and pushed 4 edits in 19 s; "
        "restored 1 row deleted here (push_deletes is off); 1 conflict, 2 errors, 1 edit waiting: spmirror status")
    quiet = SyncReport("run", listed=1, result="ok", push=PushReport())
    assert render_summary(quiet, 0.42, states={"synced": 1}) == "Pulled 1 customer (no changes) in 0.4 s"
    assert render_summary(quiet, 0.42, pull=False, states={"pending": 2}) == (
        "Nothing to push in 0.4 s; 2 edits waiting: spmirror status")
    assert render_summary(SyncReport("run", result="incomplete"), 3.0) is None
