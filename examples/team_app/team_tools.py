"""The team's server-side tool: the model looks up what a plan gives in the team's own SQLite data, on the server;
the browser sees only the call and what the tool returned (README "Server-side tools").

A tool is given only the arguments the model wrote, not who is asking (it runs in a task of its own, outside any
request), so it reads data that is the same for every user: prepare's system prompt names the user's plan, and the
model asks for that plan's details.
"""

from __future__ import annotations

from typing import Any

from chat_relay import ChatRelay, ToolError

from .store import Store


def register_tools(relay: ChatRelay, store: Store) -> None:
    """The tools the model may call, run here on the server."""

    @relay.tool
    def plan_details(plan: str) -> dict[str, Any]:
        """What one of the team's plans gives its users: its daily token budget and its models."""
        found = store.plan(plan)
        if found is None:
            raise ToolError(f"There is no plan named {plan!r}.")  # the user and the model see this
        return {"plan": found["name"], "daily_tokens": found["daily_tokens"], "models": found["models"]}
