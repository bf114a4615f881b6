"""The team's own data, in SQLite: its users (name, password hash, plan), its plans (what each gives), and each
user's past conversations with the tools the model called in them.

One connection per call: SQLite connections are not to be shared between threads, and these calls are few.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, password TEXT NOT NULL, plan TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS plans (name TEXT PRIMARY KEY, daily_tokens INTEGER NOT NULL, models TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT, user TEXT NOT NULL, stream_id TEXT NOT NULL, asked TEXT NOT NULL,
    answer TEXT NOT NULL, tools TEXT NOT NULL DEFAULT '[]', finish_reason TEXT, error TEXT, tokens INTEGER,
    at REAL NOT NULL);
"""


class Store:
    def __init__(self, path: str) -> None:
        self.path = path
        with closing(self._connect()) as db, db:
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10)
        db.row_factory = sqlite3.Row
        return db

    def add_user(self, name: str, password: str, plan: str) -> None:
        with closing(self._connect()) as db, db:
            db.execute("INSERT OR REPLACE INTO users VALUES (?, ?, ?)", (name, generate_password_hash(password), plan))

    def check_login(self, name: str, password: str) -> bool:
        with closing(self._connect()) as db:
            row = db.execute("SELECT password FROM users WHERE name = ?", (name,)).fetchone()
        return row is not None and check_password_hash(row["password"], password)

    def plan_of(self, name: str) -> str | None:
        with closing(self._connect()) as db:
            row = db.execute("SELECT plan FROM users WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row["plan"])

    def add_plan(self, name: str, daily_tokens: int, models: str) -> None:
        with closing(self._connect()) as db, db:
            db.execute("INSERT OR REPLACE INTO plans VALUES (?, ?, ?)", (name, daily_tokens, models))

    def plan(self, name: str) -> dict[str, Any] | None:
        """A plan's row: what it gives (the budget hook and the plan_details tool read it)."""
        with closing(self._connect()) as db:
            row = db.execute("SELECT name, daily_tokens, models FROM plans WHERE name = ? COLLATE NOCASE",
                             (name,)).fetchone()
        return None if row is None else dict(row)

    def save(self, user: str, stream_id: str, asked: str, answer: str, tools: list[dict[str, Any]],
             finish_reason: str | None, error: str | None, tokens: int | None) -> None:
        with closing(self._connect()) as db, db:
            db.execute("INSERT INTO history (user, stream_id, asked, answer, tools, finish_reason, error, tokens, at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (user, stream_id, asked, answer, json.dumps(tools), finish_reason, error, tokens, time.time()))

    def history(self, user: str) -> list[dict[str, Any]]:
        with closing(self._connect()) as db:
            rows = db.execute("SELECT stream_id, asked, answer, tools, finish_reason, error, tokens FROM history "
                              "WHERE user = ? ORDER BY id", (user,)).fetchall()
        return [{**dict(row), "tools": json.loads(row["tools"])} for row in rows]


def last_question(messages: list[dict[str, Any]]) -> str:
    """The last user message's text, as the history shows it."""
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""
