"""Shared fixtures: a real simulator on 127.0.0.1, a fake clock, and a client wired to both; the
mirror database of each backend (tests/backends.py) for the conformance suite."""

from __future__ import annotations

import io
import random

import pytest

from backends import (KINDS, REQUIRE_POSTGRES_VARIABLE, open_mirror_database, postgres_required, postgres_server,
                      redact)
from mirror.api import SolarProofClient, Timeouts
from mirror.logs import configure_logging
from mirror.retry import RetryPolicy
from mirror.simulator.server import SimulatorServer

# Distinctive, so a leak anywhere is easy to find by plain text search.
API_KEY = "sk-LEAKCANARY-7f3a9c1e5b2d4e6f8a0b1c2d3e4f5a6b"


@pytest.fixture(autouse=True, scope="session")
def quiet_logs():
    """Logs go to a buffer at warning level; tests that check events use capture_logs()."""
    configure_logging(level="warning", json=True, stream=io.StringIO())


class FakeClock:
    """Monotonic time that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def simulator():
    """One simulator per test module (200 customers, seed 7); tests reset what they change."""
    with SimulatorServer(customers=200, seed=7, api_key=API_KEY) as server:
        yield server


@pytest.fixture
def sim(simulator):
    """The module's simulator with faults and quirks reset before each test."""
    simulator.faults.reset()
    simulator.quirks.reset()
    yield simulator
    simulator.faults.reset()
    simulator.quirks.reset()


def make_client(server, clock: FakeClock | None = None, **options) -> SolarProofClient:
    """A client for `server` whose waits go through `clock` (no real sleeping in tests)."""
    options.setdefault("retry", RetryPolicy(attempts=4, base_delay=0.5, max_delay=4, deadline=60))
    options.setdefault("timeouts", Timeouts(connect=2, read=5, write=5, pool=5))
    if clock is not None:
        options.setdefault("sleep", clock.sleep)
        options.setdefault("clock", clock)
    return SolarProofClient(server.url, server.api_key, rng=random.Random(3), **options)


@pytest.fixture
def client(sim, clock):
    with make_client(sim, clock) as c:
        yield c


class FailingFromPage(SolarProofClient):
    """A client that makes the simulator fail every listing request from page `fail_from` on."""

    def __init__(self, *args, server, fail_from: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.server, self.fail_from = server, fail_from

    def fetch_customer_page(self, page):
        if page == self.fail_from:
            self.server.faults.script("503", count=1000, action="getallcustomers")
        return super().fetch_customer_page(page)


# -- the two backends ---------------------------------------------------------------------------
# A test (or fixture) that asks for `backend` or `mirror_db` runs once per backend: test ids end in
# [sqlite] / [postgres], so `-k sqlite` or `-k postgres` picks one. A test marked
# `sqlite_only(reason)` checks something PostgreSQL has no counterpart for (PRAGMAs, file modes,
# WAL, SQLite migrations, the sqlite3 shell) and runs on SQLite only.


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only(reason): checks what only a SQLite file has; not run on PostgreSQL")


def pytest_generate_tests(metafunc):
    if "backend" not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0] if mark.args else mark.kwargs.get("argnames", "")
        if "backend" in (names.replace(" ", "").split(",") if isinstance(names, str) else names):
            return  # the test chose its backends itself
    kinds = ["sqlite"] if metafunc.definition.get_closest_marker("sqlite_only") else list(KINDS)
    # Module scope: a module's module-scoped fixtures (a synced mirror, a daemon) are built once per backend.
    metafunc.parametrize("backend", kinds, indirect=True, scope="module")


@pytest.fixture(scope="module")
def backend(request) -> str:
    """'sqlite' or 'postgres'. PostgreSQL tests skip, saying why, when no server can be reached;
    with SPMIRROR_TEST_REQUIRE_POSTGRES=1 (CI) they fail instead."""
    kind = request.param
    if kind == "postgres":
        server = postgres_server()
        if server.error is not None:
            if postgres_required():
                pytest.fail(f"{server.reason} ({REQUIRE_POSTGRES_VARIABLE} is set)", pytrace=False)
            pytest.skip(server.reason)
    return kind


@pytest.fixture
def mirror_db(backend, tmp_path):
    """A fresh, empty mirror database of the test's backend: a file path in tmp_path (not created
    yet) or a schema of its own (dropped after)."""
    with open_mirror_database(backend, tmp_path) as database:
        yield database


def pytest_collection_finish(session):
    session.config.spmirror_postgres_tests = {
        item.nodeid for item in session.items
        if getattr(item, "callspec", None) is not None and item.callspec.params.get("backend") == "postgres"}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """One line on the PostgreSQL half of the suite: that it ran and where, or that it was
    skipped (or, under SPMIRROR_TEST_REQUIRE_POSTGRES, failed) and why."""
    wanted = getattr(config, "spmirror_postgres_tests", set())
    if not wanted or config.option.collectonly:
        return
    server = postgres_server()
    if server.error is None:
        ran = sum(1 for key in ("passed", "failed") for report in terminalreporter.stats.get(key, [])
                  if report.when == "call" and report.nodeid in wanted)
        terminalreporter.write_line(f"PostgreSQL tests: {ran} of {len(wanted)} ran against {redact(server.url)}")
    elif postgres_required():
        terminalreporter.write_line(f"PostgreSQL tests: {len(wanted)} FAILED, none could run: {server.reason}",
                                    red=True, bold=True)
    else:
        terminalreporter.write_line(f"PostgreSQL tests: {len(wanted)} SKIPPED: {server.reason}", yellow=True, bold=True)
