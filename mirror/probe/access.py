"""Whether the listing's first page was an answer at all: a refused key, a URL that is not the
API, or an error where the customers should be. Each is a problem: nothing else can be learnt."""

from __future__ import annotations

from mirror.api_answers import AUTH_CODES
from mirror.probe.calls import UNREADABLE, Answer, is_error_object
from mirror.probe.description import describe, short
from mirror.probe.findings import PROBLEM, REPORT_IT, Finding


def listing_refused(first: Answer) -> Finding | None:
    body = first.body
    if isinstance(body, list):
        return None
    if is_error_object(body):
        code = str(body.get("code") or "")
        text = f"{code + ': ' if code else ''}{short(body.get('message'))}"
        if code in AUTH_CODES or first.status in (401, 403) or "api key" in text.lower():
            return Finding("key", PROBLEM, f"the API refused the key ({text}, HTTP {first.status})",
                           "check [api] key (SPMIRROR_API_KEY or [api] key_file): Solar Proof shows a key once, "
                           "under Settings, API Access; generate a new one if it is lost", {"accepted": False})
        return Finding("listing", PROBLEM, f"getallcustomers page 1 answered an error ({text}, HTTP {first.status})",
                       REPORT_IT, {"status": first.status, "code": code})
    if first.status in (401, 403):
        return Finding("key", PROBLEM, f"the API refused the key (HTTP {first.status}, {describe(first)})",
                       "check [api] key (SPMIRROR_API_KEY or [api] key_file)", {"accepted": False})
    if body is UNREADABLE or first.status >= 300:
        return Finding("url", PROBLEM, f"the URL does not answer as the Solar Proof API: page 1 of the listing "
                       f"came back as HTTP {first.status} with {describe(first)}",
                       "check [api] url (SPMIRROR_API_URL); the Solar Proof API is "
                       "https://solarproof.com.au/apidata.php", {"status": first.status})
    return Finding("listing", PROBLEM, f"page 1 of the listing is {describe(first)}, not a JSON array: a walk "
                   "would find no customers and take the account for empty", REPORT_IT, {"status": first.status})
