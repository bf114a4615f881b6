"""Settings, read from the environment and from a `.env` file, validated once at start-up."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .host_names import allowed_host_entry

AsyncMode = Literal["gevent", "eventlet", "threading"]

# The few-shot frame's chat format name (app/serving/qa_frame.py registers it with the model server).
LOCAL_MODEL_QA_FRAME = "few-shot-qa"

# Binary attachments one Socket.IO packet may announce (`45N-`); they share MAX_REQUEST_BYTES. The relay's own
# events carry none; a team's events on the same server may carry a few.
MAX_ATTACHMENTS = 16
# Connections one server process serves at once, idle ones included: gunicorn's worker_connections, eventlet's
# max_size. README "Security and limits" says how it relates to MAX_CONNECTIONS_PER_CLIENT and nginx's limit_conn.
WORKER_CONNECTIONS = 2000


class ConfigError(Exception):
    """A setting is missing or wrong; the message says which and what to do."""


def _split_csv(value: object) -> object:
    """Accept `a,b, c` for list settings, as people write them in shells and .env files."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Everything the server needs to know, with safe defaults; tests build one directly."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # The upstream: OpenAI or any OpenAI-compatible server (Ollama, vLLM, llama.cpp).
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    allowed_models: Annotated[list[str], NoDecode] = Field(default_factory=list)
    system_prompt: str | None = None
    upstream_connect_timeout: float = Field(10.0, gt=0)
    upstream_read_timeout: float = Field(60.0, gt=0)  # longest silence: before the first chunk or between two
    upstream_max_retries: int = Field(2, ge=0, le=10)  # only before the first chunk: the client retries the request
    reasoning_tags: bool = False  # a leading <think>...</think> in the content is relayed as reasoning

    # Serving.
    async_mode: AsyncMode = "gevent"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    cors_allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)  # empty: same origin only
    # permessage-deflate for Socket.IO's websocket: off, since it adds about 20% CPU per piece when the worker is
    # busiest, to save bytes that are few (docs/benchmarks.md); on for clients on slow or metered links
    websocket_compression: bool = False
    log_level: str = "INFO"
    # text: today's readable lines; json: one JSON object per line, for log shippers (chat_relay/observability/logs.py)
    log_format: Literal["text", "json"] = "text"
    # Who may read GET /metrics on the main port: addresses or networks of the TCP peer (the scraper itself, never a
    # forwarded address); empty turns /metrics off. Requests that came through a proxy are refused whatever their
    # address, so nginx on the same machine never exposes it (chat_relay/access/metrics_access.py).
    metrics_allow: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["127.0.0.1", "::1"])

    # Request limits.
    max_prompt_chars: int = Field(32_000, ge=1)  # all message contents together
    max_messages: int = Field(100, ge=1)
    max_tokens_limit: int = Field(4096, ge=1)
    default_max_tokens: int | None = Field(None, ge=1)  # for requests that name none; None leaves it to the model
    default_temperature: float | None = Field(None, ge=0, le=2)  # the same for temperature
    # Socket.IO messages and HTTP bodies larger than this are refused before they are parsed: Flask's
    # MAX_CONTENT_LENGTH, engine.io's max_http_buffer_size (which bounds websocket frames too) and the body
    # deadline all read it. 8 MiB holds one MAX_IMAGE_BYTES image in base64 (4/3 of it) and the text around it.
    max_request_bytes: int = Field(8_388_608, ge=1024)
    # Before a client has shown a token, far less: a Socket.IO message before its connect is accepted, and the body
    # of an HTTP stream request without one of AUTH_TOKENS, is read only up to this (a connect with a token is
    # ~200 bytes), so a client without a token cannot make the server hold MAX_REQUEST_BYTES per connection.
    max_unauthenticated_bytes: int = Field(65_536, ge=1024)
    # Images in requests (docs/protocol.md, "The request"): decoded bytes per image, images per request, and
    # whether `https:` image URLs may be sent (the upstream fetches them: off, so a client cannot make it fetch).
    max_image_bytes: int = Field(5_000_000, ge=1)
    max_images: int = Field(8, ge=0)
    allow_image_urls: bool = False
    # Function tools per request, and their definitions' size as compact JSON: each is sent with every request.
    max_tools: int = Field(64, ge=0)
    max_tools_bytes: int = Field(100_000, ge=1)
    # Server-side tools (`@relay.tool`, docs/protocol.md "Server-side tools"): each call's time, the rounds of
    # tools one stream may run, a result's size as compact JSON, and the calls run per reply: together they bound
    # the time and bytes a prompt can make the tools take.
    tool_timeout: float = Field(10.0, gt=0)
    max_tool_steps: int = Field(5, ge=0)
    max_tool_result_bytes: int = Field(32_768, ge=1)
    max_tool_calls: int = Field(8, ge=1)  # run per reply of the model; the rest get a tool_error

    # The local stand-in model, which `make run` starts when no upstream is configured (app/serving/local_model.py).
    local_model_port: int = Field(8001, ge=1, le=65535)
    local_model_path: str | None = None  # another GGUF file to serve instead of the packaged Gemma 3 270M
    # How the conversation is written for the model: the few-shot Q&A frame for the packaged base model
    # (app/serving/qa_frame.py), or llama-cpp-python's name for another file's chat markup; "" uses the file's own.
    local_model_chat_format: str = LOCAL_MODEL_QA_FRAME

    # Access, abuse limits, liveness and shutdown (README "Security and limits").
    auth_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)  # empty: no token needed
    max_streams_per_client: int = Field(4, ge=1)
    max_streams_total: int = Field(500, ge=1)
    rate_limit: str = "60/minute"  # per client identity, in the `limits` notation; "" turns it off
    # Wrong access tokens per address (chat_relay/access/auth_failures.py): past it, every try from the address
    # gets 429, a right token too, until the window frees one. "" turns it off.
    auth_failure_limit: str = "10/minute"
    # Seconds a request's body may take to arrive, whole; then 408 and the connection is closed
    # (chat_relay/middleware/body_deadline.py). A text request arrives in well under that; the largest
    # allowed (MAX_REQUEST_BYTES, 8 MiB: an image) needs about 7 Mbit/s: raise it for slow links that send images.
    request_body_timeout: float = Field(10.0, gt=0, le=300)
    # Socket.IO connections per client identity: a household or an office behind one address stays well below,
    # and one address cannot take more than a small share of gunicorn's worker_connections (2000).
    max_connections_per_client: int = Field(100, ge=1)
    # An engine.io connection that has not sent its Socket.IO connect by then is closed (socket.io's connectTimeout).
    socketio_connect_timeout: float = Field(10.0, gt=0, le=300)
    ping_interval: float = Field(25.0, gt=0)  # Socket.IO: a client silent for interval + timeout is gone
    ping_timeout: float = Field(20.0, gt=0)
    # On SIGTERM. At most 25: cut streams get 5 s more for their last event, within gunicorn's graceful_timeout (30).
    shutdown_grace: float = Field(20.0, ge=0, le=25)
    # Slow readers (docs/security.md): what the relay holds of a stream for a reader that has not taken it, before
    # it stops reading the upstream; and how long a reader may take nothing before its stream ends (stalled_reader).
    max_buffered_bytes: int = Field(1_048_576, ge=1024, le=1 << 30)
    stalled_reader_timeout: float = Field(30.0, gt=0, le=3600)
    # Resuming streams (docs/protocol.md, "Resuming a stream"), and what spans instances.
    resume_grace: float = Field(20.0, ge=0, le=3600)  # seconds a stream with no reader waits for a resume; 0: none
    resume_ttl: float = Field(300.0, gt=0, le=86_400)  # seconds an ended stream can still be replayed
    # Redis: shares stream logs, resume, stops and limits between instances, and Socket.IO's message queue.
    redis_url: str | None = None
    # Longest wait for Redis before a request is admitted (rate limit, failed-auth throttle); past it, this instance
    # counts on its own for a second (chat_relay/access/shared_counts.py). Raise it for a Redis far away.
    redis_timeout: float = Field(0.25, gt=0, le=10)
    secret_key: SecretStr | None = None  # signs resume tokens; without it, generated (and shared through Redis)
    # The team's hooks (chat_relay/hooks/). FORWARD_USER: the upstream gets FORWARD_USER_FIELD, a keyed hash (HMAC,
    # keyed from SECRET_KEY) of the user id, never the id; `user` for servers that do not know `safety_identifier`.
    forward_user: bool = False
    forward_user_field: Literal["safety_identifier", "user"] = "safety_identifier"
    # A token budget's period, in seconds: `budget(identity)` tokens per fixed window of this length.
    budget_period: int = Field(86_400, ge=1, le=31 * 86_400)
    # What a request that bounds its reply neither way (max_tokens, max_completion_tokens, DEFAULT_MAX_TOKENS)
    # reserves of its budget for the reply, until its real usage is known.
    budget_reserve_tokens: int = Field(1024, ge=1)
    # How many proxies (nginx: 1) stand in front and set X-Forwarded-For/-Proto/-Host. With 0 those headers are
    # ignored: a client could forge them, and limits would count every user behind nginx as one address.
    trusted_proxies: int = Field(0, ge=0, le=5)
    # Host names (no port) that streams and Socket.IO answer to, besides the loopback names and HOST
    # (chat_relay/access/hosts.py).
    # Behind a proxy, the public name (chat.example.com); on 0.0.0.0, the names or addresses clients use.
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)

    _split_lists = field_validator("allowed_models", "cors_allowed_origins", "auth_tokens", "allowed_hosts",
                                  "metrics_allow", mode="before")(_split_csv)

    @field_validator("rate_limit", "auth_failure_limit")
    @classmethod
    def _parsable_rate(cls, rate: str) -> str:
        if rate.strip():
            from limits import parse_many

            try:
                parse_many(rate)
            except ValueError:
                raise ValueError("write it like '60/minute' or '10/second;100/hour'") from None
        return rate.strip()

    @field_validator("cors_allowed_origins")
    @classmethod
    def _no_wildcard(cls, origins: list[str]) -> list[str]:
        if "*" in origins:
            raise ValueError("'*' is not allowed: list the origins that may connect")
        return origins

    @field_validator("metrics_allow")
    @classmethod
    def _networks(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an address or a network (127.0.0.1, 10.0.0.0/8, ::1)") from None
        return entries

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, hosts: list[str]) -> list[str]:
        return [allowed_host_entry(host) for host in hosts]

    @model_validator(mode="after")
    def _default_model_is_allowed(self) -> Settings:
        if not self.allowed_models:
            self.allowed_models = [self.openai_model]
        elif self.openai_model not in self.allowed_models:
            self.allowed_models = [self.openai_model, *self.allowed_models]
        return self

    @model_validator(mode="after")
    def _forward_user_needs_a_secret(self) -> Settings:
        if self.forward_user and self.secret_key is None:
            raise ValueError("FORWARD_USER=true needs SECRET_KEY (the same on every instance): the user id is sent "
                             "as a hash keyed with it")
        return self

    @property
    def uses_local_model(self) -> bool:
        """No key and no base URL: the launcher serves the local model and points the relay at it."""
        return self.openai_api_key is None and not self.openai_base_url

    def require_upstream(self) -> None:
        """Refuse to run with nowhere to send requests, naming the settings that fix it."""
        if self.openai_api_key is None and not self.openai_base_url:
            # `make run` exists only in a checkout: a container (Dockerfile) or an installed copy has no Makefile.
            in_checkout = (Path(__file__).resolve().parents[1] / "Makefile").is_file()
            raise ConfigError(
                "No upstream is configured. Set OPENAI_API_KEY to use OpenAI, or OPENAI_BASE_URL "
                "to use another OpenAI-compatible server (Ollama, vLLM, llama.cpp), in the "
                "environment or in a .env file."
                + (" Or start it with `make run`, which serves a small local model when neither is set."
                   if in_checkout else "")
            )


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning validation errors into one readable ConfigError."""
    try:
        return Settings(**overrides)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']).upper() or 'settings'}: {e['msg']}" for e in err.errors()
        )
        raise ConfigError(f"Invalid settings: {problems}") from None
