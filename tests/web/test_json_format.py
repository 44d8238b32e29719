from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from vigil.model.labels import Labels
from vigil.promql.result import QueryResult, Sample, Scalar, Series, String
from vigil.web.federate import format_go_g
from vigil.web.json_format import format_timestamp, format_value, query_data_json


@pytest.mark.parametrize(
    ("v", "want"),
    [
        (1.0, "1"),
        (0.0, "0"),
        (-0.0, "-0"),
        (0.1, "0.1"),
        (1.5, "1.5"),
        (-2.25, "-2.25"),
        (1e21, "1000000000000000000000"),
        (1.234e-7, "0.0000001234"),
        (123456789.125, "123456789.125"),
        (1e15, "1000000000000000"),
        (2.0**53 + 2, "9007199254740994"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
        (5e-324, "0." + "0" * 323 + "5"),
    ],
)
def test_format_value_like_go_f_minus_one(v: float, want: str) -> None:
    assert format_value(v) == want


@pytest.mark.parametrize(
    ("v", "want"),
    [
        (1.0, "1"),
        (123456.0, "123456"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001234, "1.234e-05"),
        (1.7e9, "1.7e+09"),
        (-3.5, "-3.5"),
        (math.inf, "+Inf"),
        (math.nan, "NaN"),
    ],
)
def test_format_go_g(v: float, want: str) -> None:
    assert format_go_g(v) == want


@pytest.mark.parametrize(
    ("t", "want"), [(0, "0"), (1500, "1.500"), (1001, "1.001"), (-250, "-0.250"), (3000, "3")]
)
def test_format_timestamp(t: int, want: str) -> None:
    assert format_timestamp(t) == want


def test_result_shapes() -> None:
    ls = Labels.from_dict({"__name__": "m", "a": "x"})
    vec = QueryResult("vector", [Sample(ls, 1500, 2.0)])
    assert orjson.loads(query_data_json(vec)) == {
        "resultType": "vector",
        "result": [{"metric": {"__name__": "m", "a": "x"}, "value": [1.5, "2"]}],
    }
    assert b'"value":[1.500,"2"]' in query_data_json(vec)
    mat = QueryResult(
        "matrix", [Series(ls, np.array([1000, 2000], dtype=np.int64), np.array([1.0, math.nan]))]
    )
    assert orjson.loads(query_data_json(mat))["result"][0]["values"] == [[1, "1"], [2, "NaN"]]
    assert orjson.loads(query_data_json(QueryResult("scalar", Scalar(1000, 3.25))))["result"] == [
        1,
        "3.25",
    ]
    assert orjson.loads(query_data_json(QueryResult("string", String(1000, 'a"b'))))["result"] == [
        1,
        'a"b',
    ]
    empty = orjson.loads(query_data_json(QueryResult("matrix", [])))
    assert empty == {"resultType": "matrix", "result": []}
