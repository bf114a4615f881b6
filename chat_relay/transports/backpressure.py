"""Let a Socket.IO client's websocket writer catch up before the next chunk is taken, so that it carries more.

engine.io queues each emitted packet for the client's writer task, which sends every packet as its own
websocket frame. While the writer still has packets it has not taken (a slow client, a busy CPU), emitting
more would only add frames: waiting until it has taken them lets the stream's log gather everything that
came meanwhile into the next chunk. When the writer is idle this returns at once, so nothing is held back.
"""

from __future__ import annotations

from socketio import Server

from ..async_drivers import AsyncDriver

# The longest wait for a writer stuck on a client that reads nothing; then one more chunk is queued anyway.
STUCK_WRITER = 1.0


def wait_for_writer(server: Server, sid: str, namespace: str, driver: AsyncDriver) -> None:
    """Return once the client's engine.io writer has taken every packet queued so far (or it is gone)."""
    eio_sid = server.manager.eio_sid_from_sid(sid, namespace)
    client = server.eio.sockets.get(eio_sid) if eio_sid is not None else None
    if client is None or client.closed or not client.queue.unfinished_tasks:
        return
    driver.join_queue(client.queue, STUCK_WRITER)
