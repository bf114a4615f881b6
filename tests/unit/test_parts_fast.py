"""Typed pieces without a server (issue 17): the raw parser against the openai client's typed
`ChatCompletionChunk` for every kind, `<think>` tags cut anywhere, coalescing into parts, resume from any seq,
and the terminal's tool calls through the Redis encoding."""

from __future__ import annotations

import itertools
import json
import threading
from typing import Any

import pytest
from openai._streaming import SSEDecoder
from openai.types.chat import ChatCompletionChunk

from chat_relay.streams.events import Chunk, Done
from chat_relay.streams.parts import Piece, merged
from chat_relay.streams.redis_store import decode_terminal, encode_terminal
from chat_relay.streams.stream_buffer import StreamBuffer
from chat_relay.streams.think_tags import ThinkTags
from chat_relay.streams.upstream_sse import ChunkParser
from tests.fake_upstream import script_reply

BASE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def sse(deltas: list[dict], finish: str = "stop", usage: dict | None = None) -> bytes:
    """An upstream body: one event per delta, the finish, the usage, [DONE]."""
    events = [{**BASE, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                    "finish_reason": None}]}]
    events += [{**BASE, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]} for delta in deltas]
    events.append({**BASE, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    if usage is not None:
        events.append({**BASE, "choices": [], "usage": usage})
    return b"".join(b"data: " + json.dumps(event).encode() + b"\n\n" for event in events) + b"data: [DONE]\n\n"


def raw(body: bytes, reads: int = 1, tags: bool = False) -> tuple[list[Piece], ChunkParser]:
    """The relay's parser, the body fed in `reads` slices."""
    parser = ChunkParser(reasoning_tags=tags)
    size = max(1, -(-len(body) // reads))
    pieces = [piece for start in range(0, len(body), size) for piece in parser.feed(body[start:start + size])]
    return pieces + parser.end(), parser


def typed(body: bytes) -> tuple[list[Piece], str | None, dict | None, list | None]:
    """The same body through the openai client's own SSE decoder and typed chunks, read field by field."""
    pieces: list[Piece] = []
    finish = usage = None
    calls: dict[int, dict[str, str]] = {}
    for sent in SSEDecoder().iter_bytes(iter([body])):
        if sent.data.startswith("[DONE]"):
            break
        chunk = ChatCompletionChunk.model_validate(sent.json())
        if chunk.usage is not None:
            usage = chunk.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"})
            details, prompt = chunk.usage.completion_tokens_details, chunk.usage.prompt_tokens_details
            if details is not None and details.reasoning_tokens is not None:
                usage["reasoning_tokens"] = details.reasoning_tokens
            if prompt is not None and prompt.cached_tokens is not None:
                usage["cached_tokens"] = prompt.cached_tokens
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        delta, finish = choice.delta, choice.finish_reason or finish
        extra = delta.model_extra or {}
        reasoning = extra.get("reasoning_content") or extra.get("reasoning")
        if reasoning:
            pieces.append({"type": "reasoning", "text": reasoning})
        if delta.content:
            pieces.append(delta.content)
        if delta.refusal:
            pieces.append({"type": "refusal", "text": delta.refusal})
        for call in delta.tool_calls or []:
            known = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
            piece: dict[str, Any] = {"type": "tool_call", "index": call.index}
            name = call.function.name if call.function else None
            arguments = (call.function.arguments if call.function else None) or ""
            if call.id and not known["id"]:
                known["id"] = piece["id"] = call.id
            if name and not known["name"]:
                known["name"] = piece["name"] = name
            known["arguments"] += arguments
            if arguments or len(piece) > 2:
                pieces.append({**piece, "arguments": arguments})
    whole = [{"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
             for _, c in sorted(calls.items())] or None
    return pieces, finish, usage, whole


TOOLS = [("tool", 0, "call_a", "get_weather", ""), ("tool", 0, None, None, '{"ci'),
         ("tool", 1, "call_b", "get_time", '{"tz"'), ("tool", 0, None, None, 'ty": "Oslo"}'),
         ("tool", 1, None, None, ': "CET"}')]
SCRIPTS: dict[str, tuple[list[dict], str]] = {
    "text": (script_reply(("text", "Hel"), ("text", "lo ñ😀\n")), "stop"),
    "reasoning": (script_reply(("reasoning", "Let me"), ("reasoning", " think."), ("text", "Yes.")), "stop"),
    "reasoning_content": (script_reply(("reasoning_content", "Hmm"), ("text", "No.")), "stop"),
    # servers that send both names with the same words: one piece, from reasoning_content
    "both names": (script_reply(("delta", {"reasoning_content": "Dup", "reasoning": "Dup"}),
                                ("delta", {"reasoning_content": "", "reasoning": "only"}), ("text", "x")), "stop"),
    "refusal": (script_reply(("refusal", "I can't"), ("refusal", " help with that.")), "stop"),
    "parallel tool calls": (script_reply(("reasoning", "Two tools."), *TOOLS), "tool_calls"),
    # a delta with all kinds at once comes out reasoning, text, refusal, tool calls
    "one delta, every kind": (script_reply(("delta", {
        "tool_calls": [{"index": 0, "id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        "refusal": "r", "content": "t", "reasoning": "think"})), "tool_calls"),
    # repeated id and name, an empty fragment: only what is new is a piece
    "repeats": (script_reply(("tool", 0, "c", "f", ""), ("tool", 0, "c", "f", "{"), ("tool", 0, "c", "f", ""),
                             ("tool", 0, None, None, "}")), "tool_calls"),
    "interleaved": (script_reply(("text", "a"), ("reasoning", "b"), ("text", "c"), ("tool", 0, "i", "n", "x"),
                                 ("text", "d")), "stop"),
}
USAGE = {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16,
         "completion_tokens_details": {"reasoning_tokens": 5, "audio_tokens": None},
         "prompt_tokens_details": {"cached_tokens": 4}}


@pytest.mark.parametrize("name", list(SCRIPTS))
@pytest.mark.parametrize("reads", [1, 7, 10_000])
def test_same_pieces_as_the_typed_chunks(name: str, reads: int) -> None:
    deltas, finish = SCRIPTS[name]
    body = sse(deltas, finish, USAGE)
    pieces, parser = raw(body, reads)
    assert (pieces, parser.finish_reason, parser.usage, parser.tool_calls) == typed(body)


def test_the_kinds_read_as_specified() -> None:
    """What the parity above compares, written out once: a reader of the protocol can check it by eye."""
    pieces, parser = raw(sse(*SCRIPTS["parallel tool calls"], USAGE))
    assert pieces == [
        {"type": "reasoning", "text": "Two tools."},
        {"type": "tool_call", "index": 0, "id": "call_a", "name": "get_weather", "arguments": ""},
        {"type": "tool_call", "index": 0, "arguments": '{"ci'},
        {"type": "tool_call", "index": 1, "id": "call_b", "name": "get_time", "arguments": '{"tz"'},
        {"type": "tool_call", "index": 0, "arguments": 'ty": "Oslo"}'},
        {"type": "tool_call", "index": 1, "arguments": ': "CET"}'}]
    assert parser.tool_calls == [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "CET"}'}}]
    assert parser.usage == {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16,
                            "reasoning_tokens": 5, "cached_tokens": 4}
    assert raw(sse(*SCRIPTS["both names"]))[0][:2] == [{"type": "reasoning", "text": "Dup"},
                                                        {"type": "reasoning", "text": "only"}]
    assert raw(sse(*SCRIPTS["one delta, every kind"]))[0] == [
        {"type": "reasoning", "text": "think"}, "t", {"type": "refusal", "text": "r"},
        {"type": "tool_call", "index": 0, "id": "c", "name": "f", "arguments": "{}"}]


def test_text_only_pieces_stay_plain_strings() -> None:
    """The text-only path: pieces are str, as before there were kinds, and usage has no detail keys."""
    pieces, parser = raw(sse(*SCRIPTS["text"], {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}))
    assert pieces == ["Hel", "lo ñ😀\n"] and parser.tool_calls is None
    assert parser.usage == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


def test_a_tool_call_without_index_is_its_place_in_the_array() -> None:
    """Servers that send each call whole in one delta, without `index` (Gemini's OpenAI-compatible API)."""
    pieces, parser = raw(sse([{"tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"id": "b", "type": "function", "function": {"name": "g", "arguments": "[]"}}]}], "tool_calls"))
    assert [piece["index"] for piece in pieces] == [0, 1]  # type: ignore[index]
    assert [call["id"] for call in parser.tool_calls or []] == ["a", "b"]


@pytest.mark.parametrize("delta", [{"reasoning": 5}, {"refusal": ["x"]}, {"tool_calls": {"index": 0}},
                                   {"tool_calls": [{"index": "0"}]}, {"tool_calls": [{"index": True}]},
                                   {"tool_calls": ["call"]}, {"tool_calls": [{"index": 0, "function": "f"}]},
                                   {"tool_calls": [{"index": 0, "function": {"arguments": 1}}]}])
def test_malformed_kinds_are_upstream_errors(delta: dict) -> None:
    from chat_relay.errors import ErrorCode, RelayError
    with pytest.raises(RelayError) as caught:
        raw(sse([delta]))
    assert caught.value.code is ErrorCode.UPSTREAM_ERROR


# REASONING_TAGS: a leading <think> block, its tags cut anywhere.

def split_tags(content: str, cuts: tuple[int, ...]) -> tuple[str, str, list[Piece]]:
    """Feed `content` cut at `cuts` (as deltas), with the tags on: the reasoning and text that came out."""
    tags, pieces = ThinkTags(), []
    bounds = [0, *cuts, len(content)]
    for start, end in itertools.pairwise(bounds):
        if end > start:
            pieces += tags.feed(content[start:end])
    pieces += tags.flush()
    reasoning = "".join(p["text"] for p in pieces if isinstance(p, dict))
    text = "".join(p for p in pieces if isinstance(p, str))
    return reasoning, text, pieces


@pytest.mark.parametrize(("content", "reasoning", "text"), [
    ("<think>Plan: add.</think>\n\n4", "Plan: add.", "\n\n4"),
    ("  \n<think>a<b</think>c", "a<b", "c"),
    ("<think></think>Answer", "", "Answer"),
    ("Answer <think>not reasoning</think>", "", "Answer <think>not reasoning</think>"),
    ("<thinking>no</thinking>", "", "<thinking>no</thinking>"),
    ("<think>never closed", "never closed", ""),
    ("<thi", "", "<thi"),
    ("  ", "", "  "),
])
def test_think_tags_cut_anywhere(content: str, reasoning: str, text: str) -> None:
    for count in (1, 2):
        for cuts in itertools.combinations(range(1, len(content)), count):
            got_reasoning, got_text, pieces = split_tags(content, cuts)
            assert (got_reasoning, got_text) == (reasoning, text), cuts
            assert "" not in pieces and {"type": "reasoning", "text": ""} not in pieces


def test_think_tags_only_when_on() -> None:
    body = sse(script_reply(("text", "<th"), ("text", "ink>hm</th"), ("text", "ink>ok")))
    assert raw(body, tags=False)[0] == ["<th", "ink>hm</th", "ink>ok"]
    assert raw(body, tags=True)[0] == [{"type": "reasoning", "text": "hm"}, "ok"]
    # reasoning in its own field and the tags in the content, in one stream
    both = sse(script_reply(("reasoning", "r"), ("text", "<think>t</think>x")))
    assert raw(both, tags=True)[0] == [{"type": "reasoning", "text": "r"}, {"type": "reasoning", "text": "t"}, "x"]


# Coalescing and the cursor.

PIECES: list[Piece] = [
    {"type": "reasoning", "text": "R1"}, {"type": "reasoning", "text": "R2"},
    {"type": "tool_call", "index": 0, "id": "a", "name": "f", "arguments": ""},
    {"type": "tool_call", "index": 0, "arguments": "{\"x\""},
    {"type": "tool_call", "index": 1, "id": "b", "name": "g", "arguments": "{}"},
    {"type": "tool_call", "index": 0, "arguments": ": 1}"},
    "T1", "T2", {"type": "refusal", "text": "no"}, "T3",
]


def test_adjacent_pieces_of_a_kind_merge() -> None:
    text, parts = merged(PIECES)
    assert text == "T1T2T3"
    assert parts == [
        {"type": "reasoning", "text": "R1R2"},
        {"type": "tool_call", "index": 0, "id": "a", "name": "f", "arguments": "{\"x\""},
        {"type": "tool_call", "index": 1, "id": "b", "name": "g", "arguments": "{}"},
        {"type": "tool_call", "index": 0, "arguments": ": 1}"},
        {"type": "text", "text": "T1T2"}, {"type": "refusal", "text": "no"}, {"type": "text", "text": "T3"}]
    assert PIECES[0] == {"type": "reasoning", "text": "R1"}  # the pieces themselves are untouched


def buffer_of(pieces: list[Piece]) -> StreamBuffer:
    stream_log = StreamBuffer("s", threading.Event)
    for piece in pieces:
        stream_log.append(piece)
    stream_log.end(Done("stop", len(pieces), None))
    return stream_log


def replay(chunks: list[Chunk]) -> tuple[str, list[dict]]:
    """What a client rebuilds from chunks: the text, and the parts merged again across chunk bounds."""
    pieces: list[Piece] = []
    for chunk in chunks:
        for part in chunk.parts if chunk.parts is not None else [{"type": "text", "text": chunk.text}]:
            pieces.append(part["text"] if part["type"] == "text" else part)
    return merged(pieces)


def test_resume_from_any_seq_continues_exactly() -> None:
    whole = merged(PIECES)
    for cursor in range(-1, len(PIECES) - 1):
        # a reader that took the pieces up to `cursor` one at a time, as they came, then left
        growing = StreamBuffer("s", threading.Event)
        first: list[Chunk] = []
        for seq, piece in enumerate(PIECES[:cursor + 1]):
            growing.append(piece)
            first.append(growing.after(seq - 1))  # type: ignore[arg-type]
        for piece in PIECES[cursor + 1:]:
            growing.append(piece)
        rest = growing.after(cursor)  # its resume: all that is waiting after its cursor, as one chunk
        assert rest is not None and rest.seq == len(PIECES) - 1
        text, parts = merged(PIECES[cursor + 1:])
        assert (rest.text, rest.parts) == (text, None if all(p["type"] == "text" for p in parts) else parts)
        assert replay([*first, rest]) == whole, cursor


def test_text_only_chunks_have_no_parts() -> None:
    stream_log = buffer_of(["a", "b"])
    assert stream_log.after(-1) == Chunk("ab", 1) and stream_log.after(-1).parts is None
    typed_log = buffer_of(["a", {"type": "reasoning", "text": "r"}, "b"])
    assert typed_log.after(1) == Chunk("b", 2)  # a chunk of text only, even in a stream with other kinds
    assert typed_log.text_bytes() == 2


def test_done_tool_calls_survive_the_shared_encoding() -> None:
    calls = [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    done = Done("tool_calls", 3, {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3,
                                  "reasoning_tokens": 1}, calls)
    assert decode_terminal(encode_terminal(done)) == done
    assert done.payload("s")["tool_calls"] == calls
    assert "tool_calls" not in Done("stop", 1, None).payload("s")
    # a terminal written by an instance from before tool calls still reads
    assert decode_terminal(b'{"done": ["stop", 2, null]}') == Done("stop", 2, None)


def test_back_pressure_counts_every_kinds_bytes() -> None:
    """A reader that has taken every piece, of every kind, is level with the producer (backlog.py): the sizes the
    producer adds per piece and a reader adds per merged chunk agree, and a resume starts where its cursor is."""
    from chat_relay.streams.backlog import Backlog
    from chat_relay.streams.parts import piece_bytes

    backlog = Backlog(10_000, 5.0, threading.Event)
    stream_log = StreamBuffer("s", threading.Event, backlog)
    for piece in PIECES:
        stream_log.append(piece)
    assert stream_log.size == sum(map(piece_bytes, PIECES)) > len("T1T2T3")
    stream_log.end(Done("stop", len(PIECES), None))
    for cursor in (-1, 1, 4, 7):
        reader = stream_log.follow(cursor)
        assert reader.position == sum(map(piece_bytes, PIECES[:cursor + 1]))
        events = list(reader)
        assert isinstance(events[0], Chunk) and events[0].parts and isinstance(events[1], Done)  # all, then done
        assert reader.position == stream_log.size, cursor
        assert backlog.room() == stream_log.size + 10_000
