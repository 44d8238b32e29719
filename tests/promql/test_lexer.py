"""Lexer: token kinds, Go-compatible literals, and lexical errors with positions."""

from __future__ import annotations

import math

import pytest

from vigil.model.duration import format_duration, parse_duration
from vigil.promql.parser.lexer import (
    EOF,
    Lexer,
    PromQLParseError,
    go_quote,
    parse_number,
)


def kinds(query: str) -> list[tuple[str, str]]:
    lx = Lexer(query)
    out = []
    while True:
        t = lx.next()
        out.append((t.kind, t.val))
        if t.kind == EOF:
            return out


def test_keywords_operators_and_identifiers() -> None:
    assert kinds("sum by (a) (x:y) AND on() z") == [
        ("sum", "sum"),
        ("by", "by"),
        ("(", "("),
        ("IDENT", "a"),
        (")", ")"),
        ("(", "("),
        ("METRIC_IDENT", "x:y"),
        (")", ")"),
        ("and", "AND"),
        ("on", "on"),
        ("(", "("),
        (")", ")"),
        ("IDENT", "z"),
        ("EOF", ""),
    ]


def test_inside_braces_words_are_identifiers() -> None:
    assert [k for k, _ in kinds('{by="a", offset!~"b"}')] == [
        "{", "IDENT", "=", "STRING", ",", "IDENT", "!~", "STRING", "}", "EOF",
    ]  # fmt: skip


def test_numbers_and_durations() -> None:
    assert kinds("1 .5 1e3 0x1F Inf nan 5m 1h30m 500ms")[:-1] == [
        ("NUMBER", "1"),
        ("NUMBER", ".5"),
        ("NUMBER", "1e3"),
        ("NUMBER", "0x1F"),
        ("NUMBER", "Inf"),
        ("NUMBER", "nan"),
        ("DURATION", "5m"),
        ("DURATION", "1h30m"),
        ("DURATION", "500ms"),
    ]


def test_comments_are_skipped() -> None:
    assert kinds("x # a comment\n+ y")[:-1] == [("IDENT", "x"), ("+", "+"), ("IDENT", "y")]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", 1.0),
        ("1.5", 1.5),
        (".5", 0.5),
        ("5.", 5.0),
        ("1e3", 1000.0),
        ("1E-2", 0.01),
        ("0x1F", 31.0),
        ("0X_ff", 255.0),
        ("017", 15.0),
        ("0o17", 15.0),
        ("09", 9.0),
        ("1_000", 1000.0),
        ("Inf", math.inf),
        ("iNf", math.inf),
        ("99999999999999999999", 1e20),
    ],
)
def test_parse_number(text: str, value: float) -> None:
    assert parse_number(text) == value


def test_parse_number_nan_and_errors() -> None:
    assert math.isnan(parse_number("NaN"))
    with pytest.raises(ValueError, match="value out of range"):
        parse_number("9" * 400)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("0", 0),
        ("500ms", 500),
        ("5m", 300_000),
        ("1h30m", 5_400_000),
        ("1d", 86_400_000),
        ("1w", 604_800_000),
        ("1y", 31_536_000_000),
        ("1y2w3d4h5m6s7ms", 31_536_000_000 + 2 * 604_800_000 + 3 * 86_400_000 + 14_706_007),
    ],
)
def test_parse_and_format_duration(text: str, ms: int) -> None:
    assert parse_duration(text) == ms
    assert parse_duration(format_duration(ms)) == ms


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty duration string"),
        ("5m1h", 'not a valid duration string: "5m1h"'),
        ("1.5h", 'not a valid duration string: "1.5h"'),
        ("5hs", 'unknown unit "hs" in duration "5hs"'),
        ("999999999999y", "duration out of range"),
    ],
)
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert str(info.value) == message


def test_string_escapes() -> None:
    lx = Lexer(r'"a\tb\"c\\d\x41\101\u00e9\U0001F600" ' + "'it\\'s' `raw\\n`")
    assert lx.next().text == 'a\tb"c\\dAAé\U0001f600'
    assert lx.next().text == "it's"
    assert lx.next().text == "raw\\n"


def test_invalid_utf8_bytes_survive_and_print_as_go_does() -> None:
    text = Lexer(r'"a\xc5z"').next().text
    assert go_quote(text) == r'"a\xc5z"'
    assert go_quote("é\x00\n") == '"é\\x00\\n"'


@pytest.mark.parametrize(
    ("query", "pos", "message"),
    [
        ('"abc', 0, "unterminated quoted string"),
        ('x + "a\nb"', 4, "unterminated quoted string"),
        ("`abc", 0, "unterminated raw string"),
        (r'"\q"', 0, "unknown escape sequence U+0071 'q'"),
        (r'"\x4"', 0, "illegal character U+0022 '\"' in escape sequence"),
        (r'"\uD800"', 0, "escape sequence is an invalid Unicode code point"),
        ("x $", 2, "unexpected character: '$'"),
        ("x{a=1}", 4, "unexpected character inside braces: '1'"),
        ("x{", 2, "unexpected end of input inside braces"),
        ("(x", 2, "unclosed left parenthesis"),
        ("x)", 2, "unexpected right parenthesis ')'"),
        ("x]", 1, "unexpected right bracket ']'"),
        ("x[5m[", 4, "unexpected left bracket '['"),
        ("x[5m:1m:]", 7, "unexpected colon ':'"),
        ("x[:5m]", 2, "unexpected colon before duration in duration expression"),
        ("x[5m x]", 5, "unexpected character: 'x', expected ':'"),
        ("1abc", 0, 'bad number or duration syntax: "1"'),
    ],
)
def test_lexical_errors(query: str, pos: int, message: str) -> None:
    lx = Lexer(query)
    with pytest.raises(PromQLParseError) as info:
        while lx.next().kind != EOF:
            pass
    assert (info.value.position, info.value.message) == (pos, message)


def test_error_str_has_line_and_column() -> None:
    err = PromQLParseError("boom", 5, None, "ab\ncdef")
    assert str(err) == "2:3: parse error: boom"
