"""The raw upstream parser (chat_relay/streams/upstream_sse.py): unit checks, and the same results as the openai
client's
typed stream for everything the fake upstream can send."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from chat_relay.config import Settings
from chat_relay.errors import ErrorCode, RelayError
from chat_relay.streams.request_validation import ChatRequest
from chat_relay.streams.upstream import Upstream, _relay_error
from chat_relay.streams.upstream_sse import ChunkParser
from tests.conftest import API_KEY
from tests.fake_upstream import FakeUpstream, controls


def event(content: str | None = None, finish: str | None = None, **extra: Any) -> bytes:
    delta = {} if content is None else {"content": content}
    body = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


STREAM = (event("", None) + event("Hel") + event("lo\n") + b": keep-alive\n\n" + event(None, "stop")
          + b'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}\n\n'
          + b"data: [DONE]\n\n")


def parse(*feeds: bytes) -> tuple[list[str], ChunkParser]:
    """Feed the reads one by one, then end the body, as chat_relay/streams/upstream.py does."""
    parser = ChunkParser()
    pieces = [piece for data in feeds for piece in parser.feed(data)]
    return pieces + parser.end(), parser


def test_pieces_finish_and_usage() -> None:
    pieces, parser = parse(STREAM)
    assert pieces == ["Hel", "lo\n"]  # the empty first delta is no piece
    assert parser.finish_reason == "stop" and parser.done
    assert parser.usage == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_every_split_of_the_bytes_gives_the_same_result() -> None:
    for cut in range(len(STREAM) + 1):
        pieces, parser = parse(STREAM[:cut], STREAM[cut:])
        assert pieces == ["Hel", "lo\n"] and parser.finish_reason == "stop" and parser.done, cut


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"])
def test_other_line_ends(newline: bytes) -> None:
    stream = STREAM.replace(b"\n", newline)
    for cut in range(len(stream) + 1):  # a \r\n split across reads is one line end, not two
        pieces, parser = parse(stream[:cut], stream[cut:])
        assert pieces == ["Hel", "lo\n"] and parser.done, cut


def test_data_over_several_lines_and_other_fields() -> None:
    pieces, _ = parse(b'event: message\nid: 7\ndata: {"choices": [{"delta":\ndata:  {"content": "x"}}]}\n\n')
    assert pieces == ["x"]


def test_nothing_is_read_after_done() -> None:
    pieces, parser = parse(event("a") + b"data: [DONE]\n\n" + event("after"), event("later"))
    assert pieces == ["a"] and parser.done


@pytest.mark.parametrize("data", [b"data: {not json\n\n", b"data: [1, 2]\n\n", b'data: {"choices": "x"}\n\n',
                                  b'data: {"choices": [{"delta": {"content": 5}}]}\n\n',
                                  b'data: {"choices": [], "usage": {"prompt_tokens": "3"}}\n\n'])
def test_malformed_events_are_upstream_errors(data: bytes) -> None:
    with pytest.raises(RelayError) as caught:
        parse(event("ok") + data)
    assert caught.value.code is ErrorCode.UPSTREAM_ERROR and "malformed" in caught.value.message


def test_an_error_event_is_an_upstream_error_without_its_words() -> None:
    with pytest.raises(RelayError) as caught:
        parse(b'data: {"error": {"message": "SECRET upstream detail", "type": "server_error"}}\n\n')
    assert caught.value.code is ErrorCode.UPSTREAM_ERROR and "SECRET" not in caught.value.message


# Parity with the typed client: for each kind of stream the fake can send, both readers end the same way.

VARIANTS = {
    "plain": controls(chunks=4),
    "text": controls(text=["a\n", "", "naïve ", "😀"]),
    "length": controls(chunks=2, finish_reason="length"),
    "no-usage": controls(chunks=2, usage=False),
    "no-finish": controls(chunks=2, fault="no_finish"),
    "no-done": controls(chunks=3, fault="no_done"),
    "heartbeats": controls(chunks=3, gate="open-at-once", hold_after=1, heartbeat=0.05),
    "crlf": controls(chunks=3, newline="\r\n"),
    "cr": controls(chunks=3, newline="\r"),
    "comments": controls(chunks=3, comments=True),
    "split-data": controls(chunks=3, split_data=True),
    "burst": controls(chunks=50, burst=True),
    "malformed": controls(fault="malformed"),
    "error-event": controls(fault="error_event"),
    "drop": controls(fault="drop", drop_after=2),
    "status-500": controls(fault="500"),
    "status-401": controls(fault="401"),
}


def typed(fake: FakeUpstream, prompt: str) -> tuple:
    """What the openai client's typed stream gives, in our codes (as the relay mapped them before)."""
    client = openai.OpenAI(api_key=API_KEY, base_url=fake.url, max_retries=0)
    text, finish, usage = [], None, None
    try:
        stream = client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": prompt}],
                                                stream=True, stream_options={"include_usage": True})
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"})
            if chunk.choices:
                text.append(chunk.choices[0].delta.content or "")
                finish = chunk.choices[0].finish_reason or finish
    except openai.APIError as err:
        return ("error", _relay_error(err).code)
    except ValueError:  # malformed JSON
        return ("error", ErrorCode.UPSTREAM_ERROR)
    return ("ok", "".join(text), finish, usage)


def raw(fake: FakeUpstream, prompt: str) -> tuple:
    settings = Settings(openai_api_key=API_KEY, openai_base_url=fake.url, openai_model="fake-model",
                        upstream_max_retries=0, _env_file=None)  # type: ignore[call-arg]
    try:
        stream = Upstream(settings).open(ChatRequest("p", "fake-model", [{"role": "user", "content": prompt}]))
        try:
            text = "".join(stream)
        finally:
            stream.close()
    except RelayError as err:
        return ("error", err.code)
    return ("ok", text, stream.finish_reason, stream.usage)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_same_results_as_the_typed_client(fake_upstream: FakeUpstream, name: str) -> None:
    fake_upstream.open_gate("open-at-once")
    prompt = VARIANTS[name]
    assert raw(fake_upstream, prompt) == typed(fake_upstream, prompt)


def test_closing_drops_the_upstream_at_once(fake_upstream: FakeUpstream) -> None:
    settings = Settings(openai_api_key=API_KEY, openai_base_url=fake_upstream.url, openai_model="fake-model",
                        _env_file=None)  # type: ignore[call-arg]
    aborted = fake_upstream.aborted
    stream = Upstream(settings).open(ChatRequest("c", "fake-model", [
        {"role": "user", "content": controls(chunks=1000, delay=0.02)}]))
    assert next(iter(stream)) == "w0 "
    stream.close()
    assert fake_upstream.wait_for(lambda f: f.aborted > aborted, timeout=5)
