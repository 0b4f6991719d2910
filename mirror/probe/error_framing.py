"""How errors come back: with an HTTP error status and the API's {code, message}, inside HTTP
200, as a bare status, or not told apart from answers at all."""

from __future__ import annotations

from mirror.probe.calls import NO_SUCH_ACTION, Answer, find, is_error_object
from mirror.probe.description import describe
from mirror.probe.findings import NOTE, OK, PROBLEM, REPORT_IT, Finding


def error_framing(answers: list[Answer]) -> dict | None:
    """How errors came back, from the deliberately wrong call and from every other call that
    answered one of the API's error objects (a lookup, a page past the end): a server may frame
    its own errors inside HTTP 200 and leave an action it does not know to a web server's 404
    page, and the mirror meets the former."""
    wrong = find(answers, NO_SUCH_ACTION)
    in_200 = next((a for a in ([wrong] if wrong is not None else []) + answers
                   if a.page != 1 and a.status < 300 and is_error_object(a.body)), None)
    if in_200 is not None:
        code = str(in_200.body.get("code") or "")
        told = ("" if in_200 is wrong or wrong is None
                else f"an action that does not exist answered HTTP {wrong.status} with {describe(wrong)}")
        return {"framing": "in_200", "status": in_200.status, "code": code, "described": describe(in_200),
                "action": in_200.action, "unknown_action": told}
    if wrong is None:
        return None
    body = wrong.body
    code = str(body.get("code") or "") if is_error_object(body) else None
    if code is not None:
        framing = "status"
    else:
        framing = "status_only" if wrong.status >= 300 else "unreadable"
    return {"framing": framing, "status": wrong.status, "code": code, "described": describe(wrong),
            "action": wrong.action, "unknown_action": ""}


def errors_found(errors: dict | None) -> list[Finding]:
    if errors is None:
        return []
    framing, status, code = errors["framing"], errors["status"], errors["code"]
    value = {k: errors[k] for k in ("framing", "status", "code", "action")}
    if framing == "status":
        return [Finding("errors", OK, f"errors come with an HTTP error status and the API's {{code, message}} (an "
                        f"unknown action: HTTP {status}, {code})", value=value)]
    if framing == "in_200":
        source = "" if errors["action"] == NO_SUCH_ACTION else f" from {errors['action']}"
        also = f"; {errors['unknown_action']}" if errors["unknown_action"] else ""
        return [Finding("errors", NOTE, f"errors come inside HTTP {status} as {{code, message}} ({code}{source}), as "
                        f"the older docs' traffic shows: the mirror reads them by their code{also}", "nothing", value)]
    if framing == "status_only":
        return [Finding("errors", NOTE, f"errors come as HTTP {status} without the API's {{code, message}} "
                        f"({errors['described']}): the mirror tells them by their status alone", "nothing", value)]
    return [Finding("errors", PROBLEM, f"errors cannot be told from answers: an action that does not exist answered "
                    f"HTTP {status} with {errors['described']}, not an error", "do not sync this account yet; "
                    + REPORT_IT, value)]
