"""How long the calls took, and what that makes of a walk of the whole listing."""

from __future__ import annotations

import statistics

from mirror.probe.calls import LISTING, Answer
from mirror.probe.findings import NOTE, OK, Finding

SLOW_PAGE_SECONDS = 2.0


def times(answers: list[Answer], pages: dict[int, Answer]) -> Finding:
    by_action: dict[str, list[float]] = {}
    for answer in answers:
        by_action.setdefault(answer.action, []).append(answer.seconds)
    every = [s for values in by_action.values() for s in values]
    slowest = max(answers, key=lambda a: a.seconds)
    page_median = statistics.median(by_action.get(LISTING, every))
    holding = [p for p, a in pages.items() if a.records]
    last = max(holding) if holding else 1
    value = {"calls": len(answers), "median_ms": _ms(statistics.median(every)), "slowest_ms": _ms(slowest.seconds),
             "slowest_action": slowest.action, "page_median_ms": _ms(page_median),
             "by_action_median_ms": {a: _ms(statistics.median(v)) for a, v in by_action.items()}}
    walk = page_median * last
    text = (f"{len(answers)} calls: median {_ms(statistics.median(every))} ms, slowest {_ms(slowest.seconds)} ms "
            f"({slowest.action}); a page takes {_ms(page_median)} ms, so walking {last} page{'s' * (last != 1)} "
            f"one at a time takes {'' if walk < 0.1 else 'about '}{_duration(walk)}")
    if page_median > SLOW_PAGE_SECONDS:
        return Finding("response_times", NOTE, text + "; the walk fetches several pages at once ([api] "
                       "max_in_flight), which hides much of that", "nothing; keep [api] max_in_flight at 8 or more",
                       value)
    return Finding("response_times", OK, text, value=value)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _duration(seconds: float) -> str:
    if seconds < 0.1:
        return "less than 0.1 s"
    if seconds < 1:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"
