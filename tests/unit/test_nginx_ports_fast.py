"""deploy/nginx.conf's instances are those `make instances N=2` starts: PORT's default and the next port."""

from __future__ import annotations

import re

from chat_relay.config import Settings
from tests.conftest import ROOT


def test_nginx_upstreams_name_the_ports_make_instances_starts() -> None:
    site = (ROOT / "deploy" / "nginx.conf").read_text()
    blocks = re.findall(r"upstream (\w+) \{(.*?)\}", site, flags=re.S)
    assert [name for name, _ in blocks] == ["relay_any", "relay_sticky"]
    first = Settings.model_fields["port"].default  # app/serving/instances.py: PORT, PORT+1, ...
    for name, body in blocks:
        ports = [int(port) for port in re.findall(r"server 127\.0\.0\.1:(\d+)", body)]
        assert ports == [first, first + 1], f"{name}: {ports}"
