"""The push HTTP endpoints in-process: status codes, messages and the group list."""

from __future__ import annotations

import gzip
import warnings
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette

from vigil.push import PushRegistry, create_push_routes
from vigil.storage.memory import MemoryStorage

with warnings.catch_warnings():
    # Starlette deprecates its httpx-based TestClient; it still works.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

T0 = 1_700_000_000.0
TEXT = "text/plain; version=0.0.4"


@pytest.fixture
def registry() -> PushRegistry:
    return PushRegistry(MemoryStorage(), now=lambda: T0)


@pytest.fixture
def client(registry: PushRegistry) -> Iterator[TestClient]:
    app = Starlette(routes=create_push_routes(registry, max_body_bytes=1024))
    with TestClient(app) as c:
        yield c


def test_put_post_delete_and_list(client: TestClient, registry: PushRegistry) -> None:
    r = client.put(
        "/metrics/job/etl/instance@base64/aG9zdC8x",
        content=b"# TYPE rows counter\nrows 5\n",
        headers={"Content-Type": TEXT, "X-Vigil-TTL": "90"},
    )
    assert r.status_code == 200, r.text
    r = client.post("/metrics/job/etl/instance@base64/aG9zdC8x", content=b"other 1\n")
    assert r.status_code == 200, r.text
    data = client.get("/api/v1/push/groups").json()
    assert data["status"] == "success"
    [g] = data["data"]
    assert g["labels"] == {"job": "etl", "instance": "host/1"}
    assert g["families"] == ["other", "rows"] and g["series"] == 2
    # the POST carried no TTL header: the group no longer expires
    assert g["ttlSeconds"] is None and g["lastPushTime"] == T0
    assert client.delete("/metrics/job/etl/instance@base64/aG9zdC8x").status_code == 202
    assert client.delete("/metrics/job/etl/instance@base64/aG9zdC8x").status_code == 202
    assert client.get("/api/v1/push/groups").json()["data"] == []


def test_gzip_body(client: TestClient, registry: PushRegistry) -> None:
    r = client.put(
        "/metrics/job/z", content=gzip.compress(b"m 1\n"), headers={"Content-Encoding": "gzip"}
    )
    assert r.status_code == 200, r.text
    assert registry.groups()[0]["series"] == 1


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "message"),
    [
        ("PUT", "/metrics/job", b"m 1\n", {}, 400, "odd number of components"),
        ("PUT", "/metrics/instance/x", b"m 1\n", {}, 400, "must start with /metrics/job/"),
        ("PUT", "/metrics/job/a/bad-name/x", b"m 1\n", {}, 400, "improper label name"),
        ("DELETE", "/metrics/job/a/k", b"", {}, 400, "odd number"),
        ("PUT", "/metrics/job/a", b"m{ 1\n", {}, 400, "parsing error"),
        ("POST", "/metrics/job/a", b"m 1 17\n", {}, 400, "must not have timestamps"),
        ("PUT", "/metrics/job/a", b"m 1\n", {"X-Vigil-TTL": "soon"}, 400, "X-Vigil-TTL"),
        ("PUT", "/metrics/job/a", b"m 1\n", {"X-Vigil-TTL": "0"}, 400, "positive"),
        ("PUT", "/metrics/job/a", b"m 1\n" * 300, {}, 413, "exceeds the limit of 1024"),
        (
            "PUT",
            "/metrics/job/a",
            gzip.compress(b"m 1\n" * 300),
            {"Content-Encoding": "gzip"},
            413,
            "exceeds the limit",
        ),
        ("PUT", "/metrics/job/a", b"junk", {"Content-Encoding": "gzip"}, 400, "invalid gzip"),
        (
            "PUT",
            "/metrics/job/a",
            b"\x05\x0a\x01m",
            {"Content-Type": "application/vnd.google.protobuf; encoding=delimited"},
            415,
            "protobuf delimited format is not supported",
        ),
    ],
)
def test_bad_requests_change_nothing(
    client: TestClient,
    registry: PushRegistry,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    message: str,
) -> None:
    r = client.request(method, path, content=body, headers=headers)
    assert r.status_code == status, r.text
    assert message in r.text
    assert registry.groups() == []


def test_get_on_group_path_is_not_allowed(client: TestClient) -> None:
    assert client.get("/metrics/job/a").status_code == 405
