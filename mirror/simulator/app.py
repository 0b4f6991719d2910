"""The simulator's ASGI application: a hand-written router, faults, and the response plumbing.

Routes: `/apidata.php` (the API, see `actions.py`), `/_admin/...` (the control surface over
HTTP, see `admin.py`; its few waiting routes, `admin.BLOCKING`, run in a worker thread so the
event loop keeps serving), anything else -> nginx's HTML 404, as the real host would send for a
path such as the old update page's `https://solarproof.com.au?...` (no `/apidata.php`).

For each API request, in this order: count it by action, ask the fault plan (once, at arrival,
so the fault sequence follows arrival order), sleep the configured latency (asyncio, so requests
overlap), then either inject the fault or answer. Writes are logged with what the client was
sent (under `lost_create` and `stall`: what it would be sent, logged before anything is sent).
A `stall` answers and logs, then waits `fault.stall_seconds` (an asyncio wait that also ends
when the client disconnects, so a killed client leaves no task behind) before sending. The
echo faults answer an error page showing the request as received (`echo_page`). The
deliberate connection drops raise `DeliberateDrop` after a partial body so uvicorn closes the
socket; `quiet_deliberate_drops()` keeps those out of uvicorn's error log.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
from http import HTTPStatus
from urllib.parse import parse_qsl, quote_plus, unquote_plus

from . import actions, admin
from .account import Account
from .faults import ECHO_KINDS, Fault, FaultPlan
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


def echo_page(fault: Fault, request: actions.Request, target: bytes) -> tuple[bytes, bytes]:
    """The body and content type of an echo fault (see faults.py): the request's parameters as
    PHP's print_r($_GET) shows them, its URI and its body, as `fault.echo` shows the key (the
    `api_key` the request carried)."""
    uri, sent = target.decode("utf-8", "replace"), request.body.decode("utf-8", "replace")
    params = dict(request.query)  # decoded, as PHP's $_GET holds them
    key = params.get("api_key", "")
    if fault.echo != "full" and key:
        shown = key[:20] if fault.echo == "prefix" else quote_plus(key, safe="").replace("~", "%7E")
        uri, sent = unquote_plus(uri).replace(key, shown), sent.replace(key, shown)
        params = {name: value.replace(key, shown) for name, value in params.items()}
    dump = "Array\n(\n" + "".join(f"    [{name}] => {value}\n" for name, value in params.items()) + ")\n"
    line = f"{request.method} {uri}"
    try:
        reason = HTTPStatus(fault.status).phrase
    except ValueError:  # a status Python has no name for, such as 599
        reason = "Error"
    if fault.kind == "echo_html":
        page = (f"<html><body><pre>{html.escape(dump)}</pre>\n<p><b>Error {fault.status}</b> on "
                f"{html.escape(line)}</p>\n<pre>{html.escape(sent)}</pre>\n<hr><center>{reason}</center>\n"
                "</body></html>\n")
        return page.encode(), HTML
    code = "INVALID_PARAMETERS" if fault.status < 500 else "SERVER_ERROR"
    message = f"{reason}: {line}" + (f" with body {sent}" if sent else "") + f"; $_GET = {dump}"
    # PHP's json_encode: no spaces, and "/" written as "\/".
    return json.dumps({"code": code, "message": message}, separators=(",", ":")).replace("/", "\\/").encode(), JSON


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
            # The request URI as sent (REQUEST_URI), for the echo faults.
            target = (scope.get("raw_path") or path.encode()) + (
                b"?" + scope["query_string"] if scope["query_string"] else b"")
            await self._api(scope["method"], query, body, receive, send, target)
        elif path.startswith("/_admin/"):
            sub = path[len("/_admin/"):]
            args = (self, scope["method"], sub, query, body)
            if (scope["method"], sub.strip("/")) in admin.BLOCKING:
                status, payload = await asyncio.to_thread(admin.route, *args)  # may wait
            else:
                status, payload = admin.route(*args)
            await _send(send, status, json.dumps(payload).encode(), JSON)
        else:
            await _send(send, 404, nginx_page(404), HTML)

    async def _api(self, method: str, query: dict, body: bytes, receive, send, target: bytes) -> None:
        request = actions.Request(method, query, body)
        action = request.action()
        self.account.journal.count(action)
        fault = self.faults.decide(action)
        if self.faults.latency_ms:
            await asyncio.sleep(self.faults.latency_ms / 1000)
        if fault is None or fault.kind in ("lost_create", "stall"):
            reply = actions.handle(request, self.account, self.api_key)
            self._log(action, request, reply.status, reply.body, reply.applied, fault)
            if fault is not None and fault.kind == "lost_create":
                await _drop(send, reply.body)
            elif fault is None or await _stall(fault.stall_seconds, receive):
                await _send(send, reply.status, reply.body, reply.content_type.encode())
            return
        await self._inject(fault, action, request, send, target)

    async def _inject(self, fault: Fault, action: str, request: actions.Request, send, target: bytes) -> None:
        if fault.kind in ("truncate", "drop"):
            if actions.route(action, self.account.quirks)[0] == actions.READ:
                full = actions.handle(request, self.account, self.api_key, serve=False).body
            else:
                full = CANNED.get(action, b'{"success":true,"message":"Webhook subscribed successfully"}')
            self._log(action, request, 200, full, False, fault)
            if fault.kind == "drop":
                await _drop(send, full)
            else:
                await _send(send, 200, full[: len(full) // 2], JSON)
            return
        if fault.kind in ECHO_KINDS:
            body, content_type = echo_page(fault, request, target)
            self._log(action, request, fault.status, body, False, fault)
            await _send(send, fault.status, body, content_type)
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


async def _stall(seconds: float, receive) -> bool:
    """Hold the response back `seconds` (asyncio, so other requests run meanwhile); True if the
    client is still connected at the end, False as soon as it disconnects."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass  # the body was read already; anything else before the disconnect is noise

    try:
        await asyncio.wait_for(disconnected(), timeout=seconds)
    except asyncio.TimeoutError:
        return True
    return False


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
