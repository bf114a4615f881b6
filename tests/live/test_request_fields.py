"""The request fields of issue 17 on the real server, in both async modes, over Socket.IO and HTTP: each new field
reaches the upstream exactly as sent (read back from the fake), a request with a 5 MB image goes through, and a
refused request never reaches the upstream."""

from __future__ import annotations

import copy
import json
import uuid

import pytest

from tests.clients import DONE, SioProbe, ndjson_events, post_stream
from tests.conftest import LiveServer
from tests.fake_upstream import FakeUpstream
from tests.request_samples import WEATHER, every_field, image_part, image_url, tool

TRANSPORTS = ["socketio", "http"]
MAX_IMAGE_BYTES = 5_000_000  # the default (docs/protocol.md): the largest image a client may send


def send(server: LiveServer, transport: str, payload: dict) -> dict:
    """Send one request as a client does and return its terminal event: done, or the error it was refused with."""
    if transport in ("socketio", "polling"):
        probe = SioProbe(server.url, transports=["polling"] if transport == "polling" else None)
        try:
            ack = probe.start(payload, timeout=30)
            if "error" in ack:
                return {"type": "error", **ack["error"]}
            name, terminal = probe.wait_terminal(ack["stream_id"], timeout=30)
            return {"type": "done" if name == DONE else "error", **terminal}
        finally:
            probe.close()
    with post_stream(server.url, payload, accept="application/x-ndjson") as response:
        if response.status_code != 200:
            return {"type": "error", **response.json()["error"]}
        *_, last = ndjson_events(response)
        return last


def tagged(prompt: str = "") -> tuple[str, str]:
    tag = f"fields-{uuid.uuid4().hex[:12]}"
    return tag, f"{prompt} {tag}"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_new_field_reaches_the_upstream_exactly_as_sent(live_server: LiveServer, fake_upstream: FakeUpstream,
                                                              transport: str) -> None:
    tag, _ = tagged()
    payload = every_field(tag, image_url(2000))
    sent = copy.deepcopy(payload)
    assert send(live_server, transport, payload)["type"] == "done"
    [body] = fake_upstream.requests_with(tag)
    assert body == {"model": "fake-model", "stream": True, "stream_options": {"include_usage": True}, **sent}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_request_sends_only_what_the_client_sent(live_server: LiveServer, fake_upstream: FakeUpstream,
                                                   transport: str) -> None:
    tag, text = tagged("Hello")
    payload = {"messages": [{"role": "user", "content": [{"type": "text", "text": text}]}], "seed": 7}
    assert send(live_server, transport, payload)["type"] == "done"
    [body] = fake_upstream.requests_with(tag)
    assert body == {"model": "fake-model", "stream": True, "stream_options": {"include_usage": True}, **payload}


@pytest.mark.parametrize("transport", [*TRANSPORTS, "polling"])
def test_a_request_with_a_5_mb_image_goes_through(live_server: LiveServer, fake_upstream: FakeUpstream,
                                                  transport: str) -> None:
    tag, text = tagged("What is in this picture?")
    image = image_url(MAX_IMAGE_BYTES)
    payload = {"messages": [{"role": "user", "content": [{"type": "text", "text": text}, image_part(image)]}]}
    assert len(json.dumps(payload)) > 6_600_000  # base64: 4/3 of the image
    done = send(live_server, transport, payload)
    assert done["type"] == "done" and done["finish_reason"] == "stop", done
    [body] = fake_upstream.requests_with(tag)
    assert body["messages"][0]["content"][1]["image_url"]["url"] == image


REFUSED = [
    pytest.param(lambda text: {"messages": [{"role": "user", "content": [
        {"type": "text", "text": text}, image_part(image_url(MAX_IMAGE_BYTES + 1))]}]},
        "'messages[0].content[1].image_url.url' is too large", id="image-too-large"),
    pytest.param(lambda text: {"messages": [{"role": "user", "content": [
        {"type": "text", "text": text}, image_part(image_url(100, "gif"))]}]},
        "'messages[0].content[1].image_url.url' does not hold a GIF image", id="image-bytes-not-its-type"),
    pytest.param(lambda text: {"messages": [{"role": "user", "content": [
        {"type": "text", "text": text}, image_part("http://127.0.0.1/cat.png")]}]},
        "'messages[0].content[1].image_url.url' must not be an http: URL", id="image-http-url"),
    pytest.param(lambda text: {"messages": [{"role": "user", "content": text},
                                            {"role": "tool", "content": "42"}]},
                 "'messages[1].tool_call_id' is missing", id="tool-message-without-id"),
    pytest.param(lambda text: {"prompt": text, "tools": [WEATHER], "tool_choice": {
        "type": "function", "function": {"name": "get_time"}}},
        "'tool_choice.function.name' must name one of 'tools'", id="tool-choice-names-no-tool"),
    pytest.param(lambda text: {"prompt": text, "tools": [tool(f"f{i}") for i in range(65)]},
                 "'tools' holds too many tools", id="too-many-tools"),
]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("build", "message"), REFUSED)
def test_a_refused_request_never_reaches_the_upstream(live_server: LiveServer, fake_upstream: FakeUpstream,
                                                      transport: str, build, message: str) -> None:
    tag, text = tagged("Refuse me")
    error = send(live_server, transport, build(text))
    assert error["type"] == "error" and error["code"] == "invalid_request", error
    assert error["message"].startswith(message), error
    # the server has answered, so a request it had sent would be in the fake's record by now
    assert fake_upstream.requests_with(tag) == []
    other_tag, other = tagged("Still serving")
    assert send(live_server, transport, {"prompt": other})["type"] == "done"
    assert len(fake_upstream.requests_with(other_tag)) == 1
