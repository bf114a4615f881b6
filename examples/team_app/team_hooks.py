"""The relay's hooks, as this team wires them: the logged-in user from the session cookie, a system prompt by plan,
the conversation saved when a reply ends, and a daily token budget by plan."""

from __future__ import annotations

import os
from typing import Any

from flask import current_app, session

from chat_relay import Caller, FinishRecord, Identity

from .store import Store, last_question

BUDGETS = {"free": 2_000, "pro": 50_000}  # tokens per BUDGET_PERIOD (a day by default)


def store() -> Store:
    found: Store = current_app.extensions["team_store"]
    return found


def identify(caller: Caller) -> Identity | None:
    """The user this browser logged in as (the session cookie, over both transports); None: not logged in."""
    name = session.get("user")
    if not isinstance(name, str):
        return None
    plan = store().plan_of(name)
    return None if plan is None else Identity(name, {"plan": plan})


def prepare(request: dict[str, Any], identity: Identity) -> dict[str, Any]:
    """The team's system prompt, naming the user's plan; free users get the default model whatever they asked."""
    plan = identity.attributes["plan"]
    system = {"role": "system", "content": f"You are the team's assistant. The user is on the {plan} plan."}
    prepared = {**request, "messages": [system, *request["messages"]]}
    if plan == "free":
        prepared.pop("model", None)
    return prepared


def make_on_finish(saved_in: Store) -> Any:
    """on_finish runs outside any request (in a task of its own): it is given the store, not current_app."""

    def on_finish(record: FinishRecord) -> None:
        """Save the question and the whole answer, however the stream ended, with the tokens it used."""
        tokens = record.usage.get("total_tokens") if record.usage else None
        saved_in.save(record.identity.user_id, record.stream_id, last_question(record.request.messages),
                      record.text, record.finish_reason, record.error, tokens)

    return on_finish


def budget(identity: Identity) -> int | None:
    """Tokens per day by plan; TEAM_FREE_BUDGET overrides the free plan's (the tests use a small one)."""
    plan = identity.attributes["plan"]
    if plan == "free" and os.environ.get("TEAM_FREE_BUDGET"):
        return int(os.environ["TEAM_FREE_BUDGET"])
    return BUDGETS.get(plan)
