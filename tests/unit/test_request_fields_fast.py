"""The request fields of issue 17 (docs/protocol.md, "The request"): what passes, exactly as sent; what is refused,
with a sentence that names the field; and the upstream request the relay builds from it (read back from the fake)."""

from __future__ import annotations

import copy
import json
from typing import get_type_hints

import pytest
from openai.types.chat.completion_create_params import CompletionCreateParamsStreaming

from chat_relay.config import Settings
from chat_relay.errors import ErrorCode, RelayError
from chat_relay.streams.request_validation import PASSED_AS_SENT, parse_chat_request
from chat_relay.streams.upstream import Upstream
from tests.conftest import API_KEY
from tests.fake_upstream import FakeUpstream
from tests.request_samples import PNG_SIGNATURE, every_field, image_part, image_url, tool

SMALL_PNG = image_url(64)


@pytest.fixture
def settings() -> Settings:
    return Settings(openai_api_key="k", openai_model="m1", max_prompt_chars=100, max_tokens_limit=500,
                    max_image_bytes=1000, max_images=2, max_tools=3, max_tools_bytes=2000, _env_file=None)


def refusal(payload: object, settings: Settings) -> str:
    with pytest.raises(RelayError) as caught:
        parse_chat_request(payload, settings)
    assert caught.value.code is ErrorCode.INVALID_REQUEST
    return caught.value.message


def user(*parts: dict) -> dict:
    return {"messages": [{"role": "user", "content": list(parts)}]}


def with_tools(count: int = 1, **fields: object) -> dict:
    return {"prompt": "x", "tools": [tool(f"f{i}") for i in range(count)], **fields}


# -- what passes, exactly as sent --------------------------------------------------------------------------

def test_every_new_field_passes_exactly_as_sent(settings: Settings) -> None:
    settings.max_prompt_chars = 1000
    payload = every_field("tag", SMALL_PNG)
    sent = copy.deepcopy(payload)
    request = parse_chat_request(payload, settings)
    assert request.messages == sent["messages"]
    assert request.options == {name: sent[name] for name in PASSED_AS_SENT}
    assert request.temperature == 0.2 and request.max_tokens is None  # max_completion_tokens bounds it instead
    assert payload == sent  # the client's own dicts are not changed either


def test_nothing_the_client_did_not_send_is_added(settings: Settings) -> None:
    request = parse_chat_request({"messages": [{"role": "user", "content": [image_part(SMALL_PNG)]}]}, settings)
    assert request.options == {}
    assert request.messages == [{"role": "user", "content": [image_part(SMALL_PNG)]}]  # no "detail" added


def test_the_passed_fields_are_the_openai_clients_own_parameters() -> None:
    assert set(PASSED_AS_SENT) <= set(get_type_hints(CompletionCreateParamsStreaming))


@pytest.mark.parametrize("fields", [
    {"tool_choice": "none"}, {"tool_choice": "auto"}, {"tool_choice": "required"}, {"parallel_tool_calls": True},
])
def test_tool_choices_that_pass(settings: Settings, fields: dict) -> None:
    assert parse_chat_request(with_tools(2, **fields), settings).options["tool_choice" if "tool_choice" in fields
                                                                         else "parallel_tool_calls"] in (
        fields.get("tool_choice"), fields.get("parallel_tool_calls"))


@pytest.mark.parametrize("fields", [
    {"response_format": {"type": "text"}}, {"response_format": {"type": "json_object"}},
    {"response_format": {"type": "json_schema", "json_schema": {"name": "a"}}},
    {"stop": "x"}, {"stop": ["a", "b", "c", "d"]}, {"seed": -(2**63)}, {"top_p": 0}, {"top_p": 1},
    {"presence_penalty": -2}, {"frequency_penalty": 2.0}, {"reasoning_effort": "minimal"},
    {"max_completion_tokens": 500}, {"max_completion_tokens": 1},
])
def test_values_at_the_edges_pass(settings: Settings, fields: dict) -> None:
    assert parse_chat_request({"prompt": "x", **fields}, settings).options == fields


@pytest.mark.parametrize(("kind", "head"), [
    ("png", PNG_SIGNATURE), ("jpeg", b"\xff\xd8\xff\xe0"), ("gif", b"GIF89a"), ("gif", b"GIF87a"),
    ("webp", b"RIFF\x00\x00\x00\x00WEBPVP8 "),
])
def test_each_image_type_passes(settings: Settings, kind: str, head: bytes) -> None:
    parse_chat_request(user(image_part(image_url(100, kind, head))), settings)


def test_an_image_of_exactly_max_image_bytes_passes(settings: Settings) -> None:
    for size in (998, 999, 1000):  # each padding of base64: none, "=", "=="
        parse_chat_request(user(image_part(image_url(size))), settings)


def test_https_image_urls_pass_only_when_allowed(settings: Settings) -> None:
    payload = user(image_part("https://example.com/cat.png"))
    assert refusal(payload, settings) == ("'messages[0].content[0].image_url.url' must be a data: URL: this "
                                          "server does not fetch images from https: URLs.")
    settings.allow_image_urls = True
    assert parse_chat_request(payload, settings).messages[0]["content"][0]["image_url"]["url"] == (
        "https://example.com/cat.png")
    assert "http: URL" in refusal(user(image_part("http://example.com/cat.png")), settings)  # never plain http


def test_prompt_chars_count_text_not_images(settings: Settings) -> None:
    settings.max_image_bytes = 100_000
    parse_chat_request(user({"type": "text", "text": "x" * 100}, image_part(image_url(90_000))), settings)
    for too_long in (
        user({"type": "text", "text": "x" * 60}, {"type": "text", "text": "x" * 41}),
        {"messages": [{"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "x" * 101}}]}]},
        {"messages": [{"role": "tool", "tool_call_id": "c", "content": [{"type": "text", "text": "x" * 101}]}]},
    ):
        assert refusal(too_long, settings) == "The conversation is too long: at most 100 characters are allowed."


def test_default_max_tokens_only_when_the_request_bounds_its_reply_neither_way(settings: Settings) -> None:
    settings.default_max_tokens = 20
    assert parse_chat_request({"prompt": "x"}, settings).max_tokens == 20
    request = parse_chat_request({"prompt": "x", "max_completion_tokens": 30}, settings)
    assert request.max_tokens is None and request.options == {"max_completion_tokens": 30}


# -- what is refused, naming the field ---------------------------------------------------------------------

PNG_URL = "'messages[0].content[0].image_url.url'"
REFUSALS = [
    (user(image_part(image_url(1001))), f"{PNG_URL} is too large: an image may be at most 1,000 bytes."),
    (user(image_part(image_url(100).replace("image/png", "image/bmp"))),
     f"{PNG_URL} must be a data: URL of a PNG, JPEG, WebP or GIF image in base64 (data:image/png;base64,...)."),
    (user(image_part(image_url(100).replace(";base64", ""))),
     f"{PNG_URL} must be a data: URL of a PNG, JPEG, WebP or GIF image in base64 (data:image/png;base64,...)."),
    (user(image_part(image_url(100, "jpeg"))),
     f"{PNG_URL} does not hold a JPEG image: its bytes are not those of image/jpeg."),
    (user(image_part(image_url(100, "webp", b"RIFF\x00\x00\x00\x00AVI "))),
     f"{PNG_URL} does not hold a WEBP image: its bytes are not those of image/webp."),
    (user(image_part(image_url(100) + "!")), f"{PNG_URL} is not valid base64."),
    (user(image_part("http://example.com/a.png")),
     f"{PNG_URL} must not be an http: URL: send the image itself, as a data: URL."),
    (user(image_part("file:///etc/passwd")),
     f"{PNG_URL} must be a data: URL of a PNG, JPEG, WebP or GIF image in base64 (data:image/png;base64,...)."),
    (user(image_part(SMALL_PNG, detail="ultra")),
     "'messages[0].content[0].image_url.detail' must be 'auto', 'low' or 'high'."),
    (user(image_part(SMALL_PNG), image_part(SMALL_PNG), image_part(SMALL_PNG)),
     "'messages[0].content[2]' is one image too many: at most 2 are allowed per request."),
    (user({"type": "video", "video": "x"}), "'messages[0].content[0].type' must be 'text' or 'image_url'."),
    (user(), "'messages[0].content' must not be empty."),
    ({"messages": [{"role": "system", "content": [image_part(SMALL_PNG)]}]},
     "'messages[0].content[0].type' must be 'text'."),
    ({"messages": [{"role": "tool", "content": "sunny"}]}, "'messages[0].tool_call_id' is missing."),
    ({"messages": [{"role": "tool", "tool_call_id": "", "content": "sunny"}]},
     "'messages[0].tool_call_id' must not be empty."),
    ({"messages": [{"role": "assistant"}]},
     "'messages[0].content' is missing: an assistant message needs it unless it has 'tool_calls'."),
    ({"messages": [{"role": "assistant", "content": None, "tool_calls": []}]},
     "'messages[0].tool_calls' must not be empty."),
    ({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                                                          "function": {"name": "f", "arguments": {}}}]}]},
     "'messages[0].tool_calls[0].function.arguments' must be a string."),
    ({"messages": [{"role": "user", "content": "x", "tool_call_id": "c"}]},
     "'messages[0].tool_call_id' is not a known field."),
    (with_tools(1, tool_choice="always"), "'tool_choice' must be 'none', 'auto' or 'required'."),
    (with_tools(1, tool_choice=["auto"]), "'tool_choice' must be a string or an object."),
    (with_tools(1, tool_choice={"type": "function", "function": {"name": "g"}}),
     "'tool_choice.function.name' must name one of 'tools': 'g' is none of them."),
    (with_tools(1, tool_choice={"type": "function"}), "'tool_choice.function' is missing."),
    ({"prompt": "x", "tool_choice": "auto"}, "'tool_choice' needs 'tools'."),
    ({"prompt": "x", "parallel_tool_calls": True}, "'parallel_tool_calls' needs 'tools'."),
    (with_tools(1, parallel_tool_calls=1), "'parallel_tool_calls' must be true or false."),
    (with_tools(4), "'tools' holds too many tools: at most 3 are allowed."),
    ({"prompt": "x", "tools": [tool("f", description="d" * 2000)]},
     "'tools' is too large: at most 2,000 bytes as compact JSON are allowed."),
    ({"prompt": "x", "tools": [tool("f"), tool("f")]}, "'tools' names the function 'f' twice: names must be unique."),
    ({"prompt": "x", "tools": [tool("get weather")]},
     "'tools[0].function.name' must be 1 to 64 letters, digits, '_' or '-'."),
    ({"prompt": "x", "tools": [tool("f", parameters=[])]}, "'tools[0].function.parameters' must be an object."),
    ({"prompt": "x", "tools": [{"type": "retrieval"}]}, "'tools[0].type' must be 'function'."),
    ({"prompt": "x", "response_format": {"type": "json"}},
     "'response_format.type' must be 'text', 'json_object' or 'json_schema'."),
    ({"prompt": "x", "response_format": {"type": "json_schema"}}, "'response_format.json_schema' is missing."),
    ({"prompt": "x", "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": "x"}}},
     "'response_format.json_schema.schema' must be an object."),
    ({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "'stop' must hold at most 4 items."),
    ({"prompt": "x", "stop": []}, "'stop' must not be empty."),
    ({"prompt": "x", "stop": ["a", ""]}, "'stop[1]' must not be empty."),
    ({"prompt": "x", "seed": 1.0}, "'seed' must be a whole number."),
    ({"prompt": "x", "seed": None}, "'seed' must be a whole number."),
    ({"prompt": "x", "seed": 2**63}, f"'seed' must be at most {2**63 - 1:g}."),
    ({"prompt": "x", "top_p": 1.5}, "'top_p' must be at most 1."),
    ({"prompt": "x", "presence_penalty": -3}, "'presence_penalty' must be at least -2."),
    ({"prompt": "x", "frequency_penalty": "1"}, "'frequency_penalty' must be a number."),
    ({"prompt": "x", "reasoning_effort": None},
     "'reasoning_effort' must be 'none', 'minimal', 'low', 'medium', 'high', 'xhigh' or 'max'."),
    ({"prompt": "x", "max_completion_tokens": 501}, "'max_completion_tokens' must be at most 500."),
    ({"prompt": "x", "max_completion_tokens": 0}, "'max_completion_tokens' must be at least 1."),
    ({"prompt": "x", "max_tokens": 5, "max_completion_tokens": 5},
     "Send either 'max_tokens' or 'max_completion_tokens', not both."),
    ({"prompt": "x", "tools": [tool("f", parameters={"type": "object", "maximum": float("inf")})]},
     "'tools[0].function.parameters' must hold plain JSON: finite numbers of at most 64 bits, no binary data."),
    ({"prompt": "x", "tools": [tool("f", parameters={"enum": [b"\x00"]})]},  # a Socket.IO binary attachment
     "'tools[0].function.parameters' must hold plain JSON: finite numbers of at most 64 bits, no binary data."),
    ({"prompt": "x", "response_format": {"type": "json_schema", "json_schema": {
        "name": "a", "schema": {"minimum": float("nan")}}}},
     "'response_format.json_schema.schema' must hold plain JSON: finite numbers of at most 64 bits, no binary data."),
    ({"prompt": "x", "tools": [tool("f", parameters={"maximum": 2**64})]},
     "'tools[0].function.parameters' must hold plain JSON: finite numbers of at most 64 bits, no binary data."),
    ({"prompt": "x", "tools": [tool("f", parameters=json.loads('{"a":' * 65 + "1" + "}" * 65))]},
     "'tools[0].function.parameters' must nest at most 64 levels deep."),
    ({"prompt": "x", "tools": [tool("f", description="\ud800")]},
     "The text contains invalid Unicode (an unpaired surrogate)."),
]


@pytest.mark.parametrize(("payload", "message"), REFUSALS, ids=[message[:60] for _, message in REFUSALS])
def test_each_bad_field_is_refused_with_a_message_that_names_it(settings: Settings, payload: dict,
                                                                 message: str) -> None:
    assert refusal(payload, settings) == message


# -- what the upstream gets ---------------------------------------------------------------------------------

def test_the_upstream_gets_each_field_exactly_as_sent(fake_upstream: FakeUpstream) -> None:
    """Through the real openai client to the real fake: every field, and nothing the client did not send."""
    settings = Settings(openai_api_key=API_KEY, openai_base_url=fake_upstream.url, openai_model="fake-model",
                        _env_file=None)
    payload = every_field("fast-upstream-7c1d", SMALL_PNG)
    stream = Upstream(settings).open(parse_chat_request(copy.deepcopy(payload), settings))
    try:
        for _ in stream:  # read to its end (the pieces are the reply side's tests)
            pass
    finally:
        stream.close()
    [body] = fake_upstream.requests_with("fast-upstream-7c1d")
    assert body == {"model": "fake-model", "stream": True, "stream_options": {"include_usage": True},
                    **json.loads(json.dumps(payload))}


# -- MAX_REQUEST_BYTES, a setting now ----------------------------------------------------------------------

def test_max_request_bytes_bounds_http_bodies_and_socketio_packets(fake_upstream: FakeUpstream) -> None:
    from chat_relay.standalone import create_app

    settings = Settings(openai_api_key=API_KEY, openai_base_url=fake_upstream.url, openai_model="fake-model",
                        async_mode="threading", max_request_bytes=4096, _env_file=None)
    app = create_app(settings)
    client = app.test_client()
    over = client.post("/message/stream", data=b"{" * 4097, content_type="application/json")
    assert over.status_code == 413 and over.json["error"]["code"] == "invalid_request"
    within = client.post("/message/stream", data=b"{" * 4096, content_type="application/json")
    assert within.status_code == 400 and within.json["error"]["message"] == "The body is not valid JSON."
    assert app.extensions["socketio"].server.eio.max_http_buffer_size == 4096
