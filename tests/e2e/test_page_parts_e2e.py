"""The page with replies beyond text, in headless chromium against the real server and the fake upstream, over both
transports: reasoning streams into a Thinking section that folds once the answer starts (and opens again on a
click), a tool call shows its name and then its arguments as they stream, an image attached or pasted is sent
as an image part and shown with the prompt, and a reload in the middle of the reasoning picks it up exactly."""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Iterator

import pytest

from tests.browser import ChatPage
from tests.conftest import LiveServer
from tests.e2e.test_page_e2e import browser_context, expect, page_server, transport  # noqa: F401  (the fixtures)
from tests.e2e.test_page_resume_e2e import resume_server, stored_reply  # noqa: F401  (resume_server is a fixture)
from tests.fake_upstream import FakeUpstream, controls, script_reply


@pytest.fixture
def chat(browser_context, page_server: LiveServer, transport: str) -> Iterator[ChatPage]:  # noqa: F811
    """The page, open on the server, with `transport` picked."""
    page = browser_context.new_page()
    chat = ChatPage(page).open(page_server.url)
    chat.use(transport)
    yield chat
    page.close()


def png(width: int = 2, height: int = 2) -> bytes:
    """A small real PNG (grey pixels), which the server's magic-number check and the browser both accept."""
    def block(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + block(b"IHDR", header) + block(b"IDAT", zlib.compress(rows)) + block(b"IEND", b"")


def test_reasoning_shows_while_it_streams_then_folds_once_the_text_starts(chat: ChatPage, gate: str,
                                                                          fake_upstream: FakeUpstream) -> None:
    script = script_reply(("reasoning_content", "The user "), ("reasoning", "asks for a greeting."),
                          ("text", "Hello"), ("text", " there."))
    chat.send(controls(deltas=script, gate=gate, hold_after=2))
    thinking = chat.reply().get_by_test_id("thinking")
    expect(thinking).to_have_attribute("data-open", "true")  # held after the reasoning: it can only have streamed
    expect(thinking.get_by_test_id("reasoning")).to_have_text("The user asks for a greeting.")
    expect(thinking.locator("summary")).to_have_text("Thinking…")
    expect(chat.reply()).to_have_attribute("data-status", "streaming")
    fake_upstream.open_gate(gate)

    expect(chat.reply()).to_have_attribute("data-status", "done")
    expect(chat.reply_text()).to_have_text("Hello there.")
    expect(thinking).to_have_attribute("data-open", "false")
    expect(thinking.get_by_test_id("reasoning")).to_have_count(0)
    thinking.locator("summary").click()  # opened again by the reader
    expect(thinking.get_by_test_id("reasoning")).to_have_text("The user asks for a greeting.")
    thinking.locator("summary").click()
    expect(thinking).to_have_attribute("data-open", "false")


def test_a_text_only_reply_has_no_thinking_section(chat: ChatPage) -> None:
    chat.send(controls(text=["plain", " text"]))
    expect(chat.reply_text()).to_have_text("plain text")
    expect(chat.reply()).to_have_attribute("data-status", "done")
    expect(chat.reply().get_by_test_id("thinking")).to_have_count(0)
    expect(chat.reply().get_by_test_id("tool-call")).to_have_count(0)


def test_a_tool_call_shows_its_name_then_its_arguments_as_they_stream(chat: ChatPage, gate: str,
                                                                      fake_upstream: FakeUpstream) -> None:
    script = script_reply(("tool", 0, "call_1", "get_weather", ""), ("tool", 0, None, None, '{"city": '),
                          ("tool", 0, None, None, '"Oslo"}'))
    chat.send(controls(deltas=script, gate=gate, hold_after=2, finish_reason="tool_calls"))
    call = chat.reply().get_by_test_id("tool-call")
    expect(call).to_have_attribute("data-name", "get_weather")
    expect(call.get_by_test_id("tool-arguments")).to_have_text('{"city": ')  # held: the rest has not come
    fake_upstream.open_gate(gate)
    expect(chat.reply()).to_have_attribute("data-status", "done")
    expect(call.get_by_test_id("tool-arguments")).to_have_text('{"city": "Oslo"}')
    expect(call).to_contain_text("get_weather")


def test_an_image_attached_and_one_pasted_are_sent_as_image_parts(chat: ChatPage, fake_upstream: FakeUpstream) -> None:
    picked, pasted = png(2, 2), png(3, 1)
    chat.page.get_by_label("Image file").set_input_files(
        files=[{"name": "picked.png", "mimeType": "image/png", "buffer": picked}])
    chat.prompt.evaluate("""(box, b64) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], "pasted.png", { type: "image/png" }));
        box.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true }));
    }""", base64.b64encode(pasted).decode())
    expect(chat.page.get_by_test_id("attachment")).to_have_count(2)
    prompt = controls(text=["Two ", "grey images."])
    chat.send(prompt)

    expect(chat.reply()).to_have_attribute("data-status", "done")
    expect(chat.reply_text()).to_have_text("Two grey images.")
    expect(chat.page.get_by_test_id("attachment")).to_have_count(0)  # sent: the composer is empty again
    shown = chat.page.locator(".message.user").last.get_by_test_id("sent-image")
    expect(shown).to_have_count(2)
    assert shown.first.evaluate("(img) => img.complete && img.naturalWidth") == 2  # a real image, displayed

    sent = next(r for r in reversed(fake_upstream.requests) if "grey images" in str(r["messages"][-1]))
    assert sent["messages"][-1] == {"role": "user", "content": [
        {"type": "text", "text": prompt},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(picked).decode()}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(pasted).decode()}},
    ]}


def test_a_file_that_is_not_an_image_is_refused_in_plain_words(chat: ChatPage) -> None:
    chat.page.get_by_label("Image file").set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}])
    expect(chat.page.get_by_test_id("attach-problem")).to_have_text("notes.txt is not a PNG, JPEG, WebP or GIF image.")
    expect(chat.page.get_by_test_id("attachment")).to_have_count(0)


@pytest.fixture
def resume_chat(browser_context, resume_server: LiveServer, transport: str) -> Iterator[ChatPage]:  # noqa: F811
    """The page on a server that keeps a stream after its reader left (RESUME_GRACE), as in production."""
    page = browser_context.new_page()
    chat = ChatPage(page).open(resume_server.url)
    chat.use(transport)
    yield chat
    page.close()


def test_a_reload_in_the_middle_of_the_reasoning_picks_it_up_exactly(resume_chat: ChatPage, gate: str,
                                                                    fake_upstream: FakeUpstream) -> None:
    chat = resume_chat
    script = script_reply(("reasoning", "First, "), ("reasoning", "then "), ("reasoning", "last."),
                          ("text", "Done "), ("text", "thinking."))
    prompt = controls(deltas=script, gate=gate, hold_after=2)
    chat.send(prompt)
    thinking = chat.reply().get_by_test_id("thinking")
    expect(thinking.get_by_test_id("reasoning")).to_have_text("First, then ")  # held mid-reasoning
    stored_reply(chat.page, "reply.reasoning === 'First, then '")

    chat.page.reload()
    expect(chat.connection).to_have_attribute("data-state", "connected")
    expect(chat.reply()).to_have_attribute("data-status", "streaming")
    expect(thinking.get_by_test_id("reasoning")).to_have_text("First, then ")
    fake_upstream.open_gate(gate)

    expect(chat.reply()).to_have_attribute("data-status", "done")
    expect(chat.reply_text()).to_have_text("Done thinking.")
    thinking.locator("summary").click()
    expect(thinking.get_by_test_id("reasoning")).to_have_text("First, then last.")  # no gap, no repeat
    assert sum(1 for body in fake_upstream.requests if body["messages"][-1]["content"] == prompt) == 1
