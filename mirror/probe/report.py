"""The check's report: one line per finding (level, key, what was seen), a `what to do` line
under each note and problem, and a last line with the verdict; or the same as one JSON object."""

from __future__ import annotations

import json
from typing import Any

from mirror.probe.findings import NOTE, PROBLEM, Finding, problems

_KEY_WIDTH = 15


def verdict(findings: list[Finding]) -> str:
    found = problems(findings)
    notes = sum(f.level == NOTE for f in findings)
    if found:
        keys = ", ".join(f.key for f in found)
        return (f"{len(found)} problem{'s' * (len(found) != 1)} would make a sync wrong or unsafe ({keys}): a first "
                "sync refuses to start until they are dealt with.")
    return f"Nothing here would make a sync wrong ({notes} note{'s' * (notes != 1)})."


def render_text(findings: list[Finding], *, url: str, calls: int, recorded: str) -> str:
    """The report as a person reads it; `url` is already redacted, `recorded` says where the
    findings were kept (or why not)."""
    lines = [f"spmirror check of {url}: {calls} read call{'s' * (calls != 1)}, no writes"]
    for finding in findings:
        lines.append(f"  {finding.level:<8} {finding.key:<{_KEY_WIDTH}} {finding.message}")
        if finding.level in (NOTE, PROBLEM) and finding.what_to_do:
            lines.append(f"  {'':<8} {'':<{_KEY_WIDTH}} what to do: {finding.what_to_do}")
    lines.append(verdict(findings))
    lines.append(recorded)
    return "\n".join(lines)


def render_json(findings: list[Finding], *, url: str, calls: int, exit_code: int, recorded_in: str | None) -> str:
    report: dict[str, Any] = {
        "url": url,
        "calls": calls,
        "writes": 0,
        "exit_code": exit_code,
        "problems": [f.key for f in problems(findings)],
        "verdict": verdict(findings),
        "recorded_in": recorded_in,
        "findings": [f.as_dict() for f in findings],
    }
    return json.dumps(report, indent=2, ensure_ascii=False)
