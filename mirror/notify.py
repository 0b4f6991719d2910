"""systemd's notification protocol (sd_notify): READY=1, STATUS=..., WATCHDOG=1, STOPPING=1.

A datagram to the socket systemd names in $NOTIFY_SOCKET; a no-op when not run by systemd.
Fifteen lines of stdlib, so no dependency for it.
"""

from __future__ import annotations

import os
import socket


def notify(*assignments: str) -> bool:
    """Send `KEY=value` lines to systemd; returns whether a socket was there to send to."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(address)
        sock.sendall("\n".join(assignments).encode())
    return True


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None when no watchdog is set."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or (pid and pid.isdigit() and int(pid) != os.getpid()):
        return None
    return int(usec) / 2_000_000
