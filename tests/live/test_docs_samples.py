"""Every fenced code block of README.md and docs/*.md, checked against a real server, so no sample can rot.

Each block is one test, named `file:line` (the line of its opening fence; a shell block gives one test per
command, named by the command's line). What is done with a block depends on its language:

- `python`: run as a program (this repo on PYTHONPATH, so `relay_client` imports as if installed), against the
  real server (gevent) and the fake upstream. `http://127.0.0.1:8000` in the sample is replaced by the test
  server's URL. It must exit 0 within 30 s, print no traceback, and print the whole reply (the fake answers
  any plain prompt with `w0 w1 w2 w3 w4 `): a sample that exits before the reply has arrived fails.
- `js`: the same, run by node as an ES module with frontend/node_modules (socket.io-client, ai), from a folder
  where `./frontend/` is this repository's (docs/ai-sdk.md imports the Socket.IO chat transport so).
- `sh`, `bash`, `shell`, `console`: each command (continuation lines joined, comments dropped, leading
  `NAME=value` assignments skipped) by its program:
  `curl`: run against the server (exit 0, the reply in its output);
  `make TARGET` for a target that serves (run, dev, run-eventlet, instances, page-dev), and
  `.venv/bin/python -m tests.fake_upstream`: run as written, in their own process group, pointed at the fake
  upstream on free ports (the sample's own `NAME=value` assignments are the reader's: the test sets its own);
  each must answer (a streamed reply through the relay, or the page through Vite), then stop on Ctrl-C (SIGINT
  to the group) without a traceback. Where this checkout has no `.venv` of its own (a worktree), make is
  given this interpreter's (`BIN=...`) and its install stamps are taken as made (`-o`);
  any other `make TARGET`: the target must exist in make's own database (`make -p`). Never `make -n`: make
  runs recipe lines that invoke $(MAKE) even then, and these targets install, compile or serve until stopped;
  `.venv/bin/python -m pytest ARGS`: collected (`--collect-only`), which must select at least one test;
  `.venv/bin/python -m bench.local_answers`: run as written, against the real local model, in a copy of the
  tree (it rewrites docs/local-model.md): it must rewrite the copy's table and exit 0;
  `make test-fast`: run as written (seconds);
  any other `.venv/bin/python -m MODULE`: the module must exist (these run for minutes);
  `pip install -r FILE`: every requirement in FILE must be installed here, at a version it allows;
  anything else only with a reason in NOT_RUN (reported as a skip), or the test fails.
- `json`: parsed (one document, or one per line). `nginx`: `nginx -t` on the block inside a `server {}`.
  `yaml`: parsed, when PyYAML is installed (it is not a dependency); otherwise skipped, saying so.
- no language or `text`: output, wire examples and listings; skipped as "not code".
- any other language: the test fails until it gets a runner here or a marker.

Markers: an HTML comment on the line just before a fence (invisible on GitHub) changes that:

- `<!-- excerpt: examples/embed_app.py -->`: the block is an excerpt of that file; its lines must appear in
  it, in order and consecutive (indentation may differ by one consistent amount). The file itself is run by
  its own tests.
- `<!-- not-run: <reason> -->`: the block is skipped with that reason, for a sample that cannot run here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path

import pytest
import requests
from packaging.requirements import Requirement

from tests.cluster import Nginx, require_nginx
from tests.conftest import API_KEY, ROOT, LiveServer, free_port, free_ports_in_a_row, upstream_env
from tests.fake_upstream import FakeUpstream, controls

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SAMPLE_URL = "http://127.0.0.1:8000"
FAKE_REPLY = "w0 w1 w2 w3 w4 "  # the fake upstream's answer to a prompt that is not a control
TIMEOUT = 30
BIN = Path(sys.executable).parent
NODE_MODULES = ROOT / "frontend" / "node_modules"

# Documented commands that serve until stopped: how to tell each is ready. The value names what it serves.
SERVING_TARGETS = {"run": "relay", "dev": "relay", "run-eventlet": "relay", "instances": "instances",
                   "page-dev": "page"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # terminal colour codes
SERVE_TIMEOUT = 180  # s: the first start may build the page (npm ci, vite build) on a shared machine
STAMPS = [".venv/.serve-installed", ".venv/.installed", ".venv/.local-installed"]

# Shell commands that are not checked, by their first word(s), with the reason shown in the skip.
NOT_RUN = {
    "sudo apt-get install": "installs system packages",
    "export": "sets variables in the reader's shell; the commands after it are checked",
}

FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)[^`]*$")
MARKER = re.compile(r"^\s*<!--\s*(?P<kind>excerpt|not-run):\s*(?P<value>.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its text (dedented to its fence), and its marker."""

    path: str
    line: int
    lang: str
    text: str
    marker: tuple[str, str] | None = None

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"


def extract(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file (CommonMark fences: ``` or ~~~, maybe indented in a list)."""
    name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, index = [], 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        end = next((j for j in range(index + 1, len(lines))
                    if lines[j].strip().startswith(fence[0] * len(fence)) and not lines[j].strip().strip(fence[0])),
                   None)
        if end is None:
            raise ValueError(f"{name}:{index + 1}: a code block that is never closed")
        # CommonMark: a fence indented by n spaces has up to n spaces taken off each line of its body.
        body = "\n".join(line[min(indent, len(line) - len(line.lstrip(" "))):] for line in lines[index + 1:end])
        before = next((lines[j] for j in range(index - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.match(before)
        blocks.append(Block(name, index + 1, opening["info"].lower(), body + "\n",
                            (marker["kind"], marker["value"]) if marker else None))
        index = end + 1
    return blocks


@dataclass(frozen=True)
class Command:
    """One shell command of a block, with its line."""

    block: Block
    line: int
    text: str

    @property
    def id(self) -> str:
        return f"{self.block.path}:{self.line}"


def commands(block: Block) -> list[Command]:
    found, pending, start = [], "", 0
    for offset, line in enumerate(block.text.splitlines(), start=block.line + 1):
        if not pending:
            start = offset
        pending += line.removeprefix("$ ") if not pending else " " + line.strip()
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        if shlex.split(pending, comments=True):
            found.append(Command(block, start, pending))
        pending = ""
    return found


ALL = [block for path in DOCS for block in extract(path)]
SHELL = {"sh", "bash", "shell", "console"}
RUN = {"python", "py", "js", "javascript", "mjs"}


def cases() -> list[pytest.param]:
    """One case per block, one per command of a shell block; those with nothing to run carry their skip."""
    params = []
    for block in ALL:
        if block.lang in SHELL and block.marker is None:
            params += [pytest.param(block, command, id=command.id) for command in commands(block)]
        else:
            params.append(pytest.param(block, None, id=block.id))
    return params


# Running and checking, each raising AssertionError on a broken sample.

def rewrite(text: str, url: str) -> str:
    return text.replace(SAMPLE_URL, url)


def check_output(result: subprocess.CompletedProcess, what: str, expect: str = FAKE_REPLY) -> None:
    shown = (f"{what} exited {result.returncode}\n--- stdout\n{result.stdout[-3000:]}\n"
             f"--- stderr\n{result.stderr[-3000:]}")
    assert result.returncode == 0, shown
    assert "Traceback" not in result.stdout + result.stderr, shown
    assert expect in result.stdout, f"the reply ({expect!r}) never came out: {shown}"


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None,
        timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{args[0]} did not end within {timeout} s: {exc.stdout!r} {exc.stderr!r}") from None


def run_python(text: str, url: str, workdir: Path) -> None:
    sample = workdir / "sample.py"
    sample.write_text(rewrite(text, url))
    check_output(run([sys.executable, str(sample)], workdir, {"PYTHONPATH": str(ROOT)}), "the Python sample")


def run_js(text: str, url: str, workdir: Path) -> None:
    if not (NODE_MODULES / "socket.io-client").exists():
        if os.environ.get("CI"):
            pytest.fail("frontend/node_modules is missing: make test runs npm ci first")
        pytest.skip("frontend/node_modules is missing (cd frontend && npm ci)")
    (workdir / "node_modules").symlink_to(NODE_MODULES)
    (workdir / "frontend").symlink_to(ROOT / "frontend")
    sample = workdir / "sample.mjs"
    sample.write_text(rewrite(text, url))
    check_output(run(["node", str(sample)], workdir), "the JavaScript sample")


def make_targets() -> set[str]:
    """The targets in make's own database, without running any recipe (a probe goal with none is the goal)."""
    result = subprocess.run(["make", "-pn", "-f", "Makefile", "-f", "-", "__docs_probe__"], input="__docs_probe__:\n",
                            cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    return {m[1] for m in re.finditer(r"^([A-Za-z0-9][\w.-]*):", result.stdout, re.MULTILINE)}


def check_requirements(file: Path) -> None:
    assert file.exists(), f"{file} does not exist"
    for line in file.read_text().splitlines():
        spec = line.split("#", 1)[0].strip()
        if not spec:
            continue
        requirement = Requirement(spec)
        try:
            version = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            raise AssertionError(f"{requirement.name} (from {file.name}) is not installed") from None
        assert requirement.specifier.contains(version, prereleases=True), f"{requirement.name} {version}: not {spec}"


def serving_env(fake: FakeUpstream, workdir: Path) -> dict[str, str]:
    """A reader's shell with the fake upstream configured, and every port and runtime file the test's own."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "ASYNC_MODE", "LOCAL_MODEL_", "RELAY_URL", "PORT", "REDIS_URL"))}
    return {**env, **upstream_env(fake), "OPENAI_MODEL": "fake-model", "HOST": "127.0.0.1",
            "PORT": str(free_ports_in_a_row(8)), "LOCAL_MODEL_PORT": str(free_port()), "RUN_DIR": str(workdir / "run")}


def make_args(words: list[str]) -> list[str]:
    """`make TARGET ...` as written; in a checkout without its own .venv, with this interpreter's instead."""
    if (ROOT / ".venv" / "bin" / "python").exists():
        return words
    taken_as_made = [arg for stamp in STAMPS for arg in ("-o", stamp)]
    return [words[0], f"BIN={BIN}", *taken_as_made, *words[1:]]


def wait_until(ready: Callable[[], str | None], process: subprocess.Popen, log: Path, what: str) -> str:
    """Poll `ready` (None until it holds) while the process lives; fail with its output if it dies or stalls."""
    deadline = time.monotonic() + SERVE_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{what} exited {process.returncode}:\n{log.read_text()[-3000:]}"
        found = ready()
        if found is not None:
            return found
        time.sleep(0.2)  # polling a port or a log: a server offers no event to wait on
    raise AssertionError(f"{what} was not ready within {SERVE_TIMEOUT} s:\n{log.read_text()[-3000:]}")


def answers(url: str) -> str | None:
    try:
        return url if requests.get(f"{url}/healthz", timeout=2).ok else None
    except requests.RequestException:
        return None


def streamed_reply(url: str) -> str:
    with requests.post(f"{url}/message/stream", json={"prompt": "What does 42 signify, in brief?"},
                       headers={"Accept": "application/x-ndjson"}, stream=True, timeout=TIMEOUT) as response:
        assert response.status_code == 200, response.text
        return "".join(json.loads(line).get("text", "") for line in response.iter_lines() if line)


def run_server(words: list[str], fake: FakeUpstream, workdir: Path) -> None:
    """Start a documented server command, check that it serves, then stop it as Ctrl-C does."""
    env = serving_env(fake, workdir)
    port = int(env["PORT"])
    args = [word.replace("9999", str(port)) for word in words]  # the fake's documented port: a free one here
    if words[0] == "make":
        args = make_args(args)
    log = workdir / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        if "tests.fake_upstream" in words:
            wait_until(lambda: "listening at" in log.read_text() or None, process, log, "the fake upstream")
            models = requests.get(f"http://127.0.0.1:{port}/v1/models", timeout=5)
            assert models.ok and "fake-model" in models.text, models.text
        elif SERVING_TARGETS[words[1]] == "page":
            # Vite colours its output where CI is set (picocolors), the port in bold: read it without the colours
            found = wait_until(lambda: (m := re.search(r"http://(?:localhost|127\.0\.0\.1):\d+/",
                                                       ANSI.sub("", log.read_text()))) and m[0], process, log, "vite")
            assert '<div id="root">' in requests.get(found, timeout=10).text
        else:
            count = int(next((w.split("=", 1)[1] for w in words if w.startswith("N=")), "1"))
            for url in [f"http://127.0.0.1:{port + i}" for i in range(count)]:
                wait_until(lambda url=url: answers(url), process, log, " ".join(words))
                assert FAKE_REPLY in streamed_reply(url)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)  # the terminal's Ctrl-C reaches the whole foreground group
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise AssertionError(f"{' '.join(words)} did not stop on Ctrl-C:\n{log.read_text()[-3000:]}") from None
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    assert API_KEY not in log.read_text(), "the API key leaked into the output"


def run_in_copy(args: list[str], workdir: Path) -> subprocess.CompletedProcess:
    """A command that rewrites files of the checkout, run in a copy of what it reads and writes."""
    from tests.e2e.test_local_model import require_local_model

    require_local_model()
    tree = workdir / "tree"
    for name in ("app", "chat_relay", "bench", "docs"):
        shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__", "results"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LOCAL_MODEL_", "PYTHONPATH"))}
    result = subprocess.run(args, cwd=tree, env=env, capture_output=True, text=True, timeout=900)
    output = result.stdout[-3000:] + result.stderr[-3000:]
    assert result.returncode == 0 and "Traceback" not in output, output
    return result


def serves(words: list[str]) -> bool:
    if words[:1] == ["make"]:
        targets = [word for word in words[1:] if not word.startswith("-") and "=" not in word]
        return len(targets) == 1 and targets[0] in SERVING_TARGETS
    return words[1:3] == ["-m", "tests.fake_upstream"]


def check_command(command: str, url: str, fake: FakeUpstream | None = None, workdir: Path | None = None) -> None:
    """Check one shell command as the module docstring says, or skip it with its NOT_RUN reason."""
    words = shlex.split(command, comments=True)
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        words = words[1:]  # OPENAI_API_KEY=sk-... make run: the assignment is the reader's
    assert words, f"nothing to run in {command!r}"
    program = words[0].replace(".venv/bin/", f"{BIN}/")
    if fake is not None and workdir is not None and serves(words):
        run_server([program, *words[1:]], fake, workdir)
    elif workdir is not None and words[1:3] == ["-m", "bench.local_answers"]:
        before = (ROOT / "docs" / "local-model.md").read_text()
        run_in_copy([program, *words[1:]], workdir)
        after = (workdir / "tree" / "docs" / "local-model.md").read_text()
        assert (ROOT / "docs" / "local-model.md").read_text() == before, "the checkout's doc was rewritten"
        assert "<!-- local_answers:begin -->\n| of 20 replies | before | after |" in after, after[-2000:]
    elif words == ["make", "test-fast"]:
        result = subprocess.run(make_args(words), cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    elif words[0] == "curl":
        check_output(run([rewrite(word, url) for word in words], ROOT), "curl", expect="w0")
    elif words[0] == "make":
        targets = [word for word in words[1:] if not word.startswith("-") and "=" not in word]
        missing = set(targets) - make_targets()
        assert targets and not missing, f"no such make target: {sorted(missing) or command}"
    elif program.endswith(("/python", "/python3")) and words[1:3] == ["-m", "pytest"]:
        # collecting the whole suite imports every test module: slow on a machine busy with the suite itself
        result = run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *words[3:]],
                     ROOT, timeout=120)
        assert result.returncode == 0, f"{command!r} selects nothing:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
    elif program.endswith(("/python", "/python3")) and words[1] == "-m":
        assert util.find_spec(words[2]) is not None, f"no module {words[2]} for {command!r}"
    elif words[:2] == ["pip", "install"] and words[2] == "-r":
        check_requirements(ROOT / words[3])
    else:
        reason = next((why for start, why in NOT_RUN.items() if words[:len(start.split())] == start.split()), None)
        assert reason, f"no way to check {command!r}: add a checker or a reason to NOT_RUN in {__file__}"
        pytest.skip(f"not run: {reason}")


def check_excerpt(text: str, source: Path) -> None:
    assert source.exists(), f"the excerpt's file {source} does not exist"
    wanted = [line.rstrip() for line in textwrap.dedent(text).strip("\n").splitlines()]
    have = [line.rstrip() for line in source.read_text(encoding="utf-8").splitlines()]
    for start in range(len(have) - len(wanted) + 1):
        first = have[start]
        pad = first[:len(first) - len(first.lstrip())] if wanted and wanted[0] else ""
        if all(h == (pad + w if w else "") for h, w in zip(have[start:start + len(wanted)], wanted, strict=True)):
            return
    raise AssertionError(f"the excerpt is not in {source}:\n{text}")


def check_nginx(text: str, workdir: Path) -> None:
    require_nginx()
    site = f"server {{\n listen 127.0.0.1:{free_port()};\n{text}\n}}"
    result = Nginx(site, free_port(), workdir / "nginx").test_config()
    assert result.returncode == 0, result.stderr


def check_json(text: str) -> None:
    try:
        json.loads(text)
    except ValueError:
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    json.loads(line)
                except ValueError as exc:
                    raise AssertionError(f"line {number} is not JSON: {exc}") from None


def check_yaml(text: str) -> None:
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        pytest.skip("PyYAML is not installed: this YAML is not parsed")
    yaml.safe_load(text)


# A block may start two servers, each given SERVE_TIMEOUT to answer on a machine busy with the suite: past the
# suite's 120 s a slow start would end without the server's log, which says why.
@pytest.mark.timeout(2 * SERVE_TIMEOUT + 120)
@pytest.mark.parametrize("live_server", ["gevent"], indirect=True)
@pytest.mark.parametrize(("block", "command"), cases())
def test_docs_sample(block: Block, command: Command | None, live_server: LiveServer, fake_upstream: FakeUpstream,
                     tmp_path: Path) -> None:
    if block.marker:
        kind, value = block.marker
        if kind == "not-run":
            pytest.skip(f"not run: {value}")
        return check_excerpt(block.text, ROOT / value)
    if command is not None:
        return check_command(command.text, live_server.url, fake_upstream, tmp_path)
    if block.lang in ("python", "py"):
        return run_python(block.text, live_server.url, tmp_path)
    if block.lang in ("js", "javascript", "mjs"):
        return run_js(block.text, live_server.url, tmp_path)
    if block.lang == "json":
        return check_json(block.text)
    if block.lang == "nginx":
        return check_nginx(block.text, tmp_path)
    if block.lang == "yaml":
        return check_yaml(block.text)
    if block.lang in ("", "text"):
        pytest.skip("not code: output, a wire example or a listing")
    pytest.fail(f"no runner for ```{block.lang}: add one to {__file__}, or a marker before the block")


# The harness itself: a sample that is broken must fail.

def test_extract_finds_fences_markers_and_lines(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("# T\n\n```python\nprint(1)\n```\n\n<!-- excerpt: chat_relay/errors.py -->\n~~~py\nx\n~~~\n\n"
                   "- item:\n\n  ```sh\n  make run \\\n    # no\n ok\n  ```\n<!-- not-run: needs a key -->\n```\n"
                   "plain\n```\n")
    blocks = extract(doc)
    assert [(b.line, b.lang, b.text, b.marker) for b in blocks] == [
        (3, "python", "print(1)\n", None), (8, "py", "x\n", ("excerpt", "chat_relay/errors.py")),
        (14, "sh", "make run \\\n  # no\nok\n", None), (20, "", "plain\n", ("not-run", "needs a key"))]
    assert [c.text for c in commands(blocks[2])] == ["make run # no", "ok"]
    doc.write_text("```python\nif x:\n    y\n```\n")
    assert extract(doc)[0].text == "if x:\n    y\n"  # a fence at the margin keeps its body's indentation
    doc.write_text("```python\nnever closed\n")
    with pytest.raises(ValueError, match="never closed"):
        extract(doc)


@pytest.mark.parametrize("live_server", ["gevent"], indirect=True)
def test_a_sample_that_exits_before_the_reply_fails(live_server: LiveServer, tmp_path: Path) -> None:
    """docs/protocol.md's old Python example: it printed the ack and exited before any chunk arrived.

    Its reply is held back 5 s (the fake's `first_delay`), so the sample exits first however slowly a loaded machine
    runs it: with an immediate reply, a slow exit let the chunks in before it, and the harness passed the sample."""
    old = textwrap.dedent("""\
        import socketio
        sio = socketio.Client()
        sio.on("chatgpt_description_chunk", lambda text, meta: print(text, end="", flush=True))
        sio.on("chatgpt_description_done", lambda done: print("\\n", done))
        sio.connect("http://127.0.0.1:8000", transports=["websocket"])
        print(sio.call("chatgpt_description", {"prompt": PROMPT}))
        """).replace("PROMPT", repr(controls(first_delay=5)))
    with pytest.raises(AssertionError, match=r"never came out|did not end"):
        run_python(old, live_server.url, tmp_path)
    with pytest.raises(AssertionError, match="exited 1"):
        run_python("raise SystemExit(1)\n", live_server.url, tmp_path)


def test_broken_commands_and_excerpts_fail(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="no such make target"):
        check_command("make no-such-target", SAMPLE_URL)
    with pytest.raises(AssertionError, match="no way to check"):
        check_command("rm -rf build", SAMPLE_URL)
    with pytest.raises(AssertionError, match="no module"):
        check_command(".venv/bin/python -m bench.no_such_module", SAMPLE_URL)
    with pytest.raises(AssertionError, match="selects nothing"):
        check_command(".venv/bin/python -m pytest tests/unit/test_config.py -k no_such_test_name", SAMPLE_URL)
    with pytest.raises(AssertionError, match="exited"):
        check_command(f"curl -sf {SAMPLE_URL.replace('8000', str(free_port()))}/healthz", SAMPLE_URL)
    with pytest.raises(AssertionError, match="not installed"):
        (tmp_path / "r.txt").write_text("no-such-package-xyz>=1\n")
        check_requirements(tmp_path / "r.txt")
    check_excerpt("class ErrorCode(StrEnum):\n", ROOT / "chat_relay" / "errors.py")
    check_excerpt("INVALID_REQUEST = \"invalid_request\"\nUPSTREAM_AUTH = \"upstream_auth\"\n",
                  ROOT / "chat_relay" / "errors.py")  # indented in the file: one consistent indent is allowed
    with pytest.raises(AssertionError, match="not in"):
        check_excerpt("class ErrorCode(StrEnum):\n    NOT_A_CODE = 1\n", ROOT / "chat_relay" / "errors.py")
    with pytest.raises(AssertionError, match="line 2 is not JSON"):
        check_json('{"a": 1}\n{oops}\n')


@pytest.mark.parametrize("live_server", ["gevent"], indirect=True)
def test_a_documented_server_that_does_not_serve_fails(live_server: LiveServer, fake_upstream: FakeUpstream,
                                                        tmp_path: Path) -> None:
    """A server command that dies at once fails the sample, with its output; none is left running."""
    with pytest.raises(AssertionError, match="exited 2"):
        run_server([sys.executable, "-m", "tests.fake_upstream", "--port", "not-a-port"], fake_upstream, tmp_path)
