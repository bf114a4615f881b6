"""The relay's hooks, as this team wires them: the logged-in user from the session cookie, a system prompt by plan,
the conversation saved when a reply ends (with the tools the model called), and a daily token budget by plan."""

from __future__ import annotations

from typing import Any

from flask import current_app, session

from chat_relay import Caller, FinishRecord, Identity

from .store import Store, last_question


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
        """Save the question, the whole answer and the tools it used, however the stream ended, with its tokens."""
        tokens = record.usage.get("total_tokens") if record.usage else None
        saved_in.save(record.identity.user_id, record.stream_id, last_question(record.request.messages),
                      record.text, tools_used(record), record.finish_reason, record.error, tokens)

    return on_finish


def tools_used(record: FinishRecord) -> list[dict[str, Any]]:
    """Each call the model made, across every round of the stream, with what the server's tool returned (`result`)
    or why it gave nothing (`error`); a call of a client's tool has neither."""
    outcomes = {part["id"]: part for part in record.parts if part["type"] in ("tool_result", "tool_error")}
    used: list[dict[str, Any]] = []
    for call in record.tool_calls:
        step = {"id": call["id"], "name": call["function"]["name"], "arguments": call["function"]["arguments"]}
        outcome = outcomes.get(call["id"])
        if outcome is not None and outcome["type"] == "tool_result":
            step["result"] = outcome["result"]
        elif outcome is not None:
            step["error"] = outcome["message"]
        used.append(step)
    return used


def budget(identity: Identity) -> int | None:
    """Tokens per day (BUDGET_PERIOD) by plan, as the plans table says."""
    plan = store().plan(identity.attributes["plan"])
    return None if plan is None else int(plan["daily_tokens"])
