"""bench/peer_dlt.py: without dlt it says how to install it in one line; with dlt (the optional
`bench` extra, not the test extra) its load stops at the listing's short last page and its
unchanged reload merges on customer_id instead of adding rows."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mirror.simulator.server import SimulatorServer

from conftest import API_KEY

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "peer_dlt.py"
needs_dlt = pytest.mark.skipif(importlib.util.find_spec("dlt") is None,
                               reason="dlt is not installed (pip install -e '.[bench]'); it is not in the test extra")


def run_script(*args: str, block_dlt: bool = False, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The script in a fresh interpreter; `block_dlt` makes `import dlt` fail as if not installed."""
    block = "sys.modules['dlt'] = None; " if block_dlt else ""
    code = (f"import runpy, sys; {block}sys.argv = {[str(SCRIPT), *args]!r}; "
            f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_without_dlt_one_line_says_how_to_install_it():
    """No dlt: exit 2, one line on stderr naming the bench extra, no traceback, nothing on stdout."""
    result = run_script("--customers", "50", block_dlt=True)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "pip install -e '.[bench]'" in result.stderr


@needs_dlt
def test_dlt_load_stops_at_the_short_page_and_the_reload_merges(tmp_path):
    """120 customers are 3 pages (50, 50, 20): each dlt load asks for those 3 and no empty 4th,
    writes 120 customer rows, and after the unchanged reload the table still holds 120."""
    with SimulatorServer(customers=120, seed=7, api_key=API_KEY) as server:
        loads = []
        for phase in ("dlt_first", "dlt_reload"):
            result = run_script("--phase", phase, "--url", server.url, "--key", API_KEY, "--dir", str(tmp_path),
                                cwd=tmp_path)
            assert result.returncode == 0, result.stderr[-2000:]
            assert API_KEY not in result.stdout + result.stderr
            loads.append(json.loads(result.stdout.strip().splitlines()[-1]))
        calls = server.account.call_counts()
    assert calls["getallcustomers"] == 6
    assert [load["customer_rows_written"] for load in loads] == [120, 120]
    with sqlite3.connect(tmp_path / "dlt__solarproof.db") as db:
        assert db.execute("SELECT count(*), count(DISTINCT customer_id) FROM customers").fetchone() == (120, 120)
    assert (tmp_path / "pipelines" / "solarproof_peer").is_dir()  # the state lives in the run's own directory
