"""gunicorn's own log lines as JSON, for LOG_FORMAT=json: gunicorn.conf.py names this class as its `logger_class`.

gunicorn writes its notices (gunicorn.error) and one access line per request (gunicorn.access) through
handlers of its own, outside the root logger that the app configures (chat_relay/observability/logs.py). This keeps
those handlers and gives them the JSON formatter. An access record's arguments are gunicorn's atoms, which
also hold every request header (an Authorization among them): only the fields of `access_fields` are kept.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from gunicorn.glogging import Logger

from chat_relay.observability.logs import JsonFormatter, access_fields


class JsonLogger(Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())
        for handler in self.access_log.handlers:
            handler.setFormatter(_AccessFormatter())


class _AccessFormatter(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        atoms = record.args
        if isinstance(atoms, Mapping):
            record.event = "access"
            duration_us = atoms.get("D")
            record.fields = access_fields(atoms.get("h"), atoms.get("m"), atoms.get("U"), atoms.get("s"),
                                          atoms.get("B"), (duration_us if isinstance(duration_us, int) else 0) / 1e6)
        return super().format(record)
