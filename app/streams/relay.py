"""One stream's life, whatever the transport: open the upstream, number the chunks, end with one terminal event.

Transports iterate `Relay.events()` and only turn each event into their own wire format.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass

from ..bugs import log_bug
from ..errors import ErrorCode, RelayError
from .schemas import ChatRequest
from .upstream import Upstream, UpstreamStream

log = logging.getLogger(__name__)

INTERNAL_FAILURE = "The server failed while relaying the reply."


class StreamCancelled(BaseException):
    """Raised inside a stream's task, at its blocking point, to stop it (a BaseException so no retry swallows it)."""


@dataclass(frozen=True)
class Chunk:
    text: str
    seq: int


@dataclass(frozen=True)
class Done:
    finish_reason: str
    chunks: int
    usage: dict[str, int] | None

    def payload(self, stream_id: str) -> dict[str, object]:
        """The terminal event's body, the same on every transport."""
        return {"stream_id": stream_id, "finish_reason": self.finish_reason, "chunks": self.chunks, "usage": self.usage}


@dataclass(frozen=True)
class Failed:
    code: ErrorCode
    message: str
    chunks: int
    retry_after: float | None = None  # the upstream's Retry-After, for rate_limited

    @classmethod
    def from_error(cls, err: RelayError, chunks: int) -> Failed:
        return cls(err.code, err.message, chunks, err.retry_after)

    def payload(self, stream_id: str) -> dict[str, object]:
        """The error event's body, the same on every transport."""
        return {"stream_id": stream_id, **RelayError(self.code, self.message, retry_after=self.retry_after).to_dict()}


RelayEvent = Chunk | Done | Failed


class Relay:
    """Relays one completion; `events()` yields chunks, then exactly one Done or Failed, always."""

    def __init__(self, request: ChatRequest, upstream: Upstream, pause: Callable[[], None] = lambda: None) -> None:
        self.request = request
        self._upstream = upstream
        self._pause = pause  # lets other greenlets (the websocket writer) run between chunks
        self._stream: UpstreamStream | None = None
        self.cancelled = False
        self.cancel_cause = ""  # why it was cancelled, for the log: stopped, client_gone, server_shutdown
        self.cancel_error: RelayError | None = None  # end with this error instead of `done` cancelled
        self.started = False
        self.suspended = False  # parked at a yield: the transport, not the relay, is running
        self.finished = False
        self._began: float | None = None

    @property
    def stream_id(self) -> str:
        return self.request.stream_id

    def open(self) -> None:
        """Start the upstream request now, so a caller can turn early failures into a status code."""
        self.started = True
        self._began = self._began or time.monotonic()
        if self._stream is None and not self.cancelled:
            self._stream = self._upstream.open(self.request)

    def cancel(self, cause: str = "stopped", error: RelayError | None = None) -> None:
        """Ask the stream to end as cancelled (or with `error`); a running task must also be interrupted to wake it."""
        self.cancelled = True
        self.cancel_cause = cause
        self.cancel_error = error

    def close(self) -> None:
        """Drop the upstream connection; safe to call more than once."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def events(self) -> Generator[RelayEvent, None, None]:
        """Yield Chunk events as the model writes, then one terminal event; the upstream is closed before it."""
        self.started = True
        began = self._began = self._began or time.monotonic()
        seq, finish_reason, usage = 0, None, None
        terminal: Done | Failed
        try:
            self.open()
            for delta in self._stream or ():
                if delta.text:
                    self.suspended = True
                    yield Chunk(delta.text, seq)
                    self.suspended = False
                    seq += 1
                    self._pause()
                finish_reason = delta.finish_reason or finish_reason
                usage = delta.usage or usage
                if self.cancelled:
                    break
            if self.cancelled:
                terminal = self._cancelled(seq, usage)
            elif finish_reason is None:
                terminal = Failed(ErrorCode.UPSTREAM_ERROR, "The model's stream ended before it finished.", seq)
            else:
                terminal = Done(finish_reason, seq, usage)
        except StreamCancelled:
            terminal = self._cancelled(seq, usage)
        except GeneratorExit:  # the HTTP client went away: nobody is left to tell
            self.cancel_cause = self.cancel_cause or "client_gone"
            self._log_end(Done("cancelled", seq, usage), time.monotonic() - began, finish_reason)
            raise
        except RelayError as err:
            terminal = Failed.from_error(err, seq)
        except Exception:
            log_bug(log, f"stream {self.stream_id} failed")
            terminal = Failed(ErrorCode.INTERNAL, INTERNAL_FAILURE, seq)
        finally:
            self.finished = True  # the outcome is decided: a stop from now on must not interrupt the close
            self.close()
        self._log_end(terminal, time.monotonic() - began, finish_reason)
        self.suspended = True
        yield terminal

    def end_early(self, err: RelayError) -> None:
        """For a stream whose events will never be read (HTTP answers with a status): close it, log its end."""
        self.finished = True
        self.close()
        self._log_end(Failed.from_error(err, 0), time.monotonic() - (self._began or time.monotonic()), None)

    def _cancelled(self, seq: int, usage: dict[str, int] | None) -> Done | Failed:
        if self.cancel_error is not None:
            return Failed.from_error(self.cancel_error, seq)
        return Done("cancelled", seq, usage)

    def _log_end(self, terminal: Done | Failed, duration: float, upstream_finish: str | None) -> None:
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
