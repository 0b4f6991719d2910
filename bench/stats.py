"""Summaries of repeated benchmark samples: the median and the spread, so one noisy run shows.

Percentiles interpolate linearly between the two nearest ranks (Hyndman and Fan's type 7, the
default of numpy and spreadsheets, and `statistics.quantiles(method="inclusive")`): for n sorted
values x[0] <= ... <= x[n-1], the q-th percentile sits at rank h = (n - 1) * q / 100 and is
x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)]). So p0 is the minimum, p100 the
maximum and p50 the median, and p95 of 50 values lies between the 47th and 48th smallest.
"""

from __future__ import annotations

import argparse
import math
from typing import Iterable, Mapping, Sequence


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0 <= q <= 100) of `values`, in any order, by linear interpolation.

    Raises ValueError for no values or a q outside 0..100.
    """
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values to take a percentile of")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be between 0 and 100; got {q}")
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (rank - low) * (ordered[high] - ordered[low])


def summary(values: Sequence[float], digits: int = 3) -> dict:
    """The median and spread of `values`: n, median, min, max, p25, p75 and their difference (iqr),
    each rounded to `digits`, and the values themselves in the order they were measured."""
    if not values:
        raise ValueError("no values to summarise")
    p25, p75 = percentile(values, 25), percentile(values, 75)
    return {
        "n": len(values),
        "median": round(percentile(values, 50), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "p25": round(p25, digits),
        "p75": round(p75, digits),
        "iqr": round(p75 - p25, digits),
        "values": [round(v, digits) for v in values],
    }


def summarise_samples(samples: Sequence[dict], timed: Mapping[str, int]) -> dict:
    """Fold several samples of one phase (dicts of the same keys) into one: each key of `timed`
    becomes a `summary` rounded to the digits it maps to; every other key keeps its value when
    all samples agree, else becomes the list of the samples' values."""
    folded: dict = {"samples": len(samples)}
    for key in samples[0]:
        column = [sample[key] for sample in samples]
        if key in timed:
            folded[key] = summary(column, timed[key])
        else:
            folded[key] = column[0] if all(v == column[0] for v in column) else column
    return folded


def ratio_summary(numerators: Sequence[float], denominators: Sequence[float], digits: int = 2) -> dict:
    """The ratio of paired samples (the i-th of each, measured side by side), summarised."""
    if len(numerators) != len(denominators):
        raise ValueError("ratios need paired samples")
    return summary([n / d for n, d in zip(numerators, denominators)], digits)


def sample_count(text: str) -> int:
    """argparse type of --samples: an integer of at least 3, since one or two samples show no spread."""
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of samples; got {text!r}") from None
    if count < 3:
        raise argparse.ArgumentTypeError(f"take at least 3 samples per phase (one or two show no spread); got {count}")
    return count
