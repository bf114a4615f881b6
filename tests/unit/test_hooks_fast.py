"""The team's hooks without a server (chat_relay/hooks/): identify's answer taken once per request and its refusals,
prepare's request validated again, FORWARD_USER's keyed hash, the budget's reserve-then-settle, the finish record."""

from __future__ import annotations

from typing import Any

import pytest

from chat_relay import Caller, Identity, RelayError
from chat_relay.access.auth import Access, identity_of
from chat_relay.access.connections import Connections
from chat_relay.access.message_bound import MessageBound
from chat_relay.config import ConfigError, Settings, load_settings
from chat_relay.errors import ErrorCode
from chat_relay.hooks.budget import Budgets
from chat_relay.hooks.finish import Timings, finish_record, run_hook
from chat_relay.hooks.forward_user import UserHashes
from chat_relay.hooks.prepare import prepared
from chat_relay.streams.events import Done, Failed
from chat_relay.streams.request_validation import parse_chat_request


def settings(**values: Any) -> Settings:
    return Settings(openai_api_key="sk-unit", _env_file=None, **values)  # type: ignore[call-arg]


# identify

class CountingIdentify:
    def __init__(self, answer: Any) -> None:
        self.answer, self.calls = answer, 0

    def __call__(self, caller: Caller) -> Identity | None:
        self.calls += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer  # type: ignore[no-any-return]


def test_identify_runs_once_per_request_though_the_bound_asks_first() -> None:
    hook = CountingIdentify(Identity("alice", {"plan": "pro"}))
    access = Access(settings(), hook)
    bound = MessageBound(4096, 1 << 20, Connections(10), access)
    environ: dict[str, Any] = {"HTTP_HOST": "127.0.0.1", "REMOTE_ADDR": "10.0.0.1"}
    assert bound.for_stream_request(environ) == 1 << 20  # known: the large bound
    assert access.check_http(environ, {}, "10.0.0.1") == "user:alice"
    assert hook.calls == 1 and identity_of(environ) == Identity("alice", {"plan": "pro"})


def test_an_unknown_caller_is_unauthorized_and_counted_against_its_address() -> None:
    hook = CountingIdentify(None)
    access = Access(settings(auth_failure_limit="2/minute"), hook)
    bound = MessageBound(4096, 1 << 20, Connections(10), access)
    assert bound.for_stream_request({"HTTP_HOST": "127.0.0.1"}) == 4096
    for _ in range(2):
        with pytest.raises(RelayError) as refused:
            access.identify_socketio({"user": "x"}, {}, "10.0.0.2")
        assert refused.value.code is ErrorCode.UNAUTHORIZED
    with pytest.raises(RelayError) as throttled:  # AUTH_FAILURE_LIMIT, as for wrong tokens
        access.identify_socketio({"user": "x"}, {}, "10.0.0.2")
    assert throttled.value.code is ErrorCode.RATE_LIMITED


@pytest.mark.parametrize("answer", [RuntimeError("db down, secret-xyz"), "alice", Identity("")])
def test_a_failing_or_wrong_identify_is_an_internal_error(answer: Any, caplog: pytest.LogCaptureFixture) -> None:
    access = Access(settings(), CountingIdentify(answer))
    with pytest.raises(RelayError) as refused:
        access.identify_socketio(None, {}, "10.0.0.3")
    assert refused.value.code is ErrorCode.INTERNAL
    assert "secret-xyz" not in caplog.text and "identify hook" in caplog.text


def test_identify_given_replaces_the_static_tokens() -> None:
    access = Access(settings(auth_tokens="tok-1"), CountingIdentify(Identity("bob")))
    assert not access.tokens_required and access.authenticates
    environ: dict[str, Any] = {}
    assert access.identify_socketio({"token": "tok-1"}, environ, "10.0.0.4") == "user:bob"
    without = Access(settings(auth_tokens="tok-1"))
    environ = {}
    client = without.identify_socketio({"token": "tok-1"}, environ, "10.0.0.4")
    assert client.startswith("token:") and identity_of(environ) == Identity(client)


# prepare

def test_prepare_sees_messages_and_the_model_and_its_answer_is_what_is_sent() -> None:
    config = settings(allowed_models="fake-model,big-model", openai_model="fake-model", system_prompt="Be brief.")
    sent = {"prompt": "Hi", "stream_id": "s1", "temperature": 0.5}
    seen: list[dict[str, Any]] = []

    def prepare(request: dict[str, Any], identity: Identity) -> dict[str, Any]:
        seen.append(request)
        request["messages"].insert(0, {"role": "system", "content": f"Plan {identity.attributes['plan']}."})
        return {**request, "model": "big-model"}

    request = prepared(parse_chat_request(sent, config), sent, Identity("u", {"plan": "pro"}), prepare, config)
    assert seen == [{"messages": [{"role": "system", "content": "Plan pro."}, {"role": "user", "content": "Hi"}],
                     "model": "fake-model", "temperature": 0.5}]
    assert request.stream_id == "s1" and request.model == "big-model" and request.temperature == 0.5
    assert request.messages == [{"role": "system", "content": "Be brief."},  # SYSTEM_PROMPT, as for a client
                                {"role": "system", "content": "Plan pro."}, {"role": "user", "content": "Hi"}]
    assert sent == {"prompt": "Hi", "stream_id": "s1", "temperature": 0.5}  # the client's own is left alone


@pytest.mark.parametrize("returned", [{"messages": []}, {"messages": [{"role": "user", "content": "x"}],
                                                         "model": "not-allowed"}, "a string", None,
                                      RuntimeError("boom")])
def test_an_invalid_prepared_request_is_internal(returned: Any) -> None:
    config = settings()
    sent = {"prompt": "Hi"}

    def prepare(request: dict[str, Any], identity: Identity) -> Any:
        if isinstance(returned, Exception):
            raise returned
        return returned

    with pytest.raises(RelayError) as refused:
        prepared(parse_chat_request(sent, config), sent, Identity("u"), prepare, config)
    assert refused.value.code is ErrorCode.INTERNAL


def test_a_refusal_of_the_teams_own_reaches_the_client() -> None:
    config = settings()

    def prepare(request: dict[str, Any], identity: Identity) -> dict[str, Any]:
        raise RelayError(ErrorCode.INVALID_REQUEST, "Not on your plan.")

    with pytest.raises(RelayError, match=r"Not on your plan\."):
        prepared(parse_chat_request({"prompt": "x"}, config), {"prompt": "x"}, Identity("u"), prepare, config)


# FORWARD_USER

def test_forward_user_sends_a_keyed_hash_never_the_id() -> None:
    config = settings(forward_user=True, secret_key="server-secret")
    request = parse_chat_request({"prompt": "x"}, config)
    tagged = UserHashes(config).tagged(request, Identity("alice@example.com"))
    value = tagged.options["safety_identifier"]
    assert "alice" not in value and len(value) == 64
    assert UserHashes(config).of("alice@example.com") == value  # the same on every instance
    assert UserHashes(settings(forward_user=True, secret_key="other")).of("alice@example.com") != value
    as_user = settings(forward_user=True, secret_key="server-secret", forward_user_field="user")
    assert UserHashes(as_user).tagged(request, Identity("alice@example.com")).options == {"user": value}
    assert UserHashes(settings()).tagged(request, Identity("alice")) is request  # off by default


def test_forward_user_needs_a_secret_key() -> None:
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_settings(openai_api_key="sk-unit", forward_user=True, _env_file=None)


# budget

def test_a_burst_reserves_and_only_what_fits_is_admitted() -> None:
    config = settings()
    budgets = Budgets(lambda identity: 75, config)
    request = parse_chat_request({"prompt": "x" * 40, "max_tokens": 5}, config)
    assert budgets.estimate(request) == 15
    admitted, refused = [], []
    for _ in range(12):
        try:
            admitted.append(budgets.reserve(request, Identity("u")))
        except RelayError as err:
            refused.append(err)
    assert len(admitted) == 5 and len(refused) == 7
    assert {err.code for err in refused} == {ErrorCode.BUDGET_EXCEEDED}
    assert all(0 < (err.retry_after or 0) <= config.budget_period for err in refused)
    charge = admitted[0]
    assert charge is not None
    budgets.settle(charge, {"total_tokens": 5})  # used less than it reserved: 10 come back
    budgets.settle(charge, {"total_tokens": 0})  # settled once only
    assert budgets.reserve(parse_chat_request({"prompt": "x" * 20, "max_tokens": 5}, config), Identity("u"))
    with pytest.raises(RelayError):
        budgets.reserve(request, Identity("u"))
    assert budgets.reserve(request, Identity("someone else")) is not None


def test_a_failing_budget_hook_is_an_internal_error(caplog: pytest.LogCaptureFixture) -> None:
    def budget(identity: Identity) -> int:
        raise KeyError("secret-plan")

    with pytest.raises(RelayError) as refused:
        Budgets(budget, settings()).reserve(parse_chat_request({"prompt": "x"}, settings()), Identity("u"))
    assert refused.value.code is ErrorCode.INTERNAL
    assert "the budget hook failed: KeyError" in caplog.text and "secret-plan" not in caplog.text


def test_a_reply_without_usage_costs_its_reservation_and_no_budget_is_no_limit() -> None:
    config = settings(budget_reserve_tokens=50)
    budgets = Budgets(lambda identity: None if identity.user_id == "free" else 100, config)
    request = parse_chat_request({"prompt": "x" * 8}, config)
    assert budgets.estimate(request) == 52  # no max_tokens: BUDGET_RESERVE_TOKENS
    assert budgets.reserve(request, Identity("free")) is None
    charge = budgets.reserve(request, Identity("u"))
    assert charge is not None
    budgets.settle(charge, None)
    with pytest.raises(RelayError, match="used your budget"):
        budgets.reserve(request, Identity("u"))
    huge = parse_chat_request({"prompt": "x", "max_tokens": 200}, config)
    with pytest.raises(RelayError, match="more than your whole budget"):
        budgets.reserve(huge, Identity("v"))


# on_finish

def test_the_record_holds_every_part_of_the_reply() -> None:
    config = settings()
    request = parse_chat_request({"prompt": "x"}, config)
    pieces: list[Any] = [{"type": "reasoning", "text": "hm"}, "Hel", "lo",
                         {"type": "tool_call", "index": 0, "id": "c1", "name": "f", "arguments": "{}"},
                         {"type": "tool_result", "id": "c1", "content": "42"}]  # a kind this branch never makes
    timings = Timings(1.0, 0.5, 0.1)
    record = finish_record(request=request, identity=Identity("u"), transport="http", pieces=pieces,
                           terminal=Done("stop", 5, {"total_tokens": 3}), cause="completed", timings=timings)
    assert record.text == "Hello" and record.reasoning == "hm" and record.usage == {"total_tokens": 3}
    assert record.parts[-1] == {"type": "tool_result", "id": "c1", "content": "42"}
    assert record.tool_calls == [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    failed = finish_record(request=request, identity=Identity("u"), transport="http", pieces=["a"],
                           terminal=Failed(ErrorCode.INTERRUPTED, "gone", 1), cause="interrupted", timings=timings)
    assert failed.error == "interrupted" and failed.finish_reason is None and failed.text == "a"


def test_a_raising_hook_is_logged_as_a_bug_without_its_message(caplog: pytest.LogCaptureFixture) -> None:
    def hook(record: Any) -> None:
        raise ValueError("secret-abc")

    record = finish_record(request=parse_chat_request({"prompt": "x"}, settings()), identity=Identity("u"),
                           transport="http", pieces=[], terminal=Done("stop", 0, None), cause="completed",
                           timings=Timings(0, 0, None))
    run_hook(hook, record)
    assert "on_finish hook failed: ValueError" in caplog.text and "secret-abc" not in caplog.text


def test_a_shutdown_waits_for_running_on_finish_calls_before_it_disconnects() -> None:
    """chat_relay/lifecycle/shutdown.py: the clients are disconnected (and the worker let go) only once the hooks
    still running have returned, within its few seconds."""
    from types import SimpleNamespace

    from chat_relay.lifecycle.shutdown import Shutdown
    from chat_relay.streams.registry import StreamRegistry

    seen: list[str] = []
    running = [2]  # two on_finish calls still running; each look at them lets one return

    def hooks_running() -> int:
        seen.append(f"hooks:{running[0]}")
        count = running[0]
        running[0] = max(0, count - 1)
        return count

    def start_background_task(task: Any, *args: Any) -> None:
        task(*args)  # inline: the drain and its disconnect run in order, in this thread

    eio = SimpleNamespace(disconnect=lambda: seen.append("disconnect"))
    socketio = SimpleNamespace(start_background_task=start_background_task, sleep=lambda seconds: None,
                               server=SimpleNamespace(eio=eio))
    admission = SimpleNamespace(draining=False)
    shutdown = Shutdown(settings(), StreamRegistry(), admission, socketio, None,  # type: ignore[arg-type]
                        hooks_running=hooks_running)
    shutdown.begin(lambda: seen.append("drained"), grace=0)
    assert seen == ["hooks:2", "hooks:1", "hooks:0", "disconnect", "drained"]


def test_without_redis_answering_the_budget_counts_on_this_instance(caplog: pytest.LogCaptureFixture) -> None:
    config = settings(redis_url="redis://127.0.0.1:9/0", redis_timeout=0.2)  # nothing listens on port 9
    budgets = Budgets(lambda identity: 30, config)
    request = parse_chat_request({"prompt": "x" * 40, "max_tokens": 5}, config)  # 15 tokens
    assert budgets.reserve(request, Identity("u")) is not None
    assert budgets.reserve(request, Identity("u")) is not None
    with pytest.raises(RelayError):
        budgets.reserve(request, Identity("u"))
    assert "counting per instance" in caplog.text
