"""A python-socketio client whose event handlers run one at a time, in the order the events came over the wire.

python-socketio's `Client` hands every engine.io message to a new thread (engineio/client.py, `_receive_packet`:
`run_async=True`), so two events that arrived in order can be handled out of it: on a busy machine, or while a
handler waits for a lock, the thread of a later chunk may record it before the thread of an earlier one
(python-socketio issue #382: "the handler for message N and N+1 run concurrently ... the N+1 handler may get
ahead"). A test that checks the protocol's cursor (docs/protocol.md) must see the order the server sent, as a
browser's socket.io-client does, so here each message is handled on the thread that reads the connection.

The price: a handler must not wait for another event (a `call()` from inside a handler would wait forever).
"""

from __future__ import annotations

from typing import Any

import engineio
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
