"""The HTTP half of the fuzz (tests/live/test_fuzz.py has the payloads, the checks and the Socket.IO half): 4,500
fuzzed request bodies, each answered with a coded error or a clean stream, on a server of its own, so that the two
halves run side by side in a parallel run."""

from __future__ import annotations

import pytest

from tests.conftest import LiveServer
from tests.live.test_fuzz import fuzz, fuzz_server  # noqa: F401  (fuzz_server is a fixture: one server per module)


@pytest.mark.long  # about 50 s alone: a parallel run starts it first
@pytest.mark.timeout(600)  # a hang guard, as the Socket.IO half's
def test_fuzzed_http_bodies_get_a_coded_error_or_a_clean_stream(fuzz_server: LiveServer,  # noqa: F811
                                                                 fake_upstream) -> None:
    fuzz(fuzz_server, fake_upstream, ("http",))
