"""Built-in exporters: system, process, redis, postgres, gpu.

Each is a prometheus_client custom collector made by a factory from a mapping of
options.  The registry imports an exporter's module only when it is created, so
``import vigil.exporters`` never loads redis, psycopg or NVML.

>>> exporter = create("system", {"collectors": "loadavg"})
>>> sorted(m.name for m in exporter.collect())[:1]
['node_load1']
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from vigil.exporters.base import Exporter, ExporterOptionError, Options

__all__ = ["EXPORTERS", "Exporter", "ExporterOptionError", "create", "names"]

ExporterFactory = Callable[[Options], Exporter]

EXPORTERS: dict[str, str] = {
    "system": "vigil.exporters.system",
    "process": "vigil.exporters.process",
    "redis": "vigil.exporters.redis",
    "postgres": "vigil.exporters.postgres",
    "gpu": "vigil.exporters.gpu",
}
"""Exporter name -> module defining ``create(options) -> Exporter``."""


def names() -> list[str]:
    """The names ``create`` accepts, sorted."""
    return sorted(EXPORTERS)


def factory(name: str) -> ExporterFactory:
    """The factory for exporter ``name``; raises ``KeyError`` naming the choices."""
    try:
        module_name = EXPORTERS[name]
    except KeyError:
        raise KeyError(f"unknown exporter {name!r}; choose one of {', '.join(names())}") from None
    module = importlib.import_module(module_name)
    create_fn: ExporterFactory = module.create
    return create_fn


def create(name: str, options: Options | None = None) -> Exporter:
    """Build exporter ``name`` with ``options`` (strings or typed values).

    Raises ``KeyError`` for an unknown name and ``ExporterOptionError`` for a bad
    option; an unreachable source is not an error here (it shows as ``*_up 0``).
    """
    return factory(name)(options or {})
