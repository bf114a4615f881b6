"""Host names as the relay compares them: a `Host` header's name, and an ALLOWED_HOSTS entry, normalized alike.

Plain text rules with no app in them, so that the settings (config.py, the ground floor) can validate
ALLOWED_HOSTS with them and access/hosts.py can check requests against the result.
"""

from __future__ import annotations

import ipaddress
import re

# A Host header: a name or IPv4 address, or a bracketed IPv6 address, then an optional port (RFC 9110).
_HOST_HEADER = re.compile(r"(?P<name>[a-z0-9._-]+|\[(?P<ipv6>[0-9a-f:.]+)\])(?::(?P<port>[0-9]{1,5}))?")
_NAME = re.compile(r"[a-z0-9._-]+")


def host_name(host_header: str | None) -> str | None:
    """The host name of a `Host` header, lower case, without port, brackets or a trailing dot; None if malformed.

    werkzeug's `host_is_trusted` would do, but it compares case-sensitively and cannot match IPv6 entries.
    """
    match = _HOST_HEADER.fullmatch((host_header or "").strip().lower())
    if not match:
        return None
    if match["ipv6"] is not None:
        return _ipv6(match["ipv6"])
    return match["name"].rstrip(".") or None


def allowed_host_entry(entry: str) -> str:
    """One ALLOWED_HOSTS entry, normalized as `host_name` normalizes a Host header; ValueError says what is wrong."""
    value = entry.strip().lower()
    if value == "*" or value.startswith("."):
        raise ValueError("wildcards are not allowed: list each host name (a wildcard would let DNS rebinding in)")
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    if ":" in value and (normalized := _ipv6(value)):  # a bare IPv6 address, as HOST is written
        return normalized
    if not _NAME.fullmatch(value) or not value.rstrip("."):
        raise ValueError(f"{entry!r} is not a host name: write the name alone, without scheme or port "
                         "(chat.example.com, 192.0.2.7, ::1)")
    return value.rstrip(".")


def _ipv6(text: str) -> str | None:
    try:
        return ipaddress.IPv6Address(text).compressed
    except ValueError:
        return None
