"""A conversation too long for the model's context gets a clear `invalid_request`, whoever reports it and however.

OpenAI answers `400` with the code `context_length_exceeded`; the local model (app/serving/model_server.py)
has already sent `200` and reports it as an error event in its stream. Both reach the client as the same
`invalid_request`, with a message that says the conversation is too long. The dialects recognised are in
tests/unit/test_context_overflow_dialects.py, the real local model in tests/e2e/test_local_model.py.
"""

from __future__ import annotations

import uuid

import pytest

from chat_relay.streams.context_overflow import MESSAGE
from tests.conftest import LiveServer
from tests.fake_upstream import FakeUpstream, controls
from tests.outcomes import TRANSPORTS, run_http, run_socketio


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("fault", "status"), [("context_length", 400), ("context_length_event", 200)],
                         ids=["openai-400", "error-event-in-stream"])
def test_overflow_is_a_clear_invalid_request(live_server: LiveServer, fake_upstream: FakeUpstream, sio_factory,
                                             transport: str, fault: str, status: int) -> None:
    stream_id = f"long-{uuid.uuid4().hex[:12]}"
    payload = {"prompt": controls(fault=fault), "stream_id": stream_id}
    outcome = run_socketio(sio_factory(), payload) if transport == "socketio" else run_http(live_server.url, payload)
    assert outcome.terminal["code"] == "invalid_request", outcome.terminals
    assert outcome.terminal["message"] == MESSAGE
    assert "too long" in MESSAGE and "context window" in MESSAGE
    if transport == "http":
        assert outcome.status == status  # the local model's report comes after its 200: an error line then
    assert f"stream_id={stream_id} " in live_server.log() and "cause=invalid_request" in live_server.log()
