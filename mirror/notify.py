"""systemd's notification protocol (sd_notify): READY=1, STATUS=..., WATCHDOG=1, STOPPING=1.

A datagram to the socket systemd names in $NOTIFY_SOCKET; a no-op when not run by systemd.
A few lines of stdlib, so no dependency for it.

Notifying never raises: a socket that is gone or refuses (a stale $NOTIFY_SOCKET inherited from
a shell, a unit restarted under another manager) must not stop the daemon it only reports on.
The first failure is logged, once per process; later ones are silent.
"""

from __future__ import annotations

import os
import socket
import threading

import structlog

log = structlog.get_logger()

_failure_logged = threading.Event()


def notify(*assignments: str) -> bool:
    """Send `KEY=value` lines to systemd; returns whether they were delivered.

    False when no socket is named, or when sending failed (logged the first time only).
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    target = "\0" + address[1:] if address.startswith("@") else address  # "@": an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(target)
            sock.sendall("\n".join(assignments).encode())
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        if not _failure_logged.is_set():
            _failure_logged.set()
            log.warning("notify_failed", socket=address, error=f"{type(exc).__name__}: {exc}",
                        reason="the service carries on without telling systemd; later failures are not logged")
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None when no watchdog is set."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or (pid and pid.isdigit() and int(pid) != os.getpid()):
        return None
    return int(usec) / 2_000_000
