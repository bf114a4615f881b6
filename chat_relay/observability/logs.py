"""Log lines: readable text (the default), or with LOG_FORMAT=json one JSON object per line, for log shippers.

The standard `logging`, with one small formatter for JSON. Events with fields (a stream's `stream_end`, an
access line) are logged with `log_event`: as text, `stream_end stream_id=... model=...`, the line it has always
been; as JSON, `{"time", "level", "logger", "message": "stream_end", "event": "stream_end", "stream_id", ...}`.
Every other record (notices, warnings) is `{"time", "level", "logger", "message"}`. gunicorn's own lines go
through app/serving/gunicorn_logs.py, eventlet's access lines through app/__main__.py; both end here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from itertools import chain

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: its fields are values, never text to parse."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        event = getattr(record, "event", None)
        if event is not None:
            line["message"] = line["event"] = event
            line.update(getattr(record, "fields", {}))
        else:
            line["message"] = record.getMessage()
        if record.exc_info:  # only at DEBUG: chat_relay/observability/bug_reports.py
            line["exc_info"] = self.formatException(record.exc_info)
        # ASCII: a lone surrogate or an odd byte in a value can never make the line unwritable or invalid.
        return json.dumps(line, default=str)


def configure(level: str, log_format: str) -> None:
    """The root logger's one handler, on stderr, in the chosen format (unless logging is set up already)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
    if log_format == "json":  # Python's warnings too, which it would otherwise print as text
        logging.captureWarnings(True)


def log_event(logger: logging.Logger, event: str, fields: Mapping[str, object], level: int = logging.INFO) -> None:
    """An event with its fields: `event k=v k=v` as text, an object with each field as JSON."""
    logger.log(level, "%s" + " %s=%s" * len(fields), event, *chain.from_iterable(fields.items()),
               extra={"event": event, "fields": fields})


def access_fields(remote_addr: object, method: object, target: object, status: object, sent: object,
                  seconds: float) -> dict[str, object]:
    """One request's access line, the same from gunicorn and from eventlet's server. The path without its query
    string: a resume token can travel there (`?resume_token=`, for EventSource)."""
    return {
        "remote_addr": str(remote_addr),
        "method": str(method),
        "path": str(target).split("?", 1)[0],
        "status": _number(status),
        "bytes": _number(sent),
        "duration_ms": round(seconds * 1000, 1),
    }


def _number(value: object) -> object:
    text = str(value).split(" ", 1)[0]
    return int(text) if text.isdigit() else None
