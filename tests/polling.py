"""Waiting for something another process does, without sleeping for a fixed time."""

from __future__ import annotations

import socket
import time
from typing import Callable

import pytest


def wait_until(predicate: Callable[[], object], timeout: float, message: str = "", poll: float = 0.02):
    """Poll `predicate` until it returns something truthy (returned), or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(poll)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
