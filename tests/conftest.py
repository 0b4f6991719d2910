"""Shared fixtures: a real simulator on 127.0.0.1, a fake clock, and a client wired to both."""

from __future__ import annotations

import io
import random

import pytest

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
