"""What the local model answers to 20 fixed everyday questions, now and in a recorded baseline run.

    .venv/bin/python -m bench.local_answers      # about 2 minutes on 2 cores; needs `make local`

Starts the local model as `make run` does (app/serving/local_model.py, the `few-shot-qa` frame of
app/serving/qa_frame.py) and asks each question through the relay's own upstream client, as one streamed
request with the local defaults `make run` gives the relay (temperature 0, so the same reply every run, and
max_tokens=200). The replies go to bench/results/local_answers.json, and a table of them beside those of
bench/local_answers_baseline.json (the run before the frame's last change) replaces the part of
docs/local-model.md between its two markers. `--baseline` records this run as the new baseline instead.

A reply counts as an answer when, with any echo of the question taken out, its first line holds one of the
expected words and is not itself a question. That is a rough rule, so the doc shows every reply to read. A
reply is also counted when it starts with a space, or shows a label of the frame (`Question:`, `Answer:`).
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from app.serving import local_model, qa_frame
from chat_relay.config import Settings
from chat_relay.streams.parts import text_of
from chat_relay.streams.request_validation import ChatRequest
from chat_relay.streams.upstream import Upstream

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "local-model.md"
BEGIN, END = "<!-- local_answers:begin -->", "<!-- local_answers:end -->"
RESULTS = ROOT / "bench" / "results" / "local_answers.json"
BASELINE = ROOT / "bench" / "local_answers_baseline.json"  # committed: the "before" of docs/local-model.md
LABELS = (qa_frame.QUESTION, qa_frame.ANSWER)

# (question, words any one of which an answer holds)
PROMPTS: list[tuple[str, list[str]]] = [
    ("What is the capital of France?", ["Paris"]),
    ("Name three colors.", ["red", "blue", "green", "yellow"]),
    ("How many legs does a dog have?", ["four", "4"]),
    ("What is 12 times 7?", ["84"]),
    ("What color is the sky on a clear day?", ["blue"]),
    ("Who wrote Romeo and Juliet?", ["Shakespeare"]),
    ("What is the largest planet in our solar system?", ["Jupiter"]),
    ("What do bees make?", ["honey"]),
    ("How many days are in a week?", ["seven", "7"]),
    ("What is the opposite of hot?", ["cold"]),
    ("At what temperature does water boil, in degrees Celsius?", ["100"]),
    ("Name a fruit that is yellow.", ["banana", "lemon"]),
    ("What language is spoken in Spain?", ["Spanish"]),
    ("Continue this sequence: 1, 2, 3, 4,", ["5"]),
    ("How many continents are there?", ["seven", "7"]),
    ("Which animal says moo?", ["cow"]),
    ("What is the freezing point of water in Fahrenheit?", ["32"]),
    ("How many hours are in a day?", ["24", "twenty-four"]),
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


def ask_all() -> list[Reply]:
    """Serve the local model as `make run` does and ask every question, one after the other."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(_env_file=None, local_model_port=port)  # type: ignore[call-arg]
    server = local_model.start(settings, say=print)
    try:
        upstream = Upstream(Settings(_env_file=None, openai_base_url=server.base_url,  # type: ignore[call-arg]
                                     openai_model=local_model.ALIAS, upstream_read_timeout=120))
        replies = []
        for number, (question, _) in enumerate(PROMPTS):
            began = time.monotonic()
            request = ChatRequest(stream_id=f"q{number}", model=local_model.ALIAS,
                                  temperature=local_model.DEFAULT_TEMPERATURE,
                                  max_tokens=local_model.DEFAULT_MAX_TOKENS,
                                  messages=[{"role": "user", "content": question}])
            stream = upstream.open(request)
            try:
                text = text_of(list(stream))  # the text pieces (of all kinds); the finish reason comes after them
            finally:
                stream.close()
            replies.append(Reply(text, stream.finish_reason, time.monotonic() - began))
            print(f"{question!r}: {text[:60]!r}", flush=True)
        return replies
    finally:
        server.stop()


def leaks(text: str) -> bool:
    """A frame's label in a reply: the stop sequences should have ended it there."""
    return any(label in text for label in LABELS)


def save(replies: list[Reply], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([{"question": q, **asdict(r)} for (q, _), r in zip(PROMPTS, replies, strict=True)],
                               indent=1, ensure_ascii=False) + "\n")


def load(path: Path) -> list[Reply]:
    """A recorded run, in PROMPTS' order (a question it lacks shows as an empty reply)."""
    by_question = {row["question"]: row for row in json.loads(path.read_text())} if path.exists() else {}
    empty = {"text": "", "finish_reason": None, "seconds": 0.0}
    return [Reply(**{k: v for k, v in by_question.get(q, empty).items() if k != "question"}) for q, _ in PROMPTS]


def _cell(text: str, limit: int = 160) -> str:
    """A reply in one table cell: newlines shown as ⏎, long ones cut, Markdown's pipe escaped."""
    shown = text.strip().replace("\n", " ⏎ ")
    shown = shown if len(shown) <= limit else shown[:limit].rstrip() + " …"
    return "`" + shown.replace("`", "'").replace("|", "\\|") + "`" if shown else "(empty)"


def summary(replies: list[Reply]) -> dict[str, float]:
    return {
        "answers": sum(answers(q, r.text, words) for (q, words), r in zip(PROMPTS, replies, strict=True)),
        "stopped": sum(r.finish_reason == "stop" for r in replies),
        "leading_space": sum(r.text[:1].isspace() for r in replies),
        "labels": sum(leaks(r.text) for r in replies),
        "seconds": sum(r.seconds for r in replies) / len(replies),
    }


def report(before: list[Reply], after: list[Reply]) -> str:
    rows = []
    for (question, words), old, new in zip(PROMPTS, before, after, strict=True):
        rows.append(f"| {question} | {_cell(old.text)} {'✓' if answers(question, old.text, words) else '✗'} | "
                    f"{_cell(new.text)} {'✓' if answers(question, new.text, words) else '✗'} |")
    b, a = summary(before), summary(after)
    n = len(PROMPTS)
    return "\n".join([
        BEGIN,
        f"| of {n} replies | before | after |",
        "|---|---|---|",
        f"| answers, by the rule above | {b['answers']} | {a['answers']} |",
        f"| start with a space | {b['leading_space']} | {a['leading_space']} |",
        f"| show a label of the frame (`Question:`, `Answer:`) | {b['labels']} | {a['labels']} |",
        f"| ended by themselves (`finish_reason: \"stop\"`) | {b['stopped']} | {a['stopped']} |",
        f"| average seconds per reply, on that run | {b['seconds']:.1f} | {a['seconds']:.1f} |",
        "",
        "| question | before | after |",
        "|---|---|---|",
        *rows,
        END,
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--doc", type=Path, default=DOC, help="the Markdown file whose marked part is replaced")
    parser.add_argument("--baseline", action="store_true", help="record this run as the baseline (the 'before')")
    args = parser.parse_args()
    replies = ask_all()
    save(replies, BASELINE if args.baseline else RESULTS)
    if args.baseline:
        print(f"wrote {BASELINE}")
        return
    table = report(load(BASELINE), replies)
    doc = args.doc.read_text()
    head, _, rest = doc.partition(BEGIN)
    _, found, tail = rest.partition(END)
    if not found:
        raise SystemExit(f"{args.doc} has no {BEGIN} ... {END} markers to replace")
    args.doc.write_text(head + table + tail)
    print(f"wrote {RESULTS} and {args.doc}")


if __name__ == "__main__":
    main()
