"""Go text/template's builtin functions plus the string helpers Alertmanager adds."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import re2


def _gs(v: Any) -> str:
    from vigil.gotemplate.exec import go_str

    return go_str(v)


def _len(v: Any) -> int:
    try:
        return len(v)
    except TypeError:
        raise ValueError(f"len of type {type(v).__name__}") from None


def _index(v: Any, *keys: Any) -> Any:
    for k in keys:
        if isinstance(v, Mapping):
            v = v.get(k)
        else:
            v = v[int(k)]
    return v


def _cmp_vals(a: Any, b: Any) -> tuple[Any, Any]:
    if isinstance(a, bool) != isinstance(b, bool):
        raise ValueError("incompatible types for comparison")
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a, b
    if isinstance(a, str) and isinstance(b, str):
        return a, b
    if a is None or b is None:
        return a, b
    raise ValueError("incompatible types for comparison")


def _eq(a: Any, *bs: Any) -> bool:
    for b in bs:
        x, y = _cmp_vals(a, b)
        if x == y:
            return True
    return False


def _lt(a: Any, b: Any) -> bool:
    x, y = _cmp_vals(a, b)
    return bool(x < y)


def _sprintf(fmt: str, *args: Any) -> str:
    """A small `fmt.Sprintf`: %s %d %v %q %f %.Nf %x %%."""
    out: list[str] = []
    i = 0
    ai = 0
    while i < len(fmt):
        c = fmt[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        j = i + 1
        while j < len(fmt) and fmt[j] in "0123456789.-+ #":
            j += 1
        if j >= len(fmt):
            out.append(fmt[i:])
            break
        verb, flags = fmt[j], fmt[i + 1 : j]
        i = j + 1
        if verb == "%":
            out.append("%")
            continue
        if ai >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        a = args[ai]
        ai += 1
        if verb in "sv":
            out.append(("%" + flags + "s") % _gs(a))
        elif verb == "q":
            out.append(json.dumps(_gs(a), ensure_ascii=False))
        elif verb == "d":
            out.append(("%" + flags + "d") % int(a))
        elif verb in "feEgG":
            out.append(("%" + flags + verb) % float(a))
        elif verb in "xX":
            out.append(
                ("%" + flags + verb) % int(a) if isinstance(a, int) else _gs(a).encode().hex()
            )
        else:
            out.append(f"%!{verb}({_gs(a)})")
    return "".join(out)


def _title(s: str) -> str:
    # Go's strings.Title upper-cases the first letter of each space-separated word.
    return "".join(w[:1].upper() + w[1:] for w in _split_keep(s))


def _split_keep(s: str) -> list[str]:
    out, cur = [], ""
    for ch in s:
        cur += ch
        if ch.isspace():
            out.append(cur)
            cur = ""
    out.append(cur)
    return out


def _join(sep: str, items: Any) -> str:
    return sep.join(_gs(x) for x in items)


def _re_replace_all(pattern: str, repl: str, text: str) -> str:
    # Go's $1 / ${1} references become RE2's \1.
    py_repl = re2.sub(r"\$\{?(\w+)\}?", r"\\\1", repl.replace("\\", "\\\\"))
    return str(re2.sub(pattern, py_repl, text))


def _match(pattern: str, text: str) -> bool:
    return re2.search(pattern, text) is not None


BUILTINS: dict[str, Callable[..., Any]] = {
    "and": lambda *a: a[-1],
    "or": lambda *a: a[-1],
    "not": lambda v: not __import__("vigil.gotemplate.exec", fromlist=["truth"]).truth(v),
    "len": _len,
    "index": _index,
    "print": lambda *a: "".join(_gs(x) for x in a),
    "println": lambda *a: " ".join(_gs(x) for x in a) + "\n",
    "printf": _sprintf,
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "lt": _lt,
    "le": lambda a, b: _lt(a, b) or _eq(a, b),
    "gt": lambda a, b: _lt(b, a),
    "ge": lambda a, b: _lt(b, a) or _eq(a, b),
    "js": lambda *a: json.dumps("".join(_gs(x) for x in a))[1:-1],
    "slice": lambda v, *ix: v[ix[0] : ix[1]] if len(ix) == 2 else (v[ix[0] :] if ix else v),
    # Alertmanager's additions.
    "toUpper": lambda s: _gs(s).upper(),
    "toLower": lambda s: _gs(s).lower(),
    "title": lambda s: _title(_gs(s)),
    "trimSpace": lambda s: _gs(s).strip(),
    "join": _join,
    "match": _match,
    "reReplaceAll": _re_replace_all,
    "safeHtml": lambda s: _gs(s),
    "stringSlice": lambda *a: list(a),
    "toJson": lambda v: json.dumps(v, separators=(",", ":"), default=str),
}
