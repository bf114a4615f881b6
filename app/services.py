"""The objects that the Socket.IO handlers and the HTTP routes share, built once per app."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from flask_socketio import SocketIO

from .config import Settings
from .registry import StreamRegistry
from .relay import Relay
from .schemas import ChatRequest
from .upstream import Upstream

EXTENSION_KEY = "chat_relay"


@dataclass(frozen=True)
class Services:
    settings: Settings
    upstream: Upstream
    registry: StreamRegistry
    socketio: SocketIO

    def new_relay(self, request: ChatRequest) -> Relay:
        """A relay that yields to other greenlets after each chunk, so writers are not starved."""
        return Relay(request, self.upstream, pause=self.socketio.sleep)


def current_services() -> Services:
    return current_app.extensions[EXTENSION_KEY]
