"""The terminal status line of a sync: the walk's bar, the push's "n of m", and log lines around them."""

from __future__ import annotations

import io
import re

import pytest

from mirror.logs import configure_logging
from mirror.progress import PushProgress, StatusLine, WalkProgress, format_duration, render_line
from mirror.sync.pull import PullReport
from mirror.walk import Page

import structlog


class Terminal(io.StringIO):
    """What a terminal received, as text; it says it is a terminal."""

    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def frames(raw: str) -> list[str]:
    """Each status line drawn, in order (a frame starts with a carriage return)."""
    return [f.removesuffix("\x1b[K") for f in raw.split("\r") if f.removesuffix("\x1b[K").strip()]


def walk_to(progress: WalkProgress, clock: Clock, report: PullReport, pages: int, seconds: float,
            last: bool = False) -> None:
    clock.now += seconds
    report.pages, report.listed = pages, pages * 50
    progress(Page(pages, [], 0, [], last), report)


def test_a_first_import_shows_question_marks_not_a_made_up_time_left():
    """With no earlier complete walk, the total and the time left are "?"; the rate is real."""
    clock, out = Clock(), Terminal()
    line = StatusLine(out, clock, width=120)
    progress, report = WalkProgress(line, expected_pages=None), PullReport("run")
    walk_to(progress, clock, report, 1, 0.5)
    walk_to(progress, clock, report, 20, 1.5)
    drawn = frames(out.getvalue())
    assert drawn[-1] == "pull  page 20 of ? · 1,000 customers at 500/s · time left ?"
    assert all("s left" not in f for f in drawn)
    line.close()


def test_the_last_complete_walk_gives_an_estimated_total_a_bar_and_the_time_left():
    """With 100 pages last time, page 10 after 2 s reads "of ~100", a tenth-full bar and 18 s left."""
    clock, out = Clock(), Terminal()
    line = StatusLine(out, clock, width=100)
    progress, report = WalkProgress(line, expected_pages=100), PullReport("run")
    walk_to(progress, clock, report, 1, 0.2)
    walk_to(progress, clock, report, 10, 1.8)
    last = frames(out.getvalue())[-1]
    assert last.endswith("page 10 of ~100 · 500 customers at 250/s · 18 s left")
    bar = re.match(r"pull (█*)(░*)  ", last)
    assert bar and len(bar.group(1)) * 10 == len(bar.group(1) + bar.group(2))
    line.close()


def test_a_walk_longer_than_the_estimate_says_question_mark_and_the_last_page_the_true_total():
    """Past the estimated page count the total is "?" again; the last page shows the real count, full bar."""
    clock, out = Clock(), Terminal()
    line = StatusLine(out, clock, width=100)
    progress, report = WalkProgress(line, expected_pages=5), PullReport("run")
    walk_to(progress, clock, report, 1, 0.2)
    walk_to(progress, clock, report, 6, 1.0)
    assert frames(out.getvalue())[-1] == "pull  page 6 of ? · 300 customers at 250/s · time left ?"
    walk_to(progress, clock, report, 7, 0.2, last=True)
    assert re.fullmatch(r"pull █+  page 7 of 7 · 350 customers at 250/s · done", frames(out.getvalue())[-1])
    line.close()


def test_push_progress_is_n_of_m_with_a_rate_and_time_left():
    """The push shows "updates 30 of 60 at 10/s · 3 s left", its phase's own rate."""
    clock, out = Clock(), Terminal()
    line = StatusLine(out, clock, width=100)
    push = PushProgress(line)
    push("creates", 0, 2)
    clock.now += 5
    push("creates", 2, 2)
    push("updates", 0, 60)
    clock.now += 3
    push("updates", 30, 60)
    drawn = frames(out.getvalue())
    assert drawn[1].endswith("creates 2 of 2 at 0.4/s · done")
    assert drawn[-1].endswith("updates 30 of 60 at 10/s · 3 s left") and drawn[-1].startswith("push █")
    line.close()


def test_redraws_are_throttled_but_the_first_and_last_page_always_draw():
    """A thousand pages in the same instant draw the first and the last frame only."""
    clock, out = Clock(), Terminal()
    line = StatusLine(out, clock, width=100)
    progress, report = WalkProgress(line, expected_pages=1000), PullReport("run")
    for n in range(1, 1001):
        walk_to(progress, clock, report, n, 0.0, last=n == 1000)
    assert [f.split(" · ")[0].split("  ")[-1] for f in frames(out.getvalue())] == ["page 1 of ~1,000",
                                                                                   "page 1,000 of 1,000"]
    line.close()


def test_the_line_fits_the_terminal_and_drops_the_bar_when_narrow():
    """A line never reaches the last column; a narrow terminal keeps the numbers, not the bar."""
    wide = render_line("pull", 0.5, "page 5 of ~10 · 250 customers at 90/s · 3 s left", width=80)
    narrow = render_line("pull", 0.5, "page 5 of ~10 · 250 customers at 90/s · 3 s left", width=60)
    tiny = render_line("pull", 0.5, "page 5 of ~10 · 250 customers at 90/s · 3 s left", width=20)
    assert "█" in wide and len(wide) <= 79
    assert narrow == "pull  page 5 of ~10 · 250 customers at 90/s · 3 s left"
    assert len(tiny) == 19


def test_a_terminal_that_cannot_show_blocks_gets_ascii():
    """On a terminal whose encoding has no block characters, the bar is # and -, the separators -."""
    out = Terminal()
    out.encoding = "ascii"
    line = StatusLine(out, Clock(), width=80)
    line.update("push", 0.5, "updates 1 of 2 at 3.0/s · 1 s left", force=True)
    assert re.search(r"push #+-+  updates 1 of 2 at 3.0/s - 1 s left", out.getvalue())
    line.close()


@pytest.fixture
def console():
    """The console log on a (fake) terminal, put back to the suite's quiet JSON buffer afterwards."""
    out = Terminal()
    configure_logging(level="info", json=False, stream=out)
    yield out
    configure_logging(level="warning", json=True, stream=io.StringIO())


def test_a_log_line_erases_the_status_line_and_the_line_comes_back_after_it(console):
    """A warning during a walk is printed on a line of its own, then the status line is redrawn."""
    line = StatusLine(console, Clock(), width=100)
    line.update("pull", None, "page 3 of ?", force=True)
    structlog.get_logger().warning("api_retried", action="getallcustomers")
    line.close()
    raw = console.getvalue()
    logged = raw.index("api_retried")
    before = raw[:logged]
    assert before.rindex("\r\x1b[K") > before.rindex("page 3 of ?")  # erased before the log line
    assert "page 3 of ?" in raw[logged:]  # and drawn again after it
    assert raw.endswith("\r\x1b[K")  # closing erases it for good


def test_the_console_leaves_out_per_customer_events_unless_verbose(console):
    """customer_updated and conflict_found stay off the console; other events and errors show."""
    log = structlog.get_logger()
    log.info("customer_updated", remote_id=70001, fields=["customerphone2"])
    log.warning("conflict_found", remote_id=70001, field="customeremail")
    log.info("create_awaiting_confirmation", local_id=4)
    log.warning("mass_delete_suspected", missing=12, limit=3)
    log.error("webhook_fetch_failed", remote_id=70002, error="boom")
    text = console.getvalue()
    assert "customer_updated" not in text and "conflict_found" not in text and "create_awaiting" not in text
    assert "mass_delete_suspected" in text and "webhook_fetch_failed" in text
    configure_logging(level="info", json=False, stream=console, verbose=True)
    log.info("customer_updated", remote_id=70003, fields=["customerphone2"])
    assert "customer_updated" in console.getvalue()


def test_durations_read_as_a_person_would_say_them():
    """Tenths under ten seconds, whole seconds, then minutes and hours."""
    assert [format_duration(s) for s in (0.01, 3.24, 3.0, 19.4, 273, 7500)] == [
        "0.1 s", "3.2 s", "3 s", "19 s", "4 min 33 s", "2 h 05 min"]
