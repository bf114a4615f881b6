"""Let a Socket.IO client's websocket writer catch up before the next chunk is taken, so that it carries more.

engine.io queues each emitted packet for the client's writer task, which sends every packet as its own
websocket frame. While the writer still has packets it has not taken (a slow client, a busy CPU), emitting
more would only add frames: waiting until it has taken them lets the stream's log gather everything that
came meanwhile into the next chunk. When the writer is idle this returns at once, so nothing is held back.

It is also where back-pressure meets Socket.IO (chat_relay/streams/backlog.py): a chunk counts as handed on once the
writer has taken it, so a client that reads nothing (its writer stuck in a send) is given no more chunks, and its
stream's producer stops reading the upstream.
"""

from __future__ import annotations

from socketio import Server

from ..async_drivers import AsyncDriver

# The longest one wait for a writer stuck on a client that reads nothing; the caller then looks again at whether
# its reader was closed meanwhile.
STUCK_WRITER = 1.0


def wait_for_writer(server: Server, sid: str, namespace: str, driver: AsyncDriver) -> bool:
    """Whether the client's engine.io writer has taken every packet queued so far (or the client is gone), after
    waiting for it up to STUCK_WRITER seconds."""
    eio_sid = server.manager.eio_sid_from_sid(sid, namespace)
    client = server.eio.sockets.get(eio_sid) if eio_sid is not None else None
    if client is None or client.closed or not client.queue.unfinished_tasks:
        return True
    return driver.join_queue(client.queue, STUCK_WRITER) or client.closed
