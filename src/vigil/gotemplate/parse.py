"""Lexer and parser for Go's text/template syntax (the subset templates use).

Supported: text with ``{{ }}`` actions and ``{{-``/``-}}`` trimming, comments,
pipelines with ``|``, variables (``$x := ...``, ``$x = ...``, ``$``), fields and
method chains (``.A.B``, ``$x.A``, ``(expr).A``), string/raw/char/number/bool/nil
literals, ``if``/``else if``/``range`` (with ``$i, $v :=``)/``with``/``define``/
``template``/``block``/``break``/``continue``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


class TemplateError(Exception):
    """A template does not parse or fails to execute; the message names where."""


# ---- AST -------------------------------------------------------------------


@dataclass
class Field:
    names: list[str]  # `.A.B` -> ["A", "B"]; `.` -> []


@dataclass
class Variable:
    name: str  # "$" or "$x"
    names: list[str] = field(default_factory=list)


@dataclass
class Literal:
    value: Any


@dataclass
class Ident:
    name: str  # a function name


@dataclass
class Chain:
    node: Any  # a parenthesised pipeline
    names: list[str]


@dataclass
class Command:
    args: list[Any]


@dataclass
class Pipe:
    decl: list[str]
    assign: bool  # `=` instead of `:=`
    cmds: list[Command]


@dataclass
class Text:
    text: str


@dataclass
class Action:
    pipe: Pipe


@dataclass
class If:
    kind: str  # "if" or "with"
    pipe: Pipe
    body: list[Any]
    else_: list[Any] | None


@dataclass
class Range:
    pipe: Pipe
    body: list[Any]
    else_: list[Any] | None


@dataclass
class TemplateCall:
    name: str
    pipe: Pipe | None


@dataclass
class Break:
    pass


@dataclass
class Continue:
    pass


# ---- lexer -----------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\]|\\.)')
  | (?P<decl>:=)
  | (?P<num>[-+]?(?:0[xX][0-9a-fA-F_]+|(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))
  | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)
  | (?P<dot>\.)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[|(),=])
    """,
    re.X | re.S,
)


def _unquote(s: str) -> str:
    body = s[1:-1]
    return (
        body.encode("latin-1", "backslashreplace")
        .decode("unicode_escape")
        .encode("latin-1", "backslashreplace")
        .decode("utf-8", "replace")
        if "\\" in body
        else body
    )


def _tokenize(src: str, where: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(src):
        m = _TOKEN_RE.match(src, i)
        if not m:
            raise TemplateError(f"{where}: unexpected {src[i]!r} in action")
        kind = m.lastgroup or ""
        text = m.group()
        i = m.end()
        if kind == "ws":
            continue
        # A field directly after `)` or a variable chains onto it.
        if kind == "field" and out and out[-1][0] == "punct_close" and src[m.start() - 1] == ")":
            kind = "chainfield"
        if kind == "punct":
            kind = {"(": "lparen", ")": "punct_close", "|": "pipe", ",": "comma", "=": "assign"}[
                text
            ]
        out.append((kind, text))
    return out


def _split(src: str, name: str) -> list[tuple[str, str, int]]:
    """Split into ("text"|"action", content, line) honouring trim markers and comments."""
    parts: list[tuple[str, str, int]] = []
    i = 0
    line = 1
    while True:
        j = src.find("{{", i)
        if j < 0:
            parts.append(("text", src[i:], line))
            break
        text = src[i:j]
        trim_left = (
            src.startswith("{{- ", j) or src.startswith("{{-\n", j) or src.startswith("{{-\t", j)
        )
        start = j + (3 if trim_left else 2)
        if src.startswith("/*", start) or src.startswith(" /*", start):
            end_c = src.find("*/", start)
            if end_c < 0:
                raise TemplateError(f"{name}:{line}: unclosed comment")
            k = src.find("}}", end_c)
        else:
            k = _find_close(src, start)
        if k < 0:
            raise TemplateError(f"{name}:{line}: unclosed action")
        trim_right = k >= 1 and src[k - 1] == "-" and src[k - 2] in " \t\n"
        inner = src[start : k - 1 if trim_right else k]
        if trim_left:
            text = text.rstrip(" \t\r\n")
        parts.append(("text", text, line))
        line += src.count("\n", i, k)
        parts.append(("action", inner, line))
        i = k + 2
        if trim_right:
            while i < len(src) and src[i] in " \t\r\n":
                if src[i] == "\n":
                    line += 1
                i += 1
    return parts


def _find_close(src: str, start: int) -> int:
    """Index of the `}}` closing an action, skipping quoted strings."""
    i = start
    while i < len(src):
        c = src[i]
        if c in "\"'`":
            q = c
            i += 1
            while i < len(src) and src[i] != q:
                i += 2 if src[i] == "\\" and q != "`" else 1
        elif src.startswith("}}", i):
            return i
        i += 1
    return -1


# ---- parser ----------------------------------------------------------------


class _Parser:
    def __init__(self, name: str, src: str) -> None:
        self.name = name
        self.parts = _split(src, name)
        self.pos = 0
        self.defines: dict[str, list[Any]] = {}

    def err(self, line: int, msg: str) -> TemplateError:
        return TemplateError(f"template: {self.name}:{line}: {msg}")

    def parse_list(self, stop: tuple[str, ...]) -> tuple[list[Any], str, str, int]:
        """Parse nodes until an action whose keyword is in `stop`; returns (nodes, kw, rest)."""
        nodes: list[Any] = []
        while self.pos < len(self.parts):
            kind, content, line = self.parts[self.pos]
            self.pos += 1
            if kind == "text":
                if content:
                    nodes.append(Text(content))
                continue
            s = content.strip()
            if s.startswith("/*"):
                continue
            kw, _, rest = s.partition(" ")
            kw2 = kw
            if s.startswith("else"):
                kw2 = "else"
                rest = s[4:].strip()
            if kw2 in stop:
                return nodes, kw2, rest, line
            nodes.append(self.parse_action(kw, rest.strip(), s, line))
        if stop:
            raise self.err(
                self.parts[-1][2] if self.parts else 0,
                f"unexpected EOF, expected {{{{{stop[0]}}}}}",
            )
        return nodes, "", "", 0

    def parse_action(self, kw: str, rest: str, whole: str, line: int) -> Any:
        if kw in ("if", "with", "range"):
            pipe = self.parse_pipe(rest, line, allow_decl=True)
            body, end_kw, end_rest, line2 = self.parse_list(("end", "else"))
            else_: list[Any] | None = None
            if end_kw == "else":
                if end_rest.startswith("if ") or end_rest.startswith("with "):
                    # `else if x` is sugar for `else`{{if x}}...{{end}} sharing one end.
                    sub_kw, _, sub_rest = end_rest.partition(" ")
                    else_ = [self.parse_action(sub_kw, sub_rest.strip(), end_rest, line2)]
                else:
                    else_, _, _, _ = self.parse_list(("end",))
            if kw == "range":
                return Range(pipe, body, else_)
            return If(kw, pipe, body, else_)
        if kw in ("define", "block"):
            toks = _tokenize(rest, f"{self.name}:{line}")
            if not toks or toks[0][0] not in ("str", "raw"):
                raise self.err(line, f"{kw} requires a quoted template name")
            tname = _unquote(toks[0][1])
            body, _, _, _ = self.parse_list(("end",))
            self.defines[tname] = body
            if kw == "block":
                pipe_src = rest[len(toks[0][1]) :].strip()
                return TemplateCall(tname, self.parse_pipe(pipe_src, line) if pipe_src else None)
            return Text("")
        if kw == "template":
            toks = _tokenize(rest, f"{self.name}:{line}")
            if not toks or toks[0][0] not in ("str", "raw"):
                raise self.err(line, "template requires a quoted template name")
            tname = _unquote(toks[0][1])
            idx = rest.index(toks[0][1]) + len(toks[0][1])
            pipe_src = rest[idx:].strip()
            return TemplateCall(tname, self.parse_pipe(pipe_src, line) if pipe_src else None)
        if kw == "break":
            return Break()
        if kw == "continue":
            return Continue()
        if kw in ("end", "else"):
            raise self.err(line, f"unexpected {{{{{kw}}}}}")
        return Action(self.parse_pipe(whole, line, allow_decl=True))

    def parse_pipe(self, src: str, line: int, allow_decl: bool = False) -> Pipe:
        toks = _tokenize(src, f"{self.name}:{line}")
        if not toks:
            raise self.err(line, "missing value for command")
        decl: list[str] = []
        assign = False
        # `$x :=`, `$i, $v :=` or `$x =`
        if allow_decl and toks[0][0] == "var":
            if len(toks) > 1 and toks[1][0] in ("decl", "assign"):
                decl, assign, toks = [toks[0][1]], toks[1][0] == "assign", toks[2:]
            elif (
                len(toks) > 3
                and toks[1][0] == "comma"
                and toks[2][0] == "var"
                and toks[3][0] == "decl"
            ):
                decl, toks = [toks[0][1], toks[2][1]], toks[4:]
        cmds: list[Command] = []
        pos = 0

        def operand() -> Any:
            nonlocal pos
            kind, text = toks[pos]
            pos += 1
            if kind == "lparen":
                depth, start = 1, pos
                while pos < len(toks) and depth:
                    depth += {"lparen": 1, "punct_close": -1}.get(toks[pos][0], 0)
                    pos += 1
                if depth:
                    raise self.err(line, "unclosed left paren")
                inner_src = " ".join(t for _, t in toks[start : pos - 1])
                node: Any = self.parse_pipe(inner_src, line)
                if pos < len(toks) and toks[pos][0] == "chainfield":
                    node = Chain(node, toks[pos][1].split(".")[1:])
                    pos += 1
                return node
            if kind == "field":
                return Field(text.split(".")[1:])
            if kind == "dot":
                return Field([])
            if kind == "var":
                vname, *names = text.split(".")
                return Variable(vname, names)
            if kind in ("str", "raw"):
                return Literal(_unquote(text) if kind == "str" else text[1:-1])
            if kind == "char":
                return Literal(ord(_unquote(text)))
            if kind == "num":
                t = text.replace("_", "")
                try:
                    return Literal(int(t, 0))
                except ValueError:
                    return Literal(float(t))
            if kind == "ident":
                if text in ("true", "false"):
                    return Literal(text == "true")
                if text == "nil":
                    return Literal(None)
                return Ident(text)
            raise self.err(line, f"unexpected {text!r} in command")

        args: list[Any] = []
        while pos < len(toks):
            if toks[pos][0] == "pipe":
                if not args:
                    raise self.err(line, "missing command before |")
                cmds.append(Command(args))
                args = []
                pos += 1
                continue
            args.append(operand())
        if not args:
            raise self.err(line, "missing command after |")
        cmds.append(Command(args))
        return Pipe(decl, assign, cmds)


def parse(name: str, src: str) -> tuple[list[Any], dict[str, list[Any]]]:
    """Parse `src`; return the top-level nodes and the ``define``d templates."""
    p = _Parser(name, src)
    nodes, _, _, _ = p.parse_list(())
    return nodes, p.defines
