"""bench/stats.py: percentiles by linear interpolation and the median-and-spread summaries the
benchmarks print, checked on data whose answers are known by hand."""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parent.parent / "bench" / "stats.py"
_spec = importlib.util.spec_from_file_location("bench_stats", _PATH)
stats = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stats)


@pytest.mark.parametrize(("q", "expected"), [
    (0, 1.0), (25, 3.25), (50, 5.5), (75, 7.75), (90, 9.1), (95, 9.55), (100, 10.0),
])
def test_percentiles_of_one_to_ten(q, expected):
    """On 1..10 the q-th percentile sits at rank 9q/100 (0-based), interpolated between neighbours."""
    assert stats.percentile(range(1, 11), q) == pytest.approx(expected)


def test_p95_of_fifty_values_is_not_the_94th():
    """p95 of 1..50 is 47.55 (between the 47th and 48th values); the 47th alone would be the 94th percentile."""
    values = list(range(1, 51))
    assert stats.percentile(values, 95) == pytest.approx(47.55)
    assert stats.percentile(values, 94) == pytest.approx(47.06)


def test_percentile_ignores_input_order_and_handles_one_value():
    """Unsorted input gives the same answer as sorted; a single value is every percentile."""
    values = [7.0, 1.0, 3.0, 9.0, 5.0]
    shuffled = values[:]
    random.Random(3).shuffle(shuffled)
    assert stats.percentile(shuffled, 50) == stats.percentile(sorted(values), 50) == 5.0
    assert stats.percentile(values, 25) == 3.0 and stats.percentile(values, 75) == 7.0
    assert [stats.percentile([4.2], q) for q in (0, 50, 95, 100)] == [4.2] * 4


def test_percentile_agrees_with_statistics_quantiles_inclusive():
    """The documented method is the standard library's `quantiles(method="inclusive")`."""
    rng = random.Random(11)
    values = [rng.uniform(0, 100) for _ in range(37)]
    cuts = statistics.quantiles(values, n=20, method="inclusive")  # 5th, 10th, ... 95th
    assert [stats.percentile(values, 5 * (i + 1)) for i in range(19)] == pytest.approx(cuts)


@pytest.mark.parametrize(("values", "q"), [([], 50), ([1.0], -1), ([1.0], 100.5)])
def test_percentile_refuses_nothing_and_out_of_range(values, q):
    """No values, or a percentile outside 0..100, is an error rather than a made-up number."""
    with pytest.raises(ValueError):
        stats.percentile(values, q)


def test_summary_gives_median_spread_and_the_values_in_measured_order():
    """summary() of known samples: median, min, max, quartiles and IQR, values kept in order."""
    assert stats.summary([3.0, 1.0, 2.0, 10.0]) == {
        "n": 4, "median": 2.5, "min": 1.0, "max": 10.0, "p25": 1.75, "p75": 4.75, "iqr": 3.0,
        "values": [3.0, 1.0, 2.0, 10.0],
    }
    assert stats.summary([0.12345, 0.2, 0.3], digits=2)["median"] == 0.2
    with pytest.raises(ValueError):
        stats.summary([])


def test_summarise_samples_folds_a_phase():
    """Timed keys become summaries; keys every sample agrees on stay scalar; others become lists."""
    samples = [{"seconds": 2.0, "rows": 0, "rss": 50.0}, {"seconds": 1.0, "rows": 0, "rss": 51.0},
               {"seconds": 3.0, "rows": 0, "rss": 50.0}]
    folded = stats.summarise_samples(samples, timed={"seconds": 3})
    assert folded["samples"] == 3 and folded["rows"] == 0 and folded["rss"] == [50.0, 51.0, 50.0]
    assert folded["seconds"]["median"] == 2.0 and folded["seconds"]["iqr"] == 1.0


def test_ratio_summary_pairs_samples():
    """Ratios are taken sample by sample (each phase against the floor measured beside it)."""
    ratios = stats.ratio_summary([2.0, 3.0, 8.0], [1.0, 2.0, 4.0])
    assert ratios["values"] == [2.0, 1.5, 2.0] and ratios["median"] == 2.0 and ratios["min"] == 1.5
    with pytest.raises(ValueError):
        stats.ratio_summary([1.0], [1.0, 2.0])


@pytest.mark.parametrize("text", ["0", "1", "2", "three"])
def test_sample_count_refuses_fewer_than_three(text):
    """--samples below 3 (or not a number) is refused: one sample shows no spread."""
    with pytest.raises(argparse.ArgumentTypeError):
        stats.sample_count(text)
    assert stats.sample_count("3") == 3 and stats.sample_count("7") == 7
