"""Shared helpers for the exporter tests: scrape a collector into plain dicts."""

from __future__ import annotations

import socket

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def render(collector: object) -> str:
    """Expose ``collector`` in the Prometheus text format, as /metrics would."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)  # type: ignore[arg-type]
    return generate_latest(registry).decode()


def parse(text: str) -> Series:
    """Parse exposition text into {(sample name, labels): value}."""
    out: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def scrape(collector: object) -> Series:
    """Render then parse, so tests see exactly what a scraper would."""
    return parse(render(collector))


def values(series: Series, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """All label sets -> values of sample ``name``."""
    return {labels: v for (n, labels), v in series.items() if n == name}


def value(series: Series, metric: str, /, **labels: str) -> float:
    """The value of one sample; KeyError when absent."""
    return series[(metric, frozenset(labels.items()))]


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
