"""One stream's producer: open the upstream, append its text to the stream's log, end with one terminal entry.

The producer runs in its own green task and never waits for a reader (app/streams/log.py); each
transport reads the log and turns what it finds into its own wire format.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..bugs import log_bug
from ..errors import ErrorCode, RelayError
from .events import Done, Failed, Terminal
from .log import StreamLog
from .schemas import ChatRequest
from .upstream import Upstream, UpstreamStream

log = logging.getLogger(__name__)

INTERNAL_FAILURE = "The server failed while relaying the reply."

# Pieces the producer appends before it lets other tasks run. Reading never blocks while the upstream has
# sent more than was read, so without this a fast upstream would hold the CPU until its stream ended. Readers
# that wake in between find every piece appended so far, and send them as one chunk.
PIECES_PER_TURN = 16


class StreamCancelled(BaseException):
    """Raised inside a producer's task, where it waits, to stop it (a BaseException so no retry swallows it)."""


class Relay:
    """Produces one completion into its log; `run()` always ends the log with exactly one Done or Failed."""

    def __init__(self, request: ChatRequest, upstream: Upstream, stream_log: StreamLog,
                 pause: Callable[[], None] = lambda: None) -> None:
        self.request = request
        self.log = stream_log
        self._upstream = upstream
        self._pause = pause  # lets other tasks (readers, websocket writers, other streams) run
        self._stream: UpstreamStream | None = None
        self.cancelled = False
        self.cancel_cause = ""  # why it was cancelled, for the log: stopped, client_gone, server_shutdown
        self.cancel_error: RelayError | None = None  # end with this error instead of `done` cancelled
        self.started = False
        self.finished = False

    @property
    def stream_id(self) -> str:
        return self.request.stream_id

    def cancel(self, cause: str = "stopped", error: RelayError | None = None) -> None:
        """Ask the stream to end as cancelled (or with `error`); a running task must also be interrupted to wake it."""
        self.cancelled = True
        self.cancel_cause = cause
        self.cancel_error = error

    def run(self) -> None:
        """The producer's task: read the upstream into the log, then append the one terminal entry."""
        self.started = True
        began = time.monotonic()
        stream_log = self.log
        append, pause = stream_log.append, self._pause
        terminal: Terminal
        stream: UpstreamStream | None = None
        try:
            if not self.cancelled:
                stream = self._stream = self._upstream.open(self.request)
                stream_log.mark_opened()
                turn = 0
                for text in stream:
                    append(text)
                    turn += 1
                    if turn == PIECES_PER_TURN:
                        turn = 0
                        pause()
                    if self.cancelled:
                        break
            terminal = self._outcome(stream)
        except StreamCancelled:
            terminal = self._outcome(stream)
        except RelayError as err:
            terminal = Failed.from_error(err, self._chunks())
        except Exception:
            log_bug(log, f"stream {self.stream_id} failed")
            terminal = Failed(ErrorCode.INTERNAL, INTERNAL_FAILURE, self._chunks())
        finally:
            self.finished = True  # the outcome is decided: a stop from now on must not interrupt the close
            if stream is None or not stream.complete:
                self.close()  # cut short: the upstream stops before anyone is told
        stream_log.end(terminal)
        self.close()  # read to its end: its last bytes return the connection to the pool (upstream.py)
        self._log_end(terminal, time.monotonic() - began, stream.finish_reason if stream else None)

    def close(self) -> None:
        """Drop the upstream connection; safe to call more than once."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def _chunks(self) -> int:
        return self.log.last_seq + 1

    def _outcome(self, stream: UpstreamStream | None) -> Terminal:
        usage = stream.usage if stream else None
        if self.cancelled:
            if self.cancel_error is not None:
                return Failed.from_error(self.cancel_error, self._chunks())
            return Done("cancelled", self._chunks(), usage)
        if stream is None or stream.finish_reason is None:
            return Failed(ErrorCode.UPSTREAM_ERROR, "The model's stream ended before it finished.", self._chunks())
        return Done(stream.finish_reason, self._chunks(), usage)

    def _log_end(self, terminal: Terminal, duration: float, upstream_finish: str | None) -> None:
        """One structured line per stream, without prompt or reply text.

        finish_reason is what the client got (`none` for an error); cause says why the stream ended:
        completed, stopped, client_gone, server_shutdown, or the error code.
        """
        if isinstance(terminal, Done):
            finish = terminal.finish_reason
            cause = self.cancel_cause if finish == "cancelled" else "completed"
        else:
            finish = "none"
            cause = self.cancel_cause if self.cancelled else terminal.code.value
        log.info(
            "stream_end stream_id=%s model=%s chunks=%d finish_reason=%s cause=%s upstream_finish=%s duration_ms=%d",
            self.stream_id, self.request.model, terminal.chunks, finish, cause or "stopped",
            upstream_finish or "none", duration * 1000,
        )
