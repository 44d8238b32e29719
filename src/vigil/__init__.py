"""Vigil: Prometheus-compatible observability for Python teams, in one process."""

__version__ = "0.1.0"
