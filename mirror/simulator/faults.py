"""Switchable, seeded transport faults for `/apidata.php` (never for `/_admin/` routes).

Contract: `FaultPlan.decide(action)` is called exactly once per API request, in arrival order,
and returns the `Fault` to inject or None. It first consumes the script (queued by `script()`,
oldest first, the first entry whose `action` filter matches); otherwise it draws ONE number from
the plan's own `random.Random(seed)` and compares it against the cumulative rates, so a given
seed and request sequence always yields the same faults. Rates are probabilities per request.

Kinds (the app, not this module, carries them out):

* `429`: HTTP 429 with `Retry-After: <seconds>` (integer); `retry_after=None` omits the header.
* `5xx`: HTTP 500, 502 or 503 with an nginx-style HTML page (`500`/`502`/`503` pick one).
* `drop`: headers with a Content-Length larger than the body sent, half the body, then the
  connection closes. The request is NOT applied (a write under `drop` changes nothing).
* `truncate`: HTTP 200 with a correct Content-Length for a JSON body cut in half; not applied.
* `html`: HTTP 200 with a PHP fatal-error HTML page; not applied.
* `lost_create`: only for `createcustomer`: the create IS applied, then the response is dropped
  as under `drop`. A scripted `lost_create` waits for a create, whatever its `action` filter.
* `stall`: the request IS applied (a write is made and logged with the response it will get),
  then the response is held back for `stall_seconds` (the plan's setting, default 30, or the
  script entry's own) with an asyncio wait, so other requests are served meanwhile, and then
  sent normally. If the client disconnects during the wait, the wait ends and nothing is sent.
  For crash tests: kill the client while it waits, and the server has a write it never saw.
* `echo_html`, `echo_json`: an error page that echoes the request back, as a proxy or a PHP
  error handler may: its parameters as PHP's `print_r($_GET)` shows them (`[api_key] => ...`),
  the method and request URI (`api_key=` included) and the body (`data.apikey` included).
  Scripted only (no rate); not applied (a write under an echo fault changes nothing). Script
  settings: `status`, the HTTP status (400..599; default 500 for `echo_html`, 400 for
  `echo_json`), and `echo`, how much of the key shows:
  - `full` (default): the URI exactly as received (the key as the client encoded it), the
    parameters decoded, the body as received;
  - `prefix`: everything decoded, the key cut to its first 20 characters (a page that shortens
    long values);
  - `urlencoded`: everything decoded, the key re-encoded as PHP's urlencode() writes it
    (letters, digits and `-_.` kept, every other character `%XX`).
  `echo_html` is a short HTML page (`text/html`) opening with the `print_r` dump, everything
  HTML-escaped, so the key falls within its first 120 characters. `echo_json` is
  `{"code", "message"}` (`INVALID_PARAMETERS` for a 4xx, `SERVER_ERROR` for a 5xx) written as
  PHP's json_encode writes it (no spaces, `/` as `\\/`), the whole echo in the message.

`latency_ms` is added to every API request (also faulted ones) with `asyncio.sleep`, so
concurrent requests overlap as they would over a real network.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

KINDS = ("429", "5xx", "500", "502", "503", "drop", "truncate", "html", "lost_create", "stall",
         "echo_html", "echo_json")
ECHO_KINDS = ("echo_html", "echo_json")
ECHO_PARTS = ("full", "prefix", "urlencoded")  # how much of the key an echo fault shows
ECHO_STATUS = {"echo_html": 500, "echo_json": 400}  # the default status of each echo kind
RATE_FIELDS = ("rate_429", "rate_5xx", "rate_drop", "rate_truncate", "rate_html", "rate_lost_create",
               "rate_stall")
STALL_SECONDS = 30.0  # the default hold-back of a `stall` fault
OMIT = "omit"  # script(..., retry_after=OMIT): send the 429 without a Retry-After header


@dataclass(frozen=True)
class Fault:
    """One fault to inject: its kind, the HTTP status to send, Retry-After (429 only), how
    long to hold the response back (stall only) and how much of the key to echo (echo kinds)."""

    kind: str
    status: int = 200
    retry_after: int | None = None
    stall_seconds: float | None = None
    echo: str | None = None


class FaultPlan:
    """Fault rates, latency and a script of queued faults, safe to change from any thread."""

    def __init__(self, seed: int = 0, *, latency_ms: float = 0.0, retry_after: int | None = 1,
                 stall_seconds: float = STALL_SECONDS, **rates: float) -> None:
        self._lock = threading.Lock()
        self._script: list[dict] = []
        self._log: list[dict] = []
        self._requests = 0
        self.seed = seed
        self.latency_ms = 0.0
        self.retry_after: int | None = 1
        self.stall_seconds = STALL_SECONDS
        for name in RATE_FIELDS:
            setattr(self, name, 0.0)
        self._rng = random.Random(seed)
        self.configure(latency_ms=latency_ms, retry_after=retry_after, stall_seconds=stall_seconds,
                       **rates)

    def configure(self, **settings) -> dict:
        """Set any of `seed`, `latency_ms`, `retry_after`, `stall_seconds` and the `rate_*` fields.

        Setting `seed` restarts the random sequence. Raises ValueError on an unknown name or an
        out-of-range value (rates must lie in 0..1). Returns the resulting settings.
        """
        allowed = {"seed", "latency_ms", "retry_after", "stall_seconds", *RATE_FIELDS}
        unknown = set(settings) - allowed
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")
        for name in RATE_FIELDS:
            if name in settings and not 0.0 <= float(settings[name]) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if float(settings.get("latency_ms", 0)) < 0:
            raise ValueError("latency_ms must not be negative")
        if "stall_seconds" in settings:
            _check_stall(settings["stall_seconds"])
        retry_after = settings.get("retry_after", self.retry_after)
        if retry_after is not None and (not isinstance(retry_after, int) or retry_after < 0):
            raise ValueError("retry_after must be a non-negative integer or null (omit header)")
        with self._lock:
            for name, value in settings.items():
                setattr(self, name, value if name in ("seed", "retry_after") else float(value))
            if "seed" in settings:
                self._rng = random.Random(settings["seed"])
        return self.settings()

    def settings(self) -> dict:
        """The current rates, latency, seed, Retry-After, stall time and queued script, as plain data."""
        with self._lock:
            out = {name: getattr(self, name)
                   for name in ("seed", "latency_ms", "retry_after", "stall_seconds", *RATE_FIELDS)}
            out["script"] = [dict(entry) for entry in self._script]
            return out

    def reset(self) -> None:
        """All rates and latency to zero, stall_seconds to 30, the script emptied, the random
        sequence restarted."""
        with self._lock:
            self._script.clear()
        self.configure(latency_ms=0.0, retry_after=1, stall_seconds=STALL_SECONDS, seed=self.seed,
                       **{name: 0.0 for name in RATE_FIELDS})

    def script(self, kind: str, count: int = 1, action: str | None = None,
               retry_after: int | str | None = None, stall_seconds: float | None = None,
               status: int | None = None, echo: str | None = None) -> None:
        """Give the next `count` requests for `action` (any action when None) fault `kind`.

        Scripted faults take precedence over rates. `retry_after` (429 only): None uses the
        plan's value, an integer overrides it, `OMIT` ("omit") sends no header. `stall_seconds`
        (stall only): None uses the plan's value when the fault is injected, a number overrides it.
        `status` and `echo` (echo kinds only): the HTTP status (400..599; None for the kind's
        default) and how much of the key the page shows (`ECHO_PARTS`; None for "full").
        """
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {KINDS}")
        if count < 1:
            raise ValueError("count must be at least 1")
        if (status is not None or echo is not None) and kind not in ECHO_KINDS:
            raise ValueError(f"status and echo apply to the echo kinds ({', '.join(ECHO_KINDS)}) only")
        if status is not None and (isinstance(status, bool) or not isinstance(status, int)
                                   or not 400 <= status <= 599):
            raise ValueError("status must be an HTTP error status, 400 to 599")
        if echo is not None and echo not in ECHO_PARTS:
            raise ValueError(f"echo must be one of {ECHO_PARTS}")
        if retry_after is not None and retry_after != OMIT and (
                not isinstance(retry_after, int) or retry_after < 0):
            raise ValueError("retry_after must be a non-negative integer, None or 'omit'")
        if stall_seconds is not None:
            if kind != "stall":
                raise ValueError("stall_seconds applies to the stall kind only")
            _check_stall(stall_seconds)
            stall_seconds = float(stall_seconds)
        if kind == "lost_create":
            action = "createcustomer"
        with self._lock:
            entry = {"kind": kind, "count": count, "action": action,
                     "retry_after": retry_after, "stall_seconds": stall_seconds}
            if kind in ECHO_KINDS:
                entry.update(status=status or ECHO_STATUS[kind], echo=echo or "full")
            self._script.append(entry)

    def clear_script(self) -> None:
        with self._lock:
            self._script.clear()

    def injected(self) -> list[dict]:
        """Every fault injected so far, in order: {request, action, kind, status}."""
        with self._lock:
            return [dict(entry) for entry in self._log]

    def decide(self, action: str) -> Fault | None:
        """The fault for this request (see the module docstring), recorded in `injected()`."""
        with self._lock:
            self._requests += 1
            fault = self._from_script(action)
            if fault is None:
                fault = self._from_rates(action)
            if fault is not None:
                self._log.append({"request": self._requests, "action": action,
                                  "kind": fault.kind, "status": fault.status})
            return fault

    def _from_script(self, action: str) -> Fault | None:
        for i, entry in enumerate(self._script):
            if entry["action"] in (None, action):
                entry["count"] -= 1
                if entry["count"] == 0:
                    del self._script[i]
                retry_after = entry["retry_after"]
                if retry_after is None:
                    retry_after = self.retry_after
                elif retry_after == OMIT:
                    retry_after = None
                if entry["kind"] in ECHO_KINDS:
                    return Fault(entry["kind"], entry["status"], echo=entry["echo"])
                stall = entry["stall_seconds"]
                return self._make(entry["kind"], retry_after,
                                  self.stall_seconds if stall is None else stall)
        return None

    def _from_rates(self, action: str) -> Fault | None:
        if not any(getattr(self, name) for name in RATE_FIELDS):
            return None  # the common case: keep the random sequence for when rates are set
        draw = self._rng.random()
        edge = 0.0
        for name, kind in (("rate_429", "429"), ("rate_5xx", "5xx"), ("rate_drop", "drop"),
                           ("rate_truncate", "truncate"), ("rate_html", "html"),
                           ("rate_lost_create", "lost_create"), ("rate_stall", "stall")):
            rate = getattr(self, name)
            if kind == "lost_create" and action != "createcustomer":
                continue
            edge += rate
            if draw < edge:
                if kind == "5xx":
                    # Which 5xx is a function of the same draw, so one number per request.
                    kind = ("500", "502", "503")[int((edge - draw) / rate * 3) % 3]
                return self._make(kind, self.retry_after, self.stall_seconds)
        return None

    @staticmethod
    def _make(kind: str, retry_after: int | None, stall_seconds: float) -> Fault:
        if kind == "429":
            return Fault("429", 429, retry_after)
        if kind == "5xx":
            kind = "500"
        if kind in ("500", "502", "503"):
            return Fault(kind, int(kind))
        if kind == "stall":
            return Fault("stall", 200, stall_seconds=stall_seconds)
        return Fault(kind, 200)


def _check_stall(value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise ValueError("stall_seconds must be a non-negative number of seconds")
