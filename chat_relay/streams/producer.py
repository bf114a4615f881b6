"""One stream's producer: open the upstream, append its pieces to the stream's buffer, end with one terminal entry.

With server-side tools (chat_relay/tools/), one stream may be several requests upstream: after a reply that
calls the server's tools, the tool loop runs them (their parts go into the same buffer) and says what to ask next.

The producer runs in its own green task and never waits for a reader (chat_relay/streams/stream_buffer.py); each
transport reads the log and turns what it finds into its own wire format.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..errors import ErrorCode, RelayError
from ..observability.bug_reports import log_bug
from ..observability.logs import log_event
from ..observability.metrics import Metrics, StreamEnd
from .backlog import Backlog
from .events import Done, Failed, Terminal
from .parts import text_of
from .request_validation import ChatRequest
from .stream_buffer import StreamBuffer
from .tool_steps import ToolSteps, summed_usage
from .upstream import Upstream, UpstreamStream

log = logging.getLogger(__name__)

INTERNAL_FAILURE = "The server failed while relaying the reply."

# Pieces the producer appends before it lets other tasks run. Reading never blocks while the upstream has
# sent more than was read, so without this a fast upstream would hold the CPU until its stream ended. Readers
# that wake in between find every piece appended so far, and send them as one chunk.
PIECES_PER_TURN = 16

STALLED = "The reply was ended: its reader took nothing for STALLED_READER_TIMEOUT seconds."
_NO_LIMIT = 1 << 62  # a size no stream reaches


# Told of the stream's end, in its producer's task, once its terminal entry is in the buffer: (producer, terminal,
# cause). The team's hooks use it (chat_relay/hooks/team_hooks.py); it must not block.
StreamEnding = Callable[["Producer", Terminal, str], None]


class StreamCancelled(BaseException):
    """Raised inside a producer's task, where it waits, to stop it (a BaseException so no retry swallows it)."""


class Producer:
    """Produces one completion into its buffer; `run()` always ends the buffer with exactly one Done or Failed."""

    def __init__(self, request: ChatRequest, upstream: Upstream, stream_log: StreamBuffer,
                 pause: Callable[[], None] = lambda: None, transport: str = "",
                 metrics: Metrics | None = None, read_elsewhere: Callable[[], bool] | None = None,
                 tools: ToolSteps | None = None, on_end: StreamEnding | None = None) -> None:
        """`read_elsewhere`: whether readers on other instances follow the stream (then it is not paused for want
        of readers here; chat_relay/streams/backlog.py). `tools`: the stream's tool loop, if the app has tools.
        `on_end`: told of its end (StreamEnding)."""
        self.request = request
        self.buffer = stream_log
        self.transport = transport  # the one its request came by: socketio or http (labels its metrics)
        self.created = time.monotonic()  # the client's time to first chunk counts from here
        self._upstream = upstream
        self._pause = pause  # lets other tasks (readers, websocket writers, other streams) run
        self._metrics = metrics
        self._read_elsewhere = read_elsewhere
        self._on_end = on_end
        self.first_piece_at: float | None = None  # monotonic time of the upstream's first piece
        self._stream: UpstreamStream | None = None
        self._tools = tools
        self._earlier_usage: dict[str, int] | None = None  # the usage of the stream's requests before the last
        self.cancelled = False
        self.cancel_cause = ""  # why it was cancelled, for the log: stopped, client_gone, server_shutdown,
        # stalled_reader
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
        stream_log = self.buffer
        append, pause = stream_log.append, self._pause
        backlog = stream_log.backlog
        room = backlog.room() if backlog is not None else _NO_LIMIT  # read past it only once the readers catch up
        terminal: Terminal
        stream: UpstreamStream | None = None
        try:
            request: ChatRequest | None = self.request
            while request is not None and not self.cancelled:  # one pass per request upstream
                opened = self._upstream.open(request, stream.index_end if stream else 0)
                if stream is not None:  # after a tool round: the previous reply was read to its end
                    self._earlier_usage = summed_usage(self._earlier_usage, stream.usage)
                stream = self._stream = opened
                stream_log.mark_opened()
                reply_from = stream_log.last_seq
                pieces = iter(stream)
                if self.first_piece_at is None:
                    first = next(pieces, None)  # the stream's first piece on its own, so that only it is timed
                    if first is not None:
                        self.first_piece_at = time.monotonic()
                        append(first)
                        if stream_log.size > room:
                            room = self._wait_for_readers(backlog)
                if not self.cancelled:
                    turn = 1
                    for piece in pieces:  # every other piece: nothing here but relaying it
                        append(piece)
                        if stream_log.size > room:  # a reader is behind by MAX_BUFFERED_BYTES: stop reading
                            room = self._wait_for_readers(backlog)
                        turn += 1
                        if turn == PIECES_PER_TURN:
                            turn = 0
                            pause()
                        if self.cancelled:
                            break
                request = self._next_request(request, stream, reply_from)
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
        cause = self._report_end(terminal, began, self.first_piece_at, stream)
        if self._on_end is not None:
            try:
                self._on_end(self, terminal, cause)
            except Exception:  # the stream has ended either way: its clients have their terminal event
                log_bug(log, f"stream {self.stream_id}: telling of its end failed")

    def _next_request(self, request: ChatRequest, stream: UpstreamStream, reply_from: int) -> ChatRequest | None:
        """After a reply that called tools: the tool loop runs the server's, and says what to ask next (None: the
        stream ends with this reply)."""
        calls = stream.tool_calls
        if self._tools is None or self.cancelled or not calls or not stream.complete \
                or stream.finish_reason not in ("tool_calls", "stop"):  # "length": the arguments may be cut
            return None
        self.close()  # read to its end: the connection goes back to the pool while the tools run
        reply_text = text_of(self.buffer.pieces_after(reply_from))
        return self._tools.next_request(request, reply_text, calls, self.buffer.append)

    def _wait_for_readers(self, backlog: Backlog | None) -> int:
        """Pause the upstream read until the slowest reader is back within MAX_BUFFERED_BYTES; the room then. A
        reader stuck for STALLED_READER_TIMEOUT ends the stream (`stalled_reader`): the loop sees the cancel."""
        if backlog is None:
            return _NO_LIMIT
        room = backlog.wait_for_room(self.buffer.size, lambda: self.cancelled, self._read_elsewhere)
        if room is None:  # its stream_end line says so (cause=stalled_reader)
            self.cancel("stalled_reader", RelayError(ErrorCode.STALLED_READER, STALLED))
            return _NO_LIMIT
        return room

    def close(self) -> None:
        """Drop the upstream connection; safe to call more than once."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def _chunks(self) -> int:
        return self.buffer.last_seq + 1

    def _outcome(self, stream: UpstreamStream | None) -> Terminal:
        usage = summed_usage(self._earlier_usage, stream.usage if stream else None)
        if self.cancelled:
            if self.cancel_error is not None:
                return Failed.from_error(self.cancel_error, self._chunks())
            return Done("cancelled", self._chunks(), usage)
        if stream is None or stream.finish_reason is None:
            return Failed(ErrorCode.UPSTREAM_ERROR, "The model's stream ended before it finished.", self._chunks())
        finish = (self._tools and self._tools.finish_reason) or stream.finish_reason
        return Done(finish, self._chunks(), usage, stream.tool_calls)

    def _report_end(self, terminal: Terminal, began: float, first_piece: float | None,
                    stream: UpstreamStream | None) -> str:
        """The stream's one `stream_end` log line, without prompt or reply text, and its metrics: all that is
        counted of a stream is counted here, once (chat_relay/observability/metrics.py).

        finish_reason is what the client got (`none` for an error); cause says why the stream ended:
        completed, stopped, client_gone, server_shutdown, or the error code; returns the cause.
        """
        duration = time.monotonic() - began
        if isinstance(terminal, Done):
            finish = terminal.finish_reason
            cause = self.cancel_cause if finish == "cancelled" else "completed"
        else:
            finish = "none"
            cause = self.cancel_cause if self.cancelled else terminal.code.value
        cause = cause or "stopped"
        log_event(log, "stream_end", {
            "stream_id": self.stream_id, "model": self.request.model, "chunks": terminal.chunks,
            "finish_reason": finish, "cause": cause, "upstream_finish": (stream and stream.finish_reason) or "none",
            "duration_ms": int(duration * 1000),
        })
        if self._metrics is not None:
            upstream_error = None  # the upstream's failure, not a cancel's error nor a bug of ours
            if isinstance(terminal, Failed) and not self.cancelled and terminal.code is not ErrorCode.INTERNAL:
                upstream_error = terminal.code
            self._metrics.stream_ended(StreamEnd(
                self.transport, self.request.model, cause, duration, terminal.chunks, self.buffer.text_bytes(),
                usage=terminal.usage if isinstance(terminal, Done) else None,
                upstream_first_chunk=None if first_piece is None else first_piece - began,
                upstream_error=upstream_error))
        return cause
