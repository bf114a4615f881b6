"""Admission and the stream's registration under monkey-patching, in their own process, with every switch between
green threads traced.

Usage: python -m tests.admission_switches gevent|eventlet. Prints one JSON object: each request's outcome, and
the stack of every switch away from the admitting green thread from admission's first check to the end of
StreamManager.start, which registers the stream (there must be none: chat_relay/access/admission.py).
"""

from __future__ import annotations

import sys

MODE = sys.argv[1] if len(sys.argv) > 1 else "gevent"
if MODE == "eventlet":
    import eventlet

    eventlet.monkey_patch()
else:
    import gevent
    from gevent import monkey

    monkey.patch_all()

import json  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

import greenlet  # noqa: E402

from chat_relay.access import admission as limits  # noqa: E402
from chat_relay.access.admission import Admission  # noqa: E402
from chat_relay.async_drivers import AsyncDriver, mode_driver  # noqa: E402
from chat_relay.config import Settings  # noqa: E402
from chat_relay.errors import ErrorCode, RelayError  # noqa: E402
from chat_relay.observability.metrics import Metrics  # noqa: E402
from chat_relay.streams.manager import StreamManager  # noqa: E402
from chat_relay.streams.registry import StreamRegistry  # noqa: E402
from chat_relay.streams.request_validation import ChatRequest  # noqa: E402
from chat_relay.streams.resume_tokens import ResumeTokens  # noqa: E402


class HeldUpstream:
    """Holds each stream at its request until released, so running streams keep their slots."""

    def __init__(self) -> None:
        self.released = threading.Event()

    def open(self, request: ChatRequest) -> None:
        self.released.wait()
        raise RelayError(ErrorCode.UPSTREAM_UNAVAILABLE, "released")


def main() -> None:
    limits._SWEEP_EVERY = 0.0  # every hit also sweeps: that path must not switch either
    settings = Settings(openai_api_key="unused", max_streams_per_client=2, max_streams_total=3,
                        rate_limit="3/minute", _env_file=None)  # type: ignore[call-arg]
    registry = StreamRegistry()
    admission = Admission(settings, registry)
    upstream = HeldUpstream()
    spawn = gevent.spawn if MODE == "gevent" else eventlet.spawn  # what engine.io's start_background_task does
    driver = AsyncDriver(MODE, spawn, time.sleep, threading.Event, mode_driver(MODE))
    streams = StreamManager(upstream=upstream, registry=registry, tokens=ResumeTokens(b"k" * 32, bind_client=False),
                            shared=None, driver=driver, grace=0, ttl=60, metrics=Metrics(["m"]))  # type: ignore[arg-type]
    time.sleep(0.05)  # a green sleep: the rate-limit storage's own timers, if any, run out, as between bursts
    me = greenlet.getcurrent()
    switches: list[str] = []

    def trace(event: str, args: tuple[greenlet.greenlet, greenlet.greenlet]) -> None:
        origin, _target = args
        if event in ("switch", "throw") and origin is me:
            switches.append("".join(traceback.format_stack(origin.gr_frame, limit=8)))

    outcomes: list[str] = []

    def request(owner: str, client: str) -> None:
        """As the transports do: admit, then start (register) the stream."""
        previous = greenlet.settrace(trace)
        try:
            admission.admit(client)
            streams.start(ChatRequest("s", "m", []), owner, client, reserved=True)
            outcomes.append("admitted")
        except RelayError as err:
            outcomes.append(err.code.value)
        finally:
            greenlet.settrace(previous)

    request("a1", "a")
    request("a2", "a")
    request("a3", "a")  # too_many_streams: the client's cap
    request("b1", "b")
    request("c1", "c")  # too_many_streams: the server's cap
    upstream.released.set()
    while len(registry):  # the producers end, and their streams leave the registry
        time.sleep(0.01)
    for owner in ("a1", "a2", "b1"):  # their deliveries end, as a transport's do after the terminal event: the
        streams.release(owner, "s")  # streams stop counting against their clients (docs/security.md, "Slow readers")
    request("a4", "a")
    request("a5", "a")  # rate_limited: the 4th of 3/minute
    time.sleep(0.05)
    request("d1", "d")  # a fresh client after a pause
    admission.draining = True
    request("e1", "e")  # server_shutdown
    print(json.dumps({"outcomes": outcomes, "switches": switches}))


if __name__ == "__main__":
    main()
