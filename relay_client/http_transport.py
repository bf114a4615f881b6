"""Streams over HTTP with requests: `POST /message/stream` read as NDJSON while it arrives.

A connection that breaks mid-reply is resumed with `GET /message/stream/<id>?after_seq=<cursor>`, retried
with a backoff as the web page does (docs/protocol.md, "Resuming a stream"). Never by POSTing again: that
would start a second generation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import requests

from relay_client.errors import RelayConnectionError, RelayError, error_from
from relay_client.reply import Chunk, Done

NDJSON = "application/x-ndjson"
RESUME_DELAYS = (0.25, 0.5, 1.0, 2.0, 4.0)  # seconds before each attempt, within the default RESUME_GRACE (20 s)


class HttpTransport:
    """A requests session with the access token, and the two calls that open a response."""

    def __init__(self, url: str, token: str | None, timeout: float, connect_timeout: float,
                 auto_resume: bool, url_prefix: str = "") -> None:
        self.url = url.rstrip("/") + url_prefix  # the relay's routes, under ChatRelay's url_prefix if it has one
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.auto_resume = auto_resume
        self.session = requests.Session()
        self.session.headers["Accept"] = NDJSON
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A response whose status is 200, or the protocol's error for its status and JSON body."""
        try:
            response = self.session.request(method, self.url + path, stream=True,
                                            timeout=(self.connect_timeout, self.timeout), **kwargs)
        except requests.RequestException as exc:
            raise RelayConnectionError(f"could not reach the relay: {type(exc).__name__}") from None
        if response.status_code != 200:
            with response:
                raise _status_error(response)
        return response

    def start(self, request: dict[str, Any]) -> HttpStream:
        response = self.request("POST", "/message/stream", json=request)
        return HttpStream(self, response.headers["X-Stream-Id"], response.headers.get("X-Resume-Token"), response)

    def resume(self, stream_id: str, resume_token: str, after_seq: int) -> HttpStream:
        return HttpStream(self, stream_id, resume_token, self.reread(stream_id, resume_token, after_seq))

    def reread(self, stream_id: str, resume_token: str, after_seq: int) -> requests.Response:
        """The stream's NDJSON from just after `after_seq`: a GET, never a second POST."""
        return self.request("GET", f"/message/stream/{stream_id}", params={"after_seq": after_seq},
                            headers={"X-Resume-Token": resume_token})

    def close(self) -> None:
        self.session.close()


def _status_error(response: requests.Response) -> RelayError:
    retry = response.headers.get("Retry-After")
    try:
        payload = response.json()["error"]
    except (ValueError, KeyError, TypeError):  # not the relay's answer: a proxy's page, say
        return RelayConnectionError(f"HTTP {response.status_code} without the relay's error body",
                                    status=response.status_code)
    return error_from(payload, status=response.status_code,
                      retry_after=int(retry) if retry and retry.isdigit() else None)


def _lines(response: requests.Response) -> Iterator[bytes]:
    """Each complete line as soon as its bytes arrive (iter_lines would wait for a full buffer)."""
    buffer = b""
    for data in response.iter_content(chunk_size=None):
        buffer += data
        *lines, buffer = buffer.split(b"\n")
        yield from lines
    if buffer:
        yield buffer


class HttpStream:
    """One stream's NDJSON lines, as chunks and its end; resumes from the cursor when the connection breaks."""

    def __init__(self, transport: HttpTransport, stream_id: str, resume_token: str | None,
                 response: requests.Response) -> None:
        self.transport = transport
        self.stream_id = stream_id
        self.resume_token = resume_token
        self._response = response
        self._lines = _lines(response)

    def next_event(self, cursor: int) -> Chunk | Done:
        while True:
            try:
                line = next(self._lines, None)
            except requests.RequestException as exc:  # the connection broke, or went silent too long
                if isinstance(exc, requests.Timeout) or not self._can_resume():
                    raise RelayConnectionError(f"the connection broke mid-reply: {type(exc).__name__}") from None
                line = None
            if line is None:  # the body ended without its terminal line: the connection was cut
                if not self._can_resume():
                    raise RelayConnectionError("the reply ended without its terminal line")
                self._resume(cursor)
                continue
            if not line.strip():
                continue
            event = json.loads(line)
            if event["type"] == "chunk":
                return Chunk.from_wire(event["text"], event["seq"], event.get("parts"))
            if event["type"] == "done":
                return Done.from_payload(event)
            raise error_from(event)

    def _can_resume(self) -> bool:
        return self.transport.auto_resume and bool(self.resume_token)

    def _resume(self, cursor: int) -> None:
        self._response.close()
        assert self.resume_token is not None
        for delay in RESUME_DELAYS:
            time.sleep(delay)  # a backoff between attempts, not a wait for a condition
            try:
                self._response = self.transport.reread(self.stream_id, self.resume_token, cursor)
            except RelayConnectionError:
                continue
            self._lines = _lines(self._response)
            return
        raise RelayConnectionError("the connection broke mid-reply and the resume failed")

    def stop(self) -> None:
        headers = {"X-Resume-Token": self.resume_token} if self.resume_token else {}
        try:
            self.transport.request("POST", f"/message/stream/{self.stream_id}/stop", headers=headers).close()
        except RelayError as error:
            if error.code != "invalid_request":  # not running any more: the stop crossed the reply's end
                raise

    def close(self) -> None:
        self._response.close()
