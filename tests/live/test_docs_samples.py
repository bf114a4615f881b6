"""Every fenced code block of README.md and docs/*.md, checked against a real server, so no sample can rot.

Each block is one test, named `file:line` (the line of its opening fence; a shell block gives one test per
command, named by the command's line). What is done with a block depends on its language:

- `python`: run as a program (this repo on PYTHONPATH, so `relay_client` imports as if installed), against the
  real server (gevent) and the fake upstream. `http://127.0.0.1:8000` in the sample is replaced by the test
  server's URL. It must exit 0 within 30 s, print no traceback, and print the whole reply (the fake answers
  any plain prompt with `w0 w1 w2 w3 w4 `): a sample that exits before the reply has arrived fails.
- `js`: the same, run by node as an ES module with frontend/node_modules (socket.io-client).
- `sh`, `bash`, `shell`, `console`: each command (continuation lines joined, comments dropped, leading
  `NAME=value` assignments skipped) by its program:
  `curl`: run against the server (exit 0, the reply in its output);
  `make TARGET`: the target must exist in make's own database (`make -p`). Never `make -n`: make runs recipe
  lines that invoke $(MAKE) even then, and these targets install, compile or serve until stopped;
  `.venv/bin/python -m pytest ARGS`: collected (`--collect-only`), which must select at least one test;
  `.venv/bin/python -m MODULE`: the module must exist (these run for minutes, against the real model);
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

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.cluster import Nginx, require_nginx
from tests.conftest import ROOT, LiveServer, free_port
from tests.fake_upstream import controls

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SAMPLE_URL = "http://127.0.0.1:8000"
FAKE_REPLY = "w0 w1 w2 w3 w4 "  # the fake upstream's answer to a prompt that is not a control
TIMEOUT = 30
BIN = Path(sys.executable).parent
NODE_MODULES = ROOT / "frontend" / "node_modules"

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


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                              timeout=TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{args[0]} did not end within {TIMEOUT} s: {exc.stdout!r} {exc.stderr!r}") from None


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


def check_command(command: str, url: str) -> None:
    """Check one shell command as the module docstring says, or skip it with its NOT_RUN reason."""
    words = shlex.split(command, comments=True)
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        words = words[1:]  # OPENAI_API_KEY=sk-... make run: the assignment is the reader's
    assert words, f"nothing to run in {command!r}"
    program = words[0].replace(".venv/bin/", f"{BIN}/")
    if words[0] == "curl":
        check_output(run([rewrite(word, url) for word in words], ROOT), "curl", expect="w0")
    elif words[0] == "make":
        targets = [word for word in words[1:] if not word.startswith("-") and "=" not in word]
        missing = set(targets) - make_targets()
        assert targets and not missing, f"no such make target: {sorted(missing) or command}"
    elif program.endswith(("/python", "/python3")) and words[1:3] == ["-m", "pytest"]:
        result = run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *words[3:]],
                     ROOT)
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


@pytest.mark.parametrize("live_server", ["gevent"], indirect=True)
@pytest.mark.parametrize(("block", "command"), cases())
def test_docs_sample(block: Block, command: Command | None, live_server: LiveServer, tmp_path: Path) -> None:
    if block.marker:
        kind, value = block.marker
        if kind == "not-run":
            pytest.skip(f"not run: {value}")
        return check_excerpt(block.text, ROOT / value)
    if command is not None:
        return check_command(command.text, live_server.url)
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
