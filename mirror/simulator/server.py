"""Running the simulator: in a background thread for tests, or in the foreground for the CLI.

`SimulatorServer` binds its own socket (127.0.0.1, port 0 by default, so each test gets a free
port with no race), serves the app with uvicorn (httptools + uvloop) on a daemon thread, and is
a context manager:

    with SimulatorServer(customers=120, seed=7) as sim:
        httpx.get(sim.url, params={"action": "getallcustomers", "api_key": sim.api_key})
        sim.account.set_status(70001, 2)      # act as a user of the web app
        sim.faults.script("429")              # the next request gets a 429
        sim.quirks.update(int_ids=True)       # old-docs shapes from the next request on
        sim.webhook_version = "A"             # webhook payloads of the events page's version A
        sim.webhook_faults.script("drop")     # the next webhook delivery is not sent
        sim.flush_webhooks()                  # wait until queued webhooks are sent

Webhooks are delivered by the account itself (see `delivery.py`); `stop()` stops that too.

`serve_forever` is what `spmirror simulate` runs.
"""

from __future__ import annotations

import datetime as dt
import secrets
import socket
import sys
import threading
from collections.abc import Callable

import uvicorn

from .account import Account
from .app import App
from .delivery import WebhookFaults
from .events import DEFAULT_VERSION
from .faults import FaultPlan
from .quirks import Quirks


class _Server(uvicorn.Server):
    """uvicorn.Server that reports when it is accepting connections."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            self._on_started()


def _config(app: App) -> uvicorn.Config:
    return uvicorn.Config(app, http="httptools", loop="uvloop", lifespan="off",
                          access_log=False, log_config=None, log_level="warning",
                          server_header=False,  # the app sends nginx's, as the real host does
                          timeout_graceful_shutdown=2)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this on Linux; small responses must not wait for Nagle.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class SimulatorServer:
    """A simulator on a background thread; see the module docstring.

    `prerender=True` renders every customer's JSON up front (for benchmarks of big accounts).
    Attributes: `url` (".../apidata.php"), `base_url`, `port`, `api_key`, `account` (the
    control handle), `faults` (FaultPlan), `quirks` (Quirks, shared with the account),
    `webhook_faults` (WebhookFaults, the account's), `webhook_version` ("A"/"B"), `app`.
    """

    def __init__(self, customers: int = 0, seed: int = 0, api_key: str | None = None,
                 order: str = "id", quirks: Quirks | None = None, faults: FaultPlan | None = None,
                 today: Callable[[], dt.date] = dt.date.today, host: str = "127.0.0.1",
                 port: int = 0, prerender: bool = False, webhook_version: str = DEFAULT_VERSION,
                 webhook_faults: WebhookFaults | None = None) -> None:
        self.account = Account(customers=customers, seed=seed, order=order, quirks=quirks, today=today,
                               webhook_version=webhook_version, webhook_faults=webhook_faults)
        if prerender:
            self.account.prerender()
        self.quirks = self.account.quirks
        self.webhook_faults = self.account.webhook_faults
        self.faults = faults if faults is not None else FaultPlan(seed)
        self.api_key = api_key or secrets.token_hex(18)
        self.app = App(self.account, self.faults, self.api_key)
        self._sock = _bind(host, port)
        self.port = self._sock.getsockname()[1]
        self.base_url = f"http://{_url_host(host)}:{self.port}"
        self.url = f"{self.base_url}/apidata.php"
        self._started = threading.Event()
        self._server = _Server(_config(self.app), self._started.set)
        self._thread: threading.Thread | None = None

    def start(self) -> SimulatorServer:
        """Start serving; returns once connections are being accepted."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                            name=f"simulator:{self.port}", daemon=True)
            self._thread.start()
            while not self._started.wait(0.01):
                if not self._thread.is_alive():
                    raise RuntimeError("simulator failed to start")
        return self

    def reset_account(self, customers: int, seed: int) -> None:
        """Replace the account (seeded: the same customers again) and the fault plan while serving,
        so a test module can share one server and still start each test from a known state."""
        old = self.account
        self.account = self.app.account = Account(customers=customers, seed=seed)
        self.quirks, self.webhook_faults = self.account.quirks, self.account.webhook_faults
        self.faults = self.app.faults = FaultPlan(seed)
        old.close()

    def stop(self) -> None:
        """Stop serving, stop webhook delivery (unsent deliveries are discarded) and close the
        socket (idempotent)."""
        if self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self._thread = None
        self.account.close()
        self._sock.close()

    @property
    def webhook_version(self) -> str:
        """The account's webhook payload version, "A" or "B"; settable."""
        return self.account.webhook_version

    @webhook_version.setter
    def webhook_version(self, version: str) -> None:
        self.account.webhook_version = version

    def flush_webhooks(self, timeout: float = 5.0, release_held: bool = True) -> list[dict]:
        """`Account.flush_webhooks`: wait until queued webhooks are sent; returns the log."""
        return self.account.flush_webhooks(timeout, release_held)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def serve_forever(host: str = "127.0.0.1", port: int = 8000, customers: int = 1000, seed: int = 0,
                  api_key: str | None = None, order: str = "id", latency_ms: float = 0.0,
                  quirks: Quirks | None = None, faults: FaultPlan | None = None,
                  today: Callable[[], dt.date] = dt.date.today, prerender: bool = True,
                  webhook_version: str = DEFAULT_VERSION) -> None:
    """Serve a simulator in the foreground until SIGINT/SIGTERM (what `spmirror simulate` runs).

    Returns normally after Ctrl-C (SIGINT). On SIGTERM uvicorn shuts down and then re-raises
    the signal, so the process ends as a terminated service does.

    Arguments:
        host:        interface to listen on (default 127.0.0.1; "0.0.0.0" or "::" for all).
        port:        TCP port; 0 picks a free one (the real port is printed).
        customers:   how many seeded customers the account starts with (ids from 70001).
        seed:        seed for the customers and the fault plan (same seed, same data).
        api_key:     the key clients must send; a random 36-hex-digit key when None.
        order:       listing order of getallcustomers: "id" (ascending) or "newest".
        latency_ms:  delay added to every API request, as a network would.
        quirks:      the Quirks to serve with (default: every quirk at its default, the
                     new docs' behaviour; see quirks.py).
        faults:      a FaultPlan (default: no faults; latency_ms is applied to it).
        today:       the date new customers are created on.
        prerender:   render every customer's JSON before listening, so the first walk is not
                     slowed by rendering (about 1.5 s for 100,000 customers).
        webhook_version: payload version of webhook deliveries, "A" or "B" (delivery.py);
                     switchable later with POST /_admin/webhooks {"version": ...}.

    Once listening it prints exactly two lines to stdout and flushes:
        Solar Proof simulator listening on http://HOST:PORT/apidata.php
        API key: KEY
    The `/_admin/` routes (see admin.py) drive it from another process.
    """
    account = Account(customers=customers, seed=seed, order=order, quirks=quirks, today=today,
                      webhook_version=webhook_version)
    if prerender:
        account.prerender()
    plan = faults if faults is not None else FaultPlan(seed)
    if latency_ms:
        plan.configure(latency_ms=latency_ms)
    key = api_key or secrets.token_hex(18)
    sock = _bind(host, port)
    url = f"http://{_url_host(host)}:{sock.getsockname()[1]}/apidata.php"

    def announce() -> None:
        sys.stdout.write(f"Solar Proof simulator listening on {url}\nAPI key: {key}\n")
        sys.stdout.flush()

    try:
        _Server(_config(App(account, plan, key)), announce).run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn shut down cleanly, then re-raised the Ctrl-C; that is a normal exit
    finally:
        account.close()
        sock.close()
