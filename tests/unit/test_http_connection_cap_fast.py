"""The HTTP connection cap (chat_relay/middleware/http_connection_cap.py) with users: a request counts against its
address until `client_of` names its user, then against the user alone; an unknown caller stays on its address."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from flask import Flask
from flask_socketio import SocketIO

from chat_relay import ChatRelay, Identity
from chat_relay.config import Settings
from chat_relay.middleware.http_connection_cap import HttpConnectionCap
from tests.conftest import API_KEY
from tests.unit.test_hooks_fast import CountingIdentify
from tests.unit.test_security_doc_fast import DEFAULTS, documented, refusal_of

CAP = 2
ADDRESS = "10.0.0.9"


def held(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [b""]


class Users:
    """`client_of`: the user an X-User header names, as an `identify` hook would; how often it was asked."""

    def __init__(self) -> None:
        self.asked = 0

    def __call__(self, environ: dict[str, Any]) -> str | None:
        self.asked += 1
        who = environ.get("HTTP_X_USER")
        return f"user:{who}" if who else None


def request(who: str | None = None) -> dict[str, Any]:
    return {"PATH_INFO": "/message/stream", "REMOTE_ADDR": ADDRESS, **({"HTTP_X_USER": who} if who else {})}


def admitted(cap: HttpConnectionCap, who: str | None = None) -> Iterable[bytes]:
    statuses: list[str] = []
    response = cap(request(who), lambda status, headers: statuses.append(status))
    assert statuses == ["200 OK"]
    return response


def test_users_behind_one_address_hold_the_cap_each_and_unknown_callers_the_address_s() -> None:
    cap = HttpConnectionCap(held, CAP, client_of=Users())
    alice = [admitted(cap, "alice") for _ in range(CAP)]
    [admitted(cap, "bob") for _ in range(CAP)]
    status, error = refusal_of(cap, request("alice"))
    assert status.startswith("429") and error == {
        "code": "too_many_connections",
        "message": f"You have {CAP} requests in progress, the most allowed; try again when one has ended."}
    alice.pop().close()  # one of alice's ends: she may send one more
    alice.append(admitted(cap, "alice"))

    unknown = [admitted(cap) for _ in range(CAP)]  # unknown callers: the address's places are still all free
    assert (cap.count("user:alice"), cap.count("user:bob"), cap.count(ADDRESS)) == (CAP, CAP, CAP)
    status, error = refusal_of(cap, request())
    assert status.startswith("429") and error["message"].startswith(f"{CAP} requests from your address")
    # While they hold every place of the address, its next request is refused before anyone is asked who it is.
    alice.pop().close()
    status, error = refusal_of(cap, request("alice"))
    assert status.startswith("429") and error["message"].startswith(f"{CAP} requests from your address")
    unknown.pop().close()
    admitted(cap, "alice")
    assert (cap.count("user:alice"), cap.count(ADDRESS)) == (CAP, CAP - 1)


def test_the_hook_is_not_asked_for_an_address_past_its_cap() -> None:
    """The address's place is taken before `client_of` runs, and kept while it runs: an address cannot make the
    server run the team's hook for more than the cap of requests at once."""
    users = Users()
    cap = HttpConnectionCap(held, CAP, client_of=users)
    [admitted(cap) for _ in range(CAP)]
    asked = users.asked
    status, _ = refusal_of(cap, request("carol"))
    assert status.startswith("429") and users.asked == asked


def test_the_per_user_refusal_is_documented() -> None:
    cap = HttpConnectionCap(held, DEFAULTS.max_connections_per_client, client_of=Users())
    for _ in range(DEFAULTS.max_connections_per_client):  # never closed: all still in progress
        admitted(cap, "dave")
    status, error = refusal_of(cap, request("dave"))
    assert status.startswith("429")
    documented(error["code"], error["message"])


@pytest.mark.parametrize(("answer", "status", "code"), [
    (Identity("erin"), 400, "invalid_request"), (None, 401, "unauthorized"),
    (RuntimeError("db down"), 500, "internal")])
def test_the_cap_the_body_bound_and_the_route_ask_identify_once(answer: Any, status: int, code: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The cap asks first (chat_relay/extension.py), then the body bound and the route take its answer."""
    monkeypatch.delenv("ASYNC_MODE", raising=False)
    settings = Settings(openai_api_key=API_KEY, openai_base_url="http://127.0.0.1:9/v1",  # type: ignore[arg-type]
                        _env_file=None)  # never reached: every request here is refused first
    app = Flask(__name__)
    hook = CountingIdentify(answer)
    ChatRelay(app, SocketIO(app, async_mode="threading"), settings=settings, identify=hook)
    response = app.test_client().post("/message/stream", json={"prompt": 5})
    assert (response.status_code, response.json["error"]["code"]) == (status, code)
    assert hook.calls == 1
