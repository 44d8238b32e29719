from __future__ import annotations

from typing import Any

from test_query_api import err

from vigil.web import WebContext

from web_fixtures import NOW_S, TestClient, make_client


def test_series(client: TestClient) -> None:
    r = client.get("/api/v1/series", params={"match[]": ['metric_1{instance="a:1"}', "up"]})
    assert r.json() == {
        "status": "success",
        "data": [
            {"__name__": "metric_1", "instance": "a:1", "job": "node"},
            {"__name__": "up", "job": "node"},
        ],
    }
    r = client.post("/api/v1/series", data={"match[]": '{job="node"}', "limit": "2"})
    body = r.json()
    assert len(body["data"]) == 2 and body["warnings"] == ["results truncated due to limit"]
    r = client.get("/api/v1/series", params={"match[]": "up", "start": str(NOW_S + 10)})
    assert r.json()["data"] == []


def test_series_errors(client: TestClient) -> None:
    err(client.get("/api/v1/series"), 400, "bad_data", "no match[] parameter provided")
    err(
        client.get("/api/v1/series", params={"match[]": "up{"}),
        400,
        "bad_data",
        'invalid parameter "match[]"',
    )
    err(
        client.get("/api/v1/series", params={"match[]": '{a=~".*"}'}),
        400,
        "bad_data",
        "match[] must contain at least one non-empty matcher",
    )
    err(
        client.get("/api/v1/series", params={"match[]": "up", "start": "soon"}),
        400,
        "bad_data",
        "invalid time value for 'start'",
    )


def test_labels_and_values(client: TestClient) -> None:
    assert client.get("/api/v1/labels").json()["data"] == ["__name__", "instance", "job"]
    assert client.get("/api/v1/labels", params={"match[]": "up"}).json()["data"] == [
        "__name__",
        "job",
    ]
    r = client.get("/api/v1/label/__name__/values")
    assert r.json()["data"] == ["metric_0", "metric_1", "metric_2", "up"]
    r = client.get("/api/v1/label/instance/values", params={"match[]": "metric_0", "limit": "1"})
    assert r.json() == {
        "status": "success",
        "data": ["a:1"],
        "warnings": ["results truncated due to limit"],
    }
    assert client.get("/api/v1/label/nope/values").json()["data"] == []
    err(client.get("/api/v1/labels", params={"match[]": "{"}), 400, "bad_data", "parse error")


def test_metadata_targets_and_status(storage: Any) -> None:
    md = {
        "a": [
            {"type": "gauge", "help": "A", "unit": ""},
            {"type": "counter", "help": "A2", "unit": ""},
        ],
        "b": [{"type": "counter", "help": "B", "unit": ""}],
    }
    targets = {
        "activeTargets": [
            {"scrapePool": "p1", "labels": {"job": "p1"}},
            {"scrapePool": "p2", "labels": {"job": "p2"}},
        ],
        "droppedTargets": [{"scrapePool": "p1", "discoveredLabels": {}}],
        "droppedTargetCounts": {"p1": 1},
    }

    def metadata(metric: str | None, limit: int) -> dict[str, Any]:
        return {k: v for k, v in md.items() if metric in (None, k)}

    ctx = WebContext(
        storage=storage,
        metadata=metadata,
        targets=lambda: targets,
        config_yaml=lambda: "global: {}\n",
        flags={"log.level": "info"},
        tsdb_stats=lambda limit: {"headStats": {"numSeries": 7}, "limit": limit},
        runtime_info=lambda: {"CWD": "/"},
    )
    with make_client(ctx) as c:
        assert c.get("/api/v1/metadata").json()["data"] == md
        assert c.get("/api/v1/metadata", params={"metric": "b"}).json()["data"] == {"b": md["b"]}
        assert list(c.get("/api/v1/metadata", params={"limit": "1"}).json()["data"]) == ["a"]
        assert (
            len(c.get("/api/v1/metadata", params={"limit_per_metric": "1"}).json()["data"]["a"])
            == 1
        )
        err(
            c.get("/api/v1/metadata", params={"limit": "x"}),
            400,
            "bad_data",
            "limit must be a number",
        )
        d = c.get("/api/v1/targets").json()["data"]
        assert len(d["activeTargets"]) == 2 and d["droppedTargetCounts"] == {"p1": 1}
        d = c.get("/api/v1/targets", params={"state": "active", "scrapePool": "p2"}).json()["data"]
        assert d == {"activeTargets": [targets["activeTargets"][1]], "droppedTargets": []}
        d = c.get("/api/v1/targets", params={"state": "dropped"}).json()["data"]
        assert d["activeTargets"] == [] and len(d["droppedTargets"]) == 1
        assert c.get("/api/v1/status/config").json()["data"] == {"yaml": "global: {}\n"}
        assert c.get("/api/v1/status/flags").json()["data"] == {"log.level": "info"}
        assert "version" in c.get("/api/v1/status/buildinfo").json()["data"]
        assert c.get("/api/v1/status/runtimeinfo").json()["data"] == {"CWD": "/"}
        assert c.get("/api/v1/status/tsdb", params={"limit": "3"}).json()["data"]["limit"] == 3
        err(
            c.get("/api/v1/status/tsdb", params={"limit": "0"}),
            400,
            "bad_data",
            "limit must be a positive number",
        )
        err(
            c.get("/api/v1/status/tsdb", params={"limit": "10001"}),
            400,
            "bad_data",
            "limit must not exceed 10000",
        )
        assert c.get("/api/v1/status/walreplay").json()["data"] == {
            "min": 0,
            "max": 0,
            "current": 0,
        }
