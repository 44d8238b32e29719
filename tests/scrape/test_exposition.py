"""Exposition parsing: Prometheus text 0.0.4, OpenMetrics details, streaming, helpers."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

from vigil.model.labels import Labels
from vigil.scrape.exposition import (
    ACCEPT_HEADER,
    NO_TIMESTAMP,
    ExpositionError,
    MetricMetadata,
    iter_parse,
    labels_of,
    negotiate,
    parse,
)

OM = "application/openmetrics-text; version=1.0.0"

PROM_BODY = b"""# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000

# Escaping in label values:
msdos_file_access_time_seconds{path="C:\\\\DIR\\\\FILE.TXT",error="Cannot find file:\\n\\"FILE.TXT\\""} 1.458255915e9

# Minimalistic line:
metric_without_timestamp_and_labels 12.47
# A weird metric from before the epoch:
something_weird{problem="division by zero"} +Inf -3982045
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.5"} 4773
rpc_duration_seconds_sum 1.7560473e+07
rpc_duration_seconds_count 2693
# TYPE old untyped
old NaN
"""


def test_prometheus_example_body() -> None:
    exp = parse(PROM_BODY)
    assert not exp.openmetrics
    assert exp.keys[0] == 'http_requests_total{method="post",code="200"}'
    assert exp.values.dtype == np.float64 and exp.timestamps.dtype == np.int64
    assert exp.values[:2].tolist() == [1027.0, 3.0]
    assert exp.timestamps[:2].tolist() == [1395066363000, 1395066363000]
    assert exp.timestamps[3] == NO_TIMESTAMP
    assert exp.values[4] == math.inf and exp.timestamps[4] == -3982045
    assert math.isnan(exp.values[-1])
    assert exp.metadata["http_requests_total"] == MetricMetadata(
        "counter", "The total number of HTTP requests.", ""
    )
    assert exp.metadata["rpc_duration_seconds"].type == "summary"
    assert exp.metadata["old"].type == "unknown"
    lbl = labels_of(exp.keys[2])
    assert lbl.get("path") == "C:\\DIR\\FILE.TXT"
    assert lbl.get("error") == 'Cannot find file:\n"FILE.TXT"'
    assert lbl.metric_name == "msdos_file_access_time_seconds"


def test_keys_are_stable_cache_keys() -> None:
    a = parse(b'up{job="a"} 1\n').keys[0]
    b = parse(b'up{job="a"}   0 123\n').keys[0]
    assert a == b == 'up{job="a"}'
    assert parse(b"up 1\n").keys == ["up"]


def test_labels_of() -> None:
    assert labels_of('a{b="1",a="2",e=""}') == Labels.from_pairs(
        [("__name__", "a"), ("a", "2"), ("b", "1")]
    )
    assert labels_of("x") == Labels.from_pairs([("__name__", "x")])
    with pytest.raises(ExpositionError, match="invalid series"):
        labels_of('a{b="1"')


def test_prometheus_leniency() -> None:
    body = (
        b'a { b = "1" , c="2", } 1\n\n  # just a comment\n\tb\t2\t3\n# HELP c \\\\n help\\n x\\t\n'
    )
    exp = parse(body)
    assert exp.values.tolist() == [1.0, 2.0]
    assert exp.timestamps.tolist() == [NO_TIMESTAMP, 3]
    assert labels_of(exp.keys[0]).to_dict() == {"__name__": "a", "b": "1", "c": "2"}
    assert exp.metadata["c"].help == "\\n help\n x\\t"


def test_utf8_quoted_names() -> None:
    exp = parse(b'{"my.metric", "a.b"="c"} 1\n')
    assert labels_of(exp.keys[0]).to_dict() == {"__name__": "my.metric", "a.b": "c"}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Inf", math.inf),
        ("+inf", math.inf),
        ("-Infinity", -math.inf),
        ("nan", math.nan),
        ("0x1p-3", 0.125),
        ("-0x1_8p0", -24.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("1E3", 1000.0),
    ],
)
def test_go_float_values(text: str, value: float) -> None:
    got = parse(f"a {text}\n".encode()).values[0]
    assert (math.isnan(got) and math.isnan(value)) or got == value


@pytest.mark.parametrize(
    "text", ["1_000", "0x1", "1e400", "+NaN", "\u0661", "1.2.3", "abc", "0x_p1"]
)
def test_go_float_rejects(text: str) -> None:
    with pytest.raises(ExpositionError, match=r"line 2: invalid value"):
        parse(f"ok 1\na {text}\n".encode())


@pytest.mark.parametrize(
    ("body", "line", "fragment"),
    [
        (b"a\n", 1, "expected a value"),
        (b"a 1 2 3\n", 1, "optional timestamp"),
        (b"a 1 1.5\n", 1, "timestamp '1.5'"),
        (b"a 1 1_0\n", 1, "timestamp"),
        (b'a{b="1"} 1\na{b="1} 1\n', 2, "unterminated"),
        (b'a{b="1",b="2"} 1\n', 1, "duplicate label name 'b'"),
        (b"# TYPE a gauge\n# TYPE a counter\n", 2, "second TYPE"),
        (b"# HELP a x\n# HELP a y\n", 2, "second HELP"),
        (b"# TYPE a gaugehistogram\n", 1, "unknown metric type"),
        (b"# TYPE 0a gauge\n", 1, "expected a metric name"),
        (b"a-b 1\n", 1, "invalid metric name"),
        (b"ok 1\n\xff 1\n", 2, "invalid UTF-8"),
    ],
)
def test_prometheus_errors(body: bytes, line: int, fragment: str) -> None:
    with pytest.raises(ExpositionError) as info:
        parse(body)
    assert info.value.line == line
    assert fragment in info.value.message
    assert str(info.value) == f"line {line}: {info.value.message}"


def test_first_problem_wins() -> None:
    # The bad value on line 1 is reported, not the later syntax error.
    with pytest.raises(ExpositionError) as info:
        parse(b"a x\nb{ 1\n")
    assert info.value.line == 1


def test_openmetrics_values_timestamps_exemplars() -> None:
    body = (
        b"# TYPE a counter\n# HELP a help\n# UNIT a \n"
        b'a_total{x="1"} 3 1.5 # {trace_id="abc"} 0.5 2\n'
        b'a_created{x="1"} 1.7e9 1.5\n'
        b"# TYPE t gauge\nt 1 -1.25\n"
        b"# EOF"
    )
    exp = parse(body, OM)
    assert exp.openmetrics
    assert exp.keys == ['a_total{x="1"}', 'a_created{x="1"}', "t"]
    assert exp.timestamps.tolist() == [1500, 1500, -1250]
    assert exp.metadata["a"] == MetricMetadata("counter", "help", "")
    (ex,) = exp.exemplars
    assert (ex.index, ex.labels, ex.value, ex.timestamp) == (0, (("trace_id", "abc"),), 0.5, 2000)


def test_openmetrics_huge_timestamp_is_clamped() -> None:
    exp = parse(b"a 1 12345678901234567890.5\n# EOF\n", OM)
    assert exp.timestamps[0] == np.iinfo(np.int64).max


def test_openmetrics_is_strict_where_text_is_not() -> None:
    assert len(parse(b"a 1\n")) == 1
    with pytest.raises(ExpositionError, match="EOF"):
        parse(b"a 1\n", OM)
    with pytest.raises(ExpositionError, match="untyped"):
        parse(b"# TYPE a untyped\n# EOF\n", OM)


def test_negotiate_and_accept_header() -> None:
    assert negotiate("application/openmetrics-text; version=1.0.0; charset=utf-8") == "openmetrics"
    assert negotiate("Application/OpenMetrics-Text;version=0.0.1") == "openmetrics"
    assert negotiate("text/plain; version=0.0.4") == "prometheus"
    assert negotiate(None) == "prometheus"
    assert negotiate("") == "prometheus"
    assert negotiate("garbage;;;") == "prometheus"
    assert ACCEPT_HEADER.startswith("application/openmetrics-text;version=1.0.0")
    assert "text/plain;version=0.0.4;q=" in ACCEPT_HEADER and ACCEPT_HEADER.endswith("*/*;q=0.1")
    # parse accepts negotiate's answer directly
    assert parse(b"a 1\n# EOF\n", negotiate("application/openmetrics-text")).openmetrics


def _stream_all(body: bytes, ct: str | None, chunk: int) -> tuple[list[str], list[float], dict]:
    keys: list[str] = []
    vals: list[float] = []
    meta: dict = {}
    for part in iter_parse(io.BytesIO(body), ct, chunk_bytes=chunk):
        keys += part.keys
        vals += part.values.tolist()
        meta = part.metadata
    return keys, vals, meta


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_iter_parse_matches_parse(chunk: int) -> None:
    whole = parse(PROM_BODY)
    keys, vals, meta = _stream_all(PROM_BODY, None, chunk)
    assert keys == whole.keys
    np.testing.assert_array_equal(np.array(vals), whole.values)
    assert meta == whole.metadata


@pytest.mark.parametrize("chunk", [1, 10, 1 << 20])
def test_iter_parse_openmetrics(chunk: int) -> None:
    body = (
        b'# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_count 2\nh_sum 3\n# EOF'
    )
    keys, _, meta = _stream_all(body, OM, chunk)
    assert keys == ['h_bucket{le="1"}', 'h_bucket{le="+Inf"}', "h_count", "h_sum"]
    assert meta["h"].type == "histogram"


def test_iter_parse_errors_keep_global_line_numbers() -> None:
    body = b"a 1\n" * 50 + b"bad{ 1\n"
    with pytest.raises(ExpositionError) as info:
        list(iter_parse(io.BytesIO(body), chunk_bytes=16))
    assert info.value.line == 51
    # OpenMetrics: the end check runs after the last chunk; rules span chunks.
    with pytest.raises(ExpositionError, match="EOF"):
        list(iter_parse(io.BytesIO(b"a 1\n" * 10), OM, chunk_bytes=8))
    om = b"# TYPE h histogram\n" + b'h_bucket{le="+Inf"} 1\n' * 1 + b"h_count 2\nh_sum 1\n# EOF\n"
    with pytest.raises(ExpositionError, match="differs"):
        list(iter_parse(io.BytesIO(om), OM, chunk_bytes=8))


def test_iter_parse_rejects_bad_chunk_size() -> None:
    with pytest.raises(ValueError, match="chunk_bytes"):
        list(iter_parse(io.BytesIO(b""), chunk_bytes=0))


def test_large_body_round_trip() -> None:
    lines = [f'm{{i="{i}",job="x"}} {i}.5' for i in range(5000)]
    exp = parse(("\n".join(lines) + "\n").encode())
    assert len(exp) == 5000
    assert exp.values[4999] == 4999.5
    assert labels_of(exp.keys[123]).get("i") == "123"


# -- fast paths: bulk splitting must agree with the careful line-by-line parsers ------

from vigil.scrape import _series  # noqa: E402
from vigil.scrape._numbers import (  # noqa: E402
    bulk_float_tokens,
    go_parse_float,
    ms_tokens,
    om_parse_float,
    parse_om_timestamp,
    seconds_to_ms,
)
from vigil.scrape._openmetrics import OpenMetricsParser  # noqa: E402
from vigil.scrape._promtext import PromTextParser  # noqa: E402


def _careful(body: bytes, om: bool) -> tuple[list[str], list[float], list[int], dict]:
    parser = OpenMetricsParser() if om else PromTextParser()
    exp = parser._feed_careful(body.decode())
    if om:
        parser.close()
        exp.metadata = dict(parser.metadata)
    return exp.keys, exp.values.tolist(), exp.timestamps.tolist(), exp.metadata


def _same(body: bytes, om: bool = False) -> None:
    """parse() (fast path) and the careful parser agree: same result or same error."""
    ct = OM if om else None
    try:
        want = _careful(body, om)
    except ExpositionError as e:
        with pytest.raises(ExpositionError) as info:
            parse(body, ct)
        assert str(info.value) == str(e)
        return
    for _ in range(2):  # cold, then with every series known
        got = parse(body, ct)
        assert got.keys == want[0]
        np.testing.assert_array_equal(got.values, np.array(want[1]))
        assert got.timestamps.tolist() == want[2]
        assert got.metadata == want[3]


def _no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: object, text: str) -> None:
        raise AssertionError("fell back to the careful path")

    monkeypatch.setattr(PromTextParser, "_feed_careful", refuse)
    monkeypatch.setattr(OpenMetricsParser, "_feed_careful", refuse)


def test_fast_path_takes_a_steady_body(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [f'm{{i="{i}",job="x y"}} {i}.25' for i in range(3000)]
    lines[5] = "# HELP m help"
    lines[7] = 'm{i="ts"} 1 1700000000000'
    lines[9] = "  m_lead 2"
    lines[11] = ""
    lines[13] = 'm{i="nan"} NaN'
    lines[15] = 'm{i="hex"} 0x1p-2'
    body = ("\n".join(lines) + "\n").encode()
    _same(body)
    _no_fallback(monkeypatch)
    for _ in range(2):
        exp = parse(body)
        assert len(exp) == 2998
        assert exp.keys[7 - 1] == 'm{i="ts"}' and exp.timestamps[6] == 1700000000000
        assert exp.values[-1] == 2999.25 and exp.values[13] == 0.25
    assert _series.PROM_SERIES.runs  # whole runs recognised by comparison


@pytest.mark.parametrize(
    "body",
    [
        b"a 1\nb 2 3\nc\n",  # a line without a value after good ones
        b"a 1\nb\nc\nd 1\n",  # lines without blanks would shift the columns
        b"x 1 Inf\nInf\n",  # the shift could line up with names that are numbers
        b"a 1\n\tb 2\n c 3\n",
        b'a{b="x y"} 1\na{b="x y"} 2 3\n',
        b"a 1\n  # TYPE a gauge\na 2\n",
        b"# TYPE a gauge\n# TYPE a gauge\na 1\n",
        b"a 1\na 1_0\n",
        b"a 1\na \xc2\xa01\n",
        b"a 1\na 1\r\n",
        b"a 1\na 1 \n",
        b"a 1\na  1\n",
        b"a 1\na +nan\n",
        b"a 1\na 1e400\n",
        b"a 1\na 1 -\n",
        b"a 1\na 1 99999999999999999999\n",
        b"a 0x1p3\na -0\na 1E5\na .5\n",
        b"#\n#HELP a x\n# HELPER a\na 1",
        b"",
        b"\n\n",
    ],
)
def test_fast_prometheus_matches_careful(body: bytes) -> None:
    _same(body)
    _series.PROM_SERIES.clear()
    _same(body * 3)


def test_fast_prometheus_random_bodies() -> None:
    import random

    rng = random.Random(11)
    pieces = [
        'm{a="1"} 1',
        'm{a="2"} 2.5e3',
        'm{a="2"} -0',
        'm{a="3",b="x y"} 3',
        "n 4 1700000000000",
        "n 5",
        "# TYPE n gauge",
        "# HELP m some help",
        "# a comment",
        "",
        "  o 6",
        "o\t7",
        'p{a="\\"q r\\""} 8',
        "q NaN",
        "q +Inf",
        "r 1_0",
        "s",
        "t 1 2 3",
    ]
    for _ in range(300):
        body = "\n".join(rng.choice(pieces) for _ in range(rng.randint(0, 40))).encode()
        _same(body)


OM_STEADY = (
    "# HELP c A counter.\n# TYPE c counter\n"
    + "".join(
        f'c_total{{i="{i // 100}"}} {i} {1700000000 + i}.{i % 1000:03d}\n' for i in range(400)
    )
    + "# TYPE g gauge\n"
    + "".join(f'g{{i="{i}"}} {i * 0.5} 1700000000\n' for i in range(300))
    + "".join(f"u {i} 1700000000.5\n" for i in range(10))
    + "# EOF\n"
).encode()


def test_fast_openmetrics_takes_a_steady_body(monkeypatch: pytest.MonkeyPatch) -> None:
    _same(OM_STEADY, om=True)
    _no_fallback(monkeypatch)
    exp = parse(OM_STEADY, OM)
    assert len(exp) == 710
    assert exp.timestamps[1] == 1700000001001 and exp.values[1] == 1.0
    assert exp.timestamps[-1] == 1700000000500
    chunks = list(iter_parse(io.BytesIO(OM_STEADY), OM, chunk_bytes=1000))
    assert sum(len(c) for c in chunks) == 710
    assert np.concatenate([c.timestamps for c in chunks]).tolist() == exp.timestamps.tolist()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"# TYPE c counter\nc_total 1 2\nc_total 2 3\nc_total 3 2.999\n# EOF\n", "backwards"),
        (b"# TYPE c counter\nc_total 1 2\nc_total 2 3.0001\nc_total 3 3.00005\n# EOF\n", "back"),
        (b"# TYPE c counter\nc_total 1 2\nc_total 2 3\nc_total NaN 4\n# EOF\n", "NaN"),
        (b"# TYPE c counter\nc_total 1 2\nc_total -1 3\nc_total 3 4\n# EOF\n", "negative"),
        (b"# TYPE c counter\nc_total 1 2\nc_total 2\n# EOF\n", "mixes"),
        (b"# TYPE g gauge\ng 1 2\ng 2 3\nh 1 1\ng 3 4\n# EOF\n", "clashes"),
        (b'# TYPE g gauge\ng{a="1"} 1 2\ng{a="2"} 1 2\ng{a="1"} 1 3\n# EOF\n', "contiguous"),
        (b"g 1 2\ng 2 3\n# EOF\ng 3 4\n", "after '# EOF'"),
        (b"g 1 2\ng 2 3\n\ng 3 4\n# EOF\n", "blank"),
        (b"g 1 2\ng 2 NaN\n# EOF\n", "timestamp"),
        (b"g 1 2\ng 2 3 4\n# EOF\n", "optional timestamp"),
        (b"g 1 2\ng 0x1 3\n# EOF\n", "invalid value"),
        (b"g NaN\ng{ 1\n# EOF\n", "invalid series"),
        (b"g NaN 1\ng 1 2\n# TYPE g gauge\n# EOF\n", "after its samples"),
        (b'# TYPE h histogram\nh_bucket{le="1"} 1 2\nh_bucket{le="+Inf"} 0 2\n# EOF\n', "decrease"),
    ],
)
def test_fast_openmetrics_errors_match_careful(body: bytes, fragment: str) -> None:
    _same(body, om=True)
    _series.OM_SERIES.clear()
    with pytest.raises(ExpositionError) as info:
        parse(body, OM)
    assert fragment in info.value.message
    _same(body, om=True)  # with the series known


def test_fast_openmetrics_exotic_but_valid() -> None:
    body = (
        b"# TYPE c counter\n"
        b'c_total{a="1"} 1 1.5 # {t="x"} 1 1.5\n'
        b'c_total{a="1"} 2 1.50001\nc_total{a="1"} 3 1.5e1\nc_created{a="1"} 1 15\n'
        b"# TYPE s summary\n"
        b's{quantile="0.5"} 1 1\ns{quantile="0.5"} 2 2\ns_sum 1 2\ns_count 1 2\n'
        b'# TYPE i info\ni_info{v="1"} 1 5\ni_info{v="1"} 1 4\n'
        b"# TYPE h histogram\n"
        b'h_bucket{le="1"} 1 1\nh_bucket{le="+Inf"} 2 1\nh_count 2 1\nh_sum 3 1\n'
        b'h_bucket{le="1"} 1 2\nh_bucket{le="+Inf"} 2 2\nh_count 2 2\nh_sum 3 2\n'
        b"u 1 -1.25\nu 2 -1.0005\nu 1e400 123456789012345678901.5\n"
        b"# EOF"
    )
    _same(body, om=True)
    exp = parse(body, OM)
    assert exp.timestamps[:3].tolist() == [1500, 1500, 15000]
    assert exp.timestamps[-3:].tolist() == [-1250, -1000, np.iinfo(np.int64).max]
    assert len(exp.exemplars) == 1


def test_bulk_numbers_agree_with_one_by_one() -> None:
    import random

    rng = random.Random(3)
    special = ["NaN", "+Inf", "-inf", "0x1p-3", "1e400", "-0", "1.", ".5", "9" * 17, "1e22"]
    special += ["1e23", "4.5e-22", "7e-23", "1E+05", "-.5e3", "1e+0100", "+nan", "1e", "."]
    special += ["1..2", "--1", "1-2", "e5", "1e5.5", "+", "123456789012345", "1_0", "infinity"]

    def rnd() -> str:
        if rng.random() < 0.1:
            return rng.choice(special)
        s = str(rng.randrange(10 ** rng.randint(1, 18)))
        if rng.random() < 0.5:
            p = rng.randint(0, len(s))
            s = s[:p] + "." + s[p:]
        if rng.random() < 0.3:
            s = rng.choice("+-") + s
        if rng.random() < 0.3:
            s += rng.choice("eE") + rng.choice(["", "+", "-"]) + str(rng.randint(0, 40))
        return s

    for _ in range(1500):
        toks = [rnd() for _ in range(rng.randint(1, 40))]
        for om, check in ((False, go_parse_float), (True, om_parse_float)):
            try:
                want = [check(t) for t in toks]
            except ValueError:
                want = None
            got = bulk_float_tokens([" " + t for t in toks], om)
            if want is None:
                assert got is None, toks
            else:
                assert got is not None, toks
                np.testing.assert_array_equal(got, np.array(want))
                assert (np.signbit(got) == np.signbit(np.array(want))).all()
        try:
            ms = [seconds_to_ms(parse_om_timestamp(t)) for t in toks]
        except ValueError:
            ms = None
        out = ms_tokens([" " + t for t in toks])
        if out is not None:
            assert ms is not None, toks
            vals, careful, _ = out
            assert [v for v, c in zip(vals.tolist(), careful, strict=True) if not c] == [
                m for m, c in zip(ms, careful, strict=True) if not c
            ]


def test_fast_openmetrics_random_bodies() -> None:
    import random

    rng = random.Random(5)
    pieces = [
        "# TYPE c counter",
        "# HELP c help",
        "# UNIT c_seconds seconds",
        'c_total{a="1"} 1 100.5',
        'c_total{a="1"} 2 101',
        'c_total{a="1"} NaN 102',
        'c_total{a="2"} 3 99.0001',
        'c_created{a="1"} 1 100',
        "c_total 4",
        "# TYPE g gauge",
        'g{b="x y"} 1',
        "g -1 1.0005",
        "g -1 1.0004",
        "g 0x1 5",
        "g{} +Inf 7",
        "u 1 1e3",
        "u 1 1e30",
        'c_total{a="3"} 1 1 # {t="1"} 1 1',
        "# TYPE h histogram",
        'h_bucket{le="+Inf"} 1 1',
        "h_count 1 1",
        "h_sum 1 1",
        "",
        "bad{",
        "# EOF",
    ]
    for _ in range(400):
        lines = [rng.choice(pieces) for _ in range(rng.randint(0, 30))]
        if rng.random() < 0.8:
            lines.append("# EOF")
        _same(("\n".join(lines) + "\n").encode(), om=True)
