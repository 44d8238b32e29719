from __future__ import annotations

from typing import Any

import pytest

from vigil.web import WebContext

from web_fixtures import NOW_MS, NOW_S, TestClient, make_client


def err(r: Any, status: int, etype: str, contains: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == "error"
    assert body["errorType"] == etype
    assert contains in body["error"], body["error"]


def test_instant_query_vector(client: TestClient) -> None:
    r = client.get("/api/v1/query", params={"query": 'metric_1{instance="a:1"}'})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body == {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {
                    "metric": {"__name__": "metric_1", "instance": "a:1", "job": "node"},
                    "value": [NOW_S, "14.5"],
                }
            ],
        },
    }
    assert "warnings" not in body


def test_instant_query_time_formats_and_post(client: TestClient, ctx: WebContext) -> None:
    client.get("/api/v1/query", params={"query": "up", "time": "2023-11-14T22:13:20.5Z"})
    client.post("/api/v1/query", data={"query": "up", "time": "1700000000.25", "timeout": "5s"})
    calls = ctx.engine.calls  # type: ignore[union-attr]
    assert calls[0][2] == NOW_MS + 500
    assert calls[1][2:] == (NOW_MS + 250, 5.0)


def test_scalar_string_warnings_limit_stats(client: TestClient) -> None:
    assert client.get("/api/v1/query", params={"query": "2.5", "time": "10"}).json()["data"] == {
        "resultType": "scalar",
        "result": [10, "2.5"],
    }
    assert client.get("/api/v1/query", params={"query": '"hi"', "time": "10.5"}).content.endswith(
        b'"result":[10.500,"hi"]}}'
    )
    body = client.get(
        "/api/v1/query",
        params={"query": '{__name__=~"metric_.",warn=""}', "limit": "2", "stats": "true"},
    ).json()
    assert len(body["data"]["result"]) == 2
    assert body["warnings"] == ["a warning", "results truncated due to limit"]
    assert body["data"]["stats"]["samples"]["totalQueryableSamples"] == 0
    body = client.get("/api/v1/query", params={"query": "up", "stats": "yes"}).json()
    assert "deprecated" in body["warnings"][0]


def test_instant_query_errors(client: TestClient) -> None:
    err(client.get("/api/v1/query"), 400, "bad_data", 'invalid parameter "query"')
    err(
        client.get("/api/v1/query", params={"query": "up", "time": "x"}),
        400,
        "bad_data",
        """invalid parameter "time": invalid time value for 'time': cannot parse "x" """.strip(),
    )
    err(
        client.get("/api/v1/query", params={"query": "up", "timeout": "abc"}),
        400,
        "bad_data",
        'invalid parameter "timeout"',
    )
    err(
        client.get("/api/v1/query", params={"query": "up", "limit": "-3"}),
        400,
        "bad_data",
        "limit must be non-negative",
    )
    err(
        client.get("/api/v1/query", params={"query": "up{"}),
        400,
        "bad_data",
        'invalid parameter "query"',
    )
    err(
        client.get("/api/v1/query", params={"query": "timeout_me"}),
        503,
        "timeout",
        "query timed out",
    )


def test_no_engine_is_unavailable(storage: Any) -> None:
    with make_client(WebContext(storage=storage)) as c:
        err(c.get("/api/v1/query", params={"query": "up"}), 503, "unavailable", "not available")


def test_range_query_matrix(client: TestClient) -> None:
    r = client.get(
        "/api/v1/query_range",
        params={
            "query": 'metric_0{instance="b:2"}',
            "start": str(NOW_S - 60),
            "end": str(NOW_S),
            "step": "15s",
        },
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["resultType"] == "matrix"
    (series,) = data["result"]
    assert series["metric"]["instance"] == "b:2"
    assert series["values"][0] == [NOW_S - 60, "0.5"]
    assert [v for _, v in series["values"]] == ["0.5", "1.5", "2.5", "3.5", "4.5"]


@pytest.mark.parametrize(
    ("params", "contains"),
    [
        ({"start": "x", "end": "1", "step": "1"}, 'invalid parameter "start": cannot parse "x"'),
        ({"start": "1", "end": "x", "step": "1"}, 'invalid parameter "end"'),
        ({"start": "10", "end": "1", "step": "1"}, "end timestamp must not be before start time"),
        ({"start": "1", "end": "10", "step": "0"}, "zero or negative query resolution step"),
        ({"start": "1", "end": "10", "step": "-1s"}, 'invalid parameter "step"'),
        ({"start": "1", "end": "10", "step": "zz"}, 'invalid parameter "step"'),
        (
            {"start": "0", "end": "11001", "step": "1"},
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the "
            "query resolution (?step=XX)",
        ),
    ],
)
def test_range_query_errors(client: TestClient, params: dict[str, str], contains: str) -> None:
    err(
        client.get("/api/v1/query_range", params={"query": "up", **params}),
        400,
        "bad_data",
        contains,
    )


def test_range_query_11000_points_is_fine(client: TestClient) -> None:
    r = client.post(
        "/api/v1/query_range", data={"query": "up", "start": "0", "end": "11000", "step": "1"}
    )
    assert r.status_code == 200, r.text


def test_exemplars_and_format_query(client: TestClient) -> None:
    assert client.get("/api/v1/query_exemplars", params={"query": "up"}).json() == {
        "status": "success",
        "data": [],
    }
    err(
        client.get("/api/v1/query_exemplars", params={"query": "up", "start": "5", "end": "1"}),
        400,
        "bad_data",
        "end timestamp must not be before start timestamp",
    )
    r = client.get("/api/v1/format_query", params={"query": 'up{job="a"}'})
    assert r.status_code == 200
    assert "job" in r.json()["data"]
