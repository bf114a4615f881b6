"""Waiting for state that sends no notice: the live server's counts (/healthz), read again until they hold.

A `threading.Condition.wait_for` checks its predicate only when the condition is notified. The fake upstream's
`wait_for` is notified by the fake alone, so a predicate on the *server* (`server.streams() == 0`) that is false
at the fake's last notice is not looked at again until the timeout: the wait then passes, having slept it all
out. That is how a test takes 31 s on a loaded machine and 1.4 s alone. Poll such state instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable

POLL_EVERY = 0.02  # seconds between two looks: /healthz is cheap, and the server has no event to wait on


def until(condition: Callable[[], bool], timeout: float = 10) -> bool:
    """Whether `condition()` came to hold within `timeout` seconds, looking every POLL_EVERY."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return condition()
        time.sleep(POLL_EVERY)  # polling the server's state; there is no notice to wait on
    return True
