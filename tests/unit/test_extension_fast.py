"""ChatRelay (chat_relay/extension.py) on a team's app, through Flask's and Flask-SocketIO's test clients: what it
refuses to mount on, and what of the team's app it leaves alone."""

from __future__ import annotations

import pytest
from flask import Flask
from flask_socketio import SocketIO

from chat_relay.config import ConfigError, Settings
from chat_relay.extension import ChatRelay
from tests.conftest import API_KEY
from tests.fake_upstream import FakeUpstream, controls


def upstream_settings(fake: FakeUpstream, **named: object) -> Settings:
    return Settings(openai_api_key=API_KEY, openai_base_url=fake.url, openai_model="fake-model",  # type: ignore[arg-type]
                    upstream_max_retries=0, _env_file=None, **named)


@pytest.fixture
def settings(fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """No ASYNC_MODE named: the relay takes the SocketIO server's."""
    monkeypatch.delenv("ASYNC_MODE", raising=False)
    return upstream_settings(fake_upstream)


def team_app() -> tuple[Flask, SocketIO]:
    app = Flask(__name__)
    app.get("/mine")(lambda: "mine")
    return app, SocketIO(app, async_mode="threading")


@pytest.mark.parametrize("options", [{"url_prefix": "ai"}, {"url_prefix": "/ai/"}, {"event": "connect"},
                                     {"event": "two words"}, {"namespace": "ai"}, {"page": True, "url_prefix": "/ai"},
                                     {"page": True, "event": "assistant"}])
def test_options_it_cannot_honour_are_refused_when_it_is_made(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ChatRelay(**options)  # type: ignore[arg-type]


def test_a_namespace_whose_connect_the_team_handles_is_refused(settings: Settings) -> None:
    app, socketio = team_app()
    socketio.on("connect")(lambda auth=None: None)
    with pytest.raises(RuntimeError, match="namespace of its own"):
        ChatRelay(app, socketio, settings=settings)
    ChatRelay(app, socketio, settings=settings, namespace="/ai")  # beside it, on its own namespace


def test_a_socketio_not_bound_to_the_app_yet_is_refused(settings: Settings) -> None:
    with pytest.raises(RuntimeError, match="Bind the SocketIO server"):
        ChatRelay(Flask(__name__), SocketIO(), settings=settings)


def test_an_async_mode_named_otherwise_is_refused_and_an_unnamed_one_follows_the_server(
        settings: Settings, fake_upstream: FakeUpstream) -> None:
    app, socketio = team_app()
    with pytest.raises(ConfigError, match="ASYNC_MODE is gevent, but the SocketIO server runs in threading"):
        ChatRelay(app, socketio, settings=upstream_settings(fake_upstream, async_mode="gevent"))
    relay = ChatRelay(app, socketio, settings=settings)
    assert relay.services is not None and relay.services.settings.async_mode == "threading"


def test_the_teams_errors_and_limits_stay_its_own(settings: Settings) -> None:
    app, socketio = team_app()
    ChatRelay(app, socketio, settings=settings, url_prefix="/ai", namespace="/ai", event="assistant")
    client = app.test_client()
    assert client.get("/mine").text == "mine"
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and missing.content_type.startswith("text/html")  # Flask's, not the relay's
    assert client.post("/message/stream", json={"prompt": "hi"}).status_code == 404
    too_large = client.post("/ai/message/stream", data=b"x" * (settings.max_request_bytes + 1),
                            content_type="application/json")
    assert too_large.status_code == 413 and too_large.json["error"]["code"] == "invalid_request"
    assert client.get("/ai/healthz").json["status"] == "ok"


def test_events_take_the_configured_names_on_the_configured_namespace(settings: Settings) -> None:
    app, socketio = team_app()
    ChatRelay(app, socketio, settings=settings, namespace="/ai", event="assistant")
    sio = socketio.test_client(app, namespace="/ai")
    try:
        assert sio.emit("chatgpt_description", {"prompt": "hi"}, namespace="/ai", callback=True) is None
        ack = sio.emit("assistant", {"prompt": controls(chunks=2), "stream_id": "x"}, namespace="/ai", callback=True)
        assert ack["stream_id"] == "x"
        bad = sio.emit("assistant", {"prompt": 5}, namespace="/ai", callback=True)
        assert bad["error"]["code"] == "invalid_request"
    finally:
        sio.disconnect(namespace="/ai")
