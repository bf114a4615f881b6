"""Take docs/screenshot.png: the page mid-stream, against the fake upstream. Run: python -m tests.page_screenshot."""

from __future__ import annotations

import argparse
import tempfile
import uuid
from pathlib import Path

from tests.browser import ChatPage, chromium
from tests.conftest import ROOT, start_server, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls

QUESTION_1 = "What does 42 signify, in brief?"
ANSWER_1 = [
    "In *The Hitchhiker's Guide to the Galaxy*, **42** is the ", "Answer to the Ultimate Question of ",
    "Life, the Universe, and Everything.\n\n", "The joke is that nobody knows what the ", "Question was.",
]
QUESTION_2 = "And in mathematics?"
ANSWER_2 = [
    "A few facts about 42:\n\n", "- It is a **pronic number**: `6 * 7`.\n", "- It is the ",
    "5th Catalan number.\n", "- It is the sum of the first six ", "even numbers: ", "2 + 4 + … + 12.\n",
]
HELD_AFTER = 5  # chunks of the second answer shown before the fake holds the stream


def relabel_last_prompt(chat: ChatPage, text: str) -> None:
    """Show the question in the user's bubble: the fake upstream takes its script as the prompt itself."""
    chat.page.locator(".message.user .bubble").last.evaluate("(el, text) => { el.textContent = text; }", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    args = parser.parse_args()
    from playwright.sync_api import expect

    gate = f"screenshot-{uuid.uuid4().hex}"
    with tempfile.TemporaryDirectory() as tmp, FakeUpstream(api_key=None) as fake:
        server = start_server("gevent", {**upstream_env(fake), "OPENAI_API_KEY": "unused"}, Path(tmp) / "server.log")
        try:
            with chromium(Path(tmp) / "profile", width=900, height=720) as context:
                chat = ChatPage(context.new_page()).open(server.url)
                chat.send(controls(text=ANSWER_1, delay=0.02))
                relabel_last_prompt(chat, QUESTION_1)
                expect(chat.reply()).to_have_attribute("data-status", "done", timeout=15_000)
                chat.send(controls(text=ANSWER_2, delay=0.02, gate=gate, hold_after=HELD_AFTER))
                relabel_last_prompt(chat, QUESTION_2)
                expect(chat.reply_text()).to_contain_text("the sum of the first six", timeout=15_000)
                chat.page.screenshot(path=str(args.out))
                fake.open_gate(gate)
                expect(chat.reply()).to_have_attribute("data-status", "done", timeout=15_000)
        finally:
            stop_server(server)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
