"""One thing the probe found about an account's API, and how sure the mirror can be of a sync.

Levels: `ok` (as the mirror expects), `note` (different, and the mirror copes: worth knowing),
`problem` (a sync would be wrong or unsafe: it must not run until this is dealt with). Only a
problem carries weight on the exit code and stops a first sync; every finding says what was
seen, and a note or problem also says what to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from mirror.errors import MirrorError

OK, NOTE, PROBLEM = "ok", "note", "problem"
LEVELS = (OK, NOTE, PROBLEM)
# What to do about a surprise only the project can explain.
REPORT_IT = ("save the answers with spmirror check --save-samples DIR (names, emails, phones and the key are "
             "masked) and attach them to an issue for solarproof-mirror")


@dataclass(frozen=True, slots=True)
class Finding:
    """`key` names what was looked at (stable: the database and --json use it); `value` is the
    detected fact as JSON-able data (the page size, the words seen, ...)."""

    key: str
    level: str
    message: str
    what_to_do: str = ""
    value: Any = field(default=None)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, not {self.level!r}")

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "level": self.level, "message": self.message, "what_to_do": self.what_to_do,
                "value": self.value}


def problems(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == PROBLEM]


class UnsafeApi(MirrorError):
    """The probe found what would make a sync wrong or unsafe: the sync stops before any write.
    The message lists each problem with what to do (the lines `spmirror check` prints)."""

    def __init__(self, found: list[Finding]):
        self.findings = found
        lines = ["this account's API answers in a way that would make a sync wrong, so nothing was written "
                 "(spmirror check shows the whole report):"]
        for finding in found:
            lines.append(f"  problem {finding.key}: {finding.message}")
            if finding.what_to_do:
                lines.append(f"    what to do: {finding.what_to_do}")
        super().__init__("\n".join(lines))
