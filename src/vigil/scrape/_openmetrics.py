"""OpenMetrics 1.0 text format, strict (the spec's MUSTs, as its reference parser checks them).

Rules enforced, besides line syntax: metric families are contiguous and appear once
(names reserved by a family's type-specific suffixes may not be reused); metadata
comes before a family's samples and at most once per kind; samples of one label
group are contiguous and their timestamps do not go backwards; type rules (counter
/ bucket / count values are not negative or NaN, buckets ascend to a '+Inf' bucket
whose count equals '_count', _sum and _count come together, stateset values are 0/1
and carry the stateset label, info values are 1, quantiles lie in [0, 1]); exemplars
only on counter '_total' and histogram '_bucket' samples, with at most 128 characters
of labels; '# EOF' ends the body and nothing follows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from itertools import compress
from typing import NoReturn

import numpy as np

from vigil.scrape._bulk import comment_segments, split_runs, tokenize
from vigil.scrape._expo_common import (
    METRIC_TYPES,
    NO_TIMESTAMP,
    Exemplar,
    Exposition,
    ExpositionError,
    MetricMetadata,
)
from vigil.scrape._numbers import (
    bulk_float_tokens,
    bulk_floats,
    ms_tokens,
    om_parse_float,
    parse_om_timestamp,
    seconds_to_ms,
)
from vigil.scrape._series import (
    NAME_RE,
    OM_SERIES,
    Pairs,
    SeriesSyntaxError,
    parse_label_block,
    unescape_value,
)

_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "histogram": ("_count", "_sum", "_bucket", "_created"),
    "gaugehistogram": ("_gcount", "_gsum", "_bucket"),
    "info": ("_info",),
}
_NO_NAN = frozenset({"_total", "_sum", "_count", "_bucket", "_gcount", "_gsum"})
_NO_NEGATIVE = frozenset({"_total", "_sum", "_count", "_bucket", "_gcount"})
_HISTOGRAMS = frozenset({"histogram", "gaugehistogram"})
# types whose samples need more than the per-run checks of the fast path
_COMPLEX = frozenset({"histogram", "gaugehistogram", "summary", "stateset", "info"})
_SIMPLE = frozenset({"counter", "gauge", "unknown"})
_EXEMPLAR_MAX_CHARS = 128
_INF = float("inf")


@dataclass(slots=True)
class _Family:
    name: str
    lineno: int
    type: str | None = None
    help: str | None = None
    unit: str | None = None
    unit_lineno: int = 0
    allowed: dict[str, str] = field(default_factory=dict)
    has_samples: bool = False
    group: Pairs | None = None
    group_ts: Decimal | None = None
    seen_groups: set[Pairs] = field(default_factory=set)
    # histogram samples other than the base name: (suffix, group, ts, value, le, lineno)
    hist: list[tuple[str, Pairs, Decimal | None, float, float, int]] = field(default_factory=list)


class _Careful(Exception):
    """The fast path met something only the careful path may decide."""


def _ts(tokens: list[str] | None, i: int) -> Decimal | None:
    if tokens is None:
        return None
    try:
        return parse_om_timestamp(tokens[i][1:])
    except ValueError:
        raise _Careful from None


def _without(pairs: Pairs, name: str) -> Pairs:
    return tuple(p for p in pairs if p[0] != name)


class OpenMetricsParser:
    """Incremental strict parser: `feed` whole lines any number of times, then `close`.

    Family, grouping and EOF state carry across feeds, so a body may be split at any
    line boundary. Not thread-safe; one instance per body.
    """

    def __init__(self) -> None:
        self.lineno = 0
        self.eof = False
        self.fam: _Family | None = None
        self.seen_names: set[str] = set()
        self.metadata: dict[str, MetricMetadata] = {}
        self._fast = False
        # per-feed buffers
        self._keys: list[str] = []
        self._vals: list[str] = []
        self._linenos: list[int] = []

    # -- public ---------------------------------------------------------------

    def feed(self, text: str) -> Exposition:
        """Parse the lines of `text` (the body's last line may lack its newline)."""
        saved = self._save()
        self._fast = True
        try:
            return self._feed_fast(text)
        except (ExpositionError, _Careful):
            self._fast = False
            self._restore(saved)
            return self._feed_careful(text)
        finally:
            self._fast = False

    def _save(self) -> tuple[object, ...]:
        fam = self.fam
        if fam is not None:
            fam = replace(
                fam,
                allowed=dict(fam.allowed),
                seen_groups=set(fam.seen_groups),
                hist=list(fam.hist),
            )
        return (self.lineno, self.eof, fam, set(self.seen_names), dict(self.metadata))

    def _restore(self, saved: tuple[object, ...]) -> None:
        (self.lineno, self.eof, self.fam, self.seen_names, self.metadata) = saved  # type: ignore[assignment]

    def _feed_fast(self, text: str) -> Exposition:
        """The bulk path; raises ExpositionError or _Careful (state then restored by
        `feed`) whenever the careful path must decide.

        Runs of lines ``series value [timestamp]`` in counter, gauge and unknown
        families are taken as columns (`_bulk.split_runs`); the family and label-group
        rules run once per run of equal keys through `_sample`, and what they check
        for every sample (value not NaN or negative, timestamps not going back) is
        checked for the whole feed at once at the end.
        """
        keys: list[str] = []
        vals: list[str] = []
        self._keys, self._vals, self._linenos = keys, vals, []
        odd_at: list[int] = []
        odd_ms: list[int] = []
        exemplars: list[Exemplar] = []
        ts_tokens: list[str] = []
        ts_rows: list[tuple[int, int]] = []  # (first row, count) of bulk rows with ts
        follows: list[np.ndarray] = []  # per bulk ts row: continues the previous row's run
        plain: list[tuple[int, int]] = []  # row ranges that may not be NaN or negative
        entries = OM_SERIES.entries
        get = OM_SERIES.get

        def take(cols: list[list[str]], at: int) -> None:
            ks, vs = cols[0], cols[1]
            tt = cols[2] if len(cols) == 3 else None
            base = len(keys)
            m = len(ks)
            starts = [0, *compress(range(1, m), map(str.__ne__, ks[1:], ks[:-1]))]
            starts.append(m)
            cont = np.ones(m, dtype=bool) if tt is not None else None
            line0 = first_line + at
            for r in range(len(starts) - 1):
                a, b = starts[r], starts[r + 1]
                name, pairs = entries.get(ks[a]) or get(ks[a])
                ts = None if tt is None else _ts(tt, a)
                fam = self.fam
                if fam is not None and fam.type in _SIMPLE and name in fam.allowed:
                    # what _sample checks for a counter, gauge or unknown sample
                    # (values are checked in bulk below)
                    if pairs != fam.group:
                        seen = fam.seen_groups
                        n = len(seen)
                        seen.add(pairs)
                        if len(seen) == n and fam.group is not None:
                            raise _Careful  # label group not contiguous
                        fam.group = pairs
                    elif (ts is None) != (fam.group_ts is None) or (
                        ts is not None and ts < fam.group_ts  # type: ignore[operator]
                    ):
                        raise _Careful
                    fam.group_ts = ts
                    fam.has_samples = True
                    simple = True
                else:
                    self._sample(name, pairs, vs[a][1:], ts, line0 + a, False)
                    fam = self.fam
                    assert fam is not None
                    simple = fam.type not in _COMPLEX
                if cont is not None:
                    cont[a] = False
                if not simple:
                    for j in range(a + 1, b):
                        self._sample(name, pairs, vs[j][1:], _ts(tt, j), line0 + j, False)
                    if cont is not None:
                        cont[a + 1 : b] = False
                    continue
                if fam.allowed[name] in _NO_NAN:  # '_total' here: not NaN nor negative
                    if plain and plain[-1][1] == base + a:
                        plain[-1] = (plain[-1][0], base + b)
                    else:
                        plain.append((base + a, base + b))
                if tt is not None and b - a > 1:
                    fam.group_ts = _ts(tt, b - 1)
            keys.extend(ks)
            vals.extend(vs)
            if tt is not None and cont is not None:
                ts_tokens.extend(tt)
                ts_rows.append((base, m))
                follows.append(cont)

        def odd_line(line: str, at: int) -> None:
            n = len(vals)
            self._line(line, first_line + at, odd_at, odd_ms, exemplars)
            if len(vals) > n:
                vals[n] = " " + vals[n]  # as the bulk-split values have it

        nlines = 0
        first_line = 0  # number of the first line of the current sample part
        parts = comment_segments(text)
        for k, part in enumerate(parts):
            if not part:
                continue
            if k % 2:
                nlines += 1
                self._line(part, self.lineno + nlines, odd_at, odd_ms, exemplars)
                continue
            first_line = self.lineno + nlines + 1
            if self.eof:
                raise _Careful
            eol = part.find("\n")
            fields = (part[:eol] if eol >= 0 else part).count(" ") + 1
            nlines += split_runs(
                tokenize(part),
                fields if fields in (2, 3) else 2,
                OM_SERIES,
                take,
                odd_line,
            )
        values = bulk_float_tokens(vals, openmetrics=True)
        if values is None:
            raise _Careful
        if plain:
            edges = np.zeros(len(keys) + 1, dtype=np.int64)
            for a, b in plain:
                edges[a] += 1
                edges[b] -= 1
            checked = values[np.cumsum(edges[:-1]) > 0]
            if not (checked >= 0).all():  # NaN compares false too
                raise _Careful
        timestamps = np.full(len(keys), NO_TIMESTAMP, dtype=np.int64)
        if ts_tokens:
            got = ms_tokens(ts_tokens)
            if got is None:
                raise _Careful
            ms, careful, truncated = got
            for i in np.flatnonzero(careful).tolist():
                ms[i] = seconds_to_ms(parse_om_timestamp(ts_tokens[i][1:]))
            cont = np.concatenate(follows)[1:]
            if (ms[1:] < ms[:-1])[cont].any():
                raise _Careful
            # equal or clamped milliseconds may hide exact times that go back
            exact = ~(careful | truncated)
            tie = cont & (ms[1:] == ms[:-1]) & ~(exact[1:] & exact[:-1])
            for i in (np.flatnonzero(tie) + 1).tolist():
                prev = parse_om_timestamp(ts_tokens[i - 1][1:])
                if parse_om_timestamp(ts_tokens[i][1:]) < prev:
                    raise _Careful
            rows = np.concatenate([np.arange(a, a + m) for a, m in ts_rows])
            timestamps[rows] = ms
        if odd_at:
            timestamps[odd_at] = odd_ms
        self.lineno += nlines
        return Exposition(keys, values, timestamps, dict(self.metadata), True, exemplars)

    def _feed_careful(self, text: str) -> Exposition:
        """Line by line; the reference behaviour, and the source of every error."""
        keys: list[str] = []
        vals: list[str] = []
        linenos: list[int] = []
        self._keys, self._vals, self._linenos = keys, vals, linenos
        ts_at: list[int] = []
        ts_ms: list[int] = []
        exemplars: list[Exemplar] = []
        lines = text.split("\n")
        if not lines[-1]:
            lines.pop()
        # An unterminated last line is harmless here: unless it is the final '# EOF',
        # close() reports the missing '# EOF'.
        lineno = self.lineno
        for lineno, line in enumerate(lines, self.lineno + 1):
            self._line(line, lineno, ts_at, ts_ms, exemplars)
        if lines:
            self.lineno = lineno
        values, bad = bulk_floats(vals, openmetrics=True)
        if bad >= 0:
            raise ExpositionError(linenos[bad], f"invalid value {vals[bad]!r}: expected a number")
        timestamps = np.full(len(keys), NO_TIMESTAMP, dtype=np.int64)
        if ts_at:
            timestamps[ts_at] = ts_ms
        return Exposition(keys, values, timestamps, dict(self.metadata), True, exemplars)

    def _line(
        self,
        line: str,
        lineno: int,
        ts_at: list[int],
        ts_ms: list[int],
        exemplars: list[Exemplar],
    ) -> None:
        """One line of any kind, appended to the per-feed buffers."""
        keys, vals, linenos = self._keys, self._vals, self._linenos
        if self.eof:
            self._fail(lineno, f"expected nothing after '# EOF', found {line[:40]!r}")
        if not line:
            self._fail(lineno, "blank lines are not allowed in OpenMetrics")
        if line[0] == "#":
            if line == "# EOF":
                self.eof = True
                return
            self._metadata(line, lineno)
            return
        # -- series text
        lb = line.find("{")
        sp = line.find(" ")
        if lb >= 0 and (sp < 0 or lb < sp):
            if "#" in line:
                try:
                    end = parse_label_block(line, lb, False)[0]
                except SeriesSyntaxError as e:
                    self._fail(lineno, f"invalid label set: {e}")
            else:
                end = line.rfind("}") + 1
            key = line[:end]
        elif sp < 0:
            self._fail(lineno, f"expected ' ' and a value after {line!r}, found end of line")
        else:
            key = line[:sp]
        parsed = OM_SERIES.entries.get(key)
        if parsed is None:
            try:
                parsed = OM_SERIES.get(key)
            except SeriesSyntaxError as e:
                self._fail(lineno, f"invalid series {key!r}: {e}")
        rest = line[len(key) :]
        if rest[:1] != " ":
            found = repr(rest[0]) if rest else "end of line"
            self._fail(lineno, f"expected ' ' after {key!r}, found {found}")
        hash_at = rest.find(" # ")
        head = rest[1:] if hash_at < 0 else rest[1:hash_at]
        parts = head.split(" ")
        raw_v = parts[0]
        if not raw_v:
            self._fail(lineno, f"expected a value after {key!r}, found {head[:20]!r}")
        raw_ts = None
        if len(parts) == 2:
            raw_ts = parts[1]
            if not raw_ts:
                self._fail(lineno, "expected a timestamp after the value, found trailing ' '")
        elif len(parts) > 2:
            self._fail(lineno, f"expected a value and an optional timestamp, found {head!r}")
        ts: Decimal | None = None
        if raw_ts is not None:
            try:
                ts = parse_om_timestamp(raw_ts)
            except ValueError as e:
                self._fail(lineno, str(e))
        idx = len(keys)
        self._sample(parsed[0], parsed[1], raw_v, ts, lineno, hash_at >= 0)
        if hash_at >= 0:
            exemplars.append(self._exemplar(rest[hash_at + 3 :], idx, lineno))
        keys.append(key)
        vals.append(raw_v)
        linenos.append(lineno)
        if ts is not None:
            ts_at.append(idx)
            ts_ms.append(seconds_to_ms(ts))

    def close(self) -> None:
        """Check the end of the body: the last family's rules and '# EOF'."""
        self._finish_family()
        if not self.eof:
            raise ExpositionError(self.lineno + 1, "expected '# EOF' at the end, found end of body")

    # -- helpers ----------------------------------------------------------------

    def _fail(self, lineno: int, message: str) -> NoReturn:
        """Raise for `lineno`, unless a value on an earlier line is already bad."""
        if self._fast:
            raise _Careful  # the careful path finds the first problem
        _, bad = bulk_floats(self._vals, openmetrics=True)
        if bad >= 0:
            raise ExpositionError(self._linenos[bad], f"invalid value {self._vals[bad]!r}")
        raise ExpositionError(lineno, message)

    def _metadata(self, line: str, lineno: int) -> None:
        parts = line.split(" ", 3)
        if len(parts) < 4 or parts[0] != "#" or parts[1] not in ("HELP", "TYPE", "UNIT"):
            self._fail(
                lineno,
                f"expected '# HELP|TYPE|UNIT <name> <text>' or '# EOF', found {line[:60]!r}",
            )
        kind, name, text = parts[1], parts[2], parts[3]
        if not NAME_RE.fullmatch(name):
            self._fail(lineno, f"invalid metric family name {name!r} in # {kind}")
        fam = self.fam
        if fam is not None and fam.name == name:
            if fam.has_samples:
                self._fail(lineno, f"# {kind} for {name!r} after its samples")
        else:
            self._finish_family()
            fam = self.fam = _Family(name, lineno, allowed={name: ""})
        if kind == "HELP":
            if fam.help is not None:
                self._fail(lineno, f"second # HELP for {name!r}")
            fam.help = unescape_value(text)
        elif kind == "TYPE":
            if fam.type is not None:
                self._fail(lineno, f"second # TYPE for {name!r}")
            if text not in METRIC_TYPES:
                self._fail(
                    lineno,
                    f"invalid type {text!r} for {name!r}: expected one of "
                    + ", ".join(sorted(METRIC_TYPES)),
                )
            fam.type = text
            fam.allowed = {name + s: s for s in _SUFFIXES.get(text, ("",))}
        else:
            if fam.unit is not None:
                self._fail(lineno, f"second # UNIT for {name!r}")
            fam.unit = text
            fam.unit_lineno = lineno
        self.metadata[name] = MetricMetadata(fam.type or "unknown", fam.help or "", fam.unit or "")

    def _finish_family(self) -> None:
        fam = self.fam
        if fam is None:
            return
        self.fam = None
        typ = fam.type or "unknown"
        for suffix in {"", *_SUFFIXES.get(typ, ())}:
            n = fam.name + suffix
            if n in self.seen_names:
                raise ExpositionError(
                    fam.lineno,
                    f"metric family {fam.name!r} clashes with an earlier family over name {n!r}"
                    " (families must be contiguous and unique)",
                )
            self.seen_names.add(n)
        if fam.unit:
            if not fam.name.endswith("_" + fam.unit):
                raise ExpositionError(
                    fam.unit_lineno,
                    f"metric family {fam.name!r} must end with '_{fam.unit}' to have unit "
                    f"{fam.unit!r}",
                )
            if typ in ("info", "stateset"):
                raise ExpositionError(fam.unit_lineno, f"{typ} metrics may not have a unit")
        if fam.hist:
            _check_histogram(fam.name, fam.hist)

    def _sample(
        self, sname: str, pairs: Pairs, raw_v: str, ts: Decimal | None, lineno: int, ex: bool
    ) -> None:
        fam = self.fam
        if fam is None or sname not in fam.allowed:
            self._finish_family()
            fam = self.fam = _Family(sname, lineno, type="unknown", allowed={sname: ""})
        fam.has_samples = True
        suffix = fam.allowed[sname]
        typ = fam.type or "unknown"
        v = 0.0
        if (typ != "gauge" and typ != "unknown") or suffix:
            try:
                v = om_parse_float(raw_v)
            except ValueError as e:
                self._fail(lineno, f"invalid value: {e}")
        le = 0.0
        g = pairs
        if typ in _HISTOGRAMS and suffix == "_bucket":
            raw_le = next((val for k, val in pairs if k == "le"), None)
            if raw_le is None or raw_le == "NaN":
                self._fail(lineno, f"{sname!r} needs an 'le' label with a number")
            try:
                le = om_parse_float(raw_le)  # type: ignore[arg-type]
            except ValueError:
                self._fail(lineno, f"invalid 'le' label value {raw_le!r}")
            if le == _INF and raw_le != "+Inf":
                self._fail(
                    lineno, f'the infinite bucket must be written le="+Inf", found {raw_le!r}'
                )
            if not v.is_integer():
                self._fail(lineno, f"bucket value must be an integer, found {raw_v!r}")
            g = _without(pairs, "le")
        elif suffix in ("_count", "_gcount") and not v.is_integer():
            self._fail(lineno, f"count value must be an integer, found {raw_v!r}")
        elif typ == "summary" and suffix == "":
            raw_q = next((val for k, val in pairs if k == "quantile"), None)
            try:
                q = om_parse_float(raw_q) if raw_q is not None else -1.0
            except ValueError:
                q = -1.0
            if not 0.0 <= q <= 1.0:
                found = "no such label" if raw_q is None else repr(raw_q)
                self._fail(
                    lineno, f"summary sample needs a 'quantile' label in [0, 1], found {found}"
                )
            if v < 0:
                self._fail(lineno, f"quantile values may not be negative, found {raw_v!r}")
            g = _without(pairs, "quantile")
        elif typ == "stateset":
            if not any(k == fam.name for k, _ in pairs):
                self._fail(lineno, f"stateset sample needs a {fam.name!r} label")
            if v != 0.0 and v != 1.0:
                self._fail(lineno, f"stateset values must be 0 or 1, found {raw_v!r}")
            g = _without(pairs, fam.name)
        elif typ == "info":
            if v != 1.0:
                self._fail(lineno, f"info values must be 1, found {raw_v!r}")
            g = ()
        if suffix in _NO_NAN and v != v:
            self._fail(lineno, f"{sname!r} may not be NaN")
        if suffix in _NO_NEGATIVE and v < 0:
            self._fail(lineno, f"{sname!r} may not be negative, found {raw_v!r}")
        if ex and not (
            (typ in _HISTOGRAMS and suffix == "_bucket")
            or (typ == "counter" and suffix == "_total")
        ):
            self._fail(
                lineno,
                f"exemplars are allowed only on counter _total and histogram _bucket samples, not on {sname!r}",
            )
        # grouping: one label group's samples are contiguous, timestamps not going back
        if fam.group is not None:
            if g != fam.group:
                if g in fam.seen_groups:
                    self._fail(
                        lineno,
                        f"samples of label set {dict(g)!r} of {fam.name!r} are not contiguous",
                    )
            else:
                if (ts is None) != (fam.group_ts is None):
                    self._fail(lineno, "a label group mixes samples with and without timestamps")
                if (
                    ts is not None
                    and fam.group_ts is not None
                    and ts < fam.group_ts
                    and typ != "info"
                ):
                    self._fail(lineno, "timestamps go backwards within a label group")
        fam.group = g
        fam.group_ts = ts
        fam.seen_groups.add(g)
        if typ in _HISTOGRAMS and suffix:
            fam.hist.append((suffix, g, ts, v, le, lineno))

    def _exemplar(self, text: str, idx: int, lineno: int) -> Exemplar:
        if text[:1] != "{":
            self._fail(lineno, f"expected '{{' to open the exemplar's labels, found {text[:10]!r}")
        try:
            end, _, pairs = parse_label_block(text, 0, False, exemplar=True)
        except SeriesSyntaxError as e:
            self._fail(lineno, f"invalid exemplar label set: {e}")
        if sum(len(k) + len(v) for k, v in pairs) > _EXEMPLAR_MAX_CHARS:
            self._fail(lineno, "exemplar labels exceed 128 characters")
        after = text[end:]
        if after[:1] != " ":
            self._fail(
                lineno, f"expected ' ' and a value after the exemplar labels, found {after[:10]!r}"
            )
        parts = after[1:].split(" ")
        if len(parts) > 2 or not all(parts):
            self._fail(
                lineno, f"expected an exemplar value and optional timestamp, found {after[1:]!r}"
            )
        try:
            value = om_parse_float(parts[0])
            ts = seconds_to_ms(parse_om_timestamp(parts[1])) if len(parts) == 2 else NO_TIMESTAMP
        except ValueError as e:
            self._fail(lineno, f"invalid exemplar: {e}")
        return Exemplar(idx, tuple(pairs), value, ts)


def _check_histogram(
    name: str, samples: list[tuple[str, Pairs, Decimal | None, float, float, int]]
) -> None:
    """Per label group (and timestamp): buckets ascend to +Inf with non-decreasing counts,
    _count equals the +Inf bucket, _sum/_gsum only with _count/_gcount, no _sum with
    negative buckets, and a negative _gsum only with negative buckets."""
    i = 0
    n = len(samples)
    while i < n:
        _, group, ts, _, _, first_line = samples[i]
        bucket: float | None = None
        last_count = 0.0
        count: float | None = None
        has_sum = has_gsum = neg_buckets = neg_gsum = False
        line = first_line
        while i < n and samples[i][1] == group and samples[i][2] == ts:
            suffix, _, _, v, le, line = samples[i]
            if suffix == "_bucket":
                if le < 0:
                    neg_buckets = True
                if bucket is not None and le <= bucket:
                    raise ExpositionError(
                        line, f"buckets of {name!r} are not in ascending 'le' order"
                    )
                if v < last_count:
                    raise ExpositionError(line, f"bucket counts of {name!r} decrease")
                bucket = le
                last_count = v
            elif suffix in ("_count", "_gcount"):
                count = v
            elif suffix == "_sum":
                has_sum = True
            elif suffix == "_gsum":
                has_gsum = True
                neg_gsum = neg_gsum or v < 0
            i += 1
        problem = None
        if bucket != _INF:
            problem = "has no '+Inf' bucket"
        elif count is not None and count != last_count:
            problem = "has a _count that differs from its '+Inf' bucket"
        elif (has_sum or has_gsum) and count is None:
            problem = "has a _sum without a _count"
        elif count is not None and not (has_sum or has_gsum):
            problem = "has a _count without a _sum"
        elif neg_buckets and has_sum:
            problem = "may not have a _sum when it has negative buckets"
        elif neg_gsum and not neg_buckets:
            problem = "may not have a negative _gsum without negative buckets"
        if problem:
            raise ExpositionError(line, f"histogram {name!r} (labels {dict(group)!r}) {problem}")
