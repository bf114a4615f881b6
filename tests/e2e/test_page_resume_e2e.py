"""The page picks a reply up again, in headless chromium, against the real server (gunicorn, gevent) and the fake
upstream: after a reload of the tab, and after nginx in front of two instances on Redis cuts every connection.
Also: Stop reaches the server now that a closed connection no longer stops a stream, New chat, and the history
the page sends (failed turns left out, trimmed to its budget).

The servers here keep a stream RESUME_GRACE seconds after its reader left (conftest's servers use 0), as in
production: so a test that sees the upstream closed well within that time proves an explicit stop did it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest

from tests.browser import ChatPage
from tests.conftest import LiveServer, start_server, stop_server, upstream_env
from tests.e2e.test_page_e2e import TRANSPORTS, browser_context, expect  # noqa: F401  (browser_context is a fixture)
from tests.fake_upstream import FakeUpstream, controls

GRACE = 30  # s: far longer than any wait below, so only an explicit stop closes the upstream in time
STOPPED_WITHIN = 10  # s: how long a stop may take to close the upstream, well within GRACE
CONVERSATION_KEY = "chat-relay.conversation"  # frontend/src/chatStorage.js
HISTORY_BUDGET = 12_000  # characters: frontend/src/chatState.js HISTORY_BUDGET.chars (README, "The web page")

# Records whether a reply ever showed "Reconnecting…", however briefly: installed before the page's own scripts
# on every load of the tab, so no poll can miss it.
WATCH_RECONNECTING = """
new MutationObserver((records) => {
  for (const record of records) for (const node of record.addedNodes) {
    if (node.nodeType === 1 && (node.matches('[data-testid="reconnecting"]')
        || node.querySelector('[data-testid="reconnecting"]'))) window.__sawReconnecting = true;
  }
}).observe(document, { childList: true, subtree: true });
"""


def words(count: int) -> str:
    return " ".join(f"w{i}" for i in range(count))


def held(gate: str, chunks: int = 10, hold_after: int = 4) -> str:
    """A reply of `chunks` words that stops after `hold_after` until the gate opens (heartbeats meanwhile)."""
    return controls(chunks=chunks, gate=gate, hold_after=hold_after, heartbeat=0.3)


def wait_until(predicate: Callable[[], bool], timeout: float = 10) -> bool:
    """Await a condition that offers no event to wait on (a log line, a counter on another server)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def asked(fake: FakeUpstream, prompt: str) -> int:
    """How many upstream requests ended with this prompt: 1 means the page never started it again."""
    return sum(1 for body in fake.requests if body["messages"][-1]["content"] == prompt)


def stored_reply(page, condition: str = "true") -> dict:
    """The last reply as the tab keeps it, once `condition` (JavaScript, of `reply`) holds: the page saves the
    conversation at most every 250 ms, so a test awaits what it expects there rather than reading it once."""
    script = f"""() => {{
        const raw = sessionStorage.getItem({json.dumps(CONVERSATION_KEY)});
        const reply = raw === null ? undefined : JSON.parse(raw).messages.at(-1);
        return reply !== undefined && reply.role === "assistant" && ({condition}) ? reply : null;
    }}"""
    return page.wait_for_function(script).json_value()


@pytest.fixture(scope="module")
def resume_server(fake_upstream: FakeUpstream, tmp_path_factory) -> Iterator[LiveServer]:
    log_path = tmp_path_factory.mktemp("page-resume-server") / "server.log"
    server = start_server("gevent", {**upstream_env(fake_upstream), "RESUME_GRACE": str(GRACE)}, log_path)
    yield server
    stop_server(server)


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def chat(browser_context, resume_server: LiveServer, transport: str) -> Iterator[ChatPage]:  # noqa: F811
    page = browser_context.new_page()
    page.add_init_script(WATCH_RECONNECTING)
    chat = ChatPage(page).open(resume_server.url)
    chat.use(transport)
    yield chat
    page.close()


def saw_reconnecting(chat: ChatPage) -> bool:
    return chat.page.evaluate("() => window.__sawReconnecting === true")


# A reload.

def test_a_reload_mid_reply_picks_it_up_with_the_exact_text(chat: ChatPage, transport: str, gate: str,
                                                           fake_upstream: FakeUpstream) -> None:
    earlier = controls(text=["earlier answer"])
    chat.send(earlier)
    expect(chat.reply()).to_have_attribute("data-status", "done")
    prompt = held(gate)
    chat.send(prompt)
    expect(chat.reply_text()).to_have_text(words(4))  # held by the gate: the reply is mid-stream
    assert stored_reply(chat.page, "reply.content !== ''")["transport"] == transport

    chat.page.reload()
    expect(chat.connection).to_have_attribute("data-state", "connected")
    # The conversation is back, the running reply with the text it had, and it is being picked up.
    expect(chat.page.locator(".message.user .bubble")).to_have_text([earlier, prompt])
    expect(chat.reply_text(0)).to_have_text("earlier answer")
    expect(chat.reply_text()).to_have_text(words(4))
    expect(chat.reply()).to_have_attribute("data-status", "streaming")
    assert saw_reconnecting(chat)

    fake_upstream.open_gate(gate)
    expect(chat.reply()).to_have_attribute("data-status", "done")
    expect(chat.reply_text()).to_have_text(words(10))  # no gap, no repeat
    expect(chat.reply().get_by_test_id("reconnecting")).to_have_count(0)
    assert asked(fake_upstream, prompt) == 1, "the reply was generated again instead of resumed"
    assert "resumeToken" not in stored_reply(chat.page, "reply.status === 'done'")  # an ended reply keeps none


def test_a_reload_after_the_reply_ended_shows_it_as_it_ended(chat: ChatPage, fake_upstream: FakeUpstream) -> None:
    chat.send(controls(text=["all", " of it"], finish_reason="length"))
    expect(chat.reply()).to_have_attribute("data-status", "done")
    requests = len(fake_upstream.requests)
    chat.page.reload()
    expect(chat.connection).to_have_attribute("data-state", "connected")
    expect(chat.reply_text()).to_have_text("all of it")
    expect(chat.reply().get_by_test_id("finish")).to_contain_text("length limit")
    assert len(fake_upstream.requests) == requests and not saw_reconnecting(chat)


# Stop.

def test_stop_reaches_the_server_although_a_closed_connection_no_longer_stops(
        chat: ChatPage, transport: str, resume_server: LiveServer, fake_upstream: FakeUpstream) -> None:
    aborted = fake_upstream.aborted
    chat.send(controls(chunks=3000, delay=0.02))
    expect(chat.reply_text()).to_contain_text("w3 ")
    stream_id = stored_reply(chat.page, "reply.status === 'streaming'")["streamId"]
    chat.page.get_by_role("button", name="Stop").click()

    expect(chat.reply()).to_have_attribute("data-status", "stopped")
    assert fake_upstream.wait_for(lambda f: f.aborted > aborted, timeout=STOPPED_WITHIN), "the upstream runs on"
    assert wait_until(lambda: f"stream_id={stream_id} " in resume_server.log())
    end = next(line for line in resume_server.log().splitlines() if f"stream_end stream_id={stream_id} " in line)
    assert "cause=stopped" in end, end  # the stop itself, not the grace period's client_gone
    assert "w2999" not in chat.reply_text().inner_text()


# New chat, and the history sent.

def test_new_chat_starts_over_and_sends_no_history(chat: ChatPage, fake_upstream: FakeUpstream) -> None:
    new_chat = chat.page.get_by_role("button", name="New chat")
    expect(new_chat).to_be_disabled()  # nothing to start over from
    chat.send(controls(text=["first answer"]))
    expect(chat.reply()).to_have_attribute("data-status", "done")
    new_chat.click()

    expect(chat.page.get_by_test_id("reply")).to_have_count(0)
    expect(chat.page.get_by_text("Ask something to start a conversation.")).to_be_visible()
    expect(new_chat).to_be_disabled()
    fresh = controls(text=["fresh"])
    chat.send(fresh)
    expect(chat.reply_text()).to_have_text("fresh")
    assert fake_upstream.requests[-1]["messages"] == [{"role": "user", "content": fresh}]


def test_new_chat_stops_a_running_reply_and_is_kept_across_a_reload(chat: ChatPage, gate: str,
                                                                   fake_upstream: FakeUpstream) -> None:
    aborted = fake_upstream.aborted
    chat.send(held(gate))
    expect(chat.reply_text()).to_have_text(words(4))
    chat.page.get_by_role("button", name="New chat").click()
    expect(chat.page.get_by_test_id("reply")).to_have_count(0)
    expect(chat.page.get_by_role("button", name="Send")).to_be_visible()  # nothing is running any more
    assert fake_upstream.wait_for(lambda f: f.aborted > aborted, timeout=STOPPED_WITHIN), "the reply was not stopped"

    chat.page.reload()
    expect(chat.connection).to_have_attribute("data-state", "connected")
    expect(chat.page.get_by_test_id("reply")).to_have_count(0)
    fake_upstream.open_gate(gate)


def test_a_failed_turn_is_not_sent_again(chat: ChatPage, fake_upstream: FakeUpstream) -> None:
    good = controls(text=["good answer"])
    chat.send(good)
    expect(chat.reply()).to_have_attribute("data-status", "done")
    for fault in ("500", "error_event"):  # refused before any text; failed after some
        chat.send(controls(fault=fault, chunks=3))
        expect(chat.reply()).to_have_attribute("data-status", "error")
    after = controls(text=["fine again"])
    chat.send(after)
    expect(chat.reply_text()).to_have_text("fine again")
    assert fake_upstream.requests[-1]["messages"] == [
        {"role": "user", "content": good},
        {"role": "assistant", "content": "good answer"},
        {"role": "user", "content": after},
    ]


def test_a_long_conversation_is_trimmed_to_the_budget_oldest_turns_first(chat: ChatPage,
                                                                          fake_upstream: FakeUpstream) -> None:
    filler = "x" * (HISTORY_BUDGET // 3)  # three such prompts and their replies are over the budget
    prompts = [controls(text=[f"answer {i}"], filler=filler) for i in range(3)]
    for prompt in prompts[:2]:
        chat.send(prompt)
        expect(chat.reply()).to_have_attribute("data-status", "done")
    chat.send(prompts[2])
    expect(chat.reply_text()).to_have_text("answer 2")
    sent = fake_upstream.requests[-1]["messages"]
    assert sent == [
        {"role": "user", "content": prompts[1]},
        {"role": "assistant", "content": "answer 1"},
        {"role": "user", "content": prompts[2]},
    ]
    assert sum(len(m["content"]) for m in sent) <= HISTORY_BUDGET


# nginx in front of two instances on Redis.

@pytest.fixture(scope="module")
def cluster(fake_upstream: FakeUpstream, tmp_path_factory) -> Iterator:
    from tests.cluster import running_cluster

    env = {**upstream_env(fake_upstream), "RESUME_GRACE": str(GRACE)}
    with running_cluster(env, tmp_path_factory.mktemp("page-cluster")) as cluster:
        yield cluster


@pytest.fixture
def cluster_chat(browser_context, cluster, transport: str) -> Iterator[ChatPage]:  # noqa: F811
    page = browser_context.new_page()
    page.add_init_script(WATCH_RECONNECTING)
    chat = ChatPage(page).open(cluster.url)
    chat.use(transport)
    yield chat
    page.close()


def test_nginx_cuts_every_connection_mid_reply_and_the_reply_completes(cluster_chat: ChatPage, cluster, gate: str,
                                                                      fake_upstream: FakeUpstream) -> None:
    chat = cluster_chat
    prompt = held(gate)
    chat.send(prompt)
    expect(chat.reply_text()).to_have_text(words(4))

    cluster.nginx.stop()  # its fast shutdown cuts every connection, the websocket and the HTTP stream
    expect(chat.reply().get_by_test_id("reconnecting")).to_have_text("Reconnecting…")
    expect(chat.reply()).to_have_attribute("data-status", "streaming")  # not ended: waiting to resume
    expect(chat.reply_text()).to_have_text(words(4))
    cluster.nginx.start()
    expect(chat.connection).to_have_attribute("data-state", "connected", timeout=30_000)

    fake_upstream.open_gate(gate)
    expect(chat.reply()).to_have_attribute("data-status", "done")
    expect(chat.reply_text()).to_have_text(words(10))  # no gap, no repeat, whichever instance it resumed on
    expect(chat.reply().get_by_test_id("reconnecting")).to_have_count(0)
    assert asked(fake_upstream, prompt) == 1


def test_the_death_of_the_producing_instance_ends_the_reply_with_its_text_and_why(
        cluster_chat: ChatPage, cluster, transport: str) -> None:
    chat = cluster_chat
    chat.send(controls(chunks=1000, delay=0.05))
    expect(chat.reply_text()).to_contain_text("w5 ")
    producer = cluster.producing()
    cluster.kill(producer)  # kill -9: no terminal event, no goodbye
    try:
        error = chat.reply().get_by_test_id("error")
        expect(error).to_have_attribute("data-code", "interrupted", timeout=30_000)
        expect(error).to_contain_text("The reply was cut off: the server writing it stopped.")  # plain words
        shown = chat.reply_text().inner_text().split()
        assert shown == [f"w{i}" for i in range(len(shown))] and len(shown) >= 6  # the kept text, once, in order
    finally:
        cluster.revive(producer)
