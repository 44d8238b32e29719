"""Configuration loading: defaults, inheritance, validation with file:line:col, seeds, promtool."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from vigil.config import (
    Config,
    ConfigError,
    Duration,
    ScrapeConfig,
    Secret,
    Size,
    load_config,
    load_config_file,
)
from vigil.config.types import Duration as _D

SEEDS = Path("/work/shared/seeds")


# --- value types ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms", "canonical"),
    [
        ("0", 0, "0s"),
        ("0s", 0, "0s"),
        ("500ms", 500, "500ms"),
        ("15s", 15_000, "15s"),
        ("1m", 60_000, "1m"),
        ("90s", 90_000, "1m30s"),
        ("1h30m", 5_400_000, "1h30m"),
        ("1d", 86_400_000, "1d"),
        ("1w", 604_800_000, "1w"),
        ("8d", 8 * 86_400_000, "8d"),
        ("90d", 90 * 86_400_000, "90d"),
        ("1y", 365 * 86_400_000, "1y"),
        ("1h0m5s10ms", 3_605_010, "1h5s10ms"),
    ],
)
def test_duration_parse_and_format(text: str, ms: int, canonical: str) -> None:
    d = Duration.parse(text)
    assert d == ms
    assert str(d) == canonical
    assert Duration.parse(str(d)) == d
    assert d.seconds == ms / 1000


@pytest.mark.parametrize("text", ["", "15", "1.5s", "-1s", "1s1m", "5 m", "1M", "ms"])
def test_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        Duration.parse(text)


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("0", 0),
        ("100B", 100),
        ("1KB", 1024),
        ("10MB", 10 << 20),
        ("512MB", 512 << 20),
        ("2GB", 2 << 30),
        ("1KiB", 1024),
        ("1TB", 1 << 40),
    ],
)
def test_size_parse_powers_of_1024(text: str, n: int) -> None:
    assert Size.parse(text) == n
    assert Size.parse(str(Size(n))) == n


@pytest.mark.parametrize("text", ["", "10", "10mb", "1.5MB", "MB", "10XB", "5iB"])
def test_size_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        Size.parse(text)


# --- defaults and inheritance -----------------------------------------------------


def test_empty_config_has_prometheus_defaults() -> None:
    cfg = load_config("").config
    g = cfg.global_config
    assert (g.scrape_interval, g.scrape_timeout, g.evaluation_interval) == (60_000, 10_000, 60_000)
    assert cfg.scrape_configs == ()
    v = cfg.vigil
    assert v.listen_address == "127.0.0.1:9090"
    assert v.data_dir == "./data"
    assert v.retention_time == Duration.parse("15d")
    assert v.retention_size is None
    assert v.wal_fsync == "batch"
    assert v.lookback_delta == 300_000
    assert v.query_timeout == 120_000
    assert v.query_max_samples == 50_000_000
    assert v.self_scrape is True


def test_scrape_config_defaults_and_inheritance() -> None:
    text = """
global:
  scrape_interval: 15s
  sample_limit: 100
  body_size_limit: 10MB
scrape_configs:
  - job_name: a
  - job_name: b
    scrape_interval: 1m
    scrape_timeout: 20s
    sample_limit: 5
  - job_name: c
    scrape_interval: 5s
"""
    cfg = load_config(text).config
    a, b, c = cfg.scrape_configs
    assert isinstance(a, ScrapeConfig)
    assert (a.scrape_interval, a.scrape_timeout) == (15_000, 10_000)
    assert a.sample_limit == 100 and a.body_size_limit == 10 << 20
    assert a.metrics_path == "/metrics" and a.scheme == "http"
    assert a.honor_labels is False and a.honor_timestamps is True
    assert a.follow_redirects is True and a.enable_http2 is True
    assert (b.scrape_interval, b.scrape_timeout, b.sample_limit) == (60_000, 20_000, 5)
    # An unset timeout is the global one, clamped to the job's interval (as Prometheus).
    assert (c.scrape_interval, c.scrape_timeout) == (5_000, 5_000)
    assert cfg.scrape_config("b") is b and cfg.scrape_config("zz") is None


def test_global_timeout_defaults_to_short_interval() -> None:
    g = load_config("global:\n  scrape_interval: 5s\n").config.global_config
    assert g.scrape_timeout == 5_000


def test_full_featured_config_loads(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("secret\n")
    text = """
global:
  external_labels: {region: eu, replica: "1"}
rule_files: ["rules/*.yml", /abs/rules.yml]
scrape_configs:
  - job_name: node
    scheme: https
    params: {module: [http_2xx]}
    basic_auth: {username: u, password_file: pw}
    tls_config: {ca_file: ca.pem, insecure_skip_verify: true, server_name: example}
    proxy_url: http://proxy:3128
    follow_redirects: false
    enable_http2: false
    sample_limit: 1000
    label_limit: 30
    label_name_length_limit: 100
    label_value_length_limit: 200
    target_limit: 10
    keep_dropped_targets: 5
    track_timestamps_staleness: true
    scrape_protocols: [PrometheusText0.0.4]
    static_configs:
      - targets: ["h1:9100", "h2:9100"]
        labels: {env: prod, port: 9100}
    file_sd_configs:
      - files: ["sd/*.json", "sd/x.yml"]
        refresh_interval: 30s
    relabel_configs:
      - source_labels: [__address__]
        regex: "(.*):.*"
        target_label: host
      - action: labeldrop
        regex: tmp_.*
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: go_.*
        action: drop
  - job_name: tok
    authorization: {credentials: abc}
  - job_name: legacy
    bearer_token: xyz
alerting:
  alert_relabel_configs:
    - action: labeldrop
      regex: replica
  alertmanagers:
    - scheme: http
      path_prefix: /am
      timeout: 5s
      api_version: v2
      static_configs: [{targets: ["am:9093"]}]
remote_write:
  - url: http://remote:9201/write
    name: r1
    remote_timeout: 10s
    headers: {X-Scope-OrgID: t1}
    write_relabel_configs: [{source_labels: [__name__], regex: "up", action: keep}]
    queue_config: {capacity: 500, max_shards: 2, batch_send_deadline: 1s}
remote_read:
  - url: http://remote:9201/read
    read_recent: true
storage:
  tsdb: {out_of_order_time_window: 10m}
vigil:
  listen_address: 0.0.0.0:9999
  retention_size: 512MB
  chunk_cache_size: 1GB
  wal_fsync: always
  self_scrape: false
"""
    cfg_file = tmp_path / "prometheus.yml"
    cfg_file.write_text(text)
    loaded = load_config_file(cfg_file)
    cfg = loaded.config
    assert loaded.path == str(cfg_file) and loaded.source == text and loaded.warnings == []
    node = cfg.scrape_configs[0]
    assert node.params == {"module": ("http_2xx",)}
    assert node.basic_auth is not None and node.basic_auth.password_file == str(tmp_path / "pw")
    assert node.tls_config.ca_file == str(tmp_path / "ca.pem")
    assert node.static_configs[0].labels == {"env": "prod", "port": "9100"}
    assert node.file_sd_configs[0].files == (
        str(tmp_path / "sd/*.json"),
        str(tmp_path / "sd/x.yml"),
    )
    assert node.file_sd_configs[0].refresh_interval == 30_000
    assert node.relabel_configs[1].action.value == "labeldrop"
    assert cfg.rule_files == (str(tmp_path / "rules/*.yml"), "/abs/rules.yml")
    assert cfg.global_config.external_labels == {"region": "eu", "replica": "1"}
    assert cfg.scrape_configs[1].auth_header() == "Bearer abc"
    assert cfg.scrape_configs[2].auth_header() == "Bearer xyz"
    am = cfg.alerting.alertmanagers[0]
    assert (am.path_prefix, am.timeout) == ("/am", 5_000)
    rw = cfg.remote_write[0]
    assert rw.queue_config.capacity == 500 and rw.queue_config.batch_send_deadline == 1_000
    assert rw.headers == {"X-Scope-OrgID": "t1"}
    assert cfg.remote_read[0].read_recent is True
    assert cfg.storage.tsdb.out_of_order_time_window == 600_000
    assert cfg.vigil.retention_size == 512 << 20
    assert cfg.vigil.chunk_cache_size == 1 << 30
    assert cfg.vigil.listen_address == "0.0.0.0:9999"


def test_to_yaml_round_trips_and_hides_secrets() -> None:
    text = """
global: {scrape_interval: 30s}
scrape_configs:
  - job_name: j
    basic_auth: {username: u, password: hunter2}
    static_configs: [{targets: [a:1]}]
    relabel_configs: [{source_labels: [a], target_label: b}]
"""
    cfg = load_config(text).config
    assert isinstance(cfg.scrape_configs[0].basic_auth.password, Secret)  # type: ignore[union-attr]
    assert cfg.scrape_configs[0].basic_auth.password == "hunter2"  # type: ignore[union-attr]
    out = cfg.to_yaml()
    assert "hunter2" not in out and "<secret>" in out
    assert "scrape_timeout: 10s" in out and "evaluation_interval: 1m" in out
    again = load_config(out).config
    assert again.scrape_configs[0].scrape_interval == 30_000
    assert again.scrape_configs[0].relabel_configs == cfg.scrape_configs[0].relabel_configs
    assert again.global_config == cfg.global_config


def test_models_are_frozen() -> None:
    cfg = load_config("scrape_configs: [{job_name: a}]").config
    with pytest.raises(Exception, match="frozen"):
        cfg.scrape_configs[0].job_name = "b"  # type: ignore[misc]
    assert isinstance(cfg, Config)


# --- errors with positions --------------------------------------------------------


def _problems(text: str, filename: str = "prometheus.yml") -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_config(text, filename)
    return [str(p) for p in exc.value.problems]


BAD = [
    (
        "unknown-key",
        "scrape_configs:\n  - job_name: a\n    scrape_intervall: 5s\n",
        r'^prometheus\.yml:3:5: field scrape_intervall not found in type config\.ScrapeConfig; did you mean "scrape_interval"\?$',
    ),
    (
        "unknown-top-key",
        "globl:\n  x: 1\n",
        r"^prometheus\.yml:1:1: field globl not found in type config\.plain",
    ),
    (
        "bad-duration",
        "global:\n  scrape_interval: 15\n",
        r"^prometheus\.yml:2:20: global\.scrape_interval: expected a duration string",
    ),
    (
        "timeout-gt-interval",
        "scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 10s\n",
        r'^prometheus\.yml:4:21: scrape_configs\[0\]\.scrape_timeout: scrape timeout greater than scrape interval for scrape config with job name "a"',
    ),
    (
        "global-timeout-gt-interval",
        "global:\n  scrape_interval: 5s\n  scrape_timeout: 6s\n",
        r"^prometheus\.yml:3:19: global\.scrape_timeout: global scrape timeout greater than scrape interval",
    ),
    (
        "duplicate-job",
        "scrape_configs:\n  - job_name: a\n  - job_name: b\n  - job_name: a\n",
        r'^prometheus\.yml:4:15: scrape_configs\[2\]\.job_name: found multiple scrape configs with job name "a"',
    ),
    (
        "missing-job-name",
        "scrape_configs:\n  - metrics_path: /m\n",
        r'^prometheus\.yml:2:5: scrape_configs\[0\]: field "job_name" is required',
    ),
    (
        "hashmod-no-modulus",
        "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: hashmod\n        target_label: x\n",
        r"^prometheus\.yml:4:9: .*hashmod requires non-zero modulus",
    ),
    (
        "bad-regex",
        "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - regex: '(x'\n        target_label: y\n",
        r"^prometheus\.yml:4:16: scrape_configs\[0\]\.relabel_configs\[0\]\.regex: invalid regular expression `\(x`: missing \)",
    ),
    (
        "bad-label-name",
        "global:\n  external_labels:\n    bad-name: x\n",
        r'^prometheus\.yml:3:5: .*"bad-name" is not a valid label name',
    ),
    (
        "duplicate-yaml-key",
        "global:\n  scrape_interval: 1s\n  scrape_interval: 2s\n",
        r'^prometheus\.yml:3:3: mapping key "scrape_interval" already defined at line 2',
    ),
    ("invalid-yaml", "global:\n  a: [1, 2\n", r"^prometheus\.yml:\d+:\d+: invalid YAML"),
    ("not-a-mapping", "- a\n- b\n", r"^prometheus\.yml:1:1: the config must be a YAML mapping"),
    (
        "bad-scheme",
        "scrape_configs:\n  - job_name: a\n    scheme: ftp\n",
        r'^prometheus\.yml:3:13: scrape_configs\[0\]\.scheme: unsupported scheme "ftp"',
    ),
    (
        "two-auths",
        "scrape_configs:\n  - job_name: a\n    bearer_token: x\n    basic_auth: {username: u}\n",
        r"^prometheus\.yml:2:5: .*at most one of basic_auth",
    ),
    (
        "file-sd-bad-ext",
        "scrape_configs:\n  - job_name: a\n    file_sd_configs: [{files: [targets.txt]}]\n",
        r'^prometheus\.yml:3:31: .*path name ".*targets\.txt" is not valid for file discovery',
    ),
    (
        "bad-size",
        "vigil:\n  retention_size: 5 gigs\n",
        r'^prometheus\.yml:2:19: vigil\.retention_size: not a valid size: "5 gigs"',
    ),
    (
        "bad-cache-size",
        "vigil:\n  chunk_cache_size: lots\n",
        r'^prometheus\.yml:2:21: vigil\.chunk_cache_size: not a valid size: "lots"',
    ),
    (
        "bad-listen",
        "vigil:\n  listen_address: localhost\n",
        r"^prometheus\.yml:2:19: vigil\.listen_address: .*must be host:port",
    ),
    (
        "bad-fsync",
        "vigil:\n  wal_fsync: sometimes\n",
        r"^prometheus\.yml:2:14: vigil\.wal_fsync: ",
    ),
    (
        "remote-write-no-url",
        "remote_write:\n  - name: x\n",
        r'^prometheus\.yml:2:5: remote_write\[0\]: field "url" is required',
    ),
    (
        "bad-protocol",
        "global:\n  scrape_protocols: [Foo]\n",
        r'^prometheus\.yml:2:21: global\.scrape_protocols: unknown scrape protocol "Foo"',
    ),
    (
        "wrong-type-list",
        "scrape_configs: {job_name: a}\n",
        r"^prometheus\.yml:1:17: scrape_configs: ",
    ),
]


@pytest.mark.parametrize(("name", "text", "pattern"), BAD, ids=[b[0] for b in BAD])
def test_errors_are_located(name: str, text: str, pattern: str) -> None:
    problems = _problems(text)
    assert any(re.search(pattern, p) for p in problems), problems


def test_all_field_problems_reported_together() -> None:
    text = "global:\n  scrape_interval: x\nscrape_configs:\n  - job_name: a\n    foo: 1\n"
    problems = _problems(text)
    assert len(problems) == 2
    assert problems[0].startswith("prometheus.yml:2:") and problems[1].startswith(
        "prometheus.yml:5:"
    )


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config_file(tmp_path / "nope.yml")


def test_unsupported_sd_loads_with_warning() -> None:
    text = """scrape_configs:
  - job_name: k8s
    kubernetes_sd_configs:
      - role: pod
    static_configs: [{targets: ["a:1"]}]
alerting:
  alertmanagers:
    - dns_sd_configs: [{names: [am.example]}]
"""
    loaded = load_config(text, "/etc/prometheus/prometheus.yml")
    assert loaded.warnings == [
        'prometheus.yml:3: kubernetes_sd_configs is not supported by Vigil yet; job "k8s" will have no targets from it',
        "prometheus.yml:8: dns_sd_configs is not supported by Vigil yet; alertmanagers[0] will have no targets from it",
    ]
    assert loaded.config.scrape_configs[0].static_configs[0].targets == ("a:1",)


def test_null_sections_mean_defaults() -> None:
    cfg = load_config(
        "global:\nrule_files:\nscrape_configs:\n  - job_name: a\n    static_configs:\n"
    ).config
    assert cfg.global_config.scrape_interval == 60_000
    assert cfg.rule_files == () and cfg.scrape_configs[0].static_configs == ()


def test_scrape_config_files_warns() -> None:
    loaded = load_config("scrape_config_files: [extra/*.yml]\n", "p.yml")
    assert loaded.warnings == [
        "p.yml:1: scrape_config_files is not supported by Vigil yet; put those scrape configs under scrape_configs"
    ]


def test_to_yaml_lists_job_name_first() -> None:
    out = load_config("scrape_configs: [{job_name: a}]").config.to_yaml()
    assert "scrape_configs:\n- job_name: a\n" in out


def test_yaml_anchors_and_merge_keys() -> None:
    text = """
x-common: &common
  scrape_interval: 30s
  metrics_path: /m
scrape_configs:
  - <<: *common
    job_name: a
"""
    # Prometheus rejects the unknown top-level key; so do we, after merging works.
    problems = _problems(text)
    assert any("field x-common not found" in p for p in problems)
    cfg = load_config(
        text.replace("x-common: &common", "global: &common").replace("  metrics_path: /m\n", "", 1)
    ).config
    assert cfg.scrape_configs[0].scrape_interval == 30_000


# --- acceptance: the configs in the design documents ------------------------------


def _seed_prometheus_configs() -> list[tuple[str, str]]:
    """YAML blocks in the seeds that are Prometheus configs (not Promtail/Alertmanager)."""
    found = []
    for path in sorted(SEEDS.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"```yaml\n(.*?)```", text, flags=re.S):
            block = m.group(1)
            top = set(re.findall(r"^([a-z_]+):", block, flags=re.M))
            if "scrape_configs" in top and not top & {"clients", "positions", "server"}:
                line = text.count("\n", 0, m.start(1)) + 1
                found.append((f"{path.name}:{line}", block))
    return found


@pytest.mark.skipif(not SEEDS.is_dir(), reason="/work/shared/seeds not present")
def test_seed_prometheus_configs_load() -> None:
    configs = _seed_prometheus_configs()
    assert configs, "expected at least one prometheus.yml in the seeds"
    for where, block in configs:
        loaded = load_config(block, where)
        cfg = loaded.config
        assert cfg.scrape_configs, where
        if where.startswith("003"):
            jobs = [sc.job_name for sc in cfg.scrape_configs]
            assert jobs[:2] == ["prometheus", "node-exporter"]
            assert cfg.global_config.scrape_interval == 15_000
            assert cfg.global_config.external_labels["cluster"] == "pingvasai-production"
            assert cfg.rule_files == ("/etc/prometheus/rules/*.yml",)
            assert any(
                "ec2_sd_configs is not supported" in w and '"celery-workers"' in w
                for w in loaded.warnings
            )


# --- interop: promtool agrees on what is valid -----------------------------------

PROMTOOL = shutil.which("promtool") or (
    "/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None
)

INTEROP = [
    (
        "good-basic",
        True,
        "global: {scrape_interval: 15s}\nscrape_configs:\n  - job_name: a\n    static_configs: [{targets: ['h:1']}]\n",
    ),
    (
        "good-relabel",
        True,
        "scrape_configs:\n  - job_name: a\n    relabel_configs:\n"
        "      - {source_labels: [__address__], regex: '(.*):.*', target_label: host, replacement: '$1'}\n"
        "      - {action: labelmap, regex: '__meta_(.+)'}\n"
        "      - {action: hashmod, source_labels: [__address__], modulus: 4, target_label: __tmp_hash}\n"
        "      - {action: keep, source_labels: [__tmp_hash], regex: '0'}\n",
    ),
    (
        "good-ec2",
        True,
        "scrape_configs:\n  - job_name: a\n    ec2_sd_configs: [{region: us-east-1, port: 9100}]\n",
    ),
    (
        "good-remote",
        True,
        "remote_write: [{url: 'http://r:1/w', queue_config: {capacity: 10}}]\n"
        "alerting: {alertmanagers: [{static_configs: [{targets: ['am:9093']}]}]}\n",
    ),
    ("bad-unknown", False, "scrape_configs:\n  - job_name: a\n    bogus: 1\n"),
    (
        "bad-timeout",
        False,
        "scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 6s\n",
    ),
    ("bad-dup-job", False, "scrape_configs:\n  - job_name: a\n  - job_name: a\n"),
    (
        "bad-hashmod",
        False,
        "scrape_configs:\n  - job_name: a\n    relabel_configs: [{action: hashmod, target_label: x}]\n",
    ),
    ("bad-duration", False, "global: {scrape_interval: 15x}\n"),
    (
        "bad-labeldrop",
        False,
        "scrape_configs:\n  - job_name: a\n    relabel_configs: [{action: labeldrop, source_labels: [a]}]\n",
    ),
    (
        "bad-target-label",
        False,
        "scrape_configs:\n  - job_name: a\n    relabel_configs: [{target_label: 'a-b'}]\n",
    ),
    ("bad-dup-key", False, "global:\n  scrape_interval: 1s\n  scrape_interval: 2s\n"),
]


@pytest.mark.interop
@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed")
@pytest.mark.parametrize(("name", "ok", "text"), INTEROP, ids=[i[0] for i in INTEROP])
def test_promtool_agrees(tmp_path: Path, name: str, ok: bool, text: str) -> None:
    f = tmp_path / "prometheus.yml"
    f.write_text(text)
    assert PROMTOOL is not None
    proc = subprocess.run(
        [PROMTOOL, "check", "config", str(f)], capture_output=True, text=True, timeout=30
    )
    assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr
    try:
        load_config_file(f)
        vigil_ok = True
    except ConfigError:
        vigil_ok = False
    assert vigil_ok == ok


def test_duration_type_identity() -> None:
    assert _D is Duration


def test_with_self_scrape_adds_vigil_job() -> None:
    from vigil.config import with_self_scrape

    cfg = load_config("global: {scrape_interval: 5s}\nscrape_configs: [{job_name: a}]").config
    out = with_self_scrape(cfg, "127.0.0.1:9090")
    job = out.scrape_config("vigil")
    assert job is not None and job.static_configs[0].targets == ("127.0.0.1:9090",)
    assert (job.scrape_interval, job.scrape_timeout, job.metrics_path) == (5_000, 5_000, "/metrics")
    assert with_self_scrape(out, "x:1") is out  # already present
    off = load_config("vigil: {self_scrape: false}").config
    assert with_self_scrape(off, "x:1") is off


def test_parse_helpers() -> None:
    from vigil.config import parse_duration_ms, parse_size_bytes

    assert parse_duration_ms("1m30s") == 90_000
    assert parse_size_bytes("1GB") == 1 << 30
    with pytest.raises(ValueError, match="not a valid duration"):
        parse_duration_ms("soon")


def test_server_sizes_its_chunk_cache_from_config_or_memory(tmp_path: Path) -> None:
    from vigil.app import ServerOptions, Vigil
    from vigil.tsdb.chunk_cache import auto_chunk_cache_bytes

    auto = Vigil(ServerOptions(data_dir=tmp_path))._tsdb_options()
    assert auto.chunk_cache_bytes == auto_chunk_cache_bytes()
    cfg = tmp_path / "vigil.yml"
    cfg.write_text("vigil:\n  chunk_cache_size: 64MB\n")
    sized = Vigil(ServerOptions(config_file=cfg, data_dir=tmp_path))._tsdb_options()
    assert sized.chunk_cache_bytes == 64 << 20
