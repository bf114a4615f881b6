"""Real-HTTP fake of OpenAI's streaming chat API, so the relay is tested end to end without the network."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import select
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.tcp_queues import in_flight

_POLL = 0.02  # longest a wait goes without checking for server shutdown or an opened gate

_ERROR_KINDS = {
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "forbidden"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}
_CONTEXT_MESSAGE = ("This model's maximum context length is 4096 tokens. However, your messages resulted in "
                    "6610 tokens. SECRET-BODY-DETAIL")


def controls(**kw: Any) -> str:
    """Build a user prompt that tells the fake how to behave, e.g. controls(chunks=20, delay=0.02)."""
    return json.dumps({"fake": kw})


def script_reply(*steps: tuple) -> list[dict]:
    """A scripted reply's deltas (controls(deltas=...)), one per step, in any order:
    ("text", s), ("reasoning", s) (as `reasoning`), ("reasoning_content", s), ("refusal", s),
    ("tool", index, id or None, name or None, arguments fragment), or ("delta", {...}) sent as it is."""
    deltas: list[dict] = []
    for kind, *args in steps:
        if kind == "text":
            deltas.append({"content": args[0]})
        elif kind in ("reasoning", "reasoning_content", "refusal"):
            deltas.append({kind: args[0]})
        elif kind == "tool":
            index, call_id, name, arguments = args
            call: dict = {"index": index, "function": {"arguments": arguments}}
            if call_id is not None:
                call.update(id=call_id, type="function")
            if name is not None:
                call["function"]["name"] = name
            deltas.append({"tool_calls": [call]})
        elif kind == "delta":
            deltas.append(args[0])
        else:
            raise ValueError(f"unknown step {kind!r}")
    return deltas


class _ClientGone(Exception):
    """The client closed the connection before the stream was finished."""


class _Stopping(Exception):
    """The fake is shutting down; give up on the current request."""


class _Server(ThreadingHTTPServer):
    # http.server's backlog of 5 drops bursts of new connections; the kernel retries them 1 s later.
    request_queue_size = 1024


class FakeUpstream:
    """Fake OpenAI server on 127.0.0.1 with counters tests can wait on."""

    def __init__(self, api_key: str | None = "test-key", models: tuple[str, ...] = ("fake-model", "fake-model-2")):
        self.api_key = api_key
        self.models = tuple(models)
        self.url = ""
        self.started = 0
        self.completed = 0
        self.aborted = 0
        self.in_flight = 0  # chat requests being answered right now; 0 once every one is closed
        self.active: list[dict] = []  # their bodies
        self.abort_times: list[float] = []  # time.monotonic() when each abort was seen, for latency bounds
        self.written: dict[str, int] = {}  # bytes of reply written to the socket, by the `tag` control
        self.links: dict[str, tuple[int, int]] = {}  # the (fake's, client's) ports of that reply's connection
        self.requests: list[dict] = []
        self.auth_headers: list[str] = []
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._gates: dict[str, threading.Event] = {}
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self, port: int = 0) -> FakeUpstream:
        """Bind 127.0.0.1 (port 0 = any free port) and serve in a daemon thread."""
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(_POLL,), name="fake-upstream", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, release every wait and gate, and cut open connections so no request outlives the fake."""
        self._stopping.set()
        with self._cond:
            conns = list(self._conns)
            self._cond.notify_all()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def in_flight_with(self, text: str) -> int:
        """Requests being answered now whose messages contain `text` (a test's tag)."""
        with self._cond:
            return sum(1 for body in self.active if text in str(body.get("messages")))

    def requests_with(self, text: str) -> list[dict]:
        """Every request body received whose messages contain `text` (a test's tag), as the relay sent it."""
        with self._cond:
            return [body for body in self.requests if text in str(body.get("messages"))]

    def wait_for(self, predicate: Callable[[FakeUpstream], bool], timeout: float = 10) -> bool:
        """Block until predicate(self) holds, so tests never sleep and guess."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def written_for(self, tag: str) -> int:
        """Bytes of the replies to requests with controls(tag=...) that the kernel has taken from the fake so far:
        what the relay has pulled, plus what waits in the two sockets' buffers (see the `sndbuf` control)."""
        with self._cond:
            return self.written.get(tag, 0)

    def pulled_for(self, tag: str) -> int:
        """Bytes of that reply its client has read from its socket: written, less what waits in the kernel."""
        with self._cond:
            written, link = self.written.get(tag, 0), self.links.get(tag)
        return written - (in_flight(*link) if link is not None else 0)

    def open_gate(self, name: str) -> None:
        """Let streams held at gate `name` continue (also opens it in advance)."""
        self._gate(name).set()

    def snapshot(self) -> dict:
        """Counters at one instant, handy for assertions and debugging."""
        with self._cond:
            return {"started": self.started, "completed": self.completed, "aborted": self.aborted,
                    "in_flight": self.in_flight, "requests": len(self.requests)}

    def _gate(self, name: str) -> threading.Event:
        with self._cond:
            return self._gates.setdefault(name, threading.Event())

    def _bump(self, counter: str) -> None:
        with self._cond:
            setattr(self, counter, getattr(self, counter) + 1)
            self._cond.notify_all()

    def _record(self, body: dict, auth: str) -> int:
        with self._cond:
            self.requests.append(body)
            self.active.append(body)
            self.auth_headers.append(auth)
            self._cond.notify_all()
            return next(self._ids)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def fake(self) -> FakeUpstream:
        return self.server.fake  # type: ignore[attr-defined]

    def setup(self) -> None:
        super().setup()
        with self.fake._cond:
            self.fake._conns.add(self.connection)

    def finish(self) -> None:
        with self.fake._cond:
            self.fake._conns.discard(self.connection)
        super().finish()

    def handle(self) -> None:
        # A client resetting an idle keep-alive connection is normal, not a server error.
        with contextlib.suppress(ConnectionError):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send_json(200, {"ok": True})
        elif path not in ("/v1/models", "/models"):
            self._send_error(404, f"Unknown path {path}")
        elif self._authorized():
            self._send_json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.fake.models]})

    def do_POST(self) -> None:
        self.fake._bump("in_flight")
        self._body: object = None
        try:
            self._post()
        finally:
            with self.fake._cond:
                self.fake.in_flight -= 1
                if self._body in self.fake.active:
                    self.fake.active.remove(self._body)
                self.fake._cond.notify_all()

    def _post(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with contextlib.suppress(ValueError):
            self._body = json.loads(raw)
        if self.path.split("?", 1)[0] not in ("/v1/chat/completions", "/chat/completions"):
            return self._send_error(404, f"Unknown path {self.path}")
        try:
            body = json.loads(raw)
            assert isinstance(body, dict)
        except (ValueError, AssertionError):
            return self._send_error(400, "Request body is not a JSON object")
        number = self.fake._record(body, self.headers.get("Authorization", ""))
        if not self._authorized():
            return
        model = body.get("model")
        if model not in self.fake.models:
            return self._send_error(404, f"The model `{model}` does not exist")
        ctl = self._ctl = _controls(body)
        fault = ctl.get("fault")
        if fault in ("401", "403", "404", "429", "500", "503"):
            extra = {"retry-after": "0"} if fault == "429" else {}
            return self._send_error(int(fault), f"fake {fault} SECRET-BODY-DETAIL", extra)
        if fault == "context_length":  # OpenAI's answer to a conversation longer than the model's context
            return self._send_error(400, _CONTEXT_MESSAGE, code="context_length_exceeded")
        try:
            self._stream(body, ctl, f"chatcmpl-fake-{number}")
        except (_ClientGone, BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            if not self.fake._stopping.is_set():
                with self.fake._cond:
                    self.fake.abort_times.append(time.monotonic())
                self.fake._bump("aborted")
        except _Stopping:
            self.close_connection = True

    def _authorized(self) -> bool:
        key = self.fake.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._send_error(401, "Incorrect API key provided")
        return False

    def _stream(self, body: dict, ctl: dict, chunk_id: str) -> None:
        pad = "." * int(ctl.get("pad", 0))  # large pieces without a large prompt: "w0.....  "
        pieces = ctl["text"] if "text" in ctl else [f"w{i}{pad} " for i in range(int(ctl.get("chunks", 5)))]
        # deltas: a scripted reply, each entry one event's `delta` sent as it is (script_reply() builds them);
        # else a tool call or a tool's answer (_tool_turn), or the text pieces.
        deltas: list[dict] = ctl["deltas"] if "deltas" in ctl else _tool_turn(body, pieces)
        if "steps" in ctl:  # a conversation with server-side tools: its reply to the request of each round
            deltas = _step_reply(body, ctl["steps"])
        pieces = deltas
        fault = ctl.get("fault")
        base = {"id": chunk_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": body["model"]}

        def chunk(delta: dict, finish: str | None = None) -> dict:
            return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        # burst: every event in one write, as an upstream does when it has fallen behind (or a proxy buffered).
        self._burst: list[bytes] | None = [] if ctl.get("burst") else None
        if "tag" in ctl:
            with self.fake._cond:
                self.fake.links[str(ctl["tag"])] = (self.connection.getsockname()[1], self.connection.getpeername()[1])
        if "sndbuf" in ctl:  # a small send buffer: what the kernel holds between the fake and the relay stays small
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, int(ctl["sndbuf"]))
        self._wait(float(ctl.get("first_delay", 0)))
        if fault == "stall_headers":
            self._wait(None)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.fake._bump("started")
        self._event(chunk({"role": "assistant", "content": ""}))
        for sent in range(len(deltas) + 1):
            if self._checkpoint(ctl, sent, len(deltas), base):
                self.fake._bump("completed")
                return
            if sent < len(deltas):
                if "lockstep" in ctl and sent:  # piece `sent` waits for the test to open gate "<name>:<sent>"
                    step = self.fake._gate(f"{ctl['lockstep']}:{sent}")
                    self._wait(None, until=step.is_set)
                self._wait(float(ctl.get("delay", 0)))
                self._event(chunk(deltas[sent]))
        if fault != "no_finish":
            calls = ("deltas" not in ctl or "steps" in ctl) and any("tool_calls" in delta for delta in deltas)
            self._event(chunk({}, ctl.get("finish_reason", "tool_calls" if calls else "stop")))
            if ctl.get("usage", True) and (body.get("stream_options") or {}).get("include_usage"):
                prompt = sum(len(m.get("content")) for m in body.get("messages", [])
                             if isinstance(m.get("content"), str))
                p = max(1, prompt // 4)
                usage: dict = {"prompt_tokens": p, "completion_tokens": len(pieces), "total_tokens": p + len(pieces)}
                usage.update(ctl.get("usage_details", {}))  # e.g. completion_tokens_details: {reasoning_tokens: 3}
                self._event({**base, "choices": [], "usage": usage})
        if fault != "no_done":
            self._write_chunk(b"data: [DONE]\n\n")
        if self._burst is not None:
            burst, self._burst = b"".join(self._burst), None
            self._write_chunk(burst)
        self._write_chunk(b"")
        self.fake._bump("completed")

    def _checkpoint(self, ctl: dict, sent: int, total: int, base: dict) -> bool:
        """Apply gates and mid-stream faults once `sent` content chunks are out; True means the stream has ended."""
        if "gate" in ctl and sent == min(int(ctl.get("hold_after", 0)), total):
            gate = self.fake._gate(str(ctl["gate"]))
            beat = ctl.get("heartbeat")  # seconds: send empty deltas while held, as a live model server may
            while not gate.is_set():
                self._wait(float(beat) if beat else None, until=gate.is_set)
                if not gate.is_set():
                    self._event({**base, "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": None}]})
        fault = ctl.get("fault")
        at = {"stall": ctl.get("stall_after", 1), "drop": ctl.get("drop_after", 2),
              "malformed": 1, "error_event": 1, "context_length_event": 0}.get(fault)
        if at is None or sent != min(int(at), total):
            return False
        if fault == "stall":
            self._wait(None)
        elif fault == "malformed":
            self._write_chunk(b"data: {not json\n\n")
        elif fault == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            self.connection.close()
            return True
        elif fault == "error_event":
            self._event({"error": {"message": "fake mid-stream SECRET-BODY-DETAIL", "type": "server_error"}})
            self._write_chunk(b"")
            return True
        elif fault == "context_length_event":  # as the local model reports it, its 200 already sent
            self._event({"error": {"message": _CONTEXT_MESSAGE, "type": "invalid_request_error",
                                   "param": "messages", "code": "context_length_exceeded"}})
            self._write_chunk(b"data: [DONE]\n\n")
            self._write_chunk(b"")
            return True
        return False

    def _wait(self, seconds: float | None, until: Callable[[], bool] = lambda: False) -> None:
        """Wait `seconds` (None = forever) or until `until()`, watching the socket so a hang-up is seen at once."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while not until():
            if self.fake._stopping.is_set():
                raise _Stopping
            remaining = _POLL if deadline is None else min(_POLL, deadline - time.monotonic())
            if remaining <= 0:
                return
            readable, _, _ = select.select([self.connection], [], [], remaining)
            if readable:
                if self._client_gone():
                    raise _Stopping if self.fake._stopping.is_set() else _ClientGone
                self.fake._stopping.wait(remaining)  # unexpected bytes from the client: don't spin on them

    def _client_gone(self) -> bool:
        try:
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (ConnectionError, OSError):
            return True

    def _event(self, payload: dict) -> None:
        """One SSE event. Controls vary its shape within the SSE spec: line ends (`newline`: "\\r\\n" or
        "\\r"), a comment before it (`comments`), and its JSON split over two data lines (`split_data`)."""
        ctl = getattr(self, "_ctl", {})
        data = json.dumps(payload, ensure_ascii=False)
        lines = [f": keep-alive {time.monotonic()}"] if ctl.get("comments") else []
        if ctl.get("split_data") and ", " in data:  # data lines are joined with "\n", which JSON allows here
            head, tail = data.split(", ", 1)
            lines += [f"data: {head},", f"data: {tail}"]
        else:
            lines.append(f"data: {data}")
        end = ctl.get("newline", "\n")
        self._write_chunk((end.join(lines) + end + end).encode())

    def _write_chunk(self, data: bytes) -> None:
        """Write one HTTP/1.1 chunk; empty data is the terminating chunk. While bursting, only gather it."""
        if getattr(self, "_burst", None) is not None and data:
            self._burst.append(data)  # type: ignore[union-attr]
            return
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()
        tag = getattr(self, "_ctl", {}).get("tag")
        if tag is not None:
            with self.fake._cond:
                self.fake.written[tag] = self.fake.written.get(tag, 0) + len(data)
                self.fake._cond.notify_all()

    def _send_error(self, status: int, message: str, headers: dict[str, str] | None = None,
                    code: str | None = None) -> None:
        kind, default_code = _ERROR_KINDS.get(status, ("invalid_request_error", None))
        code = code or default_code
        self._send_json(status, {"error": {"message": message, "type": kind, "param": None, "code": code}}, headers)

    def _send_json(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _controls(body: dict) -> dict:
    """The `fake` dict from the last user message, or {} (all defaults) if it has none."""
    users = [m for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
    content = users[-1].get("content") if users else None
    if isinstance(content, list):  # text and image parts: the controls are in the first text part
        content = next((p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"), None)
    try:
        parsed = json.loads(content) if isinstance(content, str) else None
    except ValueError:
        return {}
    ctl = parsed.get("fake") if isinstance(parsed, dict) else None
    return ctl if isinstance(ctl, dict) else {}


# A model that calls the tool it is told to call, and reads its answer.

def _tool_turn(body: dict, pieces: list[str]) -> list[dict]:
    """The deltas of a model that uses tools: a call of the tool that `tool_choice` demands ("required": the first
    of `tools`), its arguments cut in two; after a `tool` message, the text pieces and then what the tool said;
    else the text pieces."""
    messages = body.get("messages") or []
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    if last.get("role") == "tool":
        return [{"content": p} for p in pieces] + [{"content": f"(tool {last.get('tool_call_id')}: "
                                                               f"{last.get('content')})"}]
    choice, tools = body.get("tool_choice"), body.get("tools") or []
    if tools and (choice == "required" or isinstance(choice, dict)):
        name = choice["function"]["name"] if isinstance(choice, dict) else tools[0]["function"]["name"]
        tool = next(t["function"] for t in tools if t["function"]["name"] == name)
        arguments = json.dumps(_example_arguments(tool.get("parameters") or {}))
        cut = len(arguments) // 2
        call_id = f"call_fake_{len(messages)}"
        return [{"tool_calls": [{"index": 0, "id": call_id, "type": "function",
                                 "function": {"name": name, "arguments": arguments[:cut]}}]},
                {"tool_calls": [{"index": 0, "function": {"arguments": arguments[cut:]}}]}]
    return [{"content": p} for p in pieces]


def _step_reply(body: dict, steps: list[list[dict]]) -> list[dict]:
    """controls(steps=[deltas, ...]): the reply to a conversation's request of round n (the assistant messages
    after its last user message), each a script_reply(); past the last, the last again. A `{"echo_tool": true}`
    delta becomes a text delta saying what the conversation's last `tool` message said."""
    messages = body.get("messages") or []
    last_user = max((i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"), default=-1)
    round_ = sum(1 for m in messages[last_user + 1:] if isinstance(m, dict) and m.get("role") == "assistant")
    tools = [m for m in messages if isinstance(m, dict) and m.get("role") == "tool"]
    said = f"(tool {tools[-1].get('tool_call_id')}: {tools[-1].get('content')})" if tools else "(no tool)"
    return [{"content": said} if delta.get("echo_tool") else delta for delta in steps[min(round_, len(steps) - 1)]]


def _example_arguments(schema: dict) -> dict:
    """Arguments that fit a JSON schema's properties: each one's first `enum` value, or a plain value of its type."""
    plain = {"string": "text", "integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}
    return {name: (prop["enum"][0] if prop.get("enum") else plain.get(prop.get("type")))
            for name, prop in (schema.get("properties") or {}).items()}


def main() -> None:
    """Run the fake in the foreground for manual experiments and benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument("--api-key", default="test-key", help='expected key; "" disables the auth check')
    args = parser.parse_args()
    fake = FakeUpstream(api_key=args.api_key or None).start(args.port)
    print(f"fake upstream listening at {fake.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
