"""The JSON that Socket.IO and engine.io packets are written with: orjson, several times faster than `json`.

python-socketio and python-engineio accept any module with `dumps` and `loads`. Writing goes through
orjson; reading stays with the standard library, whose errors and limits the packet decoder
(chat_relay/transports/tolerant_packets.py) and the request validation are built on.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

loads = json.loads


def dumps(obj: Any, **_options: Any) -> str:
    """Compact JSON as str; the callers' `separators` are what orjson writes anyway."""
    return orjson.dumps(obj).decode()
