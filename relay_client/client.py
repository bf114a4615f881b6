"""RelayClient: start, read, stop and resume replies over either transport with the same few calls."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, Literal

from relay_client.http_transport import HttpTransport
from relay_client.messages import Message
from relay_client.reply import Reply
from relay_client.socketio_transport import DEFAULT_EVENT, SocketIOStream, SocketIOTransport

Transport = Literal["socketio", "http"]


class RelayClient:
    """A client of one relay server.

    `transport="socketio"` keeps one Socket.IO connection (websocket) for all its replies, opened on first use;
    `"http"` makes one `POST /message/stream` per reply. `token` is the server's access token, if it has
    `AUTH_TOKENS`. `timeout` bounds a silence between two events of a reply. With `auto_resume`, a reply whose
    connection drops continues from its cursor on a new one. For a relay mounted in another app with other
    names (docs/protocol.md, "Mounted in another app"), give the same `url_prefix` (HTTP), and `event` and
    `namespace` (Socket.IO) as its ChatRelay.
    """

    def __init__(self, url: str = "http://127.0.0.1:8000", *, token: str | None = None,
                 transport: Transport = "socketio", timeout: float = 120.0, connect_timeout: float = 10.0,
                 auto_resume: bool = True, url_prefix: str = "", event: str = DEFAULT_EVENT,
                 namespace: str = "/") -> None:
        if transport not in ("socketio", "http"):
            raise ValueError(f"transport must be 'socketio' or 'http', not {transport!r}")
        self.url = url
        self.transport = transport
        args = (url, token, timeout, connect_timeout, auto_resume)
        self._sio = SocketIOTransport(*args, event=event, namespace=namespace) if transport == "socketio" else None
        self._http = HttpTransport(*args, url_prefix=url_prefix) if transport == "http" else None

    def stream(self, prompt: str | None = None, *, messages: Sequence[Message] | None = None,
               model: str | None = None, temperature: float | None = None, max_tokens: int | None = None,
               stream_id: str | None = None, tools: list[dict[str, Any]] | None = None,
               tool_choice: str | dict[str, Any] | None = None, parallel_tool_calls: bool | None = None,
               response_format: dict[str, Any] | None = None, stop: str | list[str] | None = None,
               seed: int | None = None, top_p: float | None = None, presence_penalty: float | None = None,
               frequency_penalty: float | None = None, reasoning_effort: str | None = None,
               max_completion_tokens: int | None = None) -> Reply:
        """Start a reply (to `prompt`, or to the conversation `messages`) and return it to iterate.

        `messages` take the protocol's shapes (docs/protocol.md, "The request"): content a string or a list of
        text and image parts, an `assistant` message with `tool_calls`, a `tool` message with `tool_call_id`.
        The other options are sent only when given, and the server passes them on to the model as OpenAI's Chat
        Completions API defines them. Raises the protocol's error as a RelayError subclass when the server
        refuses the request; an error after the reply has started is raised while iterating it.
        """
        given = {"prompt": prompt, "messages": messages, "model": model, "temperature": temperature,
                 "max_tokens": max_tokens, "stream_id": stream_id, "tools": tools, "tool_choice": tool_choice,
                 "parallel_tool_calls": parallel_tool_calls, "response_format": response_format, "stop": stop,
                 "seed": seed, "top_p": top_p, "presence_penalty": presence_penalty,
                 "frequency_penalty": frequency_penalty, "reasoning_effort": reasoning_effort,
                 "max_completion_tokens": max_completion_tokens}
        request = {key: value for key, value in given.items() if value is not None}
        if self._sio is not None:
            ack, inbox = self._sio.open("", request)
            return Reply(SocketIOStream(self._sio, ack["stream_id"], ack.get("resume_token"), inbox))
        assert self._http is not None
        return Reply(self._http.start(request))

    def complete(self, prompt: str | None = None, **options: Any) -> str:
        """The whole reply's text, once it has ended."""
        with self.stream(prompt, **options) as reply:
            return reply.read()

    def resume(self, stream_id: str, resume_token: str, after_seq: int = -1) -> Reply:
        """Read a reply again from just after the cursor `after_seq`, from any connection (-1: from the start)."""
        if self._sio is not None:
            request = {"stream_id": stream_id, "after_seq": after_seq, "resume_token": resume_token}
            _, inbox = self._sio.open("_resume", request)
            return Reply(SocketIOStream(self._sio, stream_id, resume_token, inbox), cursor=after_seq)
        assert self._http is not None
        return Reply(self._http.resume(stream_id, resume_token, after_seq), cursor=after_seq)

    def close(self) -> None:
        """Close the connection; replies still being read end with RelayConnectionError."""
        if self._sio is not None:
            self._sio.close()
        if self._http is not None:
            self._http.close()

    def __enter__(self) -> RelayClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
