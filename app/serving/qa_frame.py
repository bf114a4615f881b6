"""The few-shot frame that lets the packaged base model answer: the conversation written as a Q&A transcript.

Gemma 3 270M is a pretrained base model: it continues text and does not follow instructions. Shown a short
transcript of questions and brief answers that ends with "Answer:", the likeliest continuation is an answer;
the stop sequences end the reply where the transcript's next question would begin. docs/local-model.md shows
what it does, on 20 fixed prompts, before and after.

Pure text in and out, without llama-cpp-python: app/serving/model_server.py registers it as a chat format.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from chat_relay.config import LOCAL_MODEL_QA_FRAME

NAME = LOCAL_MODEL_QA_FRAME  # the chat format's name, as LOCAL_MODEL_CHAT_FORMAT and the model server know it
PREAMBLE = "The following is a conversation with a helpful assistant. It answers each question briefly and correctly."
# Unlike the questions of bench/local_answers.py: a fact, a count, a sum, a list and an explanation, each answered
# in one line that starts with the answer itself.
EXAMPLES: tuple[tuple[str, str], ...] = (
    ("What is the tallest mountain in the world?", "Mount Everest, at 8,849 metres."),
    ("How many months are in a year?", "Twelve."),
    ("Give me two words that rhyme with cat.", "Hat and bat."),
    ("What is 5 plus 3?", "8."),
    ("Why do we need sleep?",
     "Sleep lets the body and the brain rest and repair, so we can think clearly the next day."),
)
QUESTION, ANSWER = "Question:", "Answer:"
# The turn ends where the model writes a label of the transcript (the next question, or another answer, on the
# same line or a new one), or leaves a blank line: so a label never shows in a reply.
STOP = [QUESTION, ANSWER, "\n\n"]


def frame(messages: Iterable[Mapping[str, object]]) -> str:
    """The transcript for a conversation: preamble (or the system messages), the examples, then its turns.

    It ends with "Answer:" after a user turn, so the model answers; after an assistant turn it ends with that
    turn's text, so the model continues it.
    """
    system = [_text(m) for m in messages if m.get("role") == "system"]
    lines = [" ".join(system) if any(system) else PREAMBLE]
    for question, answer in EXAMPLES:
        lines += ["", f"{QUESTION} {question}", f"{ANSWER} {answer}"]
    last_role = None
    for message in messages:
        role, text = message.get("role"), _text(message)
        if role == "user":
            lines += ["", f"{QUESTION} {text}"]
        elif role == "assistant":
            if last_role != "user":
                lines += [""]
            lines += [f"{ANSWER} {text}"]
        else:
            continue
        last_role = role
    if last_role != "assistant":
        lines.append(ANSWER)
    return "\n".join(lines)


def _text(message: Mapping[str, object]) -> str:
    """A message's text: a string, or OpenAI's list of content parts (their text parts, joined)."""
    content = message.get("content")
    if isinstance(content, str):
        return content.strip()
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict)).strip()
    return ""


def trimmed_start(chunks: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """A streamed reply's chunks without the space the model writes after "Answer:" (its first token is " Paris").

    Only whitespace before the first text is dropped: the chunks are passed on as they are (a chunk left with
    empty text is one the relay skips), and everything after the first text is untouched.
    """
    started = False
    for chunk in chunks:
        if not started:
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") if isinstance(choice, dict) else None
                if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                    delta["content"] = delta["content"].lstrip()
                    started = started or bool(delta["content"])
        yield chunk


def trimmed_reply(completion: dict[str, Any]) -> dict[str, Any]:
    """The same for a reply that is not streamed: its message's text without leading whitespace."""
    for choice in completion.get("choices") or []:
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            message["content"] = message["content"].lstrip()
    return completion
