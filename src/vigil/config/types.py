"""Value types used in the configuration: durations, byte sizes, secrets.

`Duration` keeps integer milliseconds and parses/prints Prometheus's duration
syntax (``1h30m``, ``15s``, ``1d``, ``1w``, ``1y``, ``500ms``). `Size` keeps bytes
and parses Prometheus's size syntax, whose units are powers of 1024 (``1KB`` is
1024 bytes, as in Prometheus's `units.Base2Bytes`). `Secret` is a string that
prints as ``<secret>`` when the effective configuration is shown.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

from vigil.model.duration import format_duration, parse_duration


class Duration(int):
    """A non-negative span of time in integer milliseconds.

    Construct from milliseconds (``Duration(15000)``) or parse Prometheus syntax
    (``Duration.parse("15s")``). ``str()`` gives Prometheus's canonical form
    (``"1m30s"``, ``"0s"``), which parses back to the same value.
    """

    __slots__ = ()

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Parse ``1h30m`` style text; raise ValueError naming the text when invalid."""
        try:
            return cls(parse_duration(text))
        except ValueError as exc:
            if text == "" or "not a valid duration" not in str(exc):
                raise
            raise ValueError(
                f"{exc} (use a number with a unit, e.g. 15s, 1m30s, 500ms, 1h, 1d)"
            ) from None

    @property
    def seconds(self) -> float:
        """The duration in (fractional) seconds."""
        return int(self) / 1000.0

    @property
    def ms(self) -> int:
        return int(self)

    def __str__(self) -> str:
        return format_duration(int(self))

    def __repr__(self) -> str:
        return f"Duration({self!s})"

    @classmethod
    def _validate(cls, value: Any) -> Duration:
        if isinstance(value, Duration):
            return value
        if isinstance(value, str):
            try:
                return cls.parse(value)
            except ValueError as exc:
                raise PydanticCustomError("duration", str(exc)) from None
        raise PydanticCustomError(
            "duration",
            "expected a duration string such as 15s, 1m or 1h30m, got {value!r}",
            {"value": value},
        )

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            serialization=core_schema.plain_serializer_function_ser_schema(str, when_used="json"),
        )


_SIZE_RE = re.compile(r"^(\d+)([KMGTPE]?i?B)$")
_SIZE_MULT = {
    "": 1,
    "K": 1 << 10,
    "M": 1 << 20,
    "G": 1 << 30,
    "T": 1 << 40,
    "P": 1 << 50,
    "E": 1 << 60,
}


class Size(int):
    """A byte count. Parses ``512MB`` / ``10KiB`` / ``0`` (units are powers of 1024)."""

    __slots__ = ()

    @classmethod
    def parse(cls, text: str) -> Size:
        """Parse Prometheus size text; raise ValueError naming the text when invalid."""
        t = text.strip()
        if t == "0":
            return cls(0)
        m = _SIZE_RE.match(t)
        if m is None or m.group(2) == "iB":
            raise ValueError(
                f'not a valid size: "{text}" (use a number with a unit: B, KB, MB, GB, TB, PB, EB;'
                " units are powers of 1024)"
            )
        return cls(int(m.group(1)) * _SIZE_MULT[m.group(2)[0] if m.group(2) != "B" else ""])

    def __str__(self) -> str:
        n = int(self)
        if n == 0:
            return "0B"
        for unit in ("E", "P", "T", "G", "M", "K"):
            mult = _SIZE_MULT[unit]
            if n % mult == 0:
                return f"{n // mult}{unit}B"
        return f"{n}B"

    def __repr__(self) -> str:
        return f"Size({self!s})"

    @classmethod
    def _validate(cls, value: Any) -> Size:
        if isinstance(value, Size):
            return value
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            # A bare number in YAML is a byte count, as Prometheus accepts it.
            return cls(value)
        if isinstance(value, str):
            try:
                return cls.parse(value)
            except ValueError as exc:
                raise PydanticCustomError("size", str(exc)) from None
        raise PydanticCustomError(
            "size", "expected a size such as 512MB, got {value!r}", {"value": value}
        )

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            serialization=core_schema.plain_serializer_function_ser_schema(str, when_used="json"),
        )


class Secret(str):
    """A credential. Its value is usable as a string; the shown config prints ``<secret>``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('<secret>')"

    @classmethod
    def _validate(cls, value: Any) -> Secret:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return cls(str(value))
        raise PydanticCustomError("secret", "expected a string, got {value!r}", {"value": value})

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda _v: "<secret>", when_used="json"
            ),
        )


def parse_duration_ms(text: str) -> int:
    """Milliseconds of Prometheus duration text (``"15s"`` -> 15000); ValueError if invalid."""
    return int(Duration.parse(text))


def parse_size_bytes(text: str) -> int:
    """Bytes of Prometheus size text (``"512MB"`` -> 536870912); ValueError if invalid."""
    return int(Size.parse(text))
