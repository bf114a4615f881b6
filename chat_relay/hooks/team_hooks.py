"""The team's hooks, together: what `ChatRelay(identify=..., prepare=..., on_finish=..., budget=...)` was given, and
the one object both transports call around a stream's start (`HookRunner`).

The order, for each new stream: identify (at the connect, or the HTTP request) -> the client's request validated ->
admission (caps, rate limit: first, so that a flood never reaches the team's hooks) -> `prepare` (then validated
again) -> FORWARD_USER's hash added -> the budget's reservation -> the stream; at its end, the budget settled and
`on_finish` called, in a task of its own. A refusal after admission gives its slot back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..access.admission import Admission
from ..access.identity import Identify, Identity
from ..async_drivers import AsyncDriver
from ..config import Settings
from ..streams.events import Terminal
from ..streams.producer import Producer, StreamEnding
from ..streams.request_validation import ChatRequest
from .budget import Budget, Budgets, Charge
from .finish import FinishRecord, OnFinish, Timings, finish_record, run_hook
from .forward_user import UserHashes
from .prepare import Prepare, prepared


@dataclass(frozen=True)
class Hooks:
    """The team's callables; each is optional (docs: README, "Building on the relay: hooks")."""

    identify: Identify | None = None
    prepare: Prepare | None = None
    on_finish: OnFinish | None = None
    budget: Budget | None = None


class HookRunner:
    """One per app, in its Services."""

    def __init__(self, hooks: Hooks, settings: Settings, admission: Admission, driver: AsyncDriver) -> None:
        self.hooks = hooks
        self._settings = settings
        self._admission = admission
        self._driver = driver
        self._hashes = UserHashes(settings)
        self._budgets = Budgets(hooks.budget, settings) if hooks.budget is not None else None
        self.pending = 0  # on_finish calls started and not yet returned: a shutdown waits for them a while

    def admit(self, request: ChatRequest, sent: dict[str, Any], identity: Identity,
              client: str) -> tuple[ChatRequest, StreamEnding | None]:
        """Admission's slot (chat_relay/access/admission.py), the request to send (`prepare`'s, with FORWARD_USER's
        hash) and the budget's reservation, or a refusal; the caller then starts the stream with
        StreamManager.start(..., reserved=True, on_end=...), the second value being what it calls at the end.
        `sent` is the client's JSON, `request` it validated."""
        self._admission.admit(client)
        try:
            if self.hooks.prepare is not None:
                request = prepared(request, sent, identity, self.hooks.prepare, self._settings)
            request = self._hashes.tagged(request, identity)
            charge = self._budgets.reserve(request, identity) if self._budgets is not None else None
        except BaseException:
            self._admission.give_back(client)
            raise
        if charge is None and self.hooks.on_finish is None:
            return request, None
        return request, lambda producer, terminal, cause: self._ended(producer, terminal, cause, identity, charge)

    def _ended(self, producer: Producer, terminal: Terminal, cause: str, identity: Identity,
               charge: Charge | None) -> None:
        """Runs in the producer's task after its terminal entry: nothing here may block or raise."""
        if charge is not None and self._budgets is not None:
            usage = getattr(terminal, "usage", None)
            self._driver.spawn(self._budgets.settle, charge, usage)  # a round trip to Redis: not in the producer
        if self.hooks.on_finish is not None:
            duration = time.monotonic() - producer.created
            first = None if producer.first_piece_at is None else producer.first_piece_at - producer.created
            record = finish_record(request=producer.request, identity=identity, transport=producer.transport,
                                   pieces=producer.buffer.pieces_after(-1), terminal=terminal, cause=cause,
                                   timings=Timings(time.time() - duration, duration, first))
            self.pending += 1
            self._driver.spawn(self._finish, self.hooks.on_finish, record)

    def _finish(self, hook: OnFinish, record: FinishRecord) -> None:
        try:
            run_hook(hook, record)
        finally:
            self.pending -= 1
