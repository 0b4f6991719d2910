"""The actions of `/apidata.php`, as the digest documents them (the HTTP-free half of the app).

Contract: `handle(request, account, api_key)` returns a `Reply` for any input and never raises.

Routing: the action comes from the query string, else from a JSON body's `data.action` (the
query wins when both exist). Unknown or missing action -> 404 `NOT_FOUND` "The requested
endpoint does not exist" (this covers the documented but unsimulated `getprojectinfo`, and
`getcustomer` while the `getcustomer` quirk is off: see `route`).
A method outside the action's list -> 405 `METHOD_NOT_ALLOWED`.

    getallcustomers, getcustomerByemail, getcustomerid, getcustomer,
    getcustomerofproject ........................................ GET
    createcustomer, subscribe_customer .......................... POST
    updatecustomer .............................................. PUT or POST
    deletecustomer, unsubscribe_customer ........................ DELETE or POST

The key: reads and webhook calls take `?api_key=`. `createcustomer` takes `?api_key=` or
`data.apikey` (the create page: "can also be in URL"). `updatecustomer`/`deletecustomer`
require `data.apikey` (their pages mark it Required with no such note) and accept a matching
`?api_key=` beside it. Any key that is present must be right; otherwise 401 `INVALID_API_KEY`
"Invalid API key". Write bodies must be JSON `{"data": {...}}`; a body that does not parse
(like the old docs' trailing commas) -> 400 `INVALID_PARAMETERS` "Invalid JSON body".

Writes validate every field they are sent, then store what the server keeps: not the fields in
the `ignored_fields` quirk, and on update not an optional text field sent as "" or null under
`empty_clears=False` (see `_unstored`). Either way the answer is the usual success.

Errors are `{"code", "message"}` with 400 (INVALID_PARAMETERS), 401 (INVALID_API_KEY), 404
(CUSTOMER_NOT_FOUND, NOT_FOUND, and CAMPAIGN_NOT_FOUND for an unknown project: the code the old
get-customer-of-project page documents as that action's own) or 405, all sent as HTTP 200 under
the `errors_in_200` quirk. Webhook calls answer `{"success": false, "message"}` with HTTP 400
(documented as such, so not affected by `errors_in_200`), checking in the order of the
digest's §3.2 table: body, JSON, hookUrl, URL format, type, then the key.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from . import fields, render
from .account import Account
from .quirks import Quirks

READ, WRITE, HOOK = "read", "write", "hook"
ACTIONS = {
    "getallcustomers": (READ, ("GET",)),
    "getcustomerByemail": (READ, ("GET",)),
    "getcustomerid": (READ, ("GET",)),
    "getcustomer": (READ, ("GET",)),
    "getcustomerofproject": (READ, ("GET",)),
    "createcustomer": (WRITE, ("POST",)),
    "updatecustomer": (WRITE, ("PUT", "POST")),
    "deletecustomer": (WRITE, ("DELETE", "POST")),
    "subscribe_customer": (HOOK, ("POST",)),
    "unsubscribe_customer": (HOOK, ("DELETE", "POST")),
}
WEBHOOK_TYPES = ("customer_created", "customer_status_change", "project_email_sent",
                 "project_sms_sent", "published_proposal_link", "recent_draft_project")
# W field -> internal field, in the order the create page lists them (and checks required ones);
# the same names, in the same order, as quirks.WRITE_FIELD_NAMES.
WRITE_FIELDS = {"firstname": "first_name", "surname": "last_name", "email": "email",
                "phone1": "phone1", "phone2": "phone2", "type": "type",
                "companyname": "company_name", "companyphone": "company_phone", "gststatus": "gst"}
REQUIRED = ("firstname", "surname", "email", "phone1", "type")
OPTIONAL_TEXT = ("phone2", "companyname", "companyphone")
# What a create stores for a field the server ignores: a new customer's default.
CREATE_DEFAULTS = {name: 0 if name == "gststatus" else 1 if name == "type" else "" for name in WRITE_FIELDS}
_UNPARSED = object()


@dataclass
class Request:
    """One API request: method, first value of each query parameter, raw body."""

    method: str
    query: dict[str, str]
    body: bytes = b""
    _parsed: object = field(default=_UNPARSED, repr=False)

    def json(self):
        """The body parsed as JSON; raises ValueError if it does not parse."""
        if self._parsed is _UNPARSED:
            try:
                self._parsed = json.loads(self.body)
            except (ValueError, UnicodeDecodeError) as exc:
                self._parsed = exc
        if isinstance(self._parsed, Exception):
            raise ValueError("Invalid JSON body") from self._parsed
        return self._parsed

    def action(self) -> str:
        if "action" in self.query:
            return self.query["action"]
        try:
            data = self.json().get("data")
            return data.get("action", "") if isinstance(data, dict) else ""
        except (ValueError, AttributeError):
            return ""


@dataclass
class Reply:
    """The response to send, and for writes what to put in the write log."""

    status: int
    body: bytes
    content_type: str = "application/json"
    applied: bool = False


class ApiError(Exception):
    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class HookError(Exception):
    """A webhook admin failure: `{"success": false, "message": ...}` with HTTP 400."""


def invalid(message: str) -> ApiError:
    return ApiError("INVALID_PARAMETERS", message, 400)


def handle(request: Request, account: Account, api_key: str, serve: bool = True) -> Reply:
    """The reply to `request` (see the module docstring). `serve=False` renders a page without
    counting it as served, for faults that will not deliver it."""
    try:
        if request.body.strip() and "action" not in request.query:
            try:
                request.json()
            except ValueError:
                raise invalid("Invalid JSON body") from None
        action = request.action()
        kind, methods = route(action, account.quirks)
        if kind is None:
            raise ApiError("NOT_FOUND", "The requested endpoint does not exist", 404)
        if request.method not in methods:
            raise ApiError("METHOD_NOT_ALLOWED",
                           f"Method {request.method} is not allowed for action {action}", 405)
        if kind == HOOK:
            return _hook(action, request, account, api_key)
        if kind == READ:
            _check_key([request.query.get("api_key")], api_key)
            return _read(action, request, account, serve)
        return _write(action, request, account, api_key)
    except ApiError as err:
        status = 200 if account.quirks.errors_in_200 else err.status
        return Reply(status, render.dumps(render.error(err.code, err.message)))
    except Exception as exc:  # noqa: BLE001 - the contract is: never a bare 500
        return Reply(500 if not account.quirks.errors_in_200 else 200,
                     render.dumps(render.error("UNKNOWN", f"Unexpected error: {exc}")))


def route(action: str, quirks: Quirks) -> tuple:
    """(kind, methods) of an action as the server has it now; (None, ()) for no such action."""
    if action == "getcustomer" and not quirks.getcustomer:
        return None, ()
    return ACTIONS.get(action, (None, ()))


def _check_key(given: list, api_key: str) -> None:
    present = [k for k in given if k not in (None, "")]
    if not present or not all(isinstance(k, str) and secrets.compare_digest(k.encode(), api_key.encode())
                              for k in present):
        raise ApiError("INVALID_API_KEY", "Invalid API key", 401)


# -- reads -------------------------------------------------------------------------------------

def _read(action: str, request: Request, account: Account, serve: bool) -> Reply:
    query = request.query
    if action == "getallcustomers":
        page = query.get("page", "").strip() or "1"
        if not page.isdigit() or len(page) > 9 or int(page) < 1:
            raise invalid("Invalid value for parameter 'page'")
        if account.quirks.past_end == "error" and account.past_the_end(int(page)):
            raise invalid("Page out of range")
        return Reply(200, account.page_bytes(int(page), serve=serve))
    if action == "getcustomerofproject":
        project_id = _id_param(query, "project_id")
        body = account.project_customer(project_id)
        if body is None:
            raise ApiError("CAMPAIGN_NOT_FOUND", f"No project exists with ID: {project_id}", 404)
        return Reply(200, render.dumps(body))
    email = query.get("customer_email", "").strip()
    if action == "getcustomer":
        customer_id = _id_param(query, "customer_id")
    elif email:
        customer_id = account.find_by_email(email)
        if customer_id is None:
            raise ApiError("CUSTOMER_NOT_FOUND", f"No customer exists with email: {email}", 404)
    elif query.get("customer_id", "").strip():
        # The new get page says it "accepts both" email and ID without naming the ID's
        # parameter; `customer_id` is the name the undocumented getcustomer uses.
        customer_id = _id_param(query, "customer_id")
    else:
        raise invalid("Required parameter 'customer_email' is missing")
    body = account.customer_bytes(customer_id)
    if body is None:
        raise ApiError("CUSTOMER_NOT_FOUND", f"No customer exists with ID: {customer_id}", 404)
    return Reply(200, body)


def _id_param(query: dict, name: str) -> int:
    value = query.get(name, "").strip()
    if not value:
        raise invalid(f"Required parameter '{name}' is missing")
    if not value.isdigit() or len(value) > 12:
        raise invalid(f"Invalid value for parameter '{name}'")
    return int(value)


# -- customer writes ---------------------------------------------------------------------------

def _write(action: str, request: Request, account: Account, api_key: str) -> Reply:
    if not request.body.strip():
        raise invalid("Missing request body")
    try:
        body = request.json()
    except ValueError:
        raise invalid("Invalid JSON body") from None
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise invalid("Request body must be a JSON object {\"data\": {...}}")
    if action == "createcustomer":
        _check_key([request.query.get("api_key"), data.get("apikey")], api_key)
    else:
        if data.get("apikey") in (None, ""):
            raise ApiError("INVALID_API_KEY", "Invalid API key", 401)
        _check_key([request.query.get("api_key"), data.get("apikey")], api_key)

    if action == "createcustomer":
        values = _unstored(_values(data, creating=True), data, account.quirks, creating=True)
        owner = data.get("useremail")
        if owner not in (None, ""):
            user_id = account.user_id_by_email(str(owner)) if isinstance(owner, str) else None
            if user_id is None:
                raise invalid(f"No user exists with email: {owner}")
            values["owner"] = user_id
        customer_id = account.api_create(values)
        return Reply(200, render.dumps(render.created(customer_id, account.quirks)), applied=True)

    customer_id = _customer_id(data)
    if action == "updatecustomer":
        values = _unstored(_values(data, creating=False), data, account.quirks, creating=False)
        if not account.api_update(customer_id, values):
            raise ApiError("CUSTOMER_NOT_FOUND", f"No customer exists with ID: {customer_id}", 404)
        return Reply(200, render.dumps(render.updated(customer_id, account.quirks)), applied=True)
    if not account.api_delete(customer_id):
        raise ApiError("CUSTOMER_NOT_FOUND", "The specified customer does not exist", 404)
    return Reply(200, render.dumps(render.deleted(customer_id)), applied=True)


def _customer_id(data: dict) -> int:
    value = data.get("pkcustomerid")
    if value is None or value == "":
        raise invalid("Required field 'pkcustomerid' is missing")
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 12:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise invalid("Invalid value for field 'pkcustomerid'")


def _values(data: dict, creating: bool) -> dict:
    """Internal values for the W fields in `data`: all of them (create) or those present."""
    values = {}
    for name in REQUIRED:
        value = data.get(name)
        blank = value is None or (isinstance(value, str) and not value.strip())
        if blank and (creating or name in data):
            raise invalid(f"Required field '{name}' is missing" if creating
                          else f"Field '{name}' cannot be empty")
    for name, internal in WRITE_FIELDS.items():
        if name not in data:
            if creating:
                values[internal] = 0 if name == "gststatus" else ""
            continue
        value = data[name]
        if name == "type":
            number = fields.type_number(value) if isinstance(value, str) else None
            if number is None:
                raise invalid("Invalid value for field 'type': expected RESIDENTIAL, COMMERCIAL or LARGE-SCALE")
            values[internal] = number
        elif name == "gststatus":
            values[internal] = _gst(value)
        elif value is None:
            values[internal] = ""  # null clears an optional field, as "" does (see _unstored)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            values[internal] = str(value)  # PHP would coerce a number to its string form
        elif isinstance(value, str):
            values[internal] = value
        else:
            raise invalid(f"Invalid value for field '{name}'")
    return values


def _unstored(values: dict, data: dict, quirks: Quirks, creating: bool) -> dict:
    """`values` (from `_values`) less what the server does not store, by the quirks
    `ignored_fields` (a create stores `CREATE_DEFAULTS` instead) and `empty_clears`."""
    for name in quirks.ignored_fields:
        if creating:
            values[WRITE_FIELDS[name]] = CREATE_DEFAULTS[name]
        else:
            values.pop(WRITE_FIELDS[name], None)
    if not creating and not quirks.empty_clears:
        for name in OPTIONAL_TEXT:
            if name in data and (data[name] is None or data[name] == ""):
                values.pop(WRITE_FIELDS[name], None)
    return values


def _gst(value) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
        return value
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return int(value.strip())
    raise invalid("Invalid value for field 'gststatus': expected 0 or 1")


# -- webhook subscriptions ---------------------------------------------------------------------

def _hook(action: str, request: Request, account: Account, api_key: str) -> Reply:
    try:
        url = _hook_url(request, subscribing=action == "subscribe_customer")
        try:
            _check_key([request.query.get("api_key")], api_key)
        except ApiError:
            raise HookError("Invalid API key") from None
        if action == "subscribe_customer":
            account.subscriptions.subscribe(url, request.json()["type_request"])
            message = "Webhook subscribed successfully"
        elif account.subscriptions.unsubscribe(url):
            message = "Webhook unsubscribed successfully"
        else:
            raise HookError("No matching webhook found for this user")
        return Reply(200, render.dumps({"success": True, "message": message}), applied=True)
    except HookError as err:
        return Reply(400, render.dumps({"success": False, "message": str(err)}))


def _hook_url(request: Request, subscribing: bool) -> str:
    if not request.body.strip():
        raise HookError("Empty request body")
    try:
        body = request.json()
    except ValueError:
        raise HookError("Invalid JSON") from None
    if not isinstance(body, dict):
        raise HookError("Invalid JSON")
    url = body.get("hookUrl")
    if not isinstance(url, str) or not url.strip():
        raise HookError("hookUrl parameter is required")
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and not any(c.isspace() for c in url)
    except ValueError:
        valid = False
    if not valid:
        raise HookError("Invalid webhook URL format")
    if subscribing and body.get("type_request") not in WEBHOOK_TYPES:
        raise HookError("Invalid webhook type")
    return url
