"""Settings: environment and .env parsing, safe defaults, and the refusal to start without an upstream."""

from __future__ import annotations

from pathlib import Path

import pytest

from chat_relay.config import ConfigError, Settings, load_settings

SETTING_NAMES = ["OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", "ALLOWED_MODELS", "CORS_ALLOWED_ORIGINS",
                 "ASYNC_MODE", "SYSTEM_PROMPT"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_refuses_without_key_or_base_url() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings().require_upstream()
    assert "OPENAI_API_KEY" in str(caught.value) and "OPENAI_BASE_URL" in str(caught.value)


def test_base_url_alone_is_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    load_settings().require_upstream()


def test_reads_dotenv_and_comma_lists(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "OPENAI_API_KEY=sk-from-dotenv\nOPENAI_MODEL=m1\nALLOWED_MODELS=m2, m3\n"
        "CORS_ALLOWED_ORIGINS=https://a.example,https://b.example\n"
    )
    settings = load_settings()
    assert settings.openai_api_key is not None and settings.openai_api_key.get_secret_value() == "sk-from-dotenv"
    assert settings.allowed_models == ["m1", "m2", "m3"]
    assert settings.cors_allowed_origins == ["https://a.example", "https://b.example"]


def test_environment_wins_over_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("OPENAI_MODEL=from-file\n")
    monkeypatch.setenv("OPENAI_MODEL", "from-env")
    assert load_settings().openai_model == "from-env"


def test_defaults_are_safe() -> None:
    settings = Settings(_env_file=None)
    assert settings.cors_allowed_origins == []  # same origin only
    assert settings.async_mode == "gevent"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.allowed_models == [settings.openai_model]


def test_wildcard_origin_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", "*")
    with pytest.raises(ConfigError, match="CORS_ALLOWED_ORIGINS"):
        load_settings()


def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNC_MODE", "tornado")
    with pytest.raises(ConfigError, match="ASYNC_MODE"):
        load_settings()


def test_key_is_secret_in_reprs() -> None:
    settings = Settings(openai_api_key="sk-very-secret", _env_file=None)
    assert "sk-very-secret" not in repr(settings) and "sk-very-secret" not in str(settings.model_dump())
