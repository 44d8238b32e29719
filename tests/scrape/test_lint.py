"""`check_metrics`: promtool's metric linter, unit cases and side by side with promtool."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from vigil.scrape.lint import check_metrics

PROMTOOL = "/usr/bin/promtool"

BODIES: dict[str, bytes] = {
    "clean": b"# HELP up_seconds_total x\n# TYPE up_seconds_total counter\nup_seconds_total 1\n",
    "mixed": (
        b"# HELP foo_seconds_total x\n# TYPE foo_seconds_total counter\nfoo_seconds_total 1\n"
        b"# TYPE bar counter\nbar 1\n"
        b"# HELP baz_milliseconds x\n# TYPE baz_milliseconds gauge\nbaz_milliseconds 1\n"
        b"# HELP fooBar x\n# TYPE fooBar gauge\nfooBar 1\n"
        b'# HELP h x\n# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n'
        b'# HELP s x\n# TYPE s summary\ns{quantile="0.5"} 1\ns_sum 1\ns_count 1\n'
        b"# HELP g_total x\n# TYPE g_total gauge\ng_total 1\n"
        b"# HELP c_count x\n# TYPE c_count counter\nc_count_total 1\n"
        b'# HELP r_ratio x\n# TYPE r_ratio gauge\nr_ratio{le="1"} 1\n'
        b"# HELP k_kilobytes x\n# TYPE k_kilobytes gauge\nk_kilobytes 1\n"
        b'# HELP m x\n# TYPE m gauge\nm{fooBar="1"} 1\n'
    ),
    "names": (
        b"# HELP a_gauge x\n# TYPE a_gauge gauge\na_gauge 1\n"
        b"# HELP c_ms x\n# TYPE c_ms gauge\nc_ms 1\n"
        b'# HELP d x\n# TYPE d gauge\nd{le="1"} 1\nd{le="2"} 1\n'
        b"# HELP e_kb_s x\n# TYPE e_kb_s gauge\ne_kb_s 1\n"
        b"u_total 1\nv_count 1\n"
        b'# HELP w_histogram_bytes x\n# TYPE w_histogram_bytes untyped\nw_histogram_bytes{le="1",aB="1"} 1\n'
        b'# HELP c_total x\n# TYPE c_total counter\nc_total{quantile="1"} 1\n'
        b"# HELP f_hours x\n# TYPE f_hours gauge\nf_hours 1\n"
        b"# HELP i_sum x\n# TYPE i_sum gauge\ni_sum 1\n"
        b"# HELP j_bucket x\n# TYPE j_bucket gauge\nj_bucket 1\n"
        b"# HELP kk:rate x\n# TYPE kk:rate gauge\nkk:rate 1\n"
    ),
    "bad_value": b'a 1\na{b="c"} x\n',
    "type_after_samples": b"x 1\n# TYPE x gauge\n",
}


def test_clean_body() -> None:
    assert check_metrics(BODIES["clean"]) == (0, [])


def test_findings_wording_and_order() -> None:
    rc, msgs = check_metrics(BODIES["mixed"])
    assert rc == 3
    assert msgs == [
        'bar counter metrics should have "_total" suffix',
        "bar no help text",
        'baz_milliseconds use base unit "seconds" instead of "milliseconds"',
        "c_count_total no help text",
        "fooBar metric names should be written in 'snake_case' not 'camelCase'",
        'g_total non-counter metrics should not have "_total" suffix',
        'k_kilobytes use base unit "bytes" instead of "kilobytes"',
        "m label names should be written in 'snake_case' not 'camelCase'",
        'r_ratio non-histogram metrics should not have "le" label',
    ]


def test_parse_error_exit_code() -> None:
    rc, msgs = check_metrics(BODIES["bad_value"])
    assert rc == 1
    assert msgs[0].startswith("error while linting: text format parsing error in line 2:")
    rc, msgs = check_metrics(BODIES["type_after_samples"])
    assert rc == 1 and "TYPE reported after samples" in msgs[0]


def test_duplicate_series() -> None:
    rc, msgs = check_metrics(b"# HELP a x\n# TYPE a gauge\na 1\na 2\n")
    assert rc == 3 and msgs == ["a metric not unique"]


def test_openmetrics_format() -> None:
    body = b"# TYPE a counter\n# HELP a x\na_total 1\n# EOF\n"
    assert check_metrics(body, "openmetrics") == (0, [])
    rc, msgs = check_metrics(b"a 1\n", "openmetrics")
    assert rc == 1 and "EOF" in msgs[0]
    with pytest.raises(ValueError, match="unknown format"):
        check_metrics(b"", "json")


@pytest.mark.interop
@pytest.mark.skipif(shutil.which(PROMTOOL) is None, reason=f"{PROMTOOL} is not installed")
@pytest.mark.parametrize("name", sorted(BODIES))
def test_same_as_promtool(name: str) -> None:
    body = BODIES[name]
    proc = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=body, capture_output=True, timeout=30, check=False
    )
    rc, msgs = check_metrics(body)
    assert rc == proc.returncode
    theirs = [ln for ln in proc.stderr.decode().splitlines() if ln]
    if rc == 1:
        # Same shape and line; parser wording differs.
        assert theirs[0].split(":")[:2] == msgs[0].split(":")[:2]
    else:
        assert msgs == theirs
