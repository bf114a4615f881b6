"""python-socketio's Client, with event handlers run one at a time in the order the events came over the wire.

python-socketio hands every engine.io message to a new thread (engineio/client.py, `_receive_packet`), so two
events that arrived in order may be handled out of it (python-socketio issue #382): on a busy machine a reply's
later chunk could reach its queue before an earlier one (a protocol error here), or its `done` before its last
chunk (text lost). The relay's events are small and their handlers only queue them, so each is handled on the
thread that reads the connection, in order. A handler must therefore never wait for another event.
"""

from __future__ import annotations

from typing import Any

import engineio  # python-socketio's own engine.io client
import socketio


class _InOrderEngineIOClient(engineio.Client):
    """engine.io's client, with messages handled on its reading thread instead of one new thread each."""

    def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "message":
            kwargs["run_async"] = False
        return super()._trigger_event(event, *args, **kwargs)


class InOrderClient(socketio.Client):
    """socketio.Client, but its handlers see events one by one, in the order they arrived."""

    def _engineio_client_class(self) -> type[engineio.Client]:
        return _InOrderEngineIOClient
