"""This project's relay server: the chat_relay library's own app, with the web page, as gunicorn and `python -m app`
serve it (the launcher, the local model and the instances are in app/serving/)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from chat_relay.config import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """The relay with the web page (frontend/dist). Imports live in here so `python -m app` can monkey-patch
    before anything networked loads."""
    from chat_relay import create_app as relay_app

    return relay_app(settings, page=True)
