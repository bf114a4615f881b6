"""Child processes the launcher supervises: each in its own process group, stopped as a group, never orphaned.

Each child leads a new process group, so stopping it reaches everything it started (gunicorn's worker too)
and the terminal's Ctrl-C reaches only the launcher, which stops the children in order. On Linux each child
also asks the kernel for SIGTERM should the launcher die without cleaning up (SIGKILL, a crash).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

_PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def run_dir() -> Path:
    """Where runtime files go (gunicorn's pid file and control socket too): RUN_DIR, else a private directory,
    never the home."""
    base = os.environ.get("RUN_DIR") or os.path.join(
        os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir(), f"chat-relay-{os.getuid()}"
    )
    os.makedirs(base, mode=0o700, exist_ok=True)
    return Path(base)


def spawn(command: list[str], env: dict[str, str], log_path: Path | None = None) -> subprocess.Popen:
    """Start `command` in a new process group; its output goes to `log_path`, or to the launcher's terminal."""
    if log_path is None:
        return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=_die_with_parent)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent,
        )


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    """Signal the child, wait, then SIGKILL whatever is left of its group.

    The signal goes to the leader alone: it stops its own workers in order (gunicorn's gevent worker, hit by
    SIGINT directly as a terminal would do, dies printing a traceback).
    """
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout)
    # The leader may be gone while a member (a worker) lingers: sweep the group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def port_problem(host: str, port: int) -> str | None:
    """Why a server could not listen on host:port, or None if it can (bound with SO_REUSEADDR, as servers do)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            return err.strerror or str(err)
    return None


def log_tail(log_path: Path, lines: int = 15) -> str:
    """The end of a child's log, to show with an error so nobody has to go looking."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])
