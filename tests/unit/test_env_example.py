""".env.example lists every setting of chat_relay/config.py, with its default and a line on what it does, and no other.

A new setting in Settings fails here until it has its one line in .env.example; nothing else needs editing.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import SecretStr

from chat_relay.config import Settings
from tests.conftest import ROOT

EXAMPLE = ROOT / ".env.example"
# `#NAME=default   # what it does`: commented out, so a copy of the file changes nothing until a line is uncommented.
LINE = re.compile(r"^#([A-Z][A-Z0-9_]*)=(\S*)\s+# (\S.*)$")


def listed() -> dict[str, tuple[str, str]]:
    """Each setting in .env.example: its name, the default it shows, and what it says it does."""
    entries: dict[str, tuple[str, str]] = {}
    for line in EXAMPLE.read_text().splitlines():
        match = LINE.match(line)
        if match:
            name, default, meaning = match.groups()
            assert name not in entries, f"{name} is listed twice"
            entries[name] = (default, meaning)
    return entries


def shown(value: object) -> str:
    """A default as .env would spell it: empty for none, lists comma-separated, 10 for 10.0."""
    if value is None or isinstance(value, SecretStr):
        return ""
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_every_setting_is_listed_and_nothing_else() -> None:
    assert sorted(listed()) == sorted(name.upper() for name in Settings.model_fields)


def test_each_line_shows_the_default_and_says_what_it_does() -> None:
    entries = listed()
    for name, field in Settings.model_fields.items():
        default, meaning = entries[name.upper()]
        assert default == shown(field.get_default(call_default_factory=True)), name.upper()
        assert len(meaning) > 10, name.upper()


def test_every_setting_line_has_the_listed_form() -> None:
    """A setting written another way would be missed by the checks above."""
    for line in EXAMPLE.read_text().splitlines():
        if re.match(r"^#?\s*[A-Z][A-Z0-9_]*=", line):
            assert LINE.match(line), f"write it as `#NAME=default   # what it does`: {line}"


def test_a_copy_as_dotenv_changes_nothing(tmp_path: Path) -> None:
    copy = tmp_path / ".env"
    copy.write_text(EXAMPLE.read_text())
    assert Settings(_env_file=copy).model_dump() == Settings(_env_file=None).model_dump()  # type: ignore[call-arg]


def test_uncommented_lines_parse_to_the_defaults(tmp_path: Path) -> None:
    """Uncommenting a line as it stands keeps the default: the inline comment is not part of the value."""
    uncommented = tmp_path / ".env"
    uncommented.write_text("\n".join(line[1:] for line in EXAMPLE.read_text().splitlines()
                                     if LINE.match(line) and LINE.match(line).group(2)))  # type: ignore[union-attr]
    assert Settings(_env_file=uncommented).model_dump() == Settings(_env_file=None).model_dump()  # type: ignore[call-arg]
