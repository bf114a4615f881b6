"""Telling "the conversation does not fit the model's context window" apart from other upstream errors.

Servers say it in different ways, as a status before the stream or as an error event inside it; each is
recognised from the error object alone (the `error` member of the JSON body or of the streamed event), so any
reader of the upstream's responses can call `is_context_overflow` on what it parsed. The client gets one
clear `invalid_request` (docs/protocol.md, "Too long for the model"), never the upstream's own words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..errors import ErrorCode, RelayError

MESSAGE = ("The conversation is too long for the model: it does not fit in the model's context window. "
           "Send a shorter conversation, with fewer or shorter messages.")

_CODES = {"context_length_exceeded"}  # OpenAI, and the local model (app/serving/model_server.py)
_TYPES = {"exceed_context_size_error"}  # llama.cpp's own server
# vLLM and others that give no code: their message, in OpenAI's words or llama.cpp's.
_WORDS = re.compile(r"maximum context length|exceeds? (the )?(available )?context (size|window)", re.IGNORECASE)


def is_context_overflow(error: object) -> bool:
    """True if an upstream's error object says the request is too long for the model's context."""
    if not isinstance(error, Mapping):
        return False
    code, kind, message = error.get("code"), error.get("type"), error.get("message")
    return code in _CODES or kind in _TYPES or (isinstance(message, str) and bool(_WORDS.search(message)))


def context_overflow_error() -> RelayError:
    return RelayError(ErrorCode.INVALID_REQUEST, MESSAGE)
