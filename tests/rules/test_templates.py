"""Prometheus's template functions and the expander's error handling."""

from __future__ import annotations

import pytest

from vigil.model.labels import Labels
from vigil.promql.result import QueryResult, Sample
from vigil.rules.templates import (
    check_template,
    expand_template,
    format_float_e,
    humanize,
    humanize1024,
    humanize_duration,
    humanize_percentage,
    humanize_timestamp,
    strip_port,
)


@pytest.mark.parametrize(
    "v,want",
    [
        (0, "0"),
        (1234567, "1.235M"),
        (0.00123, "1.23m"),
        (-1500, "-1.5k"),
        (12.5, "12.5"),
        (float("inf"), "+Inf"),
        (float("nan"), "NaN"),
        ("2048", "2.048k"),
    ],
)
def test_humanize(v: object, want: str) -> None:
    assert humanize(v) == want


def test_humanize_family() -> None:
    assert humanize1024(2048) == "2ki"
    assert humanize1024(0.5) == "0.5"
    assert humanize_duration(3700) == "1h 1m 40s"
    assert humanize_duration(90061) == "1d 1h 1m 1s"
    assert humanize_duration(0.5) == "500ms"
    assert humanize_duration(0) == "0s"
    assert humanize_duration(59.1234) == "59.12s"
    assert humanize_percentage(0.1234) == "12.34%"
    assert humanize_timestamp(1.5) == "1970-01-01 00:00:01.5 +0000 UTC"
    assert strip_port("host:9090") == "host"
    assert strip_port("[::1]:9090") == "::1"


def test_format_float_e() -> None:
    assert [format_float_e(x) for x in (1.0, 0.5, 123.456, 1e-7, 0.0)] == [
        "1e+00",
        "5e-01",
        "1.23456e+02",
        "1e-07",
        "0e+00",
    ]
    assert format_float_e(12.0, upper=True) == "1.2E+01"


def test_variables_and_pipelines() -> None:
    text = (
        '{{ $labels.instance }} {{ $value | humanize }} {{ printf "%.1f" $value }} '
        "{{ $externalLabels.cluster }}|{{ $labels.missing }}|"
        "{{ if gt $value 100.0 }}big{{ else }}small{{ end }} "
        "{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }} "
        '{{ reReplaceAll "(.*):.*" "$1" $labels.instance | toUpper }} '
        '{{ with $labels.job }}{{ . | title }}{{ end }} {{ match "^a" $labels.job }}'
    )
    got = expand_template(
        text, {"instance": "a:9", "job": "api"}, 1234.5, external_labels={"cluster": "c1"}
    )
    assert got == ("a:9 1.234k 1234.5 c1||big instance=a:9;job=api; A Api true")


def test_query_functions() -> None:
    def query(expr: str, t: int) -> QueryResult:
        assert t == 42
        return QueryResult(
            "vector",
            [
                Sample(Labels.from_dict({"i": "b"}), t, 2.0),
                Sample(Labels.from_dict({"i": "a"}), t, 1.0),
            ],
        )

    text = (
        '{{ query "up" | first | value }} {{ with query "up" }}{{ . | first | label "i" }}{{ end }} '
        '{{ range query "up" | sortByLabel "i" }}{{ .Labels.i }}={{ .Value }} {{ end }}'
    )
    assert expand_template(text, {}, 0.0, query=query, t_ms=42) == "2 b a=1 b=2 "


def test_errors_are_rendered_not_raised() -> None:
    got = expand_template("x {{ nofunc }}", {}, 1.0, name="__alert_A")
    assert got.startswith("<error expanding template: error executing template __alert_A:")
    got = expand_template("{{ .Foo", {}, 1.0, name="__alert_A")
    assert got == (
        "<error expanding template: error parsing template __alert_A: "
        "template: __alert_A:1: unclosed action>"
    )
    got = expand_template(
        '{{ query "x" | first }}', {}, 1.0, query=lambda e, t: QueryResult("vector", [])
    )
    assert "first() called on vector with no elements" in got


def test_check_template() -> None:
    assert check_template("{{ $value | humanizePercentage }}", "__alert_a") is None
    assert check_template('{{ graphLink "up" }}{{ tableLink "up" }}{{ pathPrefix }}', "n") is None
    assert check_template("{{ nope }}", "n") == 'template: n:1: function "nope" not defined'
