"""Request validation: what passes, what is refused, and how the refusal reads."""

from __future__ import annotations

import pytest

from chat_relay.config import Settings
from chat_relay.errors import ErrorCode, RelayError
from chat_relay.streams.request_validation import parse_chat_request, requested_stream_id


@pytest.fixture
def settings() -> Settings:
    return Settings(openai_api_key="k", openai_model="m1", allowed_models=["m2"], max_prompt_chars=100,
                    max_messages=3, max_tokens_limit=50, _env_file=None)


def test_prompt_becomes_a_user_message_with_defaults(settings: Settings) -> None:
    request = parse_chat_request({"prompt": "hi"}, settings)
    assert request.messages == [{"role": "user", "content": "hi"}]
    assert request.model == "m1" and request.temperature is None and request.max_tokens is None
    assert len(request.stream_id) == 32


def test_system_prompt_goes_first(settings: Settings) -> None:
    settings.system_prompt = "be kind"
    request = parse_chat_request({"messages": [{"role": "user", "content": "hi"}], "stream_id": "a-1_B"}, settings)
    assert request.messages[0] == {"role": "system", "content": "be kind"}
    assert request.stream_id == "a-1_B"


def test_optional_fields_pass(settings: Settings) -> None:
    request = parse_chat_request({"prompt": "x", "model": "m2", "temperature": 1, "max_tokens": 50}, settings)
    assert (request.model, request.temperature, request.max_tokens) == ("m2", 1.0, 50)


def test_default_max_tokens_applies_when_the_request_names_none(settings: Settings) -> None:
    settings.default_max_tokens = 20
    assert parse_chat_request({"prompt": "x"}, settings).max_tokens == 20
    assert parse_chat_request({"prompt": "x", "max_tokens": 40}, settings).max_tokens == 40


def test_default_temperature_applies_when_the_request_names_none(settings: Settings) -> None:
    assert parse_chat_request({"prompt": "x"}, settings).temperature is None  # left to the model
    settings.default_temperature = 0
    assert parse_chat_request({"prompt": "x"}, settings).temperature == 0
    assert parse_chat_request({"prompt": "x", "temperature": 0.7}, settings).temperature == 0.7


BAD_PAYLOADS = [
    None, [], "text", 5,
    {}, {"prompt": ""}, {"prompt": "   "}, {"messages": []}, {"prompt": "a", "messages": []},
    {"prompt": b"bytes"}, {"prompt": ["list"]}, {"prompt": {"nested": {"deep": 1}}},
    {"messages": "hi"}, {"messages": [{"role": "user"}]}, {"messages": [{"content": "x"}]},
    {"messages": [{"role": "tool", "content": "x"}]}, {"messages": [{"role": "user", "content": 5}]},
    {"messages": [{"role": "user", "content": "x", "name": "extra"}]},
    {"prompt": "x", "temperature": "0.5"}, {"prompt": "x", "temperature": 3},
    {"prompt": "x", "temperature": float("nan")}, {"prompt": "x", "temperature": True},
    {"prompt": "x", "max_tokens": 0}, {"prompt": "x", "max_tokens": 51}, {"prompt": "x", "max_tokens": 1.5},
    {"prompt": "x", "max_tokens": "10"}, {"prompt": "x", "model": "other"}, {"prompt": "x", "model": 3},
    {"prompt": "x", "stream_id": ""}, {"prompt": "x", "stream_id": "a" * 65}, {"prompt": "x", "stream_id": "a/b"},
    {"prompt": "x", "stream_id": "a\n"}, {"prompt": "x", "stream_id": 7},
    {"prompt": "x" * 101}, {"messages": [{"role": "user", "content": "x"}] * 4},
    {"prompt": "bad \ud800 surrogate"}, {"prompt": "x", "unknown": 1},
]


@pytest.mark.parametrize("payload", BAD_PAYLOADS)
def test_bad_payloads_are_invalid_requests(settings: Settings, payload: object) -> None:
    with pytest.raises(RelayError) as caught:
        parse_chat_request(payload, settings)
    assert caught.value.code is ErrorCode.INVALID_REQUEST
    assert caught.value.message and len(caught.value.message) < 300


@pytest.mark.parametrize(("payload", "message"), [
    ({}, "Send either 'prompt' or 'messages', not both."),
    ({"prompt": "  "}, "'prompt' must not be empty."),
    ({"prompt": ["list"]}, "'prompt' must be a string."),
    ({"messages": [{"role": "user"}]}, "'messages[0].content' is missing."),
    ({"messages": [{"role": "tool", "content": "x"}]}, "'messages[0].role' must be 'system', 'user' or 'assistant'."),
    ({"messages": ["x"]}, "'messages[0]' must be an object with 'role' and 'content'."),
    ({"promt": "x"}, "'promt' is not a known field."),
    ({"prompt": "x", "temperature": "0.5"}, "'temperature' must be a number."),
    ({"prompt": "x", "temperature": 3}, "'temperature' must be at most 2."),
    ({"prompt": "x", "max_tokens": 51}, "'max_tokens' must be at most 50."),
    ({"prompt": "x", "max_tokens": 1.5}, "'max_tokens' must be a whole number."),
    ({"prompt": "x", "stream_id": "a/b"}, "'stream_id' must be 1 to 64 letters, digits, '_' or '-'."),
    ({"messages": [{"role": "user", "content": "x"}] * 4}, "Too many messages: at most 3 are allowed."),
])
def test_refusals_say_what_the_field_takes(settings: Settings, payload: dict, message: str) -> None:
    with pytest.raises(RelayError) as caught:
        parse_chat_request(payload, settings)
    assert caught.value.message == message


PYDANTIC_WORDS = ("Input should", "Value error", "Field required", "Extra inputs", "String should", "instance of",
                  "valid dictionary")


@pytest.mark.parametrize("payload", BAD_PAYLOADS)
def test_every_refusal_is_one_sentence_in_our_voice(settings: Settings, payload: object) -> None:
    """A sentence that starts with a capital or a quoted field name and ends with a period; none of pydantic's."""
    with pytest.raises(RelayError) as caught:
        parse_chat_request(payload, settings)
    message = caught.value.message
    assert message[0] == "'" or message[0].isupper(), message
    assert message.endswith(".") and ". " not in message.rstrip("."), message
    assert not any(words in message for words in PYDANTIC_WORDS), message


def test_messages_never_echo_huge_input(settings: Settings) -> None:
    with pytest.raises(RelayError) as caught:
        parse_chat_request({"prompt": 12345678901234567890, "model": "y" * 10_000}, settings)
    assert "1234567890" not in caught.value.message and "y" * 100 not in caught.value.message
    with pytest.raises(RelayError) as caught:
        parse_chat_request({"prompt": "x", "z" * 10_000: 1}, settings)
    assert len(caught.value.message) < 100


def test_requested_stream_id_only_when_well_formed() -> None:
    assert requested_stream_id({"stream_id": "ok_1"}) == "ok_1"
    assert requested_stream_id({"stream_id": "not ok"}) is None
    assert requested_stream_id({"stream_id": 5}) is None
    assert requested_stream_id("x") is None
