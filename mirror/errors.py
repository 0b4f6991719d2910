"""Every error the mirror raises on purpose, as one tree.

    MirrorError
    ├── ConfigError                 bad settings; the CLI exits 2
    ├── Interrupted                 a stop was asked for (SIGTERM); work stopped between pages
    ├── ListenError                 an address the daemon must listen on is taken; the CLI exits 2
    ├── WireError                   a payload field the wire layer cannot read (names the field)
    └── ApiError                    anything that went wrong talking to Solar Proof (names the action)
        ├── NotIdentifiedError      no read by id answered (no getcustomer; the email lookup found
        │                           somebody else, or nobody): the listing must tell
        ├── TransientApiError       worth retrying: network, 5xx, 429, a garbled body, DELETION_FAILED, UNKNOWN
        │   ├── ApiUnavailableError retries or the deadline ran out; the CLI exits 75
        │   │   └── IncompleteWalkError  a customer listing that did not reach its last page
        │   └── OutcomeUnknownError a write that may or may not have been applied (lost response)
        └── PermanentApiError       the API refused this request; retrying will not help
            ├── EndpointError       the URL answers, but not as the API (an HTML page, HTTP 404): [api] url
            ├── HostNotFoundError   the API's host name does not resolve: a typo, not an outage
            ├── AuthError           INVALID_API_KEY, API_KEY_INVALID, UNAUTHORISED
            ├── NotFoundError       CUSTOMER_NOT_FOUND, NOT_FOUND, ...
            ├── PermissionDeniedError  PERMISSION_DENIED
            └── InvalidRequestError INVALID_PARAMETERS and other 4xx refusals

Messages never contain the API key. An ApiError's text is built only from server text and
transport messages that the client (mirror/api.py) has already passed through
mirror.redaction with the key: the key, and any run of 8 or more of its characters, plain or
URL/JSON/HTML-escaped, is masked before the error exists, so str(), .detail, .code and args
are clean wherever the error goes (stderr, sync_runs, status, history, logs). This module
imports nothing from mirror (the bottom layer), so it cannot redact by itself.
"""

from __future__ import annotations


class MirrorError(Exception):
    """Base of every error the mirror raises deliberately."""


class ConfigError(MirrorError):
    """The configuration is unusable; `problems` lists every issue found, each naming its key."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in self.problems))


class Interrupted(MirrorError):
    """The run stopped early because the process was asked to stop; what was written stays."""


class ListenError(MirrorError):
    """An address the daemon must listen on is taken (another instance or program), or not ours."""

    def __init__(self, section: str, key: str, listen: str, exc: OSError):
        self.setting = f"[{section}] {key}"
        super().__init__(f"{self.setting} {listen}: {exc.strerror or exc} (another spmirror instance or program "
                         "may listen there)")


class WireError(MirrorError):
    """A payload could not be mapped; `field` names the offending key, `value` what it held."""

    def __init__(self, field: str, value: object, reason: str):
        self.field = field
        self.value = value
        self.reason = reason
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"field {field!r}: {reason} (got {shown})")


class ApiError(MirrorError):
    """A failed API call. `action` is the apidata.php action; `code` the API's error code, if any."""

    def __init__(
        self,
        action: str,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ):
        self.action = action
        self.status = status
        self.code = code
        self.detail = message
        # Only meaningful on 429/503; the retry loop reads it.
        self.retry_after = retry_after
        parts = [f"{action}: {message}"]
        if code:
            parts.append(f"code {code}")
        if status is not None:
            parts.append(f"HTTP {status}")
        super().__init__(" | ".join(parts) if len(parts) > 1 else parts[0])


class NotIdentifiedError(ApiError):
    """The API could not be asked for this customer by id: `getcustomer` does not exist and the
    email lookup (one customer per email) answered another customer or none. Not proof that the
    customer is gone: only a complete walk of the listing can tell."""


class TransientApiError(ApiError):
    """A failure that may succeed if the same request is sent again later."""


class ApiUnavailableError(TransientApiError):
    """The API stayed unreachable or failing through every retry, or the deadline passed."""


class IncompleteWalkError(ApiUnavailableError):
    """The customer listing stopped before its last page; nothing may treat it as complete."""


class OutcomeUnknownError(TransientApiError):
    """A non-idempotent write was sent but its response was lost; it may have been applied."""


class PermanentApiError(ApiError):
    """The API refused the request itself; sending it again unchanged will fail again."""


class EndpointError(PermanentApiError):
    """The configured URL answered, but not as the Solar Proof API does: an HTML page or an HTTP
    404 where JSON was expected. A wrong [api] url; retrying will not help."""


class HostNotFoundError(PermanentApiError):
    """The host name of the configured URL does not resolve: a typo in [api] url, not an outage."""


class AuthError(PermanentApiError):
    """The API key was rejected."""


class NotFoundError(PermanentApiError):
    """The customer, project, webhook or action does not exist."""


class PermissionDeniedError(PermanentApiError):
    """The key may not act on this record."""


class InvalidRequestError(PermanentApiError):
    """The API rejected the parameters or body (INVALID_PARAMETERS, other 4xx)."""
