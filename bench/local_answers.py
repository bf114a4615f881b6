"""What the local model answers to 20 fixed simple questions, before and after the few-shot frame.

    .venv/bin/python -m bench.local_answers      # about 3 minutes on 2 cores; needs `make local`

Starts the local model as `make run` does (app/serving/local_model.py), once with llama-cpp-python's
`gemma` chat format (what `make run` used before the frame) and once with the `few-shot-qa` frame
(app/serving/qa_frame.py, the default now). Each question goes through the relay's own upstream client,
as one streamed request with temperature 0 (the same reply every run) and the local default of
max_tokens=200. The replies replace the part of docs/local-model.md between its two markers.

A reply counts as an answer when, with any echo of the question taken out, its first line holds one of the
expected words and is not itself a question. That is a rough rule, so the doc shows every reply to read.
"""

from __future__ import annotations

import argparse
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from app.serving import local_model, qa_frame
from chat_relay.config import Settings
from chat_relay.streams.request_validation import ChatRequest
from chat_relay.streams.upstream import Upstream

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "local-model.md"
BEGIN, END = "<!-- local_answers:begin -->", "<!-- local_answers:end -->"
BEFORE, AFTER = "gemma", qa_frame.NAME

# (question, words any one of which an answer holds)
PROMPTS: list[tuple[str, list[str]]] = [
    ("What is the capital of France?", ["Paris"]),
    ("Name three colors.", ["red", "blue", "green", "yellow"]),
    ("How many legs does a dog have?", ["four", "4"]),
    ("What is 2 + 2?", ["4", "four"]),
    ("What color is the sky on a clear day?", ["blue"]),
    ("Who wrote Romeo and Juliet?", ["Shakespeare"]),
    ("What is the largest planet in our solar system?", ["Jupiter"]),
    ("What do bees make?", ["honey"]),
    ("How many days are in a week?", ["seven", "7"]),
    ("What is the opposite of hot?", ["cold"]),
    ("At what temperature does water boil, in degrees Celsius?", ["100"]),
    ("Name a fruit that is yellow.", ["banana", "lemon"]),
    ("What language is spoken in Spain?", ["Spanish"]),
    ("What is the capital of Japan?", ["Tokyo"]),
    ("How many continents are there?", ["seven", "7"]),
    ("Which animal says moo?", ["cow"]),
    ("What is the freezing point of water in Fahrenheit?", ["32"]),
    ("Say hello.", ["hello", "hi"]),
    ("How do you say thank you in French?", ["merci"]),
    ("What is the chemical symbol for gold?", ["Au"]),
]


@dataclass
class Reply:
    text: str
    finish_reason: str | None
    seconds: float


def answers(question: str, reply: str, words: list[str]) -> bool:
    """The rough rule in the module's docstring."""
    lines = [line.strip() for line in reply.replace(question, "").splitlines() if line.strip()]
    first = lines[0] if lines else ""
    return not first.endswith("?") and any(re.search(rf"\b{re.escape(w)}\b", first, re.IGNORECASE) for w in words)


def ask_all(chat_format: str) -> list[Reply]:
    """Serve the local model with `chat_format` and ask every question, one after the other."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(_env_file=None, local_model_port=port, local_model_chat_format=chat_format)  # type: ignore[call-arg]
    server = local_model.start(settings, say=print)
    try:
        upstream = Upstream(Settings(_env_file=None, openai_base_url=server.base_url,  # type: ignore[call-arg]
                                     openai_model=local_model.ALIAS, upstream_read_timeout=120))
        replies = []
        for number, (question, _) in enumerate(PROMPTS):
            began = time.monotonic()
            request = ChatRequest(stream_id=f"q{number}", model=local_model.ALIAS, temperature=0,
                                  max_tokens=local_model.DEFAULT_MAX_TOKENS,
                                  messages=[{"role": "user", "content": question}])
            stream = upstream.open(request)
            text, finish = "", None
            try:
                for delta in stream:
                    text += delta.text
                    finish = delta.finish_reason or finish
            finally:
                stream.close()
            replies.append(Reply(text, finish, time.monotonic() - began))
            print(f"[{chat_format}] {question!r}: {text[:60]!r}", flush=True)
        return replies
    finally:
        server.stop()


def _cell(text: str, limit: int = 160) -> str:
    """A reply in one table cell: newlines shown as ⏎, long ones cut, Markdown's pipe escaped."""
    shown = text.strip().replace("\n", " ⏎ ")
    shown = shown if len(shown) <= limit else shown[:limit].rstrip() + " …"
    return "`" + shown.replace("`", "'").replace("|", "\\|") + "`" if shown else "(empty)"


def report(before: list[Reply], after: list[Reply]) -> str:
    rows = []
    counts = {"before": 0, "after": 0, "stopped_before": 0, "stopped_after": 0}
    for (question, words), old, new in zip(PROMPTS, before, after, strict=True):
        old_ok, new_ok = answers(question, old.text, words), answers(question, new.text, words)
        counts["before"] += old_ok
        counts["after"] += new_ok
        counts["stopped_before"] += old.finish_reason == "stop"
        counts["stopped_after"] += new.finish_reason == "stop"
        rows.append(f"| {question} | {_cell(old.text)} {'✓' if old_ok else '✗'} | "
                    f"{_cell(new.text)} {'✓' if new_ok else '✗'} |")
    seconds_before = sum(r.seconds for r in before) / len(before)
    seconds_after = sum(r.seconds for r in after) / len(after)
    return "\n".join([
        BEGIN,
        f"Answers by the rule above: **{counts['before']} of {len(PROMPTS)} before, {counts['after']} of "
        f"{len(PROMPTS)} after**. Replies that ended by themselves (`finish_reason: \"stop\"`): "
        f"{counts['stopped_before']} before, {counts['stopped_after']} after; the others ran to max_tokens=200. "
        f"Average time per reply on this run: {seconds_before:.1f} s before, {seconds_after:.1f} s after.",
        "",
        f"| question | before (`{BEFORE}` chat format) | after (`{AFTER}` frame) |",
        "|---|---|---|",
        *rows,
        END,
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--doc", type=Path, default=DOC, help="the Markdown file whose marked part is replaced")
    args = parser.parse_args()
    table = report(ask_all(BEFORE), ask_all(AFTER))
    doc = args.doc.read_text()
    head, _, rest = doc.partition(BEGIN)
    _, found, tail = rest.partition(END)
    if not found:
        raise SystemExit(f"{args.doc} has no {BEGIN} ... {END} markers to replace")
    args.doc.write_text(head + table + tail)
    print(f"wrote {args.doc}")


if __name__ == "__main__":
    main()
