"""Seeded, realistic Australian customers for the simulator's account.

Contract: `People(seed)` owns one `random.Random(seed)` and nothing else random, so the same
seed and the same sequence of calls give the same customers on every run and platform.
`customers(n)` makes the initial book (ids from 70001 upwards, creation times rising with the
id, as an account that grew over the years); `person()` makes the few fields a later create
needs. Records are plain dicts in the simulator's own internal form (see `account.py`).

Speed matters (100,000 customers in well under the few seconds a test can spare), so each
customer costs a few dozen `random` calls and cheap string formatting: choices are taken from
pre-built tuples, and weighted choices from pre-expanded tables instead of `random.choices`.
"""

from __future__ import annotations

import datetime as dt
import gc
import random
import unicodedata

from .names import (
    BUSINESS_WORDS, CONTACT_TIMES, EMAIL_DOMAINS, FIRST_NAMES, INVERTERS, LARGE_SCALE_WORDS,
    LAST_NAMES, NOTES, PANELS, STATES, STREETS, USERS,
)

FIRST_ID = 70001
FIRST_PROJECT_ID = 801
# Creation times of the seeded book spread evenly over this window (fixed, so a seed stays
# deterministic whatever today's date is).
BOOK_START = dt.datetime(2018, 1, 1, 8, 0, 0)
BOOK_END = dt.datetime(2026, 6, 30, 18, 0, 0)
ABN_WEIGHTS = (10, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19)


def _expand(pairs) -> tuple:
    """A weighted table as a flat tuple, so a weighted pick is one `rng.choice`."""
    return tuple(item for item, weight in pairs for _ in range(weight))


def _ascii_slug(word: str) -> str:
    """Lower-case ASCII letters only: 'O'Brien' -> 'obrien', 'Zoë' -> 'zoe'."""
    folded = unicodedata.normalize("NFKD", word).encode("ascii", "ignore").decode()
    return "".join(c for c in folded.lower() if c.isalpha())


_FIRST = tuple((name, _ascii_slug(name)) for name in FIRST_NAMES)
_LAST = tuple((name, _ascii_slug(name)) for name in LAST_NAMES)
_DOMAINS = _expand(EMAIL_DOMAINS)
_STATES = _expand((s, w) for s, w, _, _ in STATES)
assert len(_STATES) == 100  # picked as _STATES[int(rand() * 100)]
_AREA = {state: area for state, _, area, _ in STATES}
_PLACES = {state: places for state, _, _, places in STATES}
_TYPES = _expand(((1, 80), (2, 16), (3, 4)))
_STATUSES = _expand(((0, 25), (1, 40), (2, 28), (3, 7)))
# Drawn only for the 65% of customers who have notes (see `customer`).
_NOTE_COUNTS = _expand(((1, 54), (2, 31), (3, 15)))
_PROJECT_COUNTS = _expand(((0, 35), (1, 50), (2, 15)))
_OWNERS = _expand(((USERS[i]["user_id"], w) for i, w in enumerate((20, 25, 20, 20, 10, 5))))
_CONTACT = tuple(
    ", ".join(t for bit, t in enumerate(CONTACT_TIMES) if mask >> bit & 1) for mask in range(1, 16)
)


def _stamp(seconds: int) -> str:
    """'YYYY-MM-DD HH:MM:SS' for seconds since BOOK_START's epoch day (faster than strftime)."""
    day, sec = divmod(seconds, 86400)
    date = _DAYS.get(day)
    if date is None:
        date = _DAYS[day] = dt.date.fromordinal(day).isoformat()
    return f"{date} {sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}"


def _seconds(when: dt.datetime) -> int:
    """The inverse of `_stamp`'s input: whole seconds since day 1 of the proleptic calendar."""
    return when.toordinal() * 86400 + when.hour * 3600 + when.minute * 60 + when.second


_DAYS: dict[int, str] = {}


def abn_is_valid(abn: str) -> bool:
    """True when `abn` (spaces allowed) is 11 digits passing the ATO's modulus-89 check."""
    digits = [int(c) for c in abn if c.isdigit()]
    if len(digits) != 11 or len(abn.replace(" ", "")) != 11:
        return False
    digits[0] -= 1
    return sum(d * w for d, w in zip(digits, ABN_WEIGHTS)) % 89 == 0


class People:
    """Deterministic factory of customer records and their parts.

    Picks use `rng.random()` scaled to an index rather than `rng.choice`/`randint`, which are
    pure Python and made generation three times slower; the results are just as seeded.
    """

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self._rand = self.rng.random
        self._emails: list[str] = []  # recent emails, to reuse one now and then
        self.next_project_id = FIRST_PROJECT_ID

    def _pick(self, seq):
        return seq[int(self._rand() * len(seq))]

    def _int(self, low: int, high: int) -> int:
        """Uniform integer in low..high inclusive."""
        return low + int(self._rand() * (high - low + 1))

    # -- the initial book -------------------------------------------------------------------

    def customers(self, n: int, first_id: int = FIRST_ID) -> list[dict]:
        """`n` complete customers with ids first_id.., creation times rising with the id."""
        start, end = _seconds(BOOK_START), _seconds(BOOK_END)
        step = (end - start) / max(n, 1)
        rand = self._rand
        # The cyclic GC would rescan the growing heap of young dicts again and again (it doubled
        # the build time for 100k); nothing built here forms a cycle, so pause it.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            # Rising with a little jitter inside each customer's slot, so ids and dates agree.
            return [self.customer(first_id + i, start + int(step * (i + rand()))) for i in range(n)]
        finally:
            if was_enabled:
                gc.enable()

    def customer(self, customer_id: int, created: int) -> dict:
        """One complete customer created at `created` (seconds, see `_seconds`)."""
        rand, pick = self._rand, self._pick
        ctype = _TYPES[int(rand() * 100)]
        record = self.person(ctype)
        company = ctype != 1
        state = _STATES[int(rand() * 100)]
        record.update(
            id=customer_id,
            gst=int(rand() < (0.85 if company else 0.03)),
            abn=self.abn() if rand() < (0.9 if company else 0.08) else None,
            status=_STATUSES[int(rand() * 100)],
            created=_stamp(created),
            owner=_OWNERS[int(rand() * 100)],
            notes=self.notes(created, _NOTE_COUNTS[int(rand() * 100)]) if rand() < 0.65 else [],
            projects=[self.project(ctype, state) for _ in range(_PROJECT_COUNTS[int(rand() * 100)])],
            contact_time=pick(_CONTACT) if rand() < 0.5 else None,
            uid="%08x" % int(rand() * 0x100000000) if rand() < 0.7 else None,
        )
        if company:
            record["company_phone"] = self.landline(state)
        return record

    # -- parts ------------------------------------------------------------------------------

    def person(self, ctype: int = 1) -> dict:
        """Name, email, phones and company name: the fields a create over the API sets."""
        rand, pick = self._rand, self._pick
        first, first_slug = pick(_FIRST)
        last, last_slug = pick(_LAST)
        company_name = ""
        if ctype == 2:
            company_name = f"{last} {pick(BUSINESS_WORDS)} Pty Ltd"
        elif ctype == 3:
            company_name = f"{pick(_PLACES[pick(_STATES)])[0]} {pick(LARGE_SCALE_WORDS)}"
        return {
            "first_name": first,
            "last_name": last,
            "email": self.email(first_slug, last_slug, company_name),
            "phone1": self.mobile(),
            "phone2": self.mobile() if rand() < 0.15 else "",
            "type": ctype,
            "company_name": company_name,
            "company_phone": "",
        }

    def email(self, first: str, last: str, company: str = "") -> str:
        """A plausible address; now and then one already used (households share emails)."""
        rand, pick = self._rand, self._pick
        if self._emails and rand() < 0.004:
            return pick(self._emails)
        roll = rand()
        first = first or "info"
        last = last or "mail"
        if company and roll < 0.6:
            email = f"{first}@{_ascii_slug(company.replace('Pty Ltd', ''))[:20]}.com.au"
        elif roll < 0.45:
            email = f"{first}.{last}{self._int(1, 999)}@{pick(_DOMAINS)}"
        elif roll < 0.7:
            email = f"{first}{last}@{pick(_DOMAINS)}"
        elif roll < 0.85:
            email = f"{first[0]}.{last}@{pick(_DOMAINS)}"
        else:
            email = f"{first}_{last}{self._int(60, 99)}@{pick(_DOMAINS)}"
        if rand() < 0.02:
            # Some people type their address with capitals; lookups must not care.
            email = email[0].upper() + email[1:]
        if len(self._emails) < 500:
            self._emails.append(email)
        else:
            self._emails[int(rand() * 500)] = email
        return email

    def mobile(self) -> str:
        """An 04xx mobile in one of the formats people actually type."""
        rand = self._rand
        n = "%08d" % int(rand() * 100_000_000)
        roll = rand()
        if roll < 0.45:
            return f"04{n[:2]} {n[2:5]} {n[5:]}"
        if roll < 0.8:
            return f"04{n}"
        if roll < 0.95:
            return f"+61 4{n[:2]} {n[2:5]} {n[5:]}"
        return f"+614{n}"

    def landline(self, state: str) -> str:
        """A business number: a state landline or a 1300 number."""
        rand = self._rand
        n = "%08d" % int(rand() * 100_000_000)
        roll = rand()
        if roll < 0.2:
            return f"1300 {n[:3]} {n[3:6]}"
        if roll < 0.6:
            return f"({_AREA[state]}) {n[:4]} {n[4:]}"
        return f"{_AREA[state]} {n[:4]} {n[4:]}"

    def abn(self) -> str:
        """An 11-digit ABN with a valid check (mostly bare digits, sometimes spaced 2-3-3-3)."""
        rest = "%09d" % int(self._rand() * 1_000_000_000)
        total = sum(int(d) * w for d, w in zip(rest, ABN_WEIGHTS[2:]))
        # The first two digits contribute 10*(d1-1) + d2, which covers 0..89: pick it so the
        # whole weighted sum is a multiple of 89.
        lead = -total % 89
        digits = f"{lead // 10 + 1}{lead % 10}{rest}"
        if self._rand() < 0.25:
            return f"{digits[:2]} {digits[2:5]} {digits[5:8]} {digits[8:]}"
        return digits

    def notes(self, created: int, count: int) -> list[dict]:
        """`count` notes dated after `created` (seconds), oldest first."""
        out = []
        when = created
        for _ in range(count):
            when += self._int(300, 86400 * 30)
            out.append({"datetime": _stamp(when), "note": self._pick(NOTES)})
        return out

    def project(self, ctype: int, state: str) -> dict:
        """One project with a site address in `state` and a sized system; takes the next id."""
        rand, pick, randint = self._rand, self._pick, self._int
        pid = self.next_project_id
        self.next_project_id += randint(1, 3)  # gaps: other accounts' projects
        suburb, postcode = pick(_PLACES[state])
        panel, watts = pick(PANELS)
        qty = randint(8, 34) if ctype == 1 else randint(40, 220) if ctype == 2 else randint(300, 2400)
        size = f"{qty * watts / 1000:.2f}".rstrip("0").rstrip(".")
        streetnum = str(randint(1, 420))
        if rand() < 0.1:
            streetnum = f"{randint(1, 24)}/{streetnum}"
        return {
            "project_id": pid,
            "site_address": {
                "streetnum": streetnum, "street": pick(STREETS), "suburb": suburb,
                "state": state, "postcode": postcode, "country": "Australia",
            },
            "solar_panel_quantity": str(qty),
            "solar_panel_type": panel,
            "inverter_type": pick(INVERTERS),
            "inverter_quantity": "1" if ctype == 1 else str(max(1, qty // 120)),
            "system_size": f"{size}kW",
            "proposal_link": f"/uploads/pdfs/{pid}/proposal_{pid}.pdf" if rand() < 0.7 else "",
        }

    def stamp_on(self, day: dt.date) -> str:
        """'YYYY-MM-DD HH:MM:SS' on `day` at a working-hours time (for later creates)."""
        seconds = day.toordinal() * 86400 + self._int(8 * 3600, 18 * 3600)
        return _stamp(seconds)
