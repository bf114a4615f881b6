"""Checks that the fake upstream behaves like OpenAI as seen by the official client, so relay tests can trust it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import openai
import pytest
import requests
from openai import OpenAI

from tests.fake_upstream import FakeUpstream, controls


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


def _client(fake: FakeUpstream, api_key: str = "test-key") -> OpenAI:
    return OpenAI(api_key=api_key, base_url=fake.url, max_retries=0, timeout=5)


def _stream(fake: FakeUpstream, prompt: str = "hi", model: str = "fake-model", api_key: str = "test-key"):
    return _client(fake, api_key).chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}],
        stream=True, stream_options={"include_usage": True})


def _collect(stream) -> tuple[str, list[str | None], object]:
    text, finishes, usage = "", [], None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finishes.append(choice.finish_reason)
    return text, finishes, usage


def test_default_stream(fake: FakeUpstream) -> None:
    text, finishes, usage = _collect(_stream(fake))
    assert text == "w0 w1 w2 w3 w4 "
    assert finishes[-1] == "stop"
    assert usage.completion_tokens == 5 and usage.total_tokens == usage.prompt_tokens + 5
    assert fake.wait_for(lambda f: f.completed == 1, timeout=2)
    assert fake.snapshot() == {"started": 1, "completed": 1, "aborted": 0, "in_flight": 0, "requests": 1}
    assert fake.auth_headers == ["Bearer test-key"]


def test_text_passes_through(fake: FakeUpstream) -> None:
    text, finishes, _ = _collect(_stream(fake, controls(text=["a\n", "", "é", "\n\nb"], finish_reason="length")))
    assert text == "a\né\n\nb"
    assert finishes[-1] == "length"


@pytest.mark.parametrize("status, error", [
    ("401", openai.AuthenticationError), ("429", openai.RateLimitError), ("500", openai.InternalServerError)])
def test_fault_status(fake: FakeUpstream, status: str, error: type[Exception]) -> None:
    with pytest.raises(error, match="SECRET-BODY-DETAIL"):
        _stream(fake, controls(fault=status))
    assert fake.started == 0


def test_wrong_key_and_unknown_model(fake: FakeUpstream) -> None:
    with pytest.raises(openai.AuthenticationError):
        _stream(fake, api_key="wrong")
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        _stream(fake, model="nope")


def test_models_and_healthz(fake: FakeUpstream) -> None:
    assert [m.id for m in _client(fake).models.list()] == ["fake-model", "fake-model-2"]
    assert requests.get(fake.url.removesuffix("/v1") + "/healthz", timeout=2).status_code == 200


def test_close_mid_stream_counts_abort(fake: FakeUpstream) -> None:
    stream = _stream(fake, controls(chunks=50, delay=0.05))
    next(iter(stream))
    stream.close()
    assert fake.wait_for(lambda f: f.aborted == 1, timeout=2)
    assert fake.completed == 0


def test_gate_holds_stream(fake: FakeUpstream) -> None:
    stream = _stream(fake, controls(chunks=4, gate="g", hold_after=2))
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(_collect(stream)[0]))
    reader.start()
    reader.join(0.3)
    assert reader.is_alive() and fake.completed == 0
    fake.open_gate("g")
    reader.join(2)
    assert received == ["w0 w1 w2 w3 "]
    assert fake.wait_for(lambda f: f.completed == 1, timeout=2)


def test_drop_raises_connection_error(fake: FakeUpstream) -> None:
    with pytest.raises(openai.APIConnectionError):
        _collect(_stream(fake, controls(fault="drop")))


def test_stop_releases_stalled_stream() -> None:
    fake = FakeUpstream().start()
    stream = _stream(fake, controls(fault="stall"))
    next(iter(stream))
    fake.stop()
    with pytest.raises(openai.APIConnectionError):
        _collect(stream)
    assert fake.aborted == 0
