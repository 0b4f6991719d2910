"""What an answer of the Solar Proof API means: the typed error (mirror.errors) that a status,
a body or a transport failure stands for, and how an unexpected body is described.

Plain values in (the action, the HTTP status, the content type, the text, the decoded body),
errors out: the HTTP itself stays in mirror/api.py. Server text is passed through
mirror.redaction with the key before any error holds it (see mirror.errors).

The API answers every error it knows, "not found" included, with its own JSON
(`{"code", "message"}`, or `{"success": false, ...}` for webhook calls). What else comes back
says something about the URL rather than the request:

* an HTML page with HTTP 2xx: a PHP script that broke (transient), or a URL that is not the
  API at all; `HtmlAnswer` until the client can tell (see `SolarProofClient._call`);
* HTTP 404 without the API's JSON on the listing, which never answers 404 of its own: a wrong
  path (EndpointError). Other actions keep NotFoundError: how the API answers "no customer
  with that email" is undocumented, and may be a bare 404;
* a redirect: the URL moved, for example http:// to https:// (EndpointError; never followed,
  since the key is in the query string);
* a host name that does not resolve: a typo, not an outage (HostNotFoundError);
* TLS that cannot work: a plain-HTTP server given as https://, or a certificate this machine
  does not trust (EndpointError). Other TLS failures (a handshake cut short) stay transient.
"""

from __future__ import annotations

import re
import socket
import ssl
from typing import Any

from mirror.errors import (
    ApiError,
    AuthError,
    EndpointError,
    HostNotFoundError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    TransientApiError,
)
from mirror.redaction import redact_text, redact_url

AUTH_CODES = {"INVALID_API_KEY", "API_KEY_INVALID", "UNAUTHORISED", "UNAUTHORIZED"}
# CAMPAIGN_NOT_FOUND is a copy-paste from another product in the old docs; it still means "not found".
NOT_FOUND_CODES = {"CUSTOMER_NOT_FOUND", "NOT_FOUND", "CAMPAIGN_NOT_FOUND", "PROJECT_NOT_FOUND"}
TRANSIENT_CODES = {"DELETION_FAILED", "UNKNOWN"}
LISTING = "getallcustomers"
NOT_THE_API = "no Solar Proof API at this URL"


class HtmlAnswer(TransientApiError):
    """HTTP 2xx with an HTML page where JSON was expected. Retried like any garbled body; the
    client turns it into EndpointError when it persists on a URL that never answered as the API.
    `page` names the page (`not_the_api`)."""

    page: str = "an HTML page"


def is_api_answer(body: Any) -> bool:
    """Whether a decoded body is one of the API's own error objects."""
    return isinstance(body, dict) and (("code" in body and "message" in body) or body.get("success") is False)


def is_html(content_type: str, text: str) -> bool:
    return "html" in content_type.lower() or text.lstrip()[:15].lower().startswith(("<!doctype", "<html"))


def describe_body(content_type: str, text: str, secrets: tuple[str, ...]) -> str:
    """The start of an unexpected body, redacted whole before the cut (no piece left too short)."""
    kind = redact_text(content_type.split(";")[0], secrets) or "no content type"
    size = len(text)
    text = redact_text(text, secrets)
    snippet = " ".join(text[:120].split())
    if is_html(kind, snippet):
        return f"an HTML page ({kind}): {snippet!r}"
    if size > 120:
        return f"{kind}, {size} bytes, starting {snippet!r} (truncated or malformed JSON?)"
    return f"{kind}: {snippet!r}"


def error_from_body(action: str, status: int, body: dict, secrets: tuple[str, ...]) -> ApiError:
    """The error an API error object stands for (`is_api_answer(body)` is true)."""
    # Both come from the server, which may echo the request (key included) into either.
    code = redact_text(str(body.get("code") or ""), secrets) or None
    message = redact_text(str(body.get("message") or body.get("Message") or "no message"), secrets)
    if code is None:
        # Webhook admin calls answer {"success": false, "message": ...} with HTTP 400.
        lowered = message.lower()
        if "api key" in lowered:
            return AuthError(action, message, status=status)
        if "no matching webhook" in lowered:
            return NotFoundError(action, message, status=status)
        return InvalidRequestError(action, message, status=status)
    if code in AUTH_CODES:
        return AuthError(action, message, status=status, code=code)
    if code in NOT_FOUND_CODES:
        return NotFoundError(action, message, status=status, code=code)
    if code == "PERMISSION_DENIED":
        return PermissionDeniedError(action, message, status=status, code=code)
    if code in TRANSIENT_CODES or status >= 500:
        return TransientApiError(action, message, status=status, code=code)
    return InvalidRequestError(action, message, status=status, code=code)


def page_title(content_type: str, text: str, secrets: tuple[str, ...]) -> str | None:
    """The <title> of an HTML page, redacted and cut to 80 characters; None if there is none."""
    if not is_html(content_type, text):
        return None
    found = _TITLE.search(text[:4000])
    title = " ".join(redact_text(found.group(1), secrets).split())[:80] if found else ""
    return title or None


def not_the_api(content_type: str, text: str, secrets: tuple[str, ...]) -> str:
    """How a page that is not the API is named in a message: its title when it has one."""
    title = page_title(content_type, text, secrets)
    return f"an HTML page titled {title!r}" if title else describe_body(content_type, text, secrets)


def error_for_status(action: str, status: int, detail: str, *, location: str | None = None,
                     secrets: tuple[str, ...] = (), page: str | None = None) -> ApiError:
    """The error of a 3xx or 4xx answer (not 429) without the API's own error object.

    `detail` is `describe_body(...)`; `page` the shorter `not_the_api(...)`, for the errors that
    say the URL is wrong; `location` the Location header of a redirect.
    """
    if 300 <= status < 400:
        target = redact_url(redact_text(location, secrets)) if location else "somewhere it does not say"
        return EndpointError(action, f"the URL redirects to {target}: set [api] url to the address it points at",
                             status=status)
    if status in (401, 403):
        return AuthError(action, detail, status=status)
    if status == 404 and action == LISTING:
        return EndpointError(action, f"{NOT_THE_API}: the server has no such page ({page or detail})",
                             status=status)
    if status == 404:
        return NotFoundError(action, detail, status=status)
    return InvalidRequestError(action, detail, status=status)


def unreadable_answer(action: str, status: int, detail: str, retry_after: float | None,
                      page: str | None = None) -> TransientApiError:
    """The error of a 5xx without the API's error object, or of a 2xx body that is not JSON.

    `page` is `not_the_api(...)` when the body is an HTML page (kept for `html_everywhere`).
    """
    if status >= 300:
        return TransientApiError(action, f"HTTP {status}: {detail}", status=status, retry_after=retry_after)
    if page is None:
        return TransientApiError(action, f"a body that is not JSON: {detail}", status=status, retry_after=retry_after)
    error = HtmlAnswer(action, f"a body that is not JSON: {detail}", status=status, retry_after=retry_after)
    error.page = page
    return error


def html_everywhere(action: str, tries: int, last: HtmlAnswer) -> EndpointError:
    """Every try of a call on a URL that never answered as the API got an HTML page."""
    return EndpointError(action, f"{NOT_THE_API}: {tries} tr{'y' if tries == 1 else 'ies'} in a row answered "
                         f"{last.page}", status=last.status)


def unresolved_host(exc: BaseException) -> bool:
    """Whether a connection failed because its host name does not exist (EAI_NONAME).

    A resolver that could not answer (EAI_AGAIN: no network, DNS down) is not this: that is an
    outage, and worth retrying.
    """
    found = next((cause for cause in _chain(exc) if isinstance(cause, socket.gaierror)), None)
    return found is not None and found.errno == socket.EAI_NONAME


def tls_mismatch(exc: BaseException) -> str | None:
    """What is wrong when TLS cannot work with this URL as it is, else None."""
    for cause in _chain(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"its TLS certificate is not trusted here ({cause.verify_message or cause.reason})"
        if isinstance(cause, ssl.SSLError) and cause.reason == "WRONG_VERSION_NUMBER":
            return "it does not speak TLS: a plain http:// server given as https://?"
    return None


def _chain(exc: BaseException):
    """`exc` and the exceptions that caused it, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def endpoint_tls(action: str, problem: str) -> EndpointError:
    return EndpointError(action, f"TLS with this URL cannot work: {problem}")


def host_not_found(action: str, url: str) -> HostNotFoundError:
    host = _HOST.match(url)
    name = host.group(1) if host else url
    return HostNotFoundError(action, f"the host name {name!r} does not exist (a typo in the URL?)")


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_HOST = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://(?:[^@/?#]*@)?(\[[^\]]*\]|[^:/?#]*)")
