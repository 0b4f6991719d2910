"""The simulator's ASGI application: a hand-written router, faults, and the response plumbing.

Routes: `/apidata.php` (the API, see `actions.py`), `/_admin/...` (the control surface over
HTTP, see `admin.py`), anything else -> nginx's HTML 404, as the real host would send for a
path such as the old update page's `https://solarproof.com.au?...` (no `/apidata.php`).

For each API request, in this order: count it by action, ask the fault plan (once, at arrival,
so the fault sequence follows arrival order), sleep the configured latency (asyncio, so requests
overlap), then either inject the fault or answer. Writes are logged with what the client was
sent. The deliberate connection drops raise `DeliberateDrop` after a partial body so uvicorn
closes the socket; `quiet_deliberate_drops()` keeps those out of uvicorn's error log.
"""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import parse_qsl

from . import actions, admin
from .account import Account
from .faults import Fault, FaultPlan
from .journal import WRITE_ACTIONS

JSON = b"application/json"
HTML = b"text/html; charset=UTF-8"
NGINX_REASONS = {404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error",
                 502: "Bad Gateway", 503: "Service Temporarily Unavailable"}
PHP_FATAL = (
    b"<br />\n<b>Fatal error</b>:  Uncaught PDOException: SQLSTATE[HY000] [2002] Connection "
    b"refused in /var/www/html/apidata.php:42\nStack trace:\n#0 /var/www/html/apidata.php(42): "
    b"PDO-&gt;__construct('mysql:host=loca...', 'solarproof', Object(SensitiveParameterValue))\n"
    b"#1 {main}\n  thrown in <b>/var/www/html/apidata.php</b> on line <b>42</b><br />\n"
)
# What a write would have answered, for truncate/drop faults (which do not apply the write).
CANNED = {
    "createcustomer": b'{"Message":"Customer created successfully!","id":"0"}',
    "updatecustomer": b'{"Message":"Customer updated successfully!","CustomerId":"0"}',
    "deletecustomer": b'{"Message":"Customer Deleted Permanently!","CustomerId":"0"}',
}


class DeliberateDrop(Exception):
    """Raised after a partial response so uvicorn closes the connection (a simulated drop)."""


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DeliberateDrop))


def quiet_deliberate_drops() -> None:
    """Install (once) the filter that hides DeliberateDrop tracebacks from uvicorn.error."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())


def nginx_page(status: int) -> bytes:
    title = f"{status} {NGINX_REASONS.get(status, 'Error')}"
    return (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}"
            f"</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n").encode()


class App:
    """The ASGI callable. `account`, `faults` and `api_key` may be replaced between requests."""

    def __init__(self, account: Account, faults: FaultPlan, api_key: str) -> None:
        self.account = account
        self.faults = faults
        self.api_key = api_key
        quiet_deliberate_drops()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off; websockets are not part of this API
        body = await _read_body(receive)
        path = scope["path"]
        query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        if path == "/apidata.php":
            await self._api(scope["method"], query, body, send)
        elif path.startswith("/_admin/"):
            status, payload = admin.route(self, scope["method"], path[len("/_admin/"):], query, body)
            await _send(send, status, json.dumps(payload).encode(), JSON)
        else:
            await _send(send, 404, nginx_page(404), HTML)

    async def _api(self, method: str, query: dict, body: bytes, send) -> None:
        request = actions.Request(method, query, body)
        action = request.action()
        self.account.journal.count(action)
        fault = self.faults.decide(action)
        if self.faults.latency_ms:
            await asyncio.sleep(self.faults.latency_ms / 1000)
        if fault is None or fault.kind == "lost_create":
            reply = actions.handle(request, self.account, self.api_key)
            self._log(action, request, reply.status, reply.body, reply.applied, fault)
            if fault is None:
                await _send(send, reply.status, reply.body, reply.content_type.encode())
            else:
                await _drop(send, reply.body)
            return
        await self._inject(fault, action, request, send)

    async def _inject(self, fault: Fault, action: str, request: actions.Request, send) -> None:
        if fault.kind in ("truncate", "drop"):
            if actions.ACTIONS.get(action, ("",))[0] == actions.READ:
                full = actions.handle(request, self.account, self.api_key, serve=False).body
            else:
                full = CANNED.get(action, b'{"success":true,"message":"Webhook subscribed successfully"}')
            self._log(action, request, 200, full, False, fault)
            if fault.kind == "drop":
                await _drop(send, full)
            else:
                await _send(send, 200, full[: len(full) // 2], JSON)
            return
        if fault.kind == "html":
            status, body, headers = 200, PHP_FATAL, []
        else:  # 429 and 5xx come from the nginx in front of PHP
            status, body = fault.status, nginx_page(fault.status)
            headers = [(b"retry-after", str(fault.retry_after).encode())] if fault.retry_after is not None else []
        self._log(action, request, status, body, False, fault)
        await _send(send, status, body, HTML, headers)

    def _log(self, action: str, request: actions.Request, status: int, body: bytes,
             applied: bool, fault: Fault | None) -> None:
        if action not in WRITE_ACTIONS:
            return
        try:
            parsed = request.json()
        except ValueError:
            parsed = None
        try:
            response = json.loads(body)
        except ValueError:
            response = body.decode("utf-8", "replace")
        self.account.journal.log_write(action=action, method=request.method, body=parsed,
                                       status=status, response=response, applied=applied,
                                       fault=fault.kind if fault else None)


async def _read_body(receive) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body  # the common case: one message (GETs have an empty body)
    chunks = [body]
    while message.get("more_body"):
        message = await receive()
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


async def _send(send, status: int, body: bytes, content_type: bytes, headers=()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"server", b"nginx"), (b"content-type", content_type),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


async def _drop(send, full: bytes) -> None:
    """Promise `full`, send half of it, then break the connection."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"server", b"nginx"), (b"content-type", JSON),
                            (b"content-length", str(len(full)).encode())]})
    await send({"type": "http.response.body", "body": full[: len(full) // 2], "more_body": True})
    raise DeliberateDrop("simulated connection drop")
