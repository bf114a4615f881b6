"""Streams over Socket.IO, on python-socketio's `Client`: one connection per RelayClient, shared by its replies.

Events arrive on the client's reading thread, in order (relay_client/in_order.py); each stream's are handed to
the thread that iterates it through a queue of its own, keyed by `stream_id` (which is why this side always
chooses the id). When the connection drops mid-reply, python-socketio reconnects, and the reply resumes from its
cursor (docs/protocol.md, "Resuming a stream"): no gap, no repeat.
"""

from __future__ import annotations

import queue
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import socketio

from relay_client.errors import InvalidRequest, RelayConnectionError, RelayError, error_from
from relay_client.in_order import InOrderClient
from relay_client.reply import Chunk, Done

DEFAULT_EVENT = "chatgpt_description"


@dataclass(frozen=True)
class _Dropped:
    """The connection closed: `reason` is python-socketio's."""

    reason: str


_Item = Chunk | Done | RelayError | _Dropped


class SocketIOTransport:
    """The one connection of a RelayClient, and the routing of its events to each stream's queue."""

    def __init__(self, url: str, token: str | None, timeout: float, connect_timeout: float,
                 auto_resume: bool, event: str = DEFAULT_EVENT, namespace: str = "/") -> None:
        self.url = url
        self.event = event  # the stem of the six event names (docs/protocol.md, "Mounted in another app")
        self.namespace = namespace
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.auto_resume = auto_resume
        self._auth = {"token": token} if token else None
        self._queues: dict[str, queue.Queue[_Item]] = {}
        self._lock = threading.Lock()  # guards the queues; held only briefly, events wait on it
        self._connect_lock = threading.Lock()
        self._connected = threading.Event()
        self._closed = False
        self._reconnecting = False  # python-socketio reconnects by itself after a transport error, not otherwise
        self._refusal: Any = None
        self.sio = InOrderClient(reconnection=True, reconnection_delay=0.25, reconnection_delay_max=2)
        on = {"namespace": namespace}
        self.sio.on("connect", self._on_connect, **on)
        self.sio.on("disconnect", self._on_disconnect, **on)
        self.sio.on("connect_error", self._on_connect_error, **on)
        self.sio.on(f"{event}_chunk", self._on_chunk, **on)
        self.sio.on(f"{event}_done", lambda data: self._route(data.get("stream_id"), Done.from_payload(data)), **on)
        self.sio.on(f"{event}_error", lambda data: self._route(data.get("stream_id"), error_from(data)), **on)

    # Events, on python-socketio's reading thread, one at a time: none may wait for another.

    def _on_chunk(self, text: str, meta: dict[str, Any]) -> None:
        self._route(meta.get("stream_id"), Chunk.from_wire(text, meta["seq"], meta.get("parts")))

    def _route(self, stream_id: str | None, item: _Item) -> None:
        # An error with stream_id null answers a refused request, whose ack already carries it.
        with self._lock:
            target = self._queues.get(stream_id) if stream_id else None
        if target is not None:
            target.put(item)

    def _on_connect(self) -> None:
        self._reconnecting = False
        self._connected.set()

    def _on_disconnect(self, reason: str = socketio.Client.reason.SERVER_DISCONNECT) -> None:
        self._connected.clear()
        self._reconnecting = reason == socketio.Client.reason.TRANSPORT_ERROR
        with self._lock:
            targets = list(self._queues.values())
        for target in targets:
            target.put(_Dropped(reason))

    def _on_connect_error(self, data: Any = None) -> None:
        self._refusal = data

    # Calls, on the caller's thread.

    def connect(self) -> None:
        with self._connect_lock:
            if self._closed:
                raise RelayConnectionError("the client is closed")
            if self.sio.connected:
                return
            if self._reconnecting:
                if self.wait_connected():
                    return
                raise RelayConnectionError("the connection dropped and did not come back")
            self._refusal = None
            try:
                self.sio.connect(self.url, auth=self._auth, transports=["websocket"], namespaces=[self.namespace],
                                 wait_timeout=self.connect_timeout)
            except socketio.exceptions.ConnectionError as exc:
                raise _refused(self._refusal, exc) from None

    def call(self, suffix: str, data: dict[str, Any]) -> Any:
        """Call the event `<event><suffix>` ("" for the request, "_stop", "_resume") and return its ack."""
        event = self.event + suffix
        try:
            return self.sio.call(event, data, namespace=self.namespace, timeout=self.connect_timeout)
        except socketio.exceptions.TimeoutError:
            raise RelayConnectionError(f"no answer to {event} within {self.connect_timeout} s") from None
        except socketio.exceptions.BadNamespaceError:
            raise RelayConnectionError("not connected to the server") from None

    def open(self, suffix: str, request: dict[str, Any]) -> tuple[dict[str, Any], queue.Queue[_Item]]:
        """Send a request that starts a stream ("") or resumes one ("_resume"), with its queue ready before any
        event."""
        stream_id = request.setdefault("stream_id", uuid.uuid4().hex)
        self.connect()
        inbox: queue.Queue[_Item] = queue.Queue()
        with self._lock:
            if stream_id in self._queues:
                raise InvalidRequest(f"A stream with the id {stream_id!r} is already running on this client.")
            self._queues[stream_id] = inbox
        try:
            ack = self.call(suffix, request)
            if not isinstance(ack, dict) or "error" in ack:
                raise error_from((ack or {}).get("error", {}) if isinstance(ack, dict) else {})
        except BaseException:
            self.release(stream_id)
            raise
        return ack, inbox

    def release(self, stream_id: str) -> None:
        with self._lock:
            self._queues.pop(stream_id, None)

    def wait_connected(self) -> bool:
        return self._connected.wait(self.connect_timeout + 5)  # python-socketio retries within 2 s

    def close(self) -> None:
        with self._connect_lock:
            self._closed = True
        if self.sio.connected or self.sio.eio.state != "disconnected":
            self.sio.disconnect()
        self.sio.shutdown()  # ends a reconnection in progress too


def _refused(data: Any, exc: Exception) -> RelayError:
    """A refused connection as the protocol's error: connect_error data `{"message", "data": {"code"}}`."""
    if isinstance(data, dict):
        payload = data.get("data") if isinstance(data.get("data"), dict) else data
        if isinstance(payload, dict) and "error" in payload and isinstance(payload["error"], dict):
            payload = payload["error"]  # a refused handshake's JSON body
        if isinstance(payload, dict) and "code" in payload:
            return error_from(payload)
    return RelayConnectionError(f"could not connect: {exc}")


class SocketIOStream:
    """One stream's events, read from its queue; resumes from the cursor after a dropped connection."""

    def __init__(self, transport: SocketIOTransport, stream_id: str, resume_token: str | None,
                 inbox: queue.Queue[_Item]) -> None:
        self.transport = transport
        self.stream_id = stream_id
        self.resume_token = resume_token
        self._inbox = inbox

    def next_event(self, cursor: int) -> Chunk | Done:
        while True:
            try:
                item = self._inbox.get(timeout=self.transport.timeout)
            except queue.Empty:
                raise RelayConnectionError(f"nothing from the server for {self.transport.timeout} s") from None
            if isinstance(item, RelayError):
                raise item
            if not isinstance(item, _Dropped):
                return item
            self._resume(cursor, item.reason)

    def _resume(self, cursor: int, reason: str) -> None:
        """Everything received is in hand (it was queued before the drop): ask for the rest after `cursor`."""
        reconnecting = reason == socketio.Client.reason.TRANSPORT_ERROR
        if not (reconnecting and self.transport.auto_resume and self.resume_token):
            raise RelayConnectionError(f"the connection closed mid-reply ({reason})")
        if not self.transport.wait_connected():
            raise RelayConnectionError("the connection dropped mid-reply and did not come back")
        ack = self.transport.call("_resume", {
            "stream_id": self.stream_id, "after_seq": cursor, "resume_token": self.resume_token})
        if not isinstance(ack, dict) or "error" in ack:
            raise error_from((ack or {}).get("error", {}) if isinstance(ack, dict) else {})

    def stop(self) -> None:
        # With the token, a stop works from any connection: also after a reconnect, before the resume.
        request = {"stream_id": self.stream_id}
        if self.resume_token:
            request["resume_token"] = self.resume_token
        ack = self.transport.call("_stop", request)
        if isinstance(ack, dict) and "error" in ack:
            error = error_from(ack["error"])
            if error.code != "invalid_request":  # not running any more: the stop crossed the reply's end
                raise error

    def close(self) -> None:
        self.transport.release(self.stream_id)
