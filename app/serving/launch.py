"""`python -m app.serving.launch`, what `make run` runs: serve with the configured upstream, or with the local model.

- OPENAI_API_KEY or OPENAI_BASE_URL set: check once that the upstream answers and takes the key, then become
  the server (gunicorn with gunicorn.conf.py, or `python -m app` for ASYNC_MODE=eventlet).
- Neither set: start the local model (app/serving/local_model.py), then the relay pointed at it, and supervise both
  until Ctrl-C or SIGTERM, which stop both.

With `--dev` (`make dev`) the relay runs under watchdog's `watchmedo auto-restart`, restarted on every save of a
`.py` file in the folders app/serving/dev_reload.py lists, subfolders included. Bad settings stop it here, with the
message, before watchmedo starts: under watchmedo they would be restarted forever.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType

from dotenv import dotenv_values

from chat_relay.config import ConfigError, Settings, load_settings
from chat_relay.errors import ErrorCode, RelayError
from chat_relay.streams.upstream import Upstream, shown_url

from . import dev_reload, local_model, processes
from .servers import OWN_SERVER, server_for

ROOT = Path(__file__).resolve().parents[2]
OPENAI_URL = "https://api.openai.com/v1"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the relay is local, whatever HTTP_PROXY says


def relay_command(settings: Settings, dev: bool = False) -> list[str]:
    """The relay as it runs in production, in the configured async mode; with `dev`, restarted on every save."""
    if server_for(settings.async_mode) == OWN_SERVER:
        command = [sys.executable, "-m", "app"]
    else:
        command = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py")]
    if dev:
        command = dev_reload.auto_restart(command)
    return command


def page_url(settings: Settings) -> str:
    """Where the relay answers on this machine: a wildcard bind is reached through loopback."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}/"


def check_port(settings: Settings) -> None:
    problem = processes.port_problem(settings.host, settings.port)
    if problem:
        raise ConfigError(f"The relay's port {settings.host}:{settings.port} is taken ({problem}). Stop whatever "
                          "listens there (another `make run`?), or set PORT to a free port.")


def check_ports_differ(settings: Settings) -> None:
    """The relay and the local model cannot share a port: said here, before either starts and one fails to bind."""
    if settings.port == settings.local_model_port:
        raise ConfigError(f"PORT and LOCAL_MODEL_PORT are both {settings.port}: the relay and the local model need "
                          f"a port each. Set PORT to another port (8000 by default), or LOCAL_MODEL_PORT (8001 by "
                          "default).")


def check_upstream(settings: Settings) -> str | None:
    """Ask the upstream for its models: a wrong URL or key fails here, with what to set, not on the first chat.

    Returns a warning to print when the upstream answers but does not list OPENAI_MODEL.
    """
    where = shown_url(settings.openai_base_url or OPENAI_URL)
    try:
        models = Upstream(settings).models()
    except RelayError as err:
        if err.code == ErrorCode.RATE_LIMITED:
            return f"warning: {where} is rate limiting this key right now; starting anyway."
        raise ConfigError(_explain(err.code, where, settings).strip()) from None
    if settings.openai_model not in models:
        listed = ", ".join(models[:8]) + (", ..." if len(models) > 8 else "")
        return (f"warning: {where} does not list OPENAI_MODEL={settings.openai_model} (it lists: {listed or 'none'}); "
                "requests for it will fail. Set OPENAI_MODEL to one of its models.")
    return None


def local_model_hint(settings: Settings, dotenv: Path = Path(".env")) -> str:
    """How to fall back to the local model: each upstream setting undone where it was set, the environment or .env."""
    in_file = dotenv_values(dotenv) if dotenv.is_file() else {}
    steps = []
    for name, value in (("OPENAI_API_KEY", settings.openai_api_key), ("OPENAI_BASE_URL", settings.openai_base_url)):
        if not value:
            continue
        if os.environ.get(name):  # the environment wins over .env
            steps.append(f"unset {name}")
        elif in_file.get(name):
            steps.append(f"remove {name} from .env")
    if not steps:
        return ""
    text = " and ".join(steps)
    return f"To use the local model instead, {text}."


def _explain(code: ErrorCode, where: str, settings: Settings) -> str:
    local_hint = local_model_hint(settings)
    if code == ErrorCode.UPSTREAM_AUTH:
        if settings.openai_api_key is None:
            return f"{where} wants an API key: set OPENAI_API_KEY (in the environment or in .env)."
        return (f"{where} refused the key: set OPENAI_API_KEY to a valid key for it (in the environment or in "
                f".env). {local_hint}")
    if code in (ErrorCode.UPSTREAM_UNAVAILABLE, ErrorCode.UPSTREAM_TIMEOUT):
        if settings.openai_base_url:
            return (f"Cannot reach the upstream at OPENAI_BASE_URL={where}. Is that server running? Set "
                    "OPENAI_BASE_URL to its address, for example http://127.0.0.1:11434/v1 for Ollama. "
                    f"{local_hint}")
        return (f"Cannot reach OpenAI at {where}: check the network (or HTTPS_PROXY), or set OPENAI_BASE_URL "
                f"to another OpenAI-compatible server. {local_hint}")
    return (f"{where} does not answer like an OpenAI-compatible API (listing its models failed). Check "
            "OPENAI_BASE_URL: it is the API's root and usually ends in /v1.")


def serve_with_upstream(settings: Settings, dev: bool = False) -> int:
    """Check the configured upstream, then replace this process with the server."""
    check_port(settings)
    warning = check_upstream(settings)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    print(f"Upstream: {shown_url(settings.openai_base_url or OPENAI_URL)}, model {settings.openai_model}. "
          f"Page: {page_url(settings)}", flush=True)
    command = relay_command(settings, dev)
    os.execv(command[0], command)  # the server gets the terminal's Ctrl-C directly; nothing left to supervise


class _Stop(Exception):
    """A signal (Ctrl-C, SIGTERM) or a child's exit ends supervision."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signum)


def wait_for_relay(relay: subprocess.Popen, settings: Settings, timeout: float = 60) -> None:
    """Block until the relay's /healthz answers, failing at once if it exits."""
    url = f"{page_url(settings)}healthz"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if relay.poll() is not None:
            raise ConfigError(f"The relay exited (status {relay.returncode}) while starting; its output is above.")
        try:
            with _NO_PROXY.open(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)  # polling a readiness condition; the server offers no event to wait on
    raise ConfigError(f"The relay did not answer on {url} within {timeout:.0f} s; its output is above.")


def serve_with_local_model(settings: Settings, dev: bool = False) -> int:
    """Start the local model, then the relay pointed at it; stop both on Ctrl-C, SIGTERM, or either one's exit."""
    check_ports_differ(settings)
    check_port(settings)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_stop)
    model: local_model.LocalModelServer | None = None
    relay: subprocess.Popen | None = None
    stopped_by: signal.Signals | None = None  # stays None on a failure: not a request to stop
    try:
        model = local_model.start(settings, say=lambda line: print(line, flush=True))
        env = {**os.environ, "OPENAI_BASE_URL": model.base_url, "OPENAI_MODEL": local_model.ALIAS}
        if settings.default_max_tokens is None:
            # The small base model seldom ends a reply by itself: without a cap it writes until its context is full.
            env["DEFAULT_MAX_TOKENS"] = str(local_model.DEFAULT_MAX_TOKENS)
        if settings.default_temperature is None:
            env["DEFAULT_TEMPERATURE"] = str(local_model.DEFAULT_TEMPERATURE)  # the same reply every run
        relay = processes.spawn(relay_command(settings, dev), env)
        wait_for_relay(relay, settings)
        children = (model.process, relay)

        def on_child_exit(signum: int, frame: FrameType | None) -> None:
            if any(child.poll() is not None for child in children):
                raise _Stop(signum)

        signal.signal(signal.SIGCHLD, on_child_exit)
        print(
            f"\nReady. Open {page_url(settings)}  (HTTP streams: POST {page_url(settings)}message/stream)\n"
            f"Upstream: the local model {local_model.ALIAS} (llama-cpp-python at {model.base_url}), a small "
            "stand-in: its answers are poor, but real and streamed token by token.\n"
            "Set OPENAI_API_KEY (or OPENAI_BASE_URL) to use a real model. Ctrl-C stops both servers.\n"
            + ("The relay restarts on every save under app/ or chat_relay/; the model keeps running.\n"
               if dev else ""),
            flush=True,
        )
        on_child_exit(signal.SIGCHLD, None)  # one may have exited before the handler was in place
        while True:
            signal.pause()
    except _Stop as stop:
        if stop.signum != signal.SIGCHLD:
            stopped_by = signal.Signals(stop.signum)
    except (ConfigError, local_model.LocalModelError) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
    finally:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)  # already stopping
        signal.signal(signal.SIGINT, _raise_stop)  # a second Ctrl-C: stop at once (_stop_children)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        _stop_children(relay, model, stopped_by)
    return 0 if stopped_by is not None else 1


def _stop_children(relay: subprocess.Popen | None, model: local_model.LocalModelServer | None,
                   stopped_by: signal.Signals | None) -> None:
    """The relay first, so its streams end before the model goes; Ctrl-C is quick, SIGTERM lets streams finish.

    Ctrl-C is passed on as SIGINT: the relay ends its streams at once with `server_shutdown`, then exits
    (chat_relay/lifecycle/shutdown.py). A second Ctrl-C while stopping kills both at once.
    """
    if stopped_by is None:
        for name, process in (("relay", relay), ("local model server", model.process if model else None)):
            if process is not None and process.poll() is not None:
                print(f"error: the {name} exited with status {process.returncode}.", file=sys.stderr)
        if model is not None and model.process.poll() is not None:
            print(f"Its last words: {processes.log_tail(model.log_path, lines=1)!r}; its log: {model.log_path}",
                  file=sys.stderr)
    if relay is None and model is None:
        return
    graceful = stopped_by == signal.SIGTERM
    print("Stopping..." if graceful else "Stopping... (Ctrl-C again to stop at once)", flush=True)
    try:
        if relay is not None:
            processes.stop(relay, signal.SIGTERM if graceful else signal.SIGINT, timeout=35 if graceful else 10)
        if model is not None:
            processes.stop(model.process, signal.SIGTERM, timeout=10)
    except _Stop:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("Stopping at once.", flush=True)
        for process in (relay, model.process if model else None):
            if process is not None:
                processes.stop(process, signal.SIGKILL, timeout=5)
    print("Stopped.", flush=True)


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def check_build_tools(path: str | None = None) -> int:
    """Before pip compiles llama.cpp: name the missing compiler or cmake instead of letting pip fail at length."""
    missing = local_model.missing_build_tools(path)
    if not missing:
        return 0
    print(f"error: the local model needs llama-cpp-python, which compiles llama.cpp from source, and this machine "
          f"lacks {_listed(missing)}. {local_model.BUILD_TOOLS_HINT}. Or set OPENAI_API_KEY (or "
          "OPENAI_BASE_URL) to use another upstream, which needs no compiling.", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.serving.launch", description=__doc__.split("\n")[0])
    parser.add_argument("--wants-local", action="store_true",
                        help="exit 0 if the local model would be used (no key, no base URL), 1 otherwise")
    parser.add_argument("--check-build-tools", action="store_true",
                        help="exit 1, saying what to install, if llama-cpp-python cannot compile here")
    parser.add_argument("--dev", action="store_true",
                        help="restart the relay on every save under app/ or chat_relay/ (make dev)")
    args = parser.parse_args(argv)
    if args.check_build_tools:
        return check_build_tools()
    if args.wants_local:
        try:
            return 0 if load_settings().uses_local_model else 1
        except ConfigError:
            return 1  # quietly: the launcher's own start, which follows in `make run`, says what is wrong
    try:
        settings = load_settings()
        server_for(settings.async_mode)
        if settings.uses_local_model:
            return serve_with_local_model(settings, args.dev)
        return serve_with_upstream(settings, args.dev)
    except (ConfigError, local_model.LocalModelError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
