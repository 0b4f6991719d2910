"""`/_admin/` routes: the control surface over HTTP, for a simulator in another process.

Every route requires `?api_key=<the simulator's key>` (else 401) and speaks JSON. Faults and
latency never apply here. Errors are `{"error": "..."}` with 400, 401, 404, 405 or 504
(a webhook flush that timed out).

    GET    /_admin/state                      Account.snapshot()
    GET    /_admin/writes                     Account.write_log()
    GET    /_admin/calls                      Account.call_counts()
    GET    /_admin/faults                     FaultPlan.settings() + {"injected": [...]}
    POST   /_admin/faults                     {"reset"?: true, "seed"?, "latency_ms"?, "retry_after"?,
                                               "stall_seconds"?, "rate_*"?, "script"?: [{"kind",
                                               "count"?, "action"?, "retry_after"?,
                                               "stall_seconds"?, "status"?, "echo"?}]}
                                               -> settings (see faults.py for the kinds)
    GET    /_admin/quirks                     Quirks.as_dict()
    POST   /_admin/quirks                     {"reset"?: true, "old_docs"?: true, <quirk>: value} -> quirks
                                               (reset, then old_docs' seven quirks, then the rest;
                                               "ignored_fields" takes a list of W field names)
    POST   /_admin/order                      {"order": "id" | "newest"}
    GET    /_admin/shift                      Account.shift_report()
    POST   /_admin/shift                      {"after_page", "delete_served"?, "create"?}
    POST   /_admin/customers                  fields (see fields.py) -> {"id": N}
    GET    /_admin/customers/<id>             Account.get(id)
    PATCH  /_admin/customers/<id>             fields -> the record
    DELETE /_admin/customers/<id>             -> {"deleted": N}
    POST   /_admin/customers/<id>/status      {"status": 0..3} -> the record
    POST   /_admin/customers/<id>/notes       {"note": str, "datetime"?: str} -> the record
    POST   /_admin/customers/<id>/projects    project fields -> {"project_id": N}
    GET    /_admin/webhooks                   {"version", "subscriptions", "pending", "held",
                                               "faults": WebhookFaults.settings() + {"injected"},
                                               "deliveries": Account.deliveries()}
    POST   /_admin/webhooks                   {"version"?: "A" | "B", "clear_log"?: true,
                                               "faults"?: {"reset"?: true, "seed"?, "rate_duplicate"?,
                                               "rate_reorder"?, "rate_drop"?, "script"?: [{"kind",
                                               "count"?, "event"?, "url"?}]}} -> as GET
    POST   /_admin/webhooks/flush             {"timeout"?: s (default 5, at most 60),
                                               "release_held"?: bool (default true)} -> as GET once
                                               nothing is queued or being sent; 504 if still pending

`POST /_admin/webhooks/flush` waits, so the app runs it off the event loop (`BLOCKING`).
"""

from __future__ import annotations

import json
import secrets

from .events import check_version
from .quirks import Quirks

# Routes that may wait: the app calls `route` for these in a worker thread.
BLOCKING = frozenset({("POST", "webhooks/flush")})


class _Fail(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def route(app, method: str, path: str, query: dict, body: bytes) -> tuple[int, object]:
    """(HTTP status, JSON-able payload) for one admin request; never raises."""
    try:
        key = query.get("api_key", "")
        if not secrets.compare_digest(key.encode(), app.api_key.encode()):
            raise _Fail(401, "invalid api_key")
        data = _json(body)
        parts = [p for p in path.split("/") if p]
        if parts and parts[0] == "customers":
            return _customers(app.account, method, parts[1:], data)
        handler = _ROUTES.get((method, "/".join(parts)))
        if handler is None:
            raise _Fail(404, f"no admin route {method} /_admin/{path}")
        return 200, handler(app, data)
    except _Fail as fail:
        return fail.status, {"error": str(fail)}
    except (ValueError, TypeError) as exc:
        return 400, {"error": str(exc)}
    except KeyError as exc:
        return 404, {"error": f"not found: {exc}"}
    except Exception as exc:  # noqa: BLE001 - an admin bug must still answer in JSON
        return 500, {"error": f"{type(exc).__name__}: {exc}"}


def _json(body: bytes):
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        raise _Fail(400, "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _Fail(400, "body must be a JSON object")
    return data


def _customers(account, method: str, rest: list[str], data: dict) -> tuple[int, object]:
    if not rest:
        if method == "POST":
            return 200, {"id": account.create_customer(**data)}
        raise _Fail(405, "use POST /_admin/customers")
    if not rest[0].isdigit():
        raise _Fail(404, f"no customer {rest[0]!r}")
    customer_id = int(rest[0])
    if account.get(customer_id) is None:
        raise _Fail(404, f"no customer {customer_id}")
    sub = rest[1] if len(rest) > 1 else ""
    if (method, sub) == ("GET", ""):
        return 200, account.get(customer_id)
    if (method, sub) == ("PATCH", ""):
        account.edit_customer(customer_id, **data)
    elif (method, sub) == ("DELETE", ""):
        account.delete_customer(customer_id)
        return 200, {"deleted": customer_id}
    elif (method, sub) == ("POST", "status"):
        account.set_status(customer_id, data.get("status"))
    elif (method, sub) == ("POST", "notes"):
        account.add_note(customer_id, data.get("note"), data.get("datetime"))
    elif (method, sub) == ("POST", "projects"):
        return 200, {"project_id": account.add_project(customer_id, **data)}
    else:
        raise _Fail(404, f"no admin route {method} /_admin/customers/{'/'.join(rest)}")
    return 200, account.get(customer_id)


def _faults(app, data: dict) -> dict:
    data = dict(data)
    script = data.pop("script", [])
    if data.pop("reset", False):
        app.faults.reset()
    app.faults.configure(**data)
    for entry in script:
        app.faults.script(**entry)
    return _fault_state(app, {})


def _fault_state(app, _data: dict) -> dict:
    return {**app.faults.settings(), "injected": app.faults.injected()}


def _quirks(app, data: dict) -> dict:
    data = dict(data)
    if data.pop("reset", False):
        app.account.quirks.reset()
    if data.pop("old_docs", False):
        # Only what old_docs() switches on: it leaves the other quirks as they are.
        old, default = Quirks.old_docs().as_dict(), Quirks().as_dict()
        app.account.quirks.update(**{k: v for k, v in old.items() if v != default[k]})
    return app.account.quirks.update(**data).as_dict()


def _webhook_state(app, _data: dict) -> dict:
    account = app.account
    return {"version": account.webhook_version, "subscriptions": account.webhooks(),
            **account.delivery.status(),
            "faults": {**account.webhook_faults.settings(), "injected": account.webhook_faults.injected()},
            "deliveries": account.deliveries()}


def _webhooks(app, data: dict) -> dict:
    account = app.account
    unknown = set(data) - {"version", "clear_log", "faults"}
    if unknown:
        raise ValueError(f"unknown webhook setting(s): {', '.join(sorted(unknown))}")
    if "version" in data:
        check_version(data["version"])  # before anything changes
    faults = data.get("faults", {})
    if not isinstance(faults, dict):
        raise ValueError("faults must be an object")
    faults = dict(faults)
    script = faults.pop("script", [])
    if faults.pop("reset", False):
        account.webhook_faults.reset()
    account.webhook_faults.configure(**faults)
    for entry in script:
        account.webhook_faults.script(**entry)
    if "version" in data:
        account.webhook_version = data["version"]
    if data.get("clear_log"):
        account.clear_deliveries()
    return _webhook_state(app, {})


def _flush(app, data: dict) -> dict:
    timeout = data.get("timeout", 5)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 <= timeout <= 60:
        raise ValueError("timeout must be a number of seconds from 0 to 60")
    try:
        app.account.flush_webhooks(float(timeout), bool(data.get("release_held", True)))
    except TimeoutError as exc:
        raise _Fail(504, str(exc)) from None
    return _webhook_state(app, {})


def _order(app, data: dict) -> dict:
    app.account.set_order(data.get("order"))
    return {"order": app.account.order}


def _shift(app, data: dict) -> dict | None:
    if "after_page" not in data:
        raise ValueError("after_page is required")
    app.account.schedule_shift(int(data["after_page"]), int(data.get("delete_served", 0)),
                               int(data.get("create", 0)))
    return app.account.shift_report()


_ROUTES = {
    ("GET", "state"): lambda app, _: app.account.snapshot(),
    ("GET", "writes"): lambda app, _: app.account.write_log(),
    ("GET", "calls"): lambda app, _: app.account.call_counts(),
    ("GET", "faults"): _fault_state,
    ("POST", "faults"): _faults,
    ("GET", "quirks"): lambda app, _: app.account.quirks.as_dict(),
    ("POST", "quirks"): _quirks,
    ("POST", "order"): _order,
    ("GET", "shift"): lambda app, _: app.account.shift_report(),
    ("POST", "shift"): _shift,
    ("GET", "webhooks"): _webhook_state,
    ("POST", "webhooks"): _webhooks,
    ("POST", "webhooks/flush"): _flush,
}
