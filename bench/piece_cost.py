"""The relay's own cost per piece, by kind, in one process: the upstream's bytes parsed
(chat_relay/streams/upstream_sse.py), the piece appended to a stream's buffer, and a reader's chunk taken
(stream_buffer.py), with no server and no socket. Text-only must cost what it did before typed parts
(docs/benchmarks.md, "Typed parts"); `--code DIR` measures another checkout's chat_relay (main's, say) the same
way, for a before and after in one run.

    .venv/bin/python -m bench.piece_cost [--code /path/to/other/checkout] [--rounds 100]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import threading
import time
from collections.abc import Callable

PIECES = 2000
READ = 4096  # bytes per read of the upstream's body, about what a socket gives at once
BASE = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "fake-model"}
KINDS: dict[str, Callable[[int], dict]] = {
    "text": lambda i: {"content": f"w{i} "},
    "text, with `reasoning_content: null` beside it": lambda i: {"content": f"w{i} ", "reasoning_content": None},
    "reasoning": lambda i: {"reasoning_content": f"w{i} "},
    "tool-call arguments": lambda i: {"tool_calls": [{"index": 0, "function": {"arguments": f"w{i} "}}]},
}


def body(delta: Callable[[int], dict]) -> list[bytes]:
    data = b"".join(b"data: " + json.dumps({**BASE, "choices": [{"index": 0, "delta": delta(i),
                                                                    "finish_reason": None}]}).encode() + b"\n\n"
                    for i in range(PIECES))
    return [data[start:start + READ] for start in range(0, len(data), READ)]


def cost(reads: list[bytes], rounds: int) -> float:
    """µs per piece, the best of `rounds` (the least disturbed by whatever else runs)."""
    parser_type = importlib.import_module("chat_relay.streams.upstream_sse").ChunkParser
    buffer_type = importlib.import_module("chat_relay.streams.stream_buffer").StreamBuffer
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        parser, buffer, cursor = parser_type(), buffer_type("s", threading.Event), -1
        for data in reads:
            for piece in parser.feed(data):
                buffer.append(piece)
                cursor = buffer.after(cursor).seq
        best = min(best, time.perf_counter() - began)
    return best / PIECES * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", help="a checkout whose chat_relay to measure instead of this one's")
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args(argv)
    if args.code:
        sys.path.insert(0, args.code)
    from chat_relay.streams.upstream_sse import ChunkParser

    typed = "reasoning_tags" in ChunkParser.__init__.__code__.co_varnames  # main's before parts reads text only
    print(f"# {importlib.import_module('chat_relay').__file__}: µs per piece (parse + append + take), best of "
          f"{args.rounds}")
    for name, delta in KINDS.items():
        if typed or name.startswith("text"):
            print(f"| {name} | {cost(body(delta), args.rounds):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
