"""The HTTP side of the webhook receiver: a small ASGI app served by uvicorn on its own thread.

Routes: POST /webhooks/<token> and /webhooks/<token>/<event>, for <event> in EVENTS. Answers:
    200  the body is a customer event (an object, or an array of them) and it is queued
    400  the body is not JSON, or not a customer event (also a malformed Content-Length,
         which uvicorn refuses before the app sees it)
    404  any other path, or a wrong token (as if the path did not exist)
    405  another method on a webhook path
    408  the body did not arrive within BODY_SECONDS
    411  no Content-Length (a chunked body included): the size must be known before reading
    413  a Content-Length over MAX_BODY, refused unread
    503  the queue is full: the next full sync catches the change up
The answer goes out as soon as the event is queued (Solar Proof wants one within 5 s); the
fetches happen after, elsewhere. The token is compared in constant time. uvicorn's access log
is off and nothing here logs a path: the URL holds the token.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import socket
import threading
from typing import Any, Callable

import structlog
import uvicorn

from mirror.customer import Customer
from mirror.errors import WireError
from mirror.wire import customers_from_webhook

log = structlog.get_logger()

MAX_BODY = 64 * 1024
EVENTS = ("customer_created", "customer_status_change")
BODY_SECONDS = 10.0  # a sender that stalls mid-body is cut off after this long


class WebhookApp:
    """The ASGI app. `offer(customers)` queues one event's customers; False means the queue is full."""

    def __init__(self, token: str, offer: Callable[[list[Customer]], bool]):
        self._token = token.encode()
        self._offer = offer

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return  # lifespan is off; websockets are not served
        ours = self._ours(scope.get("raw_path") or scope["path"].encode())
        if not ours:
            return await _answer(send, 404, "not found")
        if scope["method"] != "POST":
            return await _answer(send, 405, "use POST", [(b"allow", b"POST")])
        length = _header(scope, b"content-length")
        if length is None or not (length.isascii() and length.isdigit()):
            return await _answer(send, 411, "Content-Length required")
        if int(length) > MAX_BODY:
            return await _answer(send, 413, f"body over {MAX_BODY} bytes")
        try:
            body = await asyncio.wait_for(_read_body(receive, int(length)), BODY_SECONDS)
        except asyncio.TimeoutError:
            return await _answer(send, 408, "the body did not arrive in time")
        if body is None:
            return  # the sender went away
        try:
            customers = customers_from_webhook(json.loads(body or b"null"))
        except (ValueError, RecursionError, WireError) as exc:
            log.warning("webhook_rejected", reason=str(exc)[:200])
            return await _answer(send, 400, "not a customer event")
        if not self._offer(customers):
            log.warning("webhook_refused", customers=[c.remote_id for c in customers],
                        reason="the queue of customers to fetch is full; the next full sync catches them up")
            return await _answer(send, 503, "busy; the change is caught up by the next full sync",
                                 [(b"retry-after", b"60")])
        await _answer(send, 200, "ok")
        log.info("webhook_received", customers=[c.remote_id for c in customers])

    def _ours(self, raw_path: bytes) -> bool:
        parts = raw_path.split(b"?", 1)[0].strip(b"/").split(b"/")
        if len(parts) not in (2, 3) or parts[0] != b"webhooks" or not self._token:
            return False
        token_matches = hmac.compare_digest(parts[1], self._token)  # constant time: no timing oracle
        return token_matches and (len(parts) == 2 or parts[2].decode("latin-1") in EVENTS)


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


async def _read_body(receive: Callable, length: int) -> bytes | None:
    """The body, at most `length` bytes; None if the client disconnected first."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        chunks.append(chunk[:max(0, length - size)])
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(send: Callable, status: int, message: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"message": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class _Server(uvicorn.Server):
    """uvicorn.Server that reports when it accepts connections."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]):
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            self._on_started()


class ReceiverServer:
    """`app` served on `listen` ("host:port", "[v6]:port"; port 0 picks one) by uvicorn on a
    daemon thread. The socket is bound here, so a port in use fails at construction."""

    def __init__(self, listen: str, app: WebhookApp):
        host, _, port = listen.rpartition(":")
        host = host.strip("[]")
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock.bind((host, int(port)))
            # A deep accept queue: a burst of senders waits here for a moment instead of being reset.
            self._sock.listen(1024)
            self._sock.setblocking(False)
        except BaseException:
            self._sock.close()
            raise
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(app, loop="auto", http="auto", lifespan="off", backlog=1024,
                                access_log=False,  # the URL holds the token: never log it
                                log_config=None, log_level="warning", server_header=False,
                                timeout_graceful_shutdown=2)
        self._started = threading.Event()
        self._server = _Server(config, self._started.set)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="spmirror-webhooks", daemon=True)

    def start(self) -> None:
        """Serve; returns once connections are accepted (RuntimeError if uvicorn could not start)."""
        self._thread.start()
        while not self._started.wait(0.01):
            if not self._thread.is_alive():
                raise RuntimeError("the webhook receiver failed to start")

    def stop(self) -> None:
        """Stop accepting, finish answers in progress (2 s at most), close the socket. Idempotent."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._sock.close()
