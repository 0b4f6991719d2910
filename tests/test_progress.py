"""The terminal progress line of a walk."""

from __future__ import annotations

import io

from mirror.progress import WalkProgress
from mirror.sync.pull import PullReport
from mirror.walk import Page


def test_progress_line_shows_pages_customers_rate_and_finishes_with_a_newline():
    """Each redraw shows pages, customers and rate; the last page ends the line."""
    stream = io.StringIO()
    progress = WalkProgress(expected=500, stream=stream)
    report = PullReport("run")
    report.pages, report.listed = 1, 50
    progress(Page(1, [], 0, [], False), report)
    report.pages, report.listed, report.created = 11, 500, 3
    progress(Page(11, [], 0, [], True), report)
    text = stream.getvalue()
    assert text.startswith("\r  page      1  customers       50")
    assert "page     11  customers      500" in text and "changed      3" in text and "/s" in text
    assert text.endswith("\n")
