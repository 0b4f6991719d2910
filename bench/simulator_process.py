"""Start `spmirror simulate` in its own process (its own core), for the benchmarks."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from contextlib import contextmanager


@contextmanager
def running_simulator(customers: int, seed: int = 1, api_key: str = "bench-key", order: str = "id"):
    """Yield (url, key) of a simulator subprocess serving `customers` customers; stop it after."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mirror", "simulate", "--port", "0", "--customers", str(customers),
         "--seed", str(seed), "--api-key", api_key, "--order", order],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        url = process.stdout.readline().split()[-1]
        key = process.stdout.readline().split()[-1]
        yield url, key
    finally:
        process.terminate()
        process.wait(timeout=30)


def admin(url: str, key: str, route: str, payload: dict) -> dict:
    """POST to one of the simulator's /_admin/ routes."""
    base = url.rsplit("/", 1)[0]
    request = urllib.request.Request(
        f"{base}/_admin/{route}?api_key={key}", data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")
