"""Which host names the server answers to (ALLOWED_HOSTS): the defence against DNS rebinding.

A page on attacker.example can make its own name resolve to 127.0.0.1; the browser then sends
`Host: attacker.example` and `Origin: http://attacker.example` to the relay, which looks like the
relay's own origin. Only a host name the deployer listed (or a loopback name, which no one else can
point anywhere) proves that the browser was really talking to this server.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

from ..host_names import allowed_host_entry

# Names a browser sends only for a page it really loaded from this machine: always answered.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
# Bind addresses that mean "every interface": they name no host a client would use.
ANY_ADDRESS = ("", "0.0.0.0", "::", "[::]")

HOST_NOT_ALLOWED_MESSAGE = "This server does not answer to that host name: ALLOWED_HOSTS lists the ones it does."

def allowed_hosts(listed: Iterable[str], bind_host: str) -> frozenset[str]:
    """The names answered: the loopback ones, HOST when it is one address, and those listed (already normalized)."""
    names = set(LOOPBACK_HOSTS) | set(listed)
    if bind_host.strip() not in ANY_ADDRESS:
        with contextlib.suppress(ValueError):  # not a name a Host header could carry: nothing to add
            names.add(allowed_host_entry(bind_host))
    return frozenset(names)
