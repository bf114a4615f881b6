"""Property-based fuzzing of requests over Socket.IO and HTTP against the real gunicorn+gevent server.

Over 10,000 generated payloads in all, in every request shape (content parts, images, tool calls, tools and
the options): wrong types, missing and unknown fields, huge and deeply nested values, lone surrogates, invalid
UTF-8, non-object JSON, invalid JSON, and raw Socket.IO event packets whose data is no call of an event. Each
gets an `invalid_request` or a stream that ends with exactly one terminal event. Afterwards the server runs no
streams, its worker has not grown in memory, threads or open files beyond a tolerance, and its metrics count
what the clients saw, with no client text in a label.

Derandomized, so a run is reproducible; the fake answers valid requests with a short reply.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.clients import DONE, ERROR, SioProbe
from tests.conftest import LiveServer, start_server, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream
from tests.metrics_scrape import check_bounded, relay_samples, scrape_text
from tests.request_samples import image_part, image_url, tool
from tests.waits import until

SOCKETIO_EXAMPLES = 5200
HTTP_EXAMPLES = 4500
RAW_EXAMPLES = 800  # raw Socket.IO event packets: data of any shape, names of any type
FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=list(HealthCheck))

# -- payloads ---------------------------------------------------------------------------------------------

lone_surrogates = st.integers(0xD800, 0xDFFF).map(chr)
odd_text = st.lists(st.characters() | lone_surrogates, max_size=40).map("".join)
json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | odd_text
json_value = st.recursive(json_leaf, lambda kids: st.lists(kids, max_size=4)
                          | st.dictionaries(odd_text, kids, max_size=4), max_leaves=12)
FUZZ_IMAGE_BYTES = 100_000  # the fuzz server's MAX_IMAGE_BYTES: an image over it without megabytes per example
# The request's shapes of docs/protocol.md (issue 17): content parts, images, tool calls, tools and the options.
SMALL_PNG = image_url(200)
images = st.sampled_from([
    SMALL_PNG, image_url(200, "gif"), SMALL_PNG.replace("image/png", "image/bmp"), SMALL_PNG[:-3] + "!!!",
    "data:image/png;base64,", "http://127.0.0.1/cat.png", "https://example.com/cat.png", "file:///etc/passwd",
]) | odd_text | json_value
image_parts = st.fixed_dictionaries({"type": st.just("image_url")}, optional={
    "image_url": st.fixed_dictionaries({}, optional={
        "url": images, "detail": st.sampled_from(["auto", "low", "high", "ultra"]) | json_value}) | json_value})
text_parts = st.fixed_dictionaries({"type": st.sampled_from(["text", "video"]) | json_value},
                                   optional={"text": odd_text | json_value})
contents = odd_text | st.lists(text_parts | image_parts, max_size=3) | json_value
names = st.sampled_from(["get_weather", "f", "bad name", ""]) | json_value
calls = st.lists(st.fixed_dictionaries({}, optional={
    "id": st.sampled_from(["call_1", ""]) | json_value, "type": st.just("function") | json_value,
    "function": st.fixed_dictionaries({}, optional={"name": names, "arguments": odd_text | json_value})}),
    max_size=2) | json_value
messages = st.lists(st.fixed_dictionaries({}, optional={
    "role": st.sampled_from(["user", "assistant", "system", "developer", "tool", "wizard", ""]) | json_value,
    "content": contents, "tool_calls": calls, "tool_call_id": st.just("call_1") | json_value}),
    max_size=4) | json_value
schemas = st.dictionaries(odd_text, json_value, max_size=3) | json_value
tools = st.lists(st.fixed_dictionaries({"type": st.just("function") | json_value}, optional={
    "function": st.fixed_dictionaries({"name": names}, optional={
        "description": odd_text | json_value, "parameters": schemas, "strict": st.booleans() | json_value})}),
    max_size=3) | json_value
tool_choices = st.sampled_from(["none", "auto", "required", "always"]) | st.fixed_dictionaries(
    {"type": st.just("function")}, optional={"function": st.fixed_dictionaries({}, optional={"name": names})}) \
    | json_value
response_formats = st.fixed_dictionaries({"type": st.sampled_from(["text", "json_object", "json_schema", "json"])
                                                  | json_value}, optional={
    "json_schema": st.fixed_dictionaries({}, optional={"name": names, "schema": schemas,
                                                       "strict": st.booleans() | json_value})}) | json_value
stream_ids = st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z") | odd_text | json_value
near_valid = st.fixed_dictionaries({}, optional={
    "prompt": odd_text | json_value,
    "messages": messages,
    "model": st.sampled_from(["fake-model", "fake-model-2", "gpt-unknown"]) | json_value,
    "temperature": st.floats() | st.integers(-5, 5) | json_value,
    "max_tokens": st.integers(-10, 10_000) | json_value,
    "stream_id": stream_ids,
    "promt": json_value,
    "tools": tools,
    "tool_choice": tool_choices,
    "parallel_tool_calls": st.booleans() | json_value,
    "response_format": response_formats,
    "stop": odd_text | st.lists(odd_text, max_size=5) | json_value,
    "seed": st.integers() | json_value,
    "top_p": st.floats() | json_value,
    "presence_penalty": st.floats() | json_value,
    "frequency_penalty": st.floats() | json_value,
    "reasoning_effort": st.sampled_from(["low", "high", "huge"]) | json_value,
    "max_completion_tokens": st.integers(-10, 10_000) | json_value,
})
huge = st.sampled_from([
    {"prompt": "x" * 40_000},
    {"prompt": "😀" * 60_000},  # 720 kB on the wire: oversized packets are test_limits.py's
    {"messages": [{"role": "user", "content": "hi"}] * 5_000},
    {"prompt": "x", "stream_id": "s" * 10_000},
    {"prompt": ["x"] * 50_000},
    {"messages": [{"role": "user", "content": [image_part(image_url(FUZZ_IMAGE_BYTES + 1))]}]},
    {"messages": [{"role": "user", "content": [image_part(SMALL_PNG)] * 9}]},  # one image over MAX_IMAGES
    {"prompt": "x", "tools": [tool(f"f{i}") for i in range(65)]},  # one over MAX_TOOLS
    {"prompt": "x", "tools": [tool("f", description="d" * 100_000)]},  # over MAX_TOOLS_BYTES
])


def nested(depth: int) -> object:
    value: object = "deep"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


deep = st.integers(1, 400).map(lambda d: {"prompt": nested(d)}) | st.integers(1, 400).map(nested)
payloads = near_valid | json_value | huge | deep | st.binary(max_size=64)


def raw_bodies() -> st.SearchStrategy[bytes]:
    """HTTP bodies: JSON of any shape, JSON cut short, invalid UTF-8, nesting past the parser's limit, noise."""
    as_json = (near_valid | json_value | huge).map(lambda v: json.dumps(v).encode())
    surrogates = odd_text.map(lambda t: json.dumps({"prompt": t}, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    truncated = st.tuples(near_valid.map(json.dumps), st.integers(0, 200)).map(lambda p: p[0][: p[1]].encode())
    too_deep = st.integers(500, 50_000).map(lambda d: b"[" * d + b"]" * d)
    invalid_utf8 = st.binary(min_size=1, max_size=64).map(lambda b: b'{"prompt": "' + b + b'"}')
    return as_json | surrogates | truncated | too_deep | invalid_utf8 | st.binary(max_size=256)


def raw_event_data() -> st.SearchStrategy[object]:
    """Socket.IO EVENT data a hand-written client could send: any JSON, or a list led by a name of any type.

    Only names the server knows or reserves: an unknown event gets no ack, by Socket.IO's rule. No bare
    number: its digits would run into the ack id before it, which the protocol cannot tell apart.
    """
    names = st.sampled_from(["chatgpt_description", "chatgpt_description_stop", "connect", "disconnect"])
    calls = st.tuples(names | json_value.filter(lambda v: not isinstance(v, str)),
                      st.lists(near_valid | json_value, max_size=3)).map(lambda c: [c[0], *c[1]])
    not_a_call = json_value.filter(lambda v: not (isinstance(v, list) and v and isinstance(v[0], str)))
    return calls | not_a_call.filter(lambda v: isinstance(v, bool) or not isinstance(v, (int, float)))


# -- the server and its worker -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fuzz_server(fake_upstream: FakeUpstream, tmp_path_factory) -> Iterator[LiveServer]:
    env = {**upstream_env(fake_upstream), "MAX_IMAGE_BYTES": str(FUZZ_IMAGE_BYTES)}
    server = start_server("gevent", env, tmp_path_factory.mktemp("fuzz") / "server.log")
    yield server
    stop_server(server)


def worker_pid(server: LiveServer) -> int:
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
    assert len(children) == 1, children  # one gevent worker
    return int(children[0])


def usage(pid: int) -> dict[str, int]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {"rss_kb": int(status["VmRSS"].split()[0]), "threads": int(status["Threads"]),
            "fds": len(list(Path(f"/proc/{pid}/fd").iterdir()))}


# -- the checks ---------------------------------------------------------------------------------------------

def check_socketio(probe: SioProbe, payload: object) -> str:
    """One payload over Socket.IO: `refused` (invalid_request) or `streamed` (to a clean end)."""
    with probe._cond:
        probe.events.clear()
    ack = probe.start(payload)
    if "error" in ack:
        assert ack["error"]["code"] == "invalid_request" and ack["error"]["message"], ack
        probe.wait(lambda p: any(n == ERROR for n, _ in p.events))
        return "refused"
    stream_id = ack["stream_id"]
    probe.wait_terminal(stream_id)
    probe.settle()
    [(name, terminal)] = probe.terminals(stream_id)
    assert name == DONE and terminal["finish_reason"] == "stop", terminal
    return "streamed"


def check_http(session: requests.Session, url: str, body: bytes) -> str:
    """One body over HTTP: `refused` (invalid_request) or `streamed` (to a clean end)."""
    response = session.post(f"{url}/message/stream", data=body, timeout=20,
                            headers={"Content-Type": "application/json", "Accept": "application/x-ndjson"})
    if response.status_code != 200:
        assert response.status_code in (400, 413), (response.status_code, response.text[:300])
        error = response.json()["error"]
        assert error["code"] == "invalid_request" and error["message"]
        return "refused"
    lines = [json.loads(line) for line in response.text.splitlines() if line]
    terminals = [line for line in lines if line["type"] != "chunk"]
    assert terminals == [lines[-1]] and lines[-1]["type"] == "done", lines[-3:]
    return "streamed"


def send_raw(probe: SioProbe, packet: str, attachments: list[bytes] | None = None, timeout: float = 10) -> list:
    """Send one Socket.IO event packet as written, with an ack id, and return the ack's arguments."""
    acked = threading.Event()
    acks: list = []
    client = probe.client
    ack_id = client._generate_ack_id("/", lambda *args: (acks.extend(args), acked.set()))
    if attachments is None:
        client.eio.send(f"2{ack_id}{packet}")  # a Socket.IO EVENT packet with an ack id, sent raw
    else:
        client.eio.send(f"5{len(attachments) or ''}{'-' if attachments else ''}{ack_id}{packet}")  # BINARY_EVENT
        for attachment in attachments:
            client.eio.send(attachment)
    assert acked.wait(timeout), "no ack: the client would wait forever"
    return acks


def check_raw(probe: SioProbe, data: object) -> str:
    with probe._cond:
        probe.events.clear()
    [ack] = send_raw(probe, json.dumps(data))
    if "error" in ack:
        assert ack["error"]["code"] == "invalid_request" and ack["error"]["message"], ack
        return "refused"
    probe.wait_terminal(ack["stream_id"])  # a well-formed call after all
    return "streamed"


# The fuzz runs as two tests, on two servers, side by side in a parallel run (this one's Socket.IO half, and
# tests/live/test_fuzz_http.py's HTTP half): the same examples and the same checks as one long test, in half the time.
PHASES = {"socketio": SOCKETIO_EXAMPLES, "raw": RAW_EXAMPLES, "http": HTTP_EXAMPLES}


def fuzz(server: LiveServer, fake_upstream: FakeUpstream, phases: tuple[str, ...]) -> None:
    """Run these phases' fuzzed requests against `server`; then every request got a coded error or a clean stream,
    the worker holds no more threads, descriptors or memory than before, logged no traceback, and its metrics
    count exactly what the clients saw."""
    probe = SioProbe(server.url)
    session = requests.Session()
    pid = worker_pid(server)
    counts = dict.fromkeys(phases, 0)
    outcomes: Counter[tuple[str, str]] = Counter()  # (socketio, raw or http; refused or streamed): for the metrics

    # A warm-up, so that imports and caches are loaded before the baseline is taken.
    for payload in ({"prompt": "warm"}, {"prompt": 1}, nested(300)):
        outcomes["socketio", check_socketio(probe, payload)] += 1
        outcomes["http", check_http(session, server.url, json.dumps(payload).encode())] += 1
    before = usage(pid)

    @settings(FUZZ, max_examples=SOCKETIO_EXAMPLES)
    @given(payloads)
    def over_socketio(payload: object) -> None:
        counts["socketio"] += 1
        outcomes["socketio", check_socketio(probe, payload)] += 1

    @settings(FUZZ, max_examples=RAW_EXAMPLES)
    @given(raw_event_data())
    def raw_over_socketio(data: object) -> None:
        counts["raw"] += 1
        outcomes["raw", check_raw(probe, data)] += 1

    @settings(FUZZ, max_examples=HTTP_EXAMPLES)
    @given(raw_bodies())
    def over_http(body: bytes) -> None:
        counts["http"] += 1
        outcomes["http", check_http(session, server.url, body)] += 1

    runs = {"socketio": over_socketio, "raw": raw_over_socketio, "http": over_http}
    try:
        for phase in phases:
            runs[phase]()
    finally:
        probe.close()
        session.close()
    # hypothesis may stop a little short of max_examples when it runs out of new examples
    assert sum(counts.values()) >= 0.95 * sum(PHASES[phase] for phase in phases), counts

    assert until(lambda: server.streams() == 0 and fake_upstream.in_flight == 0)
    after = usage(pid)
    assert server.process.poll() is None and worker_pid(server) == pid, "the worker died"
    assert after["threads"] <= before["threads"] + 2, (before, after)
    assert after["fds"] <= before["fds"] + 5, (before, after)
    assert after["rss_kb"] <= before["rss_kb"] + 40_000, (before, after)
    log = server.log()
    assert "Traceback" not in log and "message handler error" not in log and "Worker timeout" not in log
    check_metrics_after_fuzz(server, outcomes)


@pytest.mark.long  # about 60 s alone: a parallel run starts it first, and runs the rest beside it
@pytest.mark.timeout(600)  # a hang guard: 6,000 requests, about 60 s alone, a few minutes beside the suite
def test_fuzzed_socketio_requests_get_a_coded_error_or_a_clean_stream(fuzz_server: LiveServer, fake_upstream) -> None:
    fuzz(fuzz_server, fake_upstream, ("socketio", "raw"))


def check_metrics_after_fuzz(server: LiveServer, outcomes: Counter[tuple[str, str]]) -> None:
    """Whatever the payloads held, the metrics' labels are from their closed sets (a prompt, a stream id or any
    other client text can be in none), and they count exactly what the clients saw. (A raw packet may name the
    stop event, whose refusals are not counted: those bound the Socket.IO refusals from above only.)"""
    samples = relay_samples(scrape_text(server.url))
    check_bounded(samples, ["fake-model", "fake-model-2", "not-on-upstream"])

    def total(name: str, **where: str) -> float:
        return sum(value for (sample, pairs), value in samples.items()
                   if sample == name and set(where.items()) <= pairs)

    assert total("relay_streams_started_total", transport="http") == outcomes["http", "streamed"]
    assert total("relay_streams_started_total", transport="socketio") == (
        outcomes["socketio", "streamed"] + outcomes["raw", "streamed"])
    assert total("relay_streams_ended_total") == total("relay_streams_ended_total", cause="completed") == (
        total("relay_streams_started_total"))
    assert total("relay_refusals_total") == total("relay_refusals_total", code="invalid_request")
    assert total("relay_refusals_total", transport="http") == outcomes["http", "refused"]
    assert outcomes["socketio", "refused"] <= total("relay_refusals_total", transport="socketio") <= (
        outcomes["socketio", "refused"] + outcomes["raw", "refused"])


PROMPT = "prompt-text-4b7e"  # must never reach the server's log
ASK = json.dumps({"prompt": PROMPT})


@pytest.mark.parametrize("packet, attachments", [
    ('["chatgpt_description",{"prompt": "x"', None),  # cut short
    ('["chatgpt_description",{bad json}]', None),
    ('["chatgpt_description",' + "[" * 5000 + "]" * 5000 + "]", None),  # deeper than the JSON parser goes
    ("{}", None),  # valid JSON, but no call of an event
    ("[]", None),
    ("[" + ASK + "]", None),
    ("[5]", None),
    ('"x"', None),
    ("[null]", None),
    ('["chatgpt_description",1,2]', None),  # a known event with the wrong number of arguments
    ('["chatgpt_description",' + ASK + ',{"prompt":"x"}]', None),
    ('["chatgpt_description_stop",{"stream_id":"a"},1]', None),
    ('["chatgpt_description"]', None),
    ('["connect",{}]', None),  # reserved names, sent as events
    ('["disconnect"]', None),
    ('[{"_placeholder":true,"num":0},' + ASK + "]", [b"chatgpt_description"]),  # name as bytes
    ('["chatgpt_description",{"_placeholder":true,"num":7}]', [b"x"]),  # names no attachment
    ("[" + ASK + "]", []),  # a BINARY_EVENT with no attachments
], ids=["cut-short", "bad-json", "too-deep", "object", "empty-list", "object-in-list", "number-name",
        "string", "null-name", "extra-args", "extra-object", "stop-extra-args", "missing-arg",
        "connect-event", "disconnect-event", "binary-name", "binary-bad-placeholder", "binary-no-attachments"])
def test_socketio_packets_that_are_no_event_call_get_an_error_ack(
        live_server: LiveServer, packet: str, attachments: list[bytes] | None) -> None:
    """What a hand-written client could send; python-socketio's own client always sends a list led by the name."""
    probe = SioProbe(live_server.url)
    try:
        acks = send_raw(probe, packet, attachments)
        assert acks[0]["error"]["code"] == "invalid_request" and acks[0]["error"]["message"], acks
        assert probe.start({"prompt": "x", "promt": 1})["error"]["code"] == "invalid_request"  # still connected
    finally:
        probe.close()
    log = live_server.log()
    assert "Traceback" not in log and "message handler error" not in log and PROMPT not in log


def test_socketio_unknown_event_is_ignored_cleanly(live_server: LiveServer) -> None:
    """Socket.IO's rule: an event nobody handles gets no answer; it must not fail loudly either."""
    probe = SioProbe(live_server.url)
    try:
        probe.client.eio.send('2["no_such_event",' + ASK + "]")
        probe.client.emit("no_such_event", {"prompt": PROMPT})
        assert probe.start({"prompt": "x", "promt": 1})["error"]["code"] == "invalid_request"  # still connected
    finally:
        probe.close()
    log = live_server.log()
    assert "Traceback" not in log and "message handler error" not in log and PROMPT not in log
