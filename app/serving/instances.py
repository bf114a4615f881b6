"""`python -m app.serving.instances N` (`make instances N=2`): N relay instances on one machine, for a local trial
of scale-out (README "Deployment").

One single-worker instance per core, each on its own port (PORT, PORT+1, ...), all with the same settings,
REDIS_URL among them, so that any instance can resume any stream. Flask-SocketIO cannot share one gunicorn
between several workers for the polling transport (a session lives in one process), which is why each
instance is a gunicorn of its own. Put nginx in front (deploy/nginx.conf). Ctrl-C stops them all.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType

from chat_relay.config import ConfigError, load_settings

from . import processes
from .launch import relay_command

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.serving.instances", description=__doc__.split("\n")[0])
    parser.add_argument("count", type=int, nargs="?", default=os.cpu_count() or 1, help="instances (default: cores)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        settings.require_upstream()
    except ConfigError as err:
        print(f"error: {err} (start the local model with `make run` in another terminal and set OPENAI_BASE_URL "
              f"to it, or set OPENAI_API_KEY)", file=sys.stderr)
        return 2
    if not settings.redis_url:
        print("warning: REDIS_URL is not set: each instance keeps its streams to itself, so a stream resumes only "
              "on the instance that started it. Start redis-server and set REDIS_URL=redis://127.0.0.1:6379/0.",
              file=sys.stderr)
    ports = [settings.port + i for i in range(args.count)]
    for port in ports:
        problem = processes.port_problem(settings.host, port)
        if problem:
            print(f"error: port {settings.host}:{port} is taken ({problem}); set PORT to another base port.",
                  file=sys.stderr)
            return 2
    logs = processes.run_dir()
    children = [processes.spawn(relay_command(settings), {**os.environ, "PORT": str(port)},
                                Path(logs) / f"instance-{port}.log") for port in ports]
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    try:
        for port, child in zip(ports, children, strict=True):
            _wait_ready(settings.host, port, child)
        print("\n".join(f"instance {i + 1}: http://{settings.host}:{port}/  (log: {logs}/instance-{port}.log)"
                        for i, port in enumerate(ports)), flush=True)
        print(f"upstream servers for deploy/nginx.conf: "
              f"{' '.join(f'server {settings.host}:{port};' for port in ports)}\nCtrl-C stops them all.", flush=True)
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.5)  # waiting for Ctrl-C or a child's death; signals interrupt the sleep
        for child in children:
            if child.poll() is not None and not stopping:
                print(f"error: an instance exited with status {child.returncode}; stopping the others.",
                      file=sys.stderr)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
    finally:
        for child in children:
            processes.stop(child, signal.SIGTERM, timeout=35)
    return 0 if stopping else 1


def _wait_ready(host: str, port: int, child: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}/healthz"
    while time.monotonic() < deadline:
        if child.poll() is not None:  # type: ignore[attr-defined]
            raise RuntimeError(f"the instance on port {port} exited while starting; see its log")
        try:
            with _NO_PROXY.open(url, timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)  # polling a process that offers no readiness signal
    raise RuntimeError(f"the instance on port {port} did not answer within {timeout:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
