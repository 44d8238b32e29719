"""Scrape loop against real HTTP targets on 127.0.0.1, into the real MemoryStorage."""

from __future__ import annotations

import asyncio
import math
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest

from vigil import __version__
from vigil.config import ScrapeConfig
from vigil.model.labels import Labels
from vigil.model.matchers import Matcher
from vigil.model.samples import is_stale
from vigil.scrape.http_client import make_client
from vigil.scrape.loop import LoopOptions, ScrapeLoop, merge_target_labels
from vigil.scrape.metrics import ScrapeMetrics
from vigil.scrape.static_target import StaticTarget
from vigil.scrape.target import targets_from_group
from vigil.storage.memory import MemoryStorage

T0 = 1_700_000_000_000


@pytest.fixture
def server() -> Iterator[StaticTarget]:
    with StaticTarget() as s:
        yield s


def make_cfg(**kw: Any) -> ScrapeConfig:
    base: dict[str, Any] = {"job_name": "j", "scrape_interval": "1s", "scrape_timeout": "1s"}
    base.update(kw)
    return ScrapeConfig.model_validate(base)


@asynccontextmanager
async def scrape_loop(
    server: StaticTarget, store: MemoryStorage, extra: dict[str, str] | None = None, **kw: Any
) -> AsyncIterator[ScrapeLoop]:
    cfg = make_cfg(**kw)
    group = Labels.from_dict(extra or {})
    target = targets_from_group(
        cfg, "0", [Labels.from_dict({"__address__": server.address})], group
    ).active[0]
    from vigil.scrape.http_client import AuthSettings

    async with make_client(cfg) as client:
        yield ScrapeLoop(
            target,
            store,
            LoopOptions.from_config(cfg),
            client=client,
            auth=AuthSettings.from_config(cfg),
            metrics=ScrapeMetrics(),
            now=lambda: T0 / 1000,
        )


def samples(store: MemoryStorage, name: str) -> dict[Labels, list[tuple[int, float]]]:
    q = store.querier(0, 1 << 62)
    out = {}
    for s in q.select([Matcher.equal("__name__", name)], 0, 1 << 62):
        out[s.labels] = list(zip(s.timestamps.tolist(), s.values.tolist(), strict=True))
    return out


def one(store: MemoryStorage, name: str) -> list[tuple[int, float]]:
    got = samples(store, name)
    assert len(got) == 1, got
    return next(iter(got.values()))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


BODY = b"""# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{code="200"} 10
http_requests_total{code="500"} 2
temperature_celsius 21.5
"""


def test_good_target_samples_and_report_series(server: StaticTarget) -> None:
    server.set("/metrics", BODY)
    store = MemoryStorage()

    async def go() -> None:
        async with scrape_loop(server, store) as lp:
            out = await lp.scrape_once(T0)
            assert out.error is None and out.scraped == 3 and out.series_added == 3
            out = await lp.scrape_once(T0 + 1000)
            assert out.series_added == 0
            assert lp.metadata["http_requests_total"].type == "counter"

    run(go())
    inst = server.address
    reqs = samples(store, "http_requests_total")
    key = Labels.from_dict(
        {"__name__": "http_requests_total", "code": "200", "instance": inst, "job": "j"}
    )
    assert reqs[key] == [(T0, 10.0), (T0 + 1000, 10.0)]
    assert one(store, "temperature_celsius") == [(T0, 21.5), (T0 + 1000, 21.5)]
    assert one(store, "up") == [(T0, 1.0), (T0 + 1000, 1.0)]
    assert one(store, "scrape_samples_scraped") == [(T0, 3.0), (T0 + 1000, 3.0)]
    assert one(store, "scrape_samples_post_metric_relabeling")[0] == (T0, 3.0)
    assert one(store, "scrape_series_added") == [(T0, 3.0), (T0 + 1000, 0.0)]
    dur = one(store, "scrape_duration_seconds")
    assert 0 < dur[0][1] < 1
    up_labels = next(iter(samples(store, "up")))
    assert up_labels.to_dict() == {"__name__": "up", "instance": inst, "job": "j"}
    # What the scraper sent.
    h = server.requests[0]["headers"]
    assert h["Accept"].startswith("application/openmetrics-text")
    assert h["Accept-Encoding"] == "gzip"
    assert h["User-Agent"] == f"Vigil/{__version__}"
    assert h["X-Prometheus-Scrape-Timeout-Seconds"] == "1"


def test_garbage_target_is_down_with_line(server: StaticTarget) -> None:
    server.set("/metrics", b"ok_metric 1\nthis is not valid\n")
    store = MemoryStorage()

    async def go() -> None:
        async with scrape_loop(server, store) as lp:
            out = await lp.scrape_once(T0)
            assert out.error is not None and out.error.startswith("line 2:")
            assert lp.target.health == "down"
            assert lp.target.last_result is not None
            assert lp.target.last_result.error == out.error

    run(go())
    assert one(store, "up") == [(T0, 0.0)]
    assert samples(store, "ok_metric") == {}  # all-or-nothing


def test_http_error_status(server: StaticTarget) -> None:
    server.set("/metrics", b"oops", status=503)
    store = MemoryStorage()

    async def go() -> str | None:
        async with scrape_loop(server, store) as lp:
            return (await lp.scrape_once(T0)).error

    assert run(go()) == "server returned HTTP status 503 Service Unavailable"
    assert one(store, "up") == [(T0, 0.0)]


def test_timeout(server: StaticTarget) -> None:
    server.set("/metrics", BODY, delay_s=1.0)
    store = MemoryStorage()

    async def go() -> str | None:
        async with scrape_loop(server, store, scrape_interval="1s", scrape_timeout="200ms") as lp:
            return (await lp.scrape_once(T0)).error

    err = run(go())
    assert err == f'Get "{server.url()}": context deadline exceeded'
    assert one(store, "up") == [(T0, 0.0)]


def test_connection_refused() -> None:
    store = MemoryStorage()
    s = StaticTarget().start()
    s.close()  # the port is now closed

    async def go() -> str | None:
        async with scrape_loop(s, store) as lp:
            return (await lp.scrape_once(T0)).error

    err = run(go())
    assert err is not None and err.startswith(f'Get "{s.url()}": ')


@pytest.mark.parametrize("gz", [False, True])
def test_body_size_limit(server: StaticTarget, gz: bool) -> None:
    body = b"".join(b"m%d 1\n" % i for i in range(2000))
    server.set("/metrics", body, gzip=gz)
    store = MemoryStorage()

    async def go() -> tuple[str | None, str | None]:
        async with scrape_loop(server, store, body_size_limit="1KB") as lp:
            small = await lp.scrape_once(T0)
        async with scrape_loop(server, store, body_size_limit=len(body) + 1) as lp:
            fits = await lp.scrape_once(T0 + 1000)
        return small.error, fits.error

    assert run(go()) == ("body size limit exceeded", None)


def test_gzip_body(server: StaticTarget) -> None:
    server.set("/metrics", BODY, gzip=True)
    store = MemoryStorage()

    async def go() -> None:
        async with scrape_loop(server, store) as lp:
            assert (await lp.scrape_once(T0)).error is None

    run(go())
    assert len(samples(store, "http_requests_total")) == 2


def test_sample_limit(server: StaticTarget) -> None:
    server.set("/metrics", BODY)
    store = MemoryStorage()

    async def go() -> None:
        async with scrape_loop(server, store, sample_limit=3) as lp:
            assert (await lp.scrape_once(T0)).error is None
            server.set("/metrics", BODY + b"extra 1\n")
            out = await lp.scrape_once(T0 + 1000)
            assert out.error == "sample limit exceeded"
            assert out.scraped == 4 and out.post_relabel == 4

    run(go())
    assert one(store, "up") == [(T0, 1.0), (T0 + 1000, 0.0)]
    # The failed scrape made every previous series stale and ingested nothing.
    t_last, v_last = one(store, "temperature_celsius")[-1]
    assert t_last == T0 + 1000 and is_stale(v_last)
    assert samples(store, "extra") == {}


def test_label_limits(server: StaticTarget) -> None:
    server.set("/metrics", b'm{a="1",b="2",c="3"} 1\n')
    store = MemoryStorage()

    async def go(**kw: Any) -> str | None:
        async with scrape_loop(server, store, **kw) as lp:
            return (await lp.scrape_once(T0)).error

    assert (
        run(go(label_limit=5)) == "label_limit exceeded (metric: m, number of labels: 6, limit: 5)"
    )
    server.set("/metrics", b'm{long_label_name="1"} 1\n')
    assert run(go(label_name_length_limit=10)) == (
        "label_name_length_limit exceeded (metric: m, label name: long_label_name, length: 15, limit: 10)"
    )
    server.set("/metrics", b'm{a="a-very-long-value"} 1\n')
    assert run(go(label_value_length_limit=5)) == (
        'label_value_length_limit exceeded (metric: m, label name: a, value: "a-very-long-value", '
        "length: 17, limit: 5)"
    )


def test_honor_labels_both_ways(server: StaticTarget) -> None:
    server.set("/metrics", b'm{job="scraped",instance="i2"} 1\n')
    honored, renamed = MemoryStorage(), MemoryStorage()

    async def go() -> None:
        async with scrape_loop(server, honored, honor_labels=True) as lp:
            await lp.scrape_once(T0)
        async with scrape_loop(server, renamed, honor_labels=False) as lp:
            await lp.scrape_once(T0)

    run(go())
    assert [lb.to_dict() for lb in samples(honored, "m")] == [
        {"__name__": "m", "job": "scraped", "instance": "i2"}
    ]
    assert [lb.to_dict() for lb in samples(renamed, "m")] == [
        {
            "__name__": "m",
            "job": "j",
            "instance": server.address,
            "exported_job": "scraped",
            "exported_instance": "i2",
        }
    ]


def test_exported_prefix_repeats_until_free() -> None:
    scraped = Labels.from_dict({"__name__": "m", "job": "a", "exported_job": "b"})
    got = merge_target_labels(
        scraped, Labels.from_dict({"job": "t", "exported_job": "u"}), honor=False
    )
    # Shorter names first: job -> exported_exported_job, then exported_job moves one further.
    assert got.to_dict() == {
        "__name__": "m",
        "job": "t",
        "exported_job": "u",
        "exported_exported_job": "a",
        "exported_exported_exported_job": "b",
    }


def test_honor_timestamps(server: StaticTarget) -> None:
    server.set("/metrics", b"with_ts 1 1600000000000\nwithout 2\n")
    on, off = MemoryStorage(), MemoryStorage()

    async def go() -> None:
        async with scrape_loop(server, on, honor_timestamps=True) as lp:
            await lp.scrape_once(T0)
        async with scrape_loop(server, off, honor_timestamps=False) as lp:
            await lp.scrape_once(T0)

    run(go())
    assert one(on, "with_ts") == [(1_600_000_000_000, 1.0)]
    assert one(on, "without") == [(T0, 2.0)]
    assert one(off, "with_ts") == [(T0, 1.0)]


def test_disappearing_series_gets_stale_marker(server: StaticTarget) -> None:
    server.set("/metrics", b"a 1\nb 2\nexplicit 3 1600000000000\n")
    store = MemoryStorage()

    async def go() -> None:
        async with scrape_loop(server, store) as lp:
            await lp.scrape_once(T0)
            server.set("/metrics", b"a 1\n")
            out = await lp.scrape_once(T0 + 1000)
            assert out.stale_markers == 1
            out = await lp.scrape_once(T0 + 2000)
            assert out.stale_markers == 0

    run(go())
    b = one(store, "b")
    assert b[0] == (T0, 2.0) and b[1][0] == T0 + 1000 and is_stale(b[1][1]) and len(b) == 2
    # A sample with its own timestamp is not tracked for staleness.
    assert one(store, "explicit") == [(1_600_000_000_000, 3.0)]
    assert [v for _, v in one(store, "a")] == [1.0, 1.0, 1.0]


def test_failed_scrape_marks_everything_stale_then_recovers(server: StaticTarget) -> None:
    server.set("/metrics", b"a 1\n")
    store = MemoryStorage()

    async def go() -> None:
        async with scrape_loop(server, store) as lp:
            await lp.scrape_once(T0)
            server.set("/metrics", b"", status=500)
            await lp.scrape_once(T0 + 1000)
            server.set("/metrics", b"a 5\n")
            await lp.scrape_once(T0 + 2000)

    run(go())
    a = one(store, "a")
    assert a[0] == (T0, 1.0) and is_stale(a[1][1]) and a[2] == (T0 + 2000, 5.0)
    assert [v for _, v in one(store, "up")] == [1.0, 0.0, 1.0]


def test_mark_stale_on_end(server: StaticTarget) -> None:
    server.set("/metrics", b"a 1\n")
    store = MemoryStorage()

    async def go() -> int:
        async with scrape_loop(server, store) as lp:
            await lp.scrape_once(T0)
            n = lp.mark_stale(T0 + 500)
            assert lp.mark_stale(T0 + 600) == 0  # idempotent
            return n

    assert run(go()) == 1 + 5  # the series and the five report series
    assert is_stale(one(store, "a")[-1][1])
    assert one(store, "up")[-1][0] == T0 + 500 and is_stale(one(store, "up")[-1][1])


def test_metric_relabel_drop(server: StaticTarget) -> None:
    server.set("/metrics", BODY)
    store = MemoryStorage()
    rc = [
        {
            "source_labels": ["__name__", "code"],
            "regex": "http_requests_total;500",
            "action": "drop",
        }
    ]

    async def go() -> None:
        async with scrape_loop(server, store, metric_relabel_configs=rc) as lp:
            out = await lp.scrape_once(T0)
            assert (out.scraped, out.post_relabel) == (3, 2)
            out = await lp.scrape_once(T0 + 1000)  # cached as dropped
            assert (out.scraped, out.post_relabel) == (3, 2)

    run(go())
    assert [lb.get("code") for lb in samples(store, "http_requests_total")] == ["200"]
    assert one(store, "scrape_samples_post_metric_relabeling") == [(T0, 2.0), (T0 + 1000, 2.0)]


def test_duplicate_series_in_body(server: StaticTarget) -> None:
    server.set("/metrics", b"a 1\na 2\nb 3\n")
    store = MemoryStorage()
    metrics = ScrapeMetrics()

    async def go() -> None:
        async with scrape_loop(server, store) as lp:
            lp._metrics = metrics
            out = await lp.scrape_once(T0)
            assert out.error is None

    run(go())
    assert one(store, "a") == [(T0, 1.0)]  # first one wins
    assert metrics.get("prometheus_target_scrapes_sample_duplicate_timestamp_total") == 1


def test_basic_auth_and_bearer(server: StaticTarget, tmp_path: Any) -> None:
    server.set("/metrics", b"a 1\n", require_auth="Basic dXNlcjpwYXNz")  # user:pass
    server.set("/bearer", b"a 1\n", require_auth="Bearer s3cret")
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    store = MemoryStorage()

    async def go(**kw: Any) -> str | None:
        async with scrape_loop(server, store, **kw) as lp:
            return (await lp.scrape_once(T0)).error

    assert run(go(basic_auth={"username": "user", "password": "pass"})) is None
    assert run(go(basic_auth={"username": "user", "password": "bad"})) == (
        "server returned HTTP status 401 Unauthorized"
    )
    assert run(go(metrics_path="/bearer", authorization={"credentials": "s3cret"})) is None
    assert (
        run(go(metrics_path="/bearer", authorization={"credentials_file": str(token_file)})) is None
    )
    assert run(go(metrics_path="/bearer", bearer_token="s3cret")) is None
    missing = tmp_path / "missing"
    err = run(go(metrics_path="/bearer", authorization={"credentials_file": str(missing)}))
    assert err is not None and "unable to read authorization credentials file" in err


def test_openmetrics_body(server: StaticTarget) -> None:
    body = b"# TYPE c_seconds counter\n# UNIT c_seconds seconds\nc_seconds_total 1.5\n# EOF\n"
    server.set(
        "/metrics", body, content_type="application/openmetrics-text; version=1.0.0; charset=utf-8"
    )
    store = MemoryStorage()

    async def go() -> None:
        async with scrape_loop(server, store) as lp:
            assert (await lp.scrape_once(T0)).error is None

    run(go())
    assert one(store, "c_seconds_total") == [(T0, 1.5)]


def test_cache_compaction_keeps_working(server: StaticTarget) -> None:
    store = MemoryStorage()

    async def go() -> None:
        async with scrape_loop(server, store) as lp:
            for step in range(3):
                body = "".join(f'churn{{i="{step}-{i}"}} {i}\n' for i in range(3000))
                server.set("/metrics", body)
                out = await lp.scrape_once(T0 + step * 1000)
                assert out.error is None and out.series_added == 3000
            assert len(lp._cache) <= 6000
            out = await lp.scrape_once(T0 + 3000)
            assert out.series_added == 0 and out.stale_markers == 0

    run(go())
    last = samples(store, "churn")
    assert sum(1 for pts in last.values() if any(math.isnan(v) for _, v in pts)) == 6000


def test_process_never_raises_on_bad_bytes() -> None:
    store = MemoryStorage()
    cfg = make_cfg()
    target = targets_from_group(
        cfg, "0", [Labels.from_dict({"__address__": "h:1"})], Labels.EMPTY
    ).active[0]
    lp = ScrapeLoop(target, store, LoopOptions.from_config(cfg))
    out = lp.process(b"\xff\xfe garbage", None, T0)
    assert out.error is not None and out.error.startswith("line 1")
    assert np.isclose(one(store, "up")[0][1], 0.0)


def test_empty_body_marks_series_stale_but_is_up(server: StaticTarget) -> None:
    server.set("/metrics", b"a 1\n")
    store = MemoryStorage()

    async def go() -> None:
        async with scrape_loop(server, store) as lp:
            await lp.scrape_once(T0)
            server.set("/metrics", b"")
            out = await lp.scrape_once(T0 + 1000)
            assert out.error is None and out.stale_markers == 1

    run(go())
    assert is_stale(one(store, "a")[-1][1])
    assert [v for _, v in one(store, "up")] == [1.0, 1.0]


def test_inherit_with_changed_relabeling_marks_dropped_series(server: StaticTarget) -> None:
    server.set("/metrics", b"a 1\nb 2\n")
    store = MemoryStorage()
    rc = [{"source_labels": ["__name__"], "regex": "b", "action": "drop"}]

    async def go() -> None:
        async with scrape_loop(server, store) as old:
            await old.scrape_once(T0)
            async with scrape_loop(server, store, metric_relabel_configs=rc) as new:
                new.inherit(old)
                assert old.mark_stale(T0 + 500) == 0  # its series now belong to `new`
                out = await new.scrape_once(T0 + 1000)
                assert out.stale_markers == 1 and out.post_relabel == 1

    run(go())
    assert is_stale(one(store, "b")[-1][1])
    assert [v for _, v in one(store, "a")] == [1.0, 1.0]
    assert len(one(store, "up")) == 2  # the report series continue, no markers


def _tls_material(tmp: Any) -> tuple[str, ssl.SSLContext]:
    """A throwaway CA and a server certificate for 127.0.0.1, signed by it."""
    crypto = pytest.importorskip("cryptography")
    del crypto
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def cert(subject: str, key: Any, issuer: str, issuer_key: Any, ca: bool) -> x509.Certificate:
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            b = b.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        return b.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = cert("test-ca", ca_key, "test-ca", ca_key, True)
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv_cert = cert("127.0.0.1", srv_key, "test-ca", ca_key, False)
    ca_file, cert_file, key_file = tmp / "ca.pem", tmp / "srv.pem", tmp / "srv.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(srv_cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        srv_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert_file), str(key_file))
    return str(ca_file), ctx


def test_https_with_tls_config(tmp_path: Any) -> None:
    ca_file, server_ctx = _tls_material(tmp_path)
    store = MemoryStorage()
    with StaticTarget(tls=server_ctx) as srv:
        srv.set("/metrics", b"secure 1\n")

        async def go(**kw: Any) -> str | None:
            async with scrape_loop(srv, store, scheme="https", **kw) as lp:
                assert lp.target.url.startswith("https://")
                return (await lp.scrape_once(T0)).error

        assert run(go(tls_config={"ca_file": ca_file})) is None
        err = run(go())
        assert err is not None and "CERTIFICATE_VERIFY_FAILED" in err.upper().replace(" ", "_")
        assert run(go(tls_config={"insecure_skip_verify": True})) is None
    assert one(store, "secure")[0] == (T0, 1.0)


def test_relabel_collision_is_not_marked_stale_while_one_key_lives(server: StaticTarget) -> None:
    server.set("/metrics", b'm{pod="a"} 1\nm{pod="b"} 1\n')
    store = MemoryStorage()
    rc = [{"action": "labeldrop", "regex": "pod"}]

    async def go() -> None:
        async with scrape_loop(server, store, metric_relabel_configs=rc) as lp:
            await lp.scrape_once(T0)
            server.set("/metrics", b'm{pod="b"} 2\n')
            out = await lp.scrape_once(T0 + 1000)
            assert out.stale_markers == 0
            server.set("/metrics", b"other 1\n")
            out = await lp.scrape_once(T0 + 2000)
            assert out.stale_markers == 1

    run(go())
    pts = one(store, "m")
    assert [t for t, _ in pts] == [T0, T0 + 1000, T0 + 2000] and is_stale(pts[-1][1])


def test_series_collected_by_the_head_comes_back(server: StaticTarget, tmp_path: Any) -> None:
    """A series absent long enough for the TSDB head to collect it, then scraped
    again: the loop's cached ref is unknown to the store and must be re-resolved,
    not fail every later scrape."""
    from vigil.tsdb.db import TSDB, TSDBOptions

    db = TSDB.open(tmp_path, TSDBOptions(block_duration_ms=60_000, background=False))

    async def go() -> None:
        async with scrape_loop(server, db) as lp:  # type: ignore[arg-type]
            t = T0
            assert lp.process(b"a 1\nb 1\n", None, t).error is None
            for _ in range(40):  # ten minutes of scrapes without `b`
                t += 15_000
                assert lp.process(b"a 1\n", None, t).error is None
                db.maintain(t)
            t += 15_000
            out = lp.process(b"a 1\nb 2\n", None, t)
            assert out.error is None
            q = db.querier(t, t)
            got = q.select([Matcher.equal("__name__", "b")], t, t)
            q.close()
            assert [s.values.tolist() for s in got] == [[2.0]]

    try:
        run(go())
    finally:
        db.close()
