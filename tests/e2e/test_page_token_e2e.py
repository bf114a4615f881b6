"""The web page against a server that requires access tokens (AUTH_TOKENS), in headless chromium.

The real server (gunicorn, gevent) refuses the page's Socket.IO connection and its HTTP streams
until the user types a token the server knows; both transports then stream with it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser import ChatPage
from tests.conftest import API_KEY, LiveServer, start_server, stop_server, upstream_env
from tests.e2e.test_page_e2e import browser_context, expect  # noqa: F401  (browser_context is a fixture)
from tests.fake_upstream import FakeUpstream, controls

TOKEN = "tok-page-5c1e9b27d0"
OTHER_TOKEN = "tok-other-a4f2"
WRONG_TOKEN = "tok-wrong-77e3d1"
SECRETS = [TOKEN, OTHER_TOKEN, WRONG_TOKEN]
TOKEN_KEY = "chat-relay.access-token"  # frontend/src/accessToken.js; the conversation has its own key


@pytest.fixture(scope="module")
def token_server(fake_upstream: FakeUpstream, tmp_path_factory) -> Iterator[LiveServer]:
    """The relay as `make run` starts it, with AUTH_TOKENS set."""
    log_path = tmp_path_factory.mktemp("page-token-server") / "server.log"
    server = start_server("gevent", {**upstream_env(fake_upstream), "AUTH_TOKENS": f"{OTHER_TOKEN},{TOKEN}"}, log_path)
    yield server
    stop_server(server)
    log = server.log()
    assert "POST /message/stream" in log, "no requests logged, so the leak check would prove nothing"
    for secret in [*SECRETS, API_KEY]:
        assert secret not in log, "a token or the API key reached the server log"
    assert "Traceback" not in log  # refused connects close the websocket probe: that is no error


@pytest.fixture
def page(browser_context, token_server: LiveServer) -> Iterator:  # noqa: F811
    page = browser_context.new_page()
    page.goto(token_server.url)
    yield page
    page.close()


def token_field(page):
    return page.get_by_label("Access token", exact=True)


def enter_token(page, token: str) -> None:
    """As a keyboard user does: type into the field, press Enter."""
    field = token_field(page)
    field.fill(token)
    field.press("Enter")


def stored(page, storage: str) -> dict[str, str]:
    return page.evaluate(f"() => Object.fromEntries(Object.entries({storage}))")


def send_and_expect(chat: ChatPage, transport: str, parts: list[str]) -> None:
    chat.use(transport)
    chat.send(controls(text=parts))
    expect(chat.reply()).to_have_attribute("data-status", "done")
    expect(chat.reply_text()).to_have_text("".join(parts))


def test_token_needed_then_wrong_then_right_streams_over_both_transports(page, token_server: LiveServer) -> None:
    chat = ChatPage(page)
    expect(chat.connection).to_have_attribute("data-state", "token_needed")
    expect(chat.connection).to_have_text("Token needed")
    expect(page.get_by_role("heading", name="This server needs an access token")).to_be_visible()
    field = token_field(page)
    expect(field).to_have_attribute("type", "password")
    expect(field).to_be_focused()  # the keyboard user can type at once
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    expect(page.get_by_test_id("token-error")).to_have_count(0)  # no token sent yet, so nothing was wrong

    enter_token(page, WRONG_TOKEN)
    expect(page.get_by_test_id("token-error")).to_have_text("The token is not valid.")
    expect(chat.connection).to_have_attribute("data-state", "token_needed")
    expect(field).to_be_visible()
    expect(field).to_be_focused()
    assert WRONG_TOKEN not in stored(page, "sessionStorage").values(), "a refused token was kept"

    field.fill(TOKEN)
    page.keyboard.press("Tab")  # to the Connect button, and press it with the keyboard
    expect(page.get_by_role("button", name="Connect")).to_be_focused()
    page.keyboard.press("Enter")
    expect(chat.connection).to_have_attribute("data-state", "connected")
    expect(page.get_by_test_id("token-form")).to_have_count(0)

    send_and_expect(chat, "socket", ["Hello", " over", " Socket.IO"])
    send_and_expect(chat, "http", ["Hello", " over", " HTTP"])  # sent with Authorization: Bearer
    kept = stored(page, "sessionStorage")
    assert kept[TOKEN_KEY] == TOKEN
    assert not [key for key, value in kept.items() if TOKEN in value and key != TOKEN_KEY], "the token was kept twice"
    lasting = stored(page, "localStorage")  # the transport toggle's choice is kept there, and nothing else
    assert set(lasting) <= {"chat-relay.transport"}, lasting
    assert not [key for key, value in lasting.items() if TOKEN in value], "the token must not outlive the tab"

    page.reload()  # the same tab keeps its token
    expect(chat.connection).to_have_attribute("data-state", "connected")
    expect(page.get_by_test_id("token-form")).to_have_count(0)
    send_and_expect(chat, "http", ["still", " in"])


def test_an_http_stream_refused_for_its_token_asks_again(page, token_server: LiveServer) -> None:
    chat = ChatPage(page)
    enter_token(page, OTHER_TOKEN)
    expect(chat.connection).to_have_attribute("data-state", "connected")

    # The token goes bad while the socket stays connected (as when an operator rotates AUTH_TOKENS):
    # the next HTTP stream gets 401.
    page.evaluate("([k, t]) => sessionStorage.setItem(k, t)", [TOKEN_KEY, WRONG_TOKEN])
    chat.use("http")
    chat.send(controls(text=["never sent"]))
    error = chat.reply().get_by_test_id("error")
    expect(error).to_have_attribute("data-code", "unauthorized")
    expect(error).to_contain_text("This server needs an access token.")
    expect(page.get_by_test_id("token-error")).to_have_text("The token is not valid.")
    expect(chat.connection).to_have_attribute("data-state", "token_needed")

    enter_token(page, TOKEN)
    expect(chat.connection).to_have_attribute("data-state", "connected")
    send_and_expect(chat, "http", ["back", " with", " a token"])
    send_and_expect(chat, "socket", ["and", " the socket"])
