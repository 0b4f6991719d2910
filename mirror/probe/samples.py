"""`--save-samples DIR`: the probe's answers as files a user can attach to a bug report, with
personal data masked, and read back as fixtures (`load_samples`) that give the same findings.

Masking keeps each value's shape and drops its content: an email becomes `personN@example.com`,
digits (phones, ABNs, postcodes, street numbers) become other digits in the same places with
the same spaces and signs, and other text becomes a numbered placeholder naming what it was
(`Given 3`, `Family 3`, `Street 7`). The same value gets the same placeholder throughout one
set of samples (the email asked for by the lookup is the one masked in the listing), and a
placeholder says nothing of the value: the numbering and the digits come from this run, not
from the value. Only keys known to hold no personal data (ids, status, type and GST words,
dates, project figures, error codes) are kept as sent; every other string is masked, keys the
mirror does not know included. The key was never in the answers (the client removes it).

Layout: `calls.json` (the URL without the key, and per call: file, action, params, status,
content type, seconds) and one file per answer, `NN-ACTION[-pPAGE].json` (or `.txt` for a
body that is not JSON).
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

from mirror.probe.calls import UNREADABLE, Answer

INDEX = "calls.json"
KEPT = frozenset({
    "customer_id", "gst_status", "customer_type", "customer_status", "creation_status", "creation_date", "datetime",
    "project_id", "project_title", "solar_panel_quantity", "solar_panel_type", "inverter_type", "inverter_quantity",
    "system_size", "proposal_link", "user_id", "state", "country", "code", "Message", "customerID", "gstRegistered",
    "contactTime", "page", "success",
})
# What a masked text is called, by its key (anything else is "Text").
_LABELS = (
    (("first_name", "firstname"), "Given"), (("last_name", "surname"), "Family"), (("company",), "Company"),
    (("street",), "Street"), (("suburb",), "Suburb"), (("note",), "Note"), (("username",), "User"),
    (("work_title",), "Title"), (("address",), "Address"), (("message",), "Message"),
)
_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")


class Masker:
    """Stable placeholders for one set of samples (see the module docstring)."""

    def __init__(self) -> None:
        self._placeholders: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}

    def value(self, value: Any, key: str = "") -> Any:
        """A JSON value with every personal string (by `key`, its member name) masked."""
        if isinstance(value, dict):
            return {k: self.value(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, key) for v in value]
        if key in KEPT or value is None or isinstance(value, bool):
            return value
        if key in ("message", "Message") and isinstance(value, str):
            return self.emails_in(value)
        if isinstance(value, str):
            return self.text(value, key)
        if isinstance(value, int) and _personal_number(key):
            return int(self.text(str(value), key))
        return value

    def text(self, value: str, key: str = "") -> str:
        if not value.strip():
            return value
        if _EMAIL.fullmatch(value.strip()):
            return self._placeholder("email", value.strip().lower(), lambda n: f"person{n}@example.com")
        if not any(c.isalpha() for c in value):
            return self._placeholder("digits", value, lambda _n: _other_digits(value))
        label = next((name for keys, name in _LABELS if any(k in key.lower() for k in keys)), "Text")
        return self._placeholder(label, value, lambda n: f"{label} {n}")

    def emails_in(self, text: str) -> str:
        return _EMAIL.sub(lambda m: self.text(m.group(0)), text)

    def _placeholder(self, kind: str, value: str, make) -> str:
        found = self._placeholders.get((kind, value))
        if found is None:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            found = self._placeholders[(kind, value)] = make(self._counts[kind])
        return found


def _personal_number(key: str) -> bool:
    """Numbers under these keys are phones or ABNs sent as JSON numbers."""
    lowered = key.lower()
    return any(part in lowered for part in ("phone", "abn", "postcode", "streetnum", "mobile"))


def _other_digits(value: str) -> str:
    """The same layout with other digits (a leading 0 stays 0: "0400 ..." still reads as a phone)."""
    out = []
    for index, char in enumerate(value):
        if char.isdigit() and char.isascii():
            out.append(char if index == 0 and char == "0" else str(secrets.randbelow(10)))
        else:
            out.append(char)
    return "".join(out)


def _file_name(number: int, answer: Answer) -> str:
    page = f"-p{answer.page}" if answer.page is not None else ""
    return f"{number:02d}-{answer.action}{page}.{'txt' if answer.body is UNREADABLE else 'json'}"


def save_samples(answers: list[Answer], directory: Path, *, url: str) -> list[Path]:
    """Write the masked answers and their index into `directory` (created if needed); return
    the files written. `url` must already be free of the key. Raises OSError."""
    directory.mkdir(parents=True, exist_ok=True)
    masker = Masker()
    written, index = [], []
    for number, answer in enumerate(answers, 1):
        name = _file_name(number, answer)
        if answer.body is UNREADABLE:
            text = masker.emails_in(answer.text)
        else:
            text = json.dumps(masker.value(answer.body), indent=1, ensure_ascii=False) + "\n"
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
        index.append({"file": name, **answer.as_dict(), "params": masker.value(answer.params)})
    path = directory / INDEX
    path.write_text(json.dumps({"url": url, "calls": index}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return [path, *written]


def load_samples(directory: Path) -> list[Answer]:
    """The answers saved in `directory`, in call order (for `detect`, as fixtures)."""
    index = json.loads((directory / INDEX).read_text(encoding="utf-8"))
    return [Answer(call["action"], call["params"], call["status"], call["content_type"],
                   (directory / call["file"]).read_text(encoding="utf-8"), call["seconds"])
            for call in index["calls"]]
