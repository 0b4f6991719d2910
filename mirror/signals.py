"""A daemon's signals, acted on by a thread of its own rather than inside the handler.

Python runs a signal handler on the main thread between any two bytecodes: possibly while the
main thread holds the scheduler's lock, or is half-way through writing a log line. A handler
that reloads settings, reschedules jobs or logs can therefore deadlock or corrupt what it
interrupted. So the handler only puts the signal number on a queue (SimpleQueue.put is made to
be called from a handler), and this thread takes it off and runs the action.
"""

from __future__ import annotations

import queue
import signal
import threading
from typing import Callable, Mapping

import structlog

log = structlog.get_logger()


class SignalThread:
    """`actions[signum](signum)` runs on this thread for each signal received."""

    def __init__(self, actions: Mapping[int, Callable[[int], None]]):
        self.actions = dict(actions)
        self._queue: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="spmirror-signals", daemon=True)

    def install(self) -> None:
        """Start the thread and route the signals to it (from the main thread)."""
        self.start()
        for signum in self.actions:
            signal.signal(signum, self.handle)

    def start(self) -> None:
        if not self._thread.is_alive():
            self._thread.start()

    def handle(self, signum: int, _frame: object = None) -> None:
        """The signal handler: records the signal and nothing else."""
        self._queue.put(signum)

    def close(self) -> None:
        """End the thread once the signals queued before are handled."""
        self._queue.put(None)

    def _serve(self) -> None:
        while (signum := self._queue.get()) is not None:
            try:
                self.actions[signum](signum)
            except Exception as exc:  # the thread must live on: the next SIGTERM comes through it
                log.error("signal_handling_failed", signal=signal.Signals(signum).name, error=repr(exc))
