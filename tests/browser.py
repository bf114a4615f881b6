"""Debian's chromium driven by Playwright, and the chat page as a user sees it (e2e tests, screenshot)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# Playwright only drives the system's browser: it must never fetch one of its own.
os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def require_chromium() -> None:
    """Skip without chromium or Playwright locally, but fail in CI, where .ci/run installs both."""
    missing = None
    if not CHROMIUM.is_file():
        missing = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "the Python package playwright is missing (make installs requirements-dev.txt)"
    if missing and os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run: {missing}")
    if missing:
        pytest.skip(f"browser tests skipped: {missing}")


@contextmanager
def chromium(user_data_dir: Path, width: int = 1000, height: int = 760) -> Iterator:
    """A headless chromium with a fresh profile in user_data_dir; yields its browser context."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(user_data_dir), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
            viewport={"width": width, "height": height},
        )
        try:
            yield context
        finally:
            context.close()


class ChatPage:
    """The page's controls and what it shows, found the way a user finds them (labels, roles, test ids)."""

    def __init__(self, page) -> None:
        self.page = page
        self.prompt = page.get_by_label("Message")
        self.connection = page.get_by_test_id("connection")
        self.models = page.get_by_test_id("model")

    def open(self, url: str) -> ChatPage:
        from playwright.sync_api import expect

        self.page.goto(url)
        expect(self.connection).to_have_attribute("data-state", "connected", timeout=15_000)
        return self

    def use(self, transport: str) -> None:
        self.page.get_by_label("HTTP" if transport == "http" else "Socket.IO", exact=True).check()

    def send(self, prompt: str) -> None:
        self.prompt.fill(prompt)
        self.prompt.press("Enter")

    def reply(self, index: int = -1):
        replies = self.page.get_by_test_id("reply")
        return replies.last if index == -1 else replies.nth(index)

    def reply_text(self, index: int = -1):
        return self.reply(index).locator(".markdown")
