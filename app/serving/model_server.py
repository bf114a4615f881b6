"""`python -m app.serving.model_server`: llama-cpp-python's OpenAI-compatible server, with what the local model needs.

It takes llama_cpp.server's own options and runs its own main(), after two additions made through
llama-cpp-python's public registry of chat formats (app/serving/local_model.py starts it):

- The `few-shot-qa` chat format (app/serving/qa_frame.py), so the base model answers questions.
- Weights are kept as the file has them, never repacked into llama.cpp's "extra buffer types" (AMX, and the
  interleaved CPU layouts): on CPUs that announce AMX in a virtual machine (this project's own machines) the
  first decode with repacked Q4_K weights dies with a segmentation fault. For a 270M model the loss is small.
- A streamed request too long for the context window is reported in the stream, as OpenAI's
  `context_length_exceeded` error. llama-cpp-python's server has already sent `200` and its event-stream
  headers when llama.cpp refuses the prompt, so by itself it just ends the stream with no event at all, and
  the cause ("Requested tokens (6610) exceed context window of 4096") is only in its log. A request that
  does not stream already gets its `400 context_length_exceeded`; this leaves that alone.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from typing import Any

import llama_cpp.llama_cpp as llama_lib
from llama_cpp import llama_chat_format

from . import qa_frame

# llama.cpp's refusal, as llama_cpp.server.errors matches it to answer a request that does not stream.
_OVERFLOW = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")


def _format_qa(*, messages: list[Any], **_: Any) -> llama_chat_format.ChatFormatterResponse:
    return llama_chat_format.ChatFormatterResponse(prompt=qa_frame.frame(messages), stop=list(qa_frame.STOP))


def reporting_overflow(handler: Any) -> Any:
    """A chat completion handler that, when streaming, turns llama.cpp's context refusal into an error event."""

    def handle(**kwargs: Any) -> Any:
        result = handler(**kwargs)
        return _overflow_as_event(result) if kwargs.get("stream") else result

    return handle


def _overflow_as_event(chunks: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The stream's chunks; if llama.cpp refuses the prompt (on the first one), one OpenAI-style error instead."""
    try:
        first = next(chunks)
    except StopIteration:
        return
    except ValueError as err:
        match = _OVERFLOW.search(str(err))
        if match is None:
            raise
        yield {"error": overflow_error(int(match.group(1)), int(match.group(2)))}
        return
    yield first
    yield from chunks


def overflow_error(prompt_tokens: int, context_tokens: int) -> dict[str, Any]:
    """OpenAI's error object for a request that does not fit, with llama.cpp's numbers."""
    return {
        "message": f"This model's maximum context length is {context_tokens} tokens. However, your messages "
                   f"resulted in {prompt_tokens} tokens. Please reduce the length of the messages.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }


def trimming_start(handler: Any) -> Any:
    """A chat completion handler whose replies start with their first word, not the space the frame leaves."""

    def handle(**kwargs: Any) -> Any:
        result = handler(**kwargs)
        return qa_frame.trimmed_start(result) if kwargs.get("stream") else qa_frame.trimmed_reply(result)

    return handle


def register(chat_format: str | None) -> None:
    """Add the few-shot frame (its replies trimmed), and the overflow report to the chat format the server uses."""
    registry = llama_chat_format.LlamaChatCompletionHandlerRegistry()
    registry.register_chat_completion_handler(
        qa_frame.NAME, trimming_start(llama_chat_format.chat_formatter_to_chat_completion_handler(_format_qa)),
        overwrite=True)
    if chat_format:  # None or "": the model file's own template, which llama builds itself; left as it is
        base = llama_chat_format.get_chat_completion_handler(chat_format)
        registry.register_chat_completion_handler(chat_format, reporting_overflow(base), overwrite=True)


def keep_weights_unpacked() -> None:
    """Every model loaded from now on, with `use_extra_bufts` off (the module's docstring says why).

    llama-cpp-python's server has no option for it: Llama() reads llama.cpp's default model parameters when it
    loads, so the defaults it reads are changed here.
    """
    defaults = llama_lib.llama_model_default_params
    if getattr(defaults, "keeps_weights_unpacked", False):
        return

    def unpacked() -> Any:
        params = defaults()
        params.use_extra_bufts = False
        return params

    unpacked.keeps_weights_unpacked = True  # type: ignore[attr-defined]
    llama_lib.llama_model_default_params = unpacked


def main() -> None:
    keep_weights_unpacked()
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--chat_format")
    known, _ = parser.parse_known_args()
    register(known.chat_format)
    from llama_cpp.server.__main__ import main as serve

    serve()


if __name__ == "__main__":
    main()
