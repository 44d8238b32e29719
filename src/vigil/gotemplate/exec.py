"""Executing parsed Go templates against Python data.

Data model: a `.Name` on a mapping looks the key up (a missing key prints as
``<no value>``), unless the mapping's class defines a method of that name (as a
Go named map type with methods would); on other objects it reads the
attribute, calling it if it is a method (passing any further arguments).
Values print as Go's ``fmt.Print`` would for the common types.
"""

from __future__ import annotations

import html as _html
import math
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from vigil.gotemplate.funcs import BUILTINS
from vigil.gotemplate.parse import (
    Action,
    Break,
    Chain,
    Command,
    Continue,
    Field,
    Ident,
    If,
    Literal,
    Pipe,
    Range,
    TemplateCall,
    TemplateError,
    Text,
    Variable,
    parse,
)

NO_VALUE = "<no value>"
_MAX_DEPTH = 100


class _Missing:
    def __str__(self) -> str:
        return NO_VALUE


MISSING = _Missing()


class _BreakSignal(Exception):
    pass


class _ContinueSignal(Exception):
    pass


def go_str(v: Any) -> str:
    """Format `v` as Go's ``fmt.Sprint`` would for common types."""
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if type(v) is float:
        return format_float(v)
    if type(v) is str:
        return v
    if (isinstance(v, Mapping) and type(v).__str__ is object.__str__) or type(v) is dict:
        return "map[" + " ".join(f"{go_str(k)}:{go_str(x)}" for k, x in sorted(v.items())) + "]"
    if isinstance(v, list | tuple) and type(v).__str__ in (
        list.__str__,
        tuple.__str__,
        object.__str__,
    ):
        return "[" + " ".join(go_str(x) for x in v) + "]"
    return str(v)


def format_float(f: float) -> str:
    """Go's ``%v`` for float64: shortest repr, exponent form outside [1e-4, 1e21)."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == int(f) and abs(f) < 1e21:
        return str(int(f))
    r = repr(f)
    if "e" in r:
        mant, exp = r.split("e")
        sign = exp[0] if exp[0] in "+-" else "+"
        digits = exp.lstrip("+-").rjust(2, "0")
        return f"{mant}e{sign}{digits}"
    if abs(f) < 1e-4:
        m, e = f"{f:e}".split("e")
        m = m.rstrip("0").rstrip(".")
        return f"{m}e{e[0]}{e[1:].lstrip('0').rjust(2, '0')}"
    return r


def truth(v: Any) -> bool:
    """Go template truthiness: false, 0, nil and empty values are false."""
    if v is None or v is MISSING:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return v != 0
    try:
        return len(v) > 0
    except TypeError:
        return True


class Template:
    """A set of named templates. `parse` adds text; `execute` renders one."""

    def __init__(self, funcs: Mapping[str, Callable[..., Any]] | None = None) -> None:
        self.funcs: dict[str, Callable[..., Any]] = dict(BUILTINS)
        self.funcs.update(_ESCAPERS)
        if funcs:
            self.funcs.update(funcs)
        self.defs: dict[str, list[Any]] = {}

    def parse(self, name: str, text: str) -> Template:
        """Parse `text`; its body becomes template `name`, its ``define``s are added."""
        nodes, defines = parse(name, text)
        self.defs.update(defines)
        self.defs[name] = nodes
        return self

    def has(self, name: str) -> bool:
        return name in self.defs

    def execute(self, name: str, data: Any) -> str:
        """Render template `name` with dot = `data`; raise `TemplateError` on failure."""
        if name not in self.defs:
            raise TemplateError(f'template: no template "{name}" defined')
        out: list[str] = []
        _Exec(self, out).run(self.defs[name], data, {"$": data}, 0)
        return "".join(out)

    def render(self, text: str, data: Any) -> str:
        """Parse and render one-off `text` sharing this set's definitions."""
        nodes, defines = parse("inline", text)
        saved = dict(self.defs)
        self.defs.update(defines)
        try:
            out: list[str] = []
            _Exec(self, out).run(nodes, data, {"$": data}, 0)
            return "".join(out)
        finally:
            self.defs = saved


class _Exec:
    def __init__(self, tmpl: Template, out: list[str]) -> None:
        self.t = tmpl
        self.out = out

    def run(self, nodes: list[Any], dot: Any, vars_: dict[str, Any], depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise TemplateError("template: exceeded maximum template depth")
        for n in nodes:
            if isinstance(n, Text):
                self.out.append(n.text)
            elif isinstance(n, Action):
                v = self.pipe(n.pipe, dot, vars_)
                if not n.pipe.decl:
                    self.out.append(go_str(v) if v is not MISSING else NO_VALUE)
            elif isinstance(n, If):
                v = self.pipe(n.pipe, dot, dict(vars_))
                if truth(v):
                    self.run(n.body, v if n.kind == "with" else dot, dict(vars_), depth)
                elif n.else_ is not None:
                    self.run(n.else_, dot, dict(vars_), depth)
            elif isinstance(n, Range):
                self.range(n, dot, vars_, depth)
            elif isinstance(n, TemplateCall):
                if n.name not in self.t.defs:
                    raise TemplateError(
                        f'template: no template "{n.name}" associated with template'
                    )
                sub = self.pipe(n.pipe, dot, vars_) if n.pipe else None
                self.run(self.t.defs[n.name], sub, {"$": sub}, depth + 1)
            elif isinstance(n, Break):
                raise _BreakSignal
            elif isinstance(n, Continue):
                raise _ContinueSignal

    def range(self, n: Range, dot: Any, vars_: dict[str, Any], depth: int) -> None:
        scope = dict(vars_)
        v = self.pipe(Pipe([], False, n.pipe.cmds), dot, scope)
        if v is None or v is MISSING:
            items: list[tuple[Any, Any]] = []
        elif isinstance(v, Mapping):
            items = [(k, v[k]) for k in sorted(v)]
        elif isinstance(v, int) and not isinstance(v, bool):
            items = [(i, i) for i in range(v)]
        else:
            try:
                items = list(enumerate(v))
            except TypeError:
                raise TemplateError(f"range can't iterate over {go_str(v)}") from None
        if not items:
            if n.else_ is not None:
                self.run(n.else_, dot, scope, depth)
            return
        for k, item in items:
            inner = dict(scope)
            if len(n.pipe.decl) == 1:
                inner[n.pipe.decl[0]] = item
            elif len(n.pipe.decl) == 2:
                inner[n.pipe.decl[0]] = k
                inner[n.pipe.decl[1]] = item
            try:
                self.run(n.body, item, inner, depth)
            except _BreakSignal:
                break
            except _ContinueSignal:
                continue

    def pipe(self, p: Pipe | None, dot: Any, vars_: dict[str, Any]) -> Any:
        if p is None:
            return dot
        val: Any = MISSING
        first = True
        for cmd in p.cmds:
            val = self.command(cmd, dot, vars_, None if first else val, not first)
            first = False
        for name in p.decl:
            if p.assign and name not in vars_:
                raise TemplateError(f"undefined variable: {name}")
            vars_[name] = val
        return val

    def command(
        self, cmd: Command, dot: Any, vars_: dict[str, Any], prev: Any, has_prev: bool
    ) -> Any:
        head = cmd.args[0]
        rest = [self.arg(a, dot, vars_) for a in cmd.args[1:]]
        if has_prev:
            rest.append(prev)
        if isinstance(head, Ident):
            fn = self.t.funcs.get(head.name)
            if fn is None:
                raise TemplateError(f'template: function "{head.name}" not defined')
            if head.name in ("and", "or"):
                return self._andor(head.name, cmd, dot, vars_, prev, has_prev)
            try:
                return fn(*rest)
            except TemplateError:
                raise
            except Exception as exc:
                raise TemplateError(f"error calling {head.name}: {exc}") from None
        if isinstance(head, Field):
            return self.field_chain(dot, head.names, rest)
        if isinstance(head, Variable):
            if head.name not in vars_:
                raise TemplateError(f"undefined variable: {head.name}")
            return self.field_chain(vars_[head.name], head.names, rest)
        if isinstance(head, Chain):
            return self.field_chain(self.pipe(head.node, dot, dict(vars_)), head.names, rest)
        if rest:
            raise TemplateError(f"can't give argument to non-function {head}")
        return self.arg(head, dot, vars_)

    def _andor(
        self, name: str, cmd: Command, dot: Any, vars_: dict[str, Any], prev: Any, has_prev: bool
    ) -> Any:
        # Go evaluates and/or lazily: stop at the first deciding argument.
        args = list(cmd.args[1:])
        vals: list[Any] = []
        for a in args:
            v = self.arg(a, dot, vars_)
            vals.append(v)
            if (name == "and") != truth(v):
                return v
        if has_prev:
            return prev
        return vals[-1] if vals else None

    def arg(self, a: Any, dot: Any, vars_: dict[str, Any]) -> Any:
        if isinstance(a, Literal):
            return a.value
        if isinstance(a, Field):
            return self.field_chain(dot, a.names, [])
        if isinstance(a, Variable):
            if a.name not in vars_:
                raise TemplateError(f"undefined variable: {a.name}")
            return self.field_chain(vars_[a.name], a.names, [])
        if isinstance(a, Pipe):
            return self.pipe(a, dot, dict(vars_))
        if isinstance(a, Chain):
            return self.field_chain(self.pipe(a.node, dot, dict(vars_)), a.names, [])
        if isinstance(a, Ident):
            fn = self.t.funcs.get(a.name)
            if fn is None:
                raise TemplateError(f'template: function "{a.name}" not defined')
            return fn()
        raise TemplateError(f"bad argument {a!r}")

    def field_chain(self, obj: Any, names: list[str], args: list[Any]) -> Any:
        for i, name in enumerate(names):
            last = i == len(names) - 1
            obj = self.field(obj, name, args if last else [])
        return obj

    def field(self, obj: Any, name: str, args: list[Any]) -> Any:
        if obj is None or obj is MISSING:
            return MISSING
        meth = getattr(type(obj), name, None)
        if meth is not None and callable(meth) and not name.startswith("_"):
            try:
                return getattr(obj, name)(*args)
            except TypeError as exc:
                raise TemplateError(f"error calling {name}: {exc}") from None
        if isinstance(obj, Mapping):
            if args:
                raise TemplateError(f"{name} is not a method but has arguments")
            return obj.get(name, MISSING)
        if hasattr(obj, name) and not name.startswith("_"):
            return getattr(obj, name)
        raise TemplateError(f"can't evaluate field {name} in type {type(obj).__name__}")


def _html_escape(*args: Any) -> str:
    return _html.escape("".join(go_str(a) for a in args), quote=True).replace("&#x27;", "&#39;")


def _urlquery(*args: Any) -> str:
    return urllib.parse.quote_plus("".join(go_str(a) for a in args))


_ESCAPERS: dict[str, Callable[..., Any]] = {"html": _html_escape, "urlquery": _urlquery}
