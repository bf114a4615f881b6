"""The web page in headless chromium, against the real server (gunicorn, gevent) and the fake upstream.

Every test runs for both transports: Socket.IO and the HTTP NDJSON stream.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator

import pytest
import requests

from tests.browser import ChatPage, chromium, require_chromium
from tests.conftest import LiveServer, free_port, launch, server_command, start_server, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls
from tests.waits import until

TRANSPORTS = ["socket", "http"]
WAIT = 15_000  # ms: generous, since the machine is shared; every wait ends as soon as its condition holds


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory) -> Iterator:
    require_chromium()
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=WAIT)
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        context.set_default_timeout(WAIT)
        yield context


@pytest.fixture(scope="module")
def page_server(fake_upstream: FakeUpstream, tmp_path_factory) -> Iterator[LiveServer]:
    """The relay as `make run` starts it: gunicorn with gunicorn.conf.py, serving the built page."""
    log_path = tmp_path_factory.mktemp("page-server") / "server.log"
    server = start_server("gevent", upstream_env(fake_upstream), log_path)
    if "text/html" not in requests.get(server.url, timeout=5).headers["Content-Type"]:
        stop_server(server)
        pytest.fail("the page is not built: run `make build` (make test does it)")
    yield server
    stop_server(server)


@pytest.fixture
def chat(browser_context, page_server: LiveServer, transport: str) -> Iterator[ChatPage]:
    page = browser_context.new_page()
    chat = ChatPage(page).open(page_server.url)
    chat.use(transport)
    yield chat
    page.close()


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def test_reply_appears_while_streaming_and_ends_exact(chat: ChatPage, gate: str, fake_upstream: FakeUpstream) -> None:
    parts = ["Hello", " from", " the", " relay", ", ", "**in", " bold**", " — naïve 日本 😀."]
    completed = fake_upstream.completed
    chat.send(controls(text=parts, gate=gate, hold_after=2))

    # The fake holds the rest until the gate opens: this text can only have come while streaming.
    expect(chat.reply_text()).to_have_text("Hello from")
    expect(chat.reply()).to_have_attribute("data-status", "streaming")
    assert fake_upstream.completed == completed
    fake_upstream.open_gate(gate)

    expect(chat.reply()).to_have_attribute("data-status", "done")
    expect(chat.reply_text()).to_have_text("Hello from the relay, in bold — naïve 日本 😀.")
    expect(chat.reply_text().locator("strong")).to_have_text("in bold")  # Markdown, rendered
    expect(chat.page.get_by_test_id("conversation")).to_have_attribute("aria-live", "polite")


def test_conversation_is_sent_as_messages_with_the_picked_model(chat: ChatPage, fake_upstream: FakeUpstream) -> None:
    expect(chat.models.locator("option")).to_have_text(["fake-model", "fake-model-2", "not-on-upstream"])
    expect(chat.models).to_have_value("fake-model")
    chat.send(controls(text=["first answer"]))
    expect(chat.reply()).to_have_attribute("data-status", "done")

    chat.models.select_option("fake-model-2")
    second = controls(text=["second answer"], finish_reason="length")
    chat.send(second)
    expect(chat.reply()).to_have_attribute("data-status", "done")
    expect(chat.reply_text()).to_have_text("second answer")
    expect(chat.reply().get_by_test_id("finish")).to_contain_text("length limit")

    sent = next(r for r in reversed(fake_upstream.requests) if r["messages"][-1]["content"] == second)
    assert sent["model"] == "fake-model-2"
    assert sent["messages"] == [
        {"role": "user", "content": controls(text=["first answer"])},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": second},
    ]


def test_raw_html_in_a_reply_is_not_rendered(chat: ChatPage) -> None:
    parts = ["<b>bold?</b> ", "<img src=x onerror=\"window.pwned=1\">", "<script>window.pwned=2</script>", "plain"]
    chat.send(controls(text=parts))
    expect(chat.reply()).to_have_attribute("data-status", "done")
    expect(chat.reply_text()).to_contain_text("plain")
    assert chat.reply_text().locator("b, img, script").count() == 0
    assert chat.page.evaluate("() => window.pwned") is None


def test_shift_enter_is_a_new_line_and_enter_sends(chat: ChatPage) -> None:
    chat.prompt.fill("first line")
    chat.prompt.press("Shift+Enter")
    chat.prompt.press_sequentially("second line")
    expect(chat.prompt).to_have_value("first line\nsecond line")
    expect(chat.page.get_by_test_id("reply")).to_have_count(0)
    chat.prompt.press("Enter")
    expect(chat.page.locator(".message.user .bubble")).to_have_text("first line\nsecond line")
    expect(chat.reply()).to_have_attribute("data-status", "done")
    expect(chat.prompt).to_have_value("")


def test_stop_halts_the_reply_and_aborts_the_upstream(chat: ChatPage, transport: str, page_server: LiveServer,
                                                      fake_upstream: FakeUpstream) -> None:
    aborted = fake_upstream.aborted
    chat.send(controls(chunks=3000, delay=0.02))
    expect(chat.reply_text()).to_contain_text("w3 ")
    if transport == "http":
        chat.prompt.press("Escape")  # the keyboard way
    else:
        chat.page.get_by_role("button", name="Stop").click()

    expect(chat.reply().get_by_test_id("stopped")).to_have_text("Stopped.")
    expect(chat.reply()).to_have_attribute("data-status", "stopped")
    assert fake_upstream.wait_for(lambda f: f.aborted > aborted, timeout=10), "the upstream was not aborted"
    assert until(lambda: page_server.streams() == 0, timeout=10)
    shown = chat.reply_text().inner_text()
    assert shown.startswith("w0 w1 w2 w3") and "w2999" not in shown
    expect(chat.page.get_by_role("button", name="Send")).to_be_visible()  # ready for the next prompt


@pytest.mark.parametrize(("fault", "message"), [
    ("500", "The model's server failed to answer."),              # before any text
    ("error_event", "The model's server failed to answer."),      # after some text
])
def test_upstream_error_shows_its_message(chat: ChatPage, fault: str, message: str) -> None:
    chat.send(controls(fault=fault, chunks=3))
    error = chat.reply().get_by_test_id("error")
    expect(error).to_contain_text(message)
    expect(error).to_contain_text("The model failed.")  # the code, in plain words
    expect(error).to_have_attribute("data-code", "upstream_error")
    expect(chat.reply()).to_have_attribute("data-status", "error")


def test_refused_request_shows_the_servers_reason(chat: ChatPage) -> None:
    chat.models.select_option("not-on-upstream")
    chat.send("hello")
    error = chat.reply().get_by_test_id("error")
    expect(error).to_have_attribute("data-code", "upstream_error")
    expect(error).to_contain_text("The model is not available on the upstream server.")


def quit_server(server: LiveServer) -> None:
    """Ctrl-C, as a user stops `make run` to restart it: gunicorn's quick shutdown."""
    server.process.send_signal(signal.SIGINT)
    try:
        server.process.wait(timeout=30)
    except Exception:
        stop_server(server)
        raise


def test_server_restart_shows_reconnecting_then_connected(browser_context, transport: str, fake_upstream: FakeUpstream,
                                                          tmp_path) -> None:
    port = free_port()
    env = {**upstream_env(fake_upstream), "HOST": "127.0.0.1", "PORT": str(port), "ASYNC_MODE": "gevent"}

    def start(name: str) -> LiveServer:
        return launch("gevent", server_command("gevent"), port, env, tmp_path / f"{name}.log")

    server = start("first")
    page = browser_context.new_page()
    try:
        chat = ChatPage(page).open(server.url)
        chat.use(transport)
        quit_server(server)
        expect(chat.connection).to_have_attribute("data-state", "reconnecting")
        expect(chat.connection).to_have_text("Reconnecting…")
        server = start("second")
        expect(chat.connection).to_have_attribute("data-state", "connected", timeout=30_000)
        chat.send(controls(text=["back", " again"]))
        expect(chat.reply_text()).to_have_text("back again")
    finally:
        page.close()
        quit_server(server)


def test_page_is_served_same_origin_with_models(page_server: LiveServer) -> None:
    index = requests.get(page_server.url, timeout=5)
    assert index.status_code == 200 and index.headers["Cache-Control"] == "no-cache"
    assert "Access-Control-Allow-Origin" not in index.headers
    models = requests.get(f"{page_server.url}/models", timeout=5)
    assert models.json() == {"models": ["fake-model", "fake-model-2", "not-on-upstream"], "default": "fake-model"}
    assert json.loads(models.text)  # plain JSON, for any client
