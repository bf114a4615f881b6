"""Who may read `GET /metrics` (METRICS_ALLOW): a scraper that connects straight to this instance.

Metrics are not public: they tell how busy the relay is, what fails and what it costs. `/metrics` answers a
request only when all of these hold, and any other gets the 404 of an unknown path:

- its TCP peer's address is in METRICS_ALLOW (default: loopback only). The peer itself, never an address a
  proxy forwarded: with TRUSTED_PROXIES, ProxyFix rewrites REMOTE_ADDR, and the original is the one checked;
- it came straight, not through a proxy: it carries no forwarding header. nginx on the same machine connects
  from 127.0.0.1, so without this rule a proxy that passed `/metrics` on would expose it to everyone;
- its Host is a name the server answers to (chat_relay/access/hosts.py), so no page can read it by DNS rebinding.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# Headers that only a proxy sets (or a client pretending to be one): either way, not a direct scrape.
PROXY_HEADERS = ("HTTP_FORWARDED", "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PROTO",
                 "HTTP_X_REAL_IP")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class MetricsAccess:
    def __init__(self, allow: Iterable[str], host_allowed: Callable[[Mapping[str, Any]], bool]) -> None:
        self._networks = [ipaddress.ip_network(entry, strict=False) for entry in allow]  # validated in config.py
        self._host_allowed = host_allowed

    def allowed(self, environ: Mapping[str, Any]) -> bool:
        if not self._networks or any(header in environ for header in PROXY_HEADERS):
            return False
        if not self._host_allowed(environ):
            return False
        original = environ.get("werkzeug.proxy_fix.orig") or {}
        address = _address(original.get("REMOTE_ADDR") or environ.get("REMOTE_ADDR"))
        return address is not None and any(address in network for network in self._networks)


def _address(text: object) -> Address | None:
    """The peer's address; an IPv4 client of a dual-stack socket (`::ffff:10.0.0.7`) as the IPv4 it is."""
    try:
        address = ipaddress.ip_address(str(text).split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
