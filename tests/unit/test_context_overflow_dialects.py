"""Which upstream errors mean "the conversation is too long for the model's context": OpenAI's, llama.cpp's and
vLLM's, and no other. What the client then gets, on the real server: tests/live/test_context_overflow.py.
"""

from __future__ import annotations

import pytest

from chat_relay.streams.context_overflow import is_context_overflow


@pytest.mark.parametrize("error", [
    {"code": "context_length_exceeded", "message": "anything", "type": "invalid_request_error"},  # OpenAI
    {"code": 400, "type": "exceed_context_size_error",  # llama.cpp's server
     "message": "the request exceeds the available context size, try increasing it"},
    {"object": "error", "type": "BadRequestError", "code": 400,  # vLLM
     "message": "This model's maximum context length is 2048 tokens. However, you requested 3000 tokens."},
])
def test_each_dialect_is_recognised(error: dict) -> None:
    assert is_context_overflow(error)


@pytest.mark.parametrize("error", [
    None, "maximum context length", {}, {"code": "invalid_api_key", "message": "Incorrect API key provided"},
    {"code": None, "type": "server_error", "message": "The server had an error processing your request."},
])
def test_other_errors_are_not(error: object) -> None:
    assert not is_context_overflow(error)
