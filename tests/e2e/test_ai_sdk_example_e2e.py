"""examples/ai-sdk/, the page that uses the AI SDK's `useChat`, in headless chromium against the example's own server
(the relay mounted by ChatRelay beside the page, as `make example-ai-sdk` runs it) and the fake upstream: it streams
a reply, shows reasoning and a tool call, resumes a running reply after a reload, and stops one (after a reload too),
with each of its transports: the relay's Socket.IO chat transport (frontend/src/socketChatTransport.js) and the AI
SDK's own DefaultChatTransport on POST /api/chat. In both async modes: the example serves with its mode's own server.

The server keeps a stream RESUME_GRACE seconds after its reader left, as in production: a reload can pick it up, and
an upstream closed well within that time after Stop proves that the stop itself reached the relay.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
import requests

from tests.conftest import MODES, ROOT, LiveServer, free_port, launch, stop_server, upstream_env
from tests.e2e.test_page_e2e import browser_context, expect  # noqa: F401  (browser_context is a fixture)
from tests.fake_upstream import FakeUpstream, controls, script_reply

EXAMPLE = ROOT / "examples" / "ai-sdk"
GRACE = 30  # s: far longer than any wait below, so only an explicit stop closes the upstream in time
STOPPED_WITHIN = 10  # s


def words(count: int, start: int = 0) -> str:
    return " ".join(f"w{i}" for i in range(start, count))


@pytest.fixture(scope="module", params=MODES)
def example_server(request: pytest.FixtureRequest, fake_upstream: FakeUpstream,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The example's server, run as `make example-ai-sdk` runs it once the page is built, in each async mode."""
    if not (EXAMPLE / "dist" / "index.html").is_file():
        pytest.fail("the example page is not built: run `make example-ai-sdk` or `make test`, which build it")
    mode, port = request.param, free_port()
    log_path = tmp_path_factory.mktemp(f"ai-sdk-{mode}") / "server.log"
    # PYTHONPATH: this checkout's chat_relay, as `make` installs it (editable) for the checkout it runs in.
    env = {**upstream_env(fake_upstream), "HOST": "127.0.0.1", "PORT": str(port), "ASYNC_MODE": mode,
           "RESUME_GRACE": str(GRACE), "PYTHONPATH": str(ROOT)}
    server = launch(f"ai-sdk-{mode}", [sys.executable, str(EXAMPLE / "server.py")], port, env, log_path)
    assert "text/html" in requests.get(server.url, timeout=5).headers["Content-Type"]
    yield server
    stop_server(server)


class ExamplePage:
    """The example's controls and what it shows, found as a user finds them."""

    def __init__(self, page, transport: str) -> None:
        self.page = page
        self.transport = transport

    def open(self, url: str) -> ExamplePage:
        self.page.goto(url)
        self.page.get_by_label("HTTP" if self.transport == "http" else "Socket.IO", exact=True).check()
        self.ready()
        return self

    def ready(self) -> None:
        """Connected (Socket.IO), and useChat idle: its resume on load has settled."""
        if self.transport == "socket":
            expect(self.page.get_by_test_id("connection")).to_have_attribute("data-state", "connected")
        expect(self.chat).to_have_attribute("data-status", "ready")

    @property
    def chat(self):
        return self.page.get_by_test_id("chat")

    def send(self, prompt: str) -> None:
        box = self.page.get_by_label("Message")
        box.fill(prompt)
        box.press("Enter")

    def reply(self):
        return self.page.locator('[data-testid="message"][data-role="assistant"]').last

    def reply_text(self):
        return self.reply().get_by_test_id("text")


@pytest.fixture(params=["socket", "http"])  # the page's toggle
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def example(browser_context, example_server: LiveServer, transport: str) -> Iterator[ExamplePage]:  # noqa: F811
    page = browser_context.new_page()
    yield ExamplePage(page, transport).open(example_server.url)
    page.close()


def asked(fake: FakeUpstream, prompt: str) -> int:
    """How many upstream requests ended with this prompt: 1 means nothing started it again."""
    return sum(1 for body in fake.requests if body["messages"][-1]["content"] == prompt)


def test_a_reply_streams_into_the_page_and_ends_exact(example: ExamplePage, gate: str,
                                                      fake_upstream: FakeUpstream) -> None:
    prompt = controls(text=["Hello", " from", " useChat", " — naïve 日本 😀."], gate=gate, hold_after=2,
                      heartbeat=0.3)
    example.send(prompt)
    expect(example.reply_text()).to_have_text("Hello from")  # held by the gate: it can only have streamed
    expect(example.chat).to_have_attribute("data-status", "streaming")
    fake_upstream.open_gate(gate)
    expect(example.chat).to_have_attribute("data-status", "ready")
    expect(example.reply_text()).to_have_text("Hello from useChat — naïve 日本 😀.")
    assert fake_upstream.requests[-1]["messages"][-1] == {"role": "user", "content": prompt}


def test_reasoning_and_a_tool_call_show_as_they_stream(example: ExamplePage, gate: str,
                                                       fake_upstream: FakeUpstream) -> None:
    script = script_reply(("reasoning_content", "The user wants "), ("reasoning", "the weather."),
                          ("text", "Let me check."), ("tool", 0, "call_1", "get_weather", '{"city": '),
                          ("tool", 0, None, None, '"Oslo"}'))
    example.send(controls(deltas=script, gate=gate, hold_after=4, heartbeat=0.3,
                          finish_reason="tool_calls"))
    call = example.reply().get_by_test_id("tool-call")
    expect(call).to_have_attribute("data-name", "get_weather")
    expect(call).to_have_attribute("data-state", "input-streaming")  # held: the arguments are not whole yet
    expect(example.reply().get_by_test_id("reasoning")).to_have_text("The user wants the weather.")
    fake_upstream.open_gate(gate)
    expect(call).to_have_attribute("data-state", "input-available")
    expect(call.get_by_test_id("tool-input")).to_have_text('{"city":"Oslo"}')
    expect(example.reply_text()).to_have_text("Let me check.")
    expect(example.chat).to_have_attribute("data-status", "ready")


def test_a_reload_mid_reply_resumes_it_with_the_exact_text(example: ExamplePage, gate: str,
                                                           fake_upstream: FakeUpstream) -> None:
    earlier = controls(text=["earlier answer"])
    example.send(earlier)
    expect(example.chat).to_have_attribute("data-status", "ready")
    prompt = controls(chunks=10, gate=gate, hold_after=4, heartbeat=0.3)
    example.send(prompt)
    expect(example.reply_text()).to_have_text(words(4))  # held mid-reply

    example.page.reload()
    # The conversation is back, and useChat's resume picks the running reply up from the relay.
    user = example.page.locator('[data-testid="message"][data-role="user"]')
    expect(user).to_have_text([earlier, prompt])
    expect(example.reply_text()).to_have_text(words(4))
    expect(example.chat).to_have_attribute("data-status", "streaming")
    fake_upstream.open_gate(gate)
    expect(example.chat).to_have_attribute("data-status", "ready")
    replies = example.page.locator('[data-testid="message"][data-role="assistant"]')
    expect(replies).to_have_count(2)
    expect(replies.first.get_by_test_id("text")).to_have_text("earlier answer")
    expect(example.reply_text()).to_have_text(words(10))  # no gap, no repeat
    assert asked(fake_upstream, prompt) == 1, "the reply was generated again instead of resumed"

    example.page.reload()  # ended: nothing to resume, the conversation as it ended
    example.ready()
    expect(example.reply_text()).to_have_text(words(10))
    assert asked(fake_upstream, prompt) == 1


def test_stop_stops_the_reply_at_the_relay(example: ExamplePage, example_server: LiveServer,
                                           fake_upstream: FakeUpstream) -> None:
    aborted = fake_upstream.aborted
    prompt = controls(chunks=3000, delay=0.02)
    example.send(prompt)
    expect(example.reply_text()).to_contain_text("w3 ")
    example.page.get_by_role("button", name="Stop").click()
    expect(example.chat).to_have_attribute("data-status", "ready")
    assert fake_upstream.wait_for(lambda f: f.aborted > aborted, timeout=STOPPED_WITHIN), "the upstream runs on"
    assert "w2999" not in example.reply_text().inner_text()
    stopped = [line for line in example_server.log().splitlines() if "stream_end" in line and "cause=stopped" in line]
    assert stopped, "no stream ended by a stop"


def test_stop_after_a_reload_stops_the_resumed_reply(example: ExamplePage, fake_upstream: FakeUpstream) -> None:
    aborted = fake_upstream.aborted
    example.send(controls(chunks=3000, delay=0.02))
    expect(example.reply_text()).to_contain_text("w3 ")
    example.page.reload()
    expect(example.chat).to_have_attribute("data-status", "streaming")
    expect(example.reply_text()).to_contain_text("w6 ")
    example.page.get_by_role("button", name="Stop").click()
    expect(example.chat).to_have_attribute("data-status", "ready")
    assert fake_upstream.wait_for(lambda f: f.aborted > aborted, timeout=STOPPED_WITHIN), "the upstream runs on"


@pytest.mark.parametrize("transport", ["socket"])
def test_socketio_reconnects_mid_reply_and_resumes_from_its_cursor(example: ExamplePage, gate: str,
                                                                   fake_upstream: FakeUpstream) -> None:
    """The network drops under a running reply (DevTools' offline mode closes the websocket) and comes back:
    socket.io-client reconnects, the transport resumes from the last chunk it got, and the same message goes on."""
    prompt = controls(chunks=10, gate=gate, hold_after=4, heartbeat=0.3)
    example.send(prompt)
    expect(example.reply_text()).to_have_text(words(4))
    devtools = example.page.context.new_cdp_session(example.page)
    network = {"latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    devtools.send("Network.enable")
    devtools.send("Network.emulateNetworkConditions", {**network, "offline": True})
    expect(example.page.get_by_test_id("connection")).to_have_attribute("data-state", "disconnected")
    fake_upstream.open_gate(gate)  # the rest is written while the page is away; the relay keeps it
    devtools.send("Network.emulateNetworkConditions", {**network, "offline": False})
    expect(example.page.get_by_test_id("connection")).to_have_attribute("data-state", "connected")
    expect(example.chat).to_have_attribute("data-status", "ready")
    expect(example.reply_text()).to_have_text(words(10))  # no gap, no repeat
    expect(example.page.locator('[data-testid="message"][data-role="assistant"]')).to_have_count(1)
    assert asked(fake_upstream, prompt) == 1
