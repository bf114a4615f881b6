"""The local model's few-shot frame and its overflow report, without a model: text in, text out.

tests/e2e/test_local_model.py checks what the real model does with them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.serving import qa_frame

LLAMA_REFUSAL = "Requested tokens (6610) exceed context window of 4096"


def test_a_question_ends_the_transcript_with_an_answer_to_write() -> None:
    text = qa_frame.frame([{"role": "user", "content": "What is the capital of France?"}])
    assert text.startswith(qa_frame.PREAMBLE)
    assert text.endswith("\n\nQuestion: What is the capital of France?\nAnswer:")
    for question, answer in qa_frame.EXAMPLES:
        assert f"Question: {question}\nAnswer: {answer}" in text
    question = text.rsplit("Question:", 1)[1].removesuffix("\nAnswer:")
    assert not any(stop in question for stop in qa_frame.STOP)


def test_earlier_turns_are_kept_in_order_and_the_system_prompt_opens_it() -> None:
    text = qa_frame.frame([
        {"role": "system", "content": "You answer like a pirate."},
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Ahoy."},
        {"role": "user", "content": "Name a sea."},
    ])
    assert text.startswith("You answer like a pirate.\n\nQuestion:") and qa_frame.PREAMBLE not in text
    assert text.endswith("Question: Hi\nAnswer: Ahoy.\n\nQuestion: Name a sea.\nAnswer:")


def test_a_last_assistant_turn_is_continued() -> None:
    text = qa_frame.frame([{"role": "user", "content": "Count to three."}, {"role": "assistant", "content": "One,"}])
    assert text.endswith("Question: Count to three.\nAnswer: One,")


def test_content_parts_are_read_as_text() -> None:
    text = qa_frame.frame([{"role": "user", "content": [{"type": "text", "text": "Hello"}]}])
    assert text.endswith("Question: Hello\nAnswer:")


# app/serving/model_server.py imports llama-cpp-python, which only `make local` installs.
model_server = pytest.importorskip("app.serving.model_server", reason="llama-cpp-python is not installed")


def _refusing(**_: Any) -> Iterator[dict]:
    raise ValueError(LLAMA_REFUSAL)
    yield {}  # a generator, as llama's streamed completion is: it refuses on the first next()


def test_a_streamed_overflow_becomes_openais_error_event() -> None:
    handler = model_server.reporting_overflow(lambda **kw: _refusing(**kw))
    events = list(handler(stream=True))
    assert events == [{"error": model_server.overflow_error(6610, 4096)}]
    assert events[0]["error"]["code"] == "context_length_exceeded"


def test_other_streams_and_errors_pass_through() -> None:
    chunks = [{"choices": [{"delta": {"content": "a"}}]}, {"choices": [{"delta": {"content": "b"}}]}]
    assert list(model_server.reporting_overflow(lambda **_: iter(chunks))(stream=True)) == chunks

    def broken(**_: Any) -> Iterator[dict]:
        raise ValueError("something else")
        yield {}

    with pytest.raises(ValueError, match="something else"):
        list(model_server.reporting_overflow(broken)(stream=True))
    # Not streamed: llama_cpp.server answers the refusal itself, with its 400 context_length_exceeded.
    assert model_server.reporting_overflow(lambda **_: {"id": "x"})(stream=False) == {"id": "x"}


# --- the reply's start and end: no leading space, no label of the frame ----------------------------------------


def _chunk(text: str | None, finish: str | None = None) -> dict:
    return {"choices": [{"index": 0, "delta": {} if text is None else {"content": text}, "finish_reason": finish}]}


def _texts(chunks: Iterator[dict]) -> list[str | None]:
    return [c["choices"][0]["delta"].get("content") for c in chunks]


def test_the_space_after_answer_is_dropped_and_nothing_else() -> None:
    stream = [_chunk(None), _chunk(" "), _chunk(" Paris"), _chunk(" is"), _chunk("  big."), _chunk(None, "stop")]
    assert _texts(qa_frame.trimmed_start(stream)) == [None, "", "Paris", " is", "  big.", None]
    assert "".join(t or "" for t in _texts(qa_frame.trimmed_start([_chunk(" Hi"), _chunk(" there")]))) == "Hi there"


def test_a_reply_that_is_not_streamed_is_trimmed_too() -> None:
    completion = {"choices": [{"message": {"role": "assistant", "content": " Paris."}}]}
    assert qa_frame.trimmed_reply(completion)["choices"][0]["message"]["content"] == "Paris."


def test_the_labels_of_the_frame_stop_the_reply_wherever_they_come() -> None:
    """"Continue this sequence: 1, 2, ..." once gave ' 12, 13, ... 21,\\nAnswer: 10, 11, ...'."""
    reply = "12, 13, 21,\nAnswer: 10, 11"
    cut = min((reply.index(stop) for stop in qa_frame.STOP if stop in reply), default=len(reply))
    assert reply[:cut] == "12, 13, 21,\n"
    for label in (qa_frame.QUESTION, qa_frame.ANSWER):
        assert any(stop in f"x {label} y" for stop in qa_frame.STOP)


def test_the_model_server_loads_weights_unpacked() -> None:
    """Repacked Q4_K weights (AMX) crash llama.cpp's first decode on this project's machines."""
    import llama_cpp.llama_cpp as llama_lib

    model_server.keep_weights_unpacked()
    model_server.keep_weights_unpacked()  # twice is once
    assert llama_lib.llama_model_default_params().use_extra_bufts is False
