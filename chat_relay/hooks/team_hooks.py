"""The team's hooks, together: what `ChatRelay(identify=..., prepare=..., on_finish=..., budget=...)` was given, and
the one object both transports call around a stream's start (`HookRunner`).

The order, for each new stream: identify (at the connect, or the HTTP request) -> the client's request validated ->
`prepare` (then validated again) -> FORWARD_USER's hash added -> the budget's reservation -> admission (caps,
rate limit) -> the stream; at its end, the budget settled and `on_finish` called, in a task of its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..access.admission import Admission
from ..async_drivers import AsyncDriver
from ..config import Settings
from ..streams.events import Terminal
from ..streams.producer import Producer, StreamEnding
from ..streams.request_validation import ChatRequest
from .budget import Budget, Budgets, Charge
from .finish import FinishRecord, OnFinish, Timings, finish_record, run_hook
from .forward_user import UserHashes
from .identity import Identify, Identity
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

    def request_for(self, request: ChatRequest, sent: dict[str, Any], identity: Identity) -> ChatRequest:
        """The request to send upstream: `prepare`'s (validated again), with FORWARD_USER's hash."""
        if self.hooks.prepare is not None:
            request = prepared(request, sent, identity, self.hooks.prepare, self._settings)
        return self._hashes.tagged(request, identity)

    def admit(self, request: ChatRequest, identity: Identity, client: str) -> StreamEnding | None:
        """Reserve the budget, then admission's slot (chat_relay/access/admission.py), or refuse; what to call when
        the stream ends (StreamManager.start's `on_end`)."""
        charge = self._budgets.reserve(request, identity) if self._budgets is not None else None
        try:
            self._admission.admit(client)
        except BaseException:
            if charge is not None and self._budgets is not None:
                self._budgets.settle(charge, {"total_tokens": 0})  # never ran: costs nothing
            raise
        if charge is None and self.hooks.on_finish is None:
            return None
        return lambda producer, terminal, cause: self._ended(producer, terminal, cause, identity, charge)

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
