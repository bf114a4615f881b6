"""Admission under monkey-patching, in its own process, with every switch between green threads traced.

Usage: python -m tests.admission_switches gevent|eventlet. Prints one JSON object: each admission's outcome,
and the stack of every switch away from the admitting green thread while it ran (there must be none).
"""

from __future__ import annotations

import sys

MODE = sys.argv[1] if len(sys.argv) > 1 else "gevent"
if MODE == "eventlet":
    import eventlet

    eventlet.monkey_patch()
else:
    from gevent import monkey

    monkey.patch_all()

import json  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

import greenlet  # noqa: E402

from app.access import limits  # noqa: E402
from app.access.limits import Admission  # noqa: E402
from app.config import Settings  # noqa: E402
from app.errors import RelayError  # noqa: E402
from app.streams.log import StreamLog  # noqa: E402
from app.streams.registry import StreamRegistry  # noqa: E402
from app.streams.relay import Relay  # noqa: E402
from app.streams.schemas import ChatRequest  # noqa: E402


def main() -> None:
    limits._SWEEP_EVERY = 0.0  # every hit also sweeps: that path must not switch either
    settings = Settings(openai_api_key="unused", max_streams_per_client=2, max_streams_total=3,
                        rate_limit="3/minute", _env_file=None)  # type: ignore[call-arg]
    registry = StreamRegistry()
    admission = Admission(settings, registry)
    time.sleep(0.05)  # a green sleep: the rate-limit storage's own timers, if any, run out, as between bursts
    me = greenlet.getcurrent()
    switches: list[str] = []

    def trace(event: str, args: tuple[greenlet.greenlet, greenlet.greenlet]) -> None:
        origin, _target = args
        if event in ("switch", "throw") and origin is me:
            switches.append("".join(traceback.format_stack(origin.gr_frame, limit=8)))

    outcomes: list[str] = []

    def admit(owner: str, client: str) -> None:
        relay = Relay(ChatRequest("s", "m", []), None, StreamLog("s", threading.Event))  # type: ignore[arg-type]
        previous = greenlet.settrace(trace)
        try:
            admission.admit(owner, relay, client)
            outcomes.append("admitted")
        except RelayError as err:
            outcomes.append(err.code.value)
        finally:
            greenlet.settrace(previous)

    admit("a1", "a")
    admit("a2", "a")
    admit("a3", "a")  # too_many_streams: the client's cap
    admit("b1", "b")
    admit("c1", "c")  # too_many_streams: the server's cap
    for owner, _ in [("a1", "s"), ("a2", "s"), ("b1", "s")]:
        registry.remove(owner, "s")
    admit("a4", "a")
    registry.remove("a4", "s")
    admit("a5", "a")  # rate_limited: the 4th of 3/minute
    time.sleep(0.05)
    admit("d1", "d")  # a fresh client after a pause
    admission.draining = True
    admit("e1", "e")  # server_shutdown
    print(json.dumps({"outcomes": outcomes, "switches": switches}))


if __name__ == "__main__":
    main()
