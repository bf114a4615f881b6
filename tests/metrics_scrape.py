"""Scraping a server's GET /metrics as Prometheus does, parsed by prometheus_client's own parser, for the tests."""

from __future__ import annotations

from collections.abc import Iterable

import requests
from prometheus_client.parser import text_string_to_metric_families

from chat_relay.errors import ErrorCode
from chat_relay.observability.metrics import CAUSES, OTHER, TOOL_OUTCOMES

Sample = tuple[str, frozenset[tuple[str, str]]]  # (name, labels)

# every label a relay_* series may have ("le": histograms)
LABELS = {"transport", "model", "cause", "code", "tool", "outcome", "le"}
TRANSPORTS = {"socketio", "http"}
CODES = {code.value for code in ErrorCode}


def scrape_text(url: str) -> str:
    response = requests.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("text/plain"), response.headers
    return response.text


def relay_samples(text: str) -> dict[Sample, float]:
    """Every relay_* sample: (name, labels) -> value."""
    samples: dict[Sample, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("relay_"):
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


def check_bounded(samples: dict[Sample, float], models: Iterable[str], tools: Iterable[str] = ()) -> None:
    """Every label is one of the bounded ones, with a value from its closed set: no stream id, client, prompt,
    reply, key or token can be in a label (and values are numbers). `tools`: the server's registered tools."""
    allowed = {"transport": TRANSPORTS | {OTHER}, "model": set(models) | {OTHER}, "cause": set(CAUSES) | {OTHER},
               "code": CODES, "tool": set(tools) | {OTHER}, "outcome": set(TOOL_OUTCOMES) | {OTHER}}
    for (name, pairs), value in samples.items():
        assert isinstance(value, float), (name, value)
        for label, text in pairs:
            assert label in LABELS, (name, label)
            if label != "le":
                assert text in allowed[label], (name, label, text)
