"""`make page-dev`: the page served by Vite's dev server, which proxies the relay, streams over both transports.

Vite runs as `make page-dev` runs it (`npm run dev` in frontend/, RELAY_URL naming the relay), in front of the
real relay (gunicorn, gevent) and the fake upstream; headless chromium drives the page on Vite's port.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.browser import ChatPage, chromium, require_chromium
from tests.conftest import ROOT, LiveServer, free_port, start_server, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls

FRONTEND = ROOT / "frontend"
WAIT = 15_000  # ms: generous, since the machine is shared; every wait ends as soon as its condition holds


@pytest.fixture(scope="module")
def relay(fake_upstream: FakeUpstream, tmp_path_factory) -> Iterator[LiveServer]:
    server = start_server("gevent", upstream_env(fake_upstream), tmp_path_factory.mktemp("relay") / "server.log")
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def dev_page(relay: LiveServer, tmp_path_factory) -> Iterator[str]:
    """Vite's dev server on a free loopback port, proxying `relay`; yields the page's URL."""
    if not (FRONTEND / "node_modules" / ".bin" / "vite").exists():
        pytest.fail("frontend/node_modules is missing: run `make build` (make test does it)")
    port = free_port()
    log_path: Path = tmp_path_factory.mktemp("vite") / "vite.log"
    with log_path.open("w") as log:
        vite = subprocess.Popen(["npm", "run", "dev", "--", "--host", "127.0.0.1", "--port", str(port),
                                 "--strictPort"], cwd=FRONTEND, env={**os.environ, "RELAY_URL": relay.url},
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert vite.poll() is None, f"vite exited:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"vite never answered:\n{log_path.read_text()}"
            try:
                requests.get(url, timeout=2).raise_for_status()
                break
            except requests.RequestException:
                time.sleep(0.1)  # polling a readiness condition; vite offers no event to wait on
        yield url
    finally:
        os.killpg(vite.pid, 15)  # npm and the vite it started
        vite.wait(timeout=15)


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory) -> Iterator:
    require_chromium()
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=WAIT)
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        context.set_default_timeout(WAIT)
        yield context


@pytest.mark.parametrize("transport", ["socket", "http"])
def test_the_dev_page_streams_a_reply(transport: str, dev_page: str, browser_context,
                                      fake_upstream: FakeUpstream) -> None:
    from playwright.sync_api import expect

    page = browser_context.new_page()
    try:
        chat = ChatPage(page).open(dev_page)
        expect(chat.models.locator("option").first).to_have_text("fake-model")  # GET /models, through the proxy
        chat.use(transport)
        chat.send(controls(text=["Through", " the", " dev", " proxy", f" over {transport}."]))
        expect(chat.reply()).to_have_attribute("data-status", "done")
        expect(chat.reply_text()).to_have_text(f"Through the dev proxy over {transport}.")
    finally:
        page.close()


def test_the_transport_toggle_is_kept_across_a_reload(dev_page: str, browser_context) -> None:
    from playwright.sync_api import expect

    page = browser_context.new_page()
    try:
        chat = ChatPage(page).open(dev_page)
        chat.use("http")
        page.reload()
        expect(page.get_by_label("HTTP", exact=True)).to_be_checked()
        chat.use("socket")
        page.reload()
        expect(page.get_by_label("Socket.IO", exact=True)).to_be_checked()
    finally:
        page.close()
