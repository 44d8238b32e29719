"""gunicorn config used by test_multiprocess.py: Vigil's multiprocess hooks."""

from vigil.sdk.multiprocess import child_exit, on_starting

__all__ = ["child_exit", "on_starting"]
