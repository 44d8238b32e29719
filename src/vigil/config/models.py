"""The configuration's data model: frozen pydantic models, one per YAML section.

Field names are Prometheus's YAML keys exactly. Every model rejects unknown keys.
`Config` fills scrape configs from `global` (interval, timeout, limits) after
validation, so consumers read `scrape_config.scrape_interval` and never consult
the global section themselves. Paths (`file_sd_configs.files`, `*_file`,
`rule_files`) are resolved against the config file's directory when loaded via
`vigil.config.load_config_file`.
"""

from __future__ import annotations

import difflib
import os
import re
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from vigil.config.types import Duration, Secret, Size
from vigil.model.labels import LABEL_NAME_RE
from vigil.model.relabel import RelabelConfig

__all__ = [
    "AlertingConfig",
    "AlertmanagerConfig",
    "Authorization",
    "BasicAuth",
    "Config",
    "ExemplarsConfig",
    "FileSDConfig",
    "GlobalConfig",
    "HTTPClientConfig",
    "MetadataConfig",
    "OAuth2",
    "QueueConfig",
    "RemoteReadConfig",
    "RemoteWriteConfig",
    "ScrapeConfig",
    "StaticConfig",
    "StorageConfig",
    "TLSConfig",
    "TSDBConfig",
    "VigilConfig",
    "inherit_global",
    "with_self_scrape",
]

SCRAPE_PROTOCOLS = (
    "PrometheusProto",
    "OpenMetricsText0.0.1",
    "OpenMetricsText1.0.0",
    "PrometheusText0.0.4",
    "PrometheusText1.0.0",
)
DEFAULT_SCRAPE_PROTOCOLS = (
    "OpenMetricsText1.0.0",
    "OpenMetricsText0.0.1",
    "PrometheusText1.0.0",
    "PrometheusText0.0.4",
)


def _resolve_path(value: str | None, info: ValidationInfo) -> str | None:
    """Join a relative path onto the config file's directory (context key `base_dir`)."""
    if not value:
        return value
    base = (info.context or {}).get("base_dir")
    if base and not os.path.isabs(value):
        return os.path.join(base, value)
    return value


FilePath = Annotated[str, AfterValidator(_resolve_path)]


def _check_label_name(name: str) -> str:
    if not LABEL_NAME_RE.match(name):
        raise ValueError(f'"{name}" is not a valid label name (use [a-zA-Z_][a-zA-Z0-9_]*)')
    return name


LabelName = Annotated[str, AfterValidator(_check_label_name)]


def _check_scheme(v: str) -> str:
    if v not in ("http", "https"):
        raise ValueError(f'unsupported scheme "{v}" (use http or https)')
    return v


Scheme = Annotated[str, AfterValidator(_check_scheme)]


class _Model(BaseModel):
    """Base: frozen, strict about unknown keys, numbers accepted where strings are."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        coerce_numbers_to_str=True,
        populate_by_name=True,
        arbitrary_types_allowed=True,
    )

    # The type name Prometheus uses in its "field x not found in type T" errors.
    _prom_type: ClassVar[str] = "config"

    @model_validator(mode="before")
    @classmethod
    def _unknown_fields(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known = set()
        for name, f in cls.model_fields.items():
            known.add(name)
            if f.alias:
                known.add(f.alias)
        for key in data:
            if key not in known:
                hint = difflib.get_close_matches(str(key), sorted(known), n=1)
                suggestion = f'; did you mean "{hint[0]}"?' if hint else ""
                raise PydanticCustomError(
                    "unknown_field",
                    "field {field} not found in type {type}{suggestion}",
                    {"field": str(key), "type": cls._prom_type, "suggestion": suggestion},
                )
        return data


def _located(message: str, *path: str | int) -> PydanticCustomError:
    """An error whose position is `path` below the model being validated."""
    return PydanticCustomError("vigil_located", "{message}", {"message": message, "path": path})


class BasicAuth(_Model):
    _prom_type = "config.BasicAuth"
    username: str = ""
    username_file: FilePath | None = None
    password: Secret | None = None
    password_file: FilePath | None = None

    @model_validator(mode="after")
    def _one_password(self) -> BasicAuth:
        if self.password and self.password_file:
            raise ValueError(
                "at most one of basic_auth password & password_file must be configured"
            )
        if self.username and self.username_file:
            raise ValueError(
                "at most one of basic_auth username & username_file must be configured"
            )
        return self


class Authorization(_Model):
    _prom_type = "config.Authorization"
    type: str = "Bearer"
    credentials: Secret | None = None
    credentials_file: FilePath | None = None

    @model_validator(mode="after")
    def _check(self) -> Authorization:
        if self.credentials and self.credentials_file:
            raise ValueError(
                "at most one of authorization credentials & credentials_file must be configured"
            )
        if self.type.lower() == "basic":
            raise ValueError(
                'authorization type cannot be set to "basic", use "basic_auth" instead'
            )
        return self


class TLSConfig(_Model):
    _prom_type = "config.TLSConfig"
    ca: str | None = None
    cert: str | None = None
    key: Secret | None = None
    ca_file: FilePath | None = None
    cert_file: FilePath | None = None
    key_file: FilePath | None = None
    server_name: str | None = None
    insecure_skip_verify: bool = False
    min_version: str | None = None
    max_version: str | None = None

    @model_validator(mode="after")
    def _check(self) -> TLSConfig:
        if self.ca and self.ca_file:
            raise ValueError("at most one of ca and ca_file must be configured")
        if self.cert and self.cert_file:
            raise ValueError("at most one of cert and cert_file must be configured")
        if self.key and self.key_file:
            raise ValueError("at most one of key and key_file must be configured")
        has_cert = bool(self.cert or self.cert_file)
        has_key = bool(self.key or self.key_file)
        if has_cert != has_key:
            raise ValueError(
                "exactly one of cert/cert_file and key/key_file is configured; set both or neither"
            )
        return self


class OAuth2(_Model):
    """Accepted for compatibility; Vigil's scraper does not fetch OAuth2 tokens yet."""

    _prom_type = "config.OAuth2"
    client_id: str = ""
    client_secret: Secret | None = None
    client_secret_file: FilePath | None = None
    scopes: tuple[str, ...] = ()
    token_url: str = ""
    endpoint_params: dict[str, str] = Field(default_factory=dict)
    tls_config: TLSConfig | None = None
    proxy_url: str | None = None


class HTTPClientConfig(_Model):
    """HTTP client settings shared by scrape, alertmanager and remote configs."""

    basic_auth: BasicAuth | None = None
    authorization: Authorization | None = None
    oauth2: OAuth2 | None = None
    bearer_token: Secret | None = None
    bearer_token_file: FilePath | None = None
    tls_config: TLSConfig = Field(default_factory=TLSConfig)
    proxy_url: str | None = None
    no_proxy: str | None = None
    proxy_from_environment: bool = False
    proxy_connect_header: dict[str, tuple[Secret, ...]] | None = None
    follow_redirects: bool = True
    enable_http2: bool = True

    @model_validator(mode="after")
    def _one_auth(self) -> HTTPClientConfig:
        if self.bearer_token and self.bearer_token_file:
            raise ValueError("at most one of bearer_token & bearer_token_file must be configured")
        bearer = bool(self.bearer_token or self.bearer_token_file)
        if self.basic_auth is not None and bearer:
            raise ValueError(
                "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured"
            )
        if self.authorization is not None and bearer:
            raise ValueError(
                "authorization is not compatible with bearer_token & bearer_token_file"
            )
        if self.authorization is not None and self.basic_auth is not None:
            raise ValueError("at most one of basic_auth, oauth2 & authorization must be configured")
        if self.oauth2 is not None and (
            self.basic_auth is not None or self.authorization is not None or bearer
        ):
            raise ValueError("at most one of basic_auth, oauth2 & authorization must be configured")
        if self.proxy_url and self.proxy_from_environment:
            raise ValueError(
                "if proxy_from_environment is configured, proxy_url must not be configured"
            )
        return self

    def auth_header(self) -> str | None:
        """The inline `Authorization` header value, if any (file-based secrets excluded)."""
        if self.authorization is not None and self.authorization.credentials:
            return f"{self.authorization.type} {self.authorization.credentials}"
        if self.bearer_token:
            return f"Bearer {self.bearer_token}"
        return None


class StaticConfig(_Model):
    """A static target group: `targets` are host:port strings, `labels` apply to all."""

    _prom_type = "targetgroup.Group"
    targets: tuple[str, ...] = ()
    labels: dict[LabelName, str] = Field(default_factory=dict)


_FILE_SD_NAME_RE = re.compile(r"^[^*]*(\*[^/]*)?\.(json|yml|yaml|JSON|YML|YAML)$")


class FileSDConfig(_Model):
    """File-based discovery: JSON/YAML files (globs allowed in the last path element)."""

    _prom_type = "file.SDConfig"
    files: tuple[FilePath, ...]
    refresh_interval: Duration = Duration(5 * 60 * 1000)

    @field_validator("files")
    @classmethod
    def _check_files(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("file service discovery config must contain at least one path name")
        for name in v:
            if not _FILE_SD_NAME_RE.match(name):
                raise ValueError(
                    f'path name "{name}" is not valid for file discovery '
                    "(it must end in .json, .yml or .yaml; a * is allowed only in the last path element)"
                )
        return v


class _ScrapeLimits(_Model):
    """Limits and protocol settings a scrape config inherits from `global`."""

    scrape_interval: Duration = Duration(60_000)
    scrape_timeout: Duration = Duration(10_000)
    scrape_protocols: tuple[str, ...] = DEFAULT_SCRAPE_PROTOCOLS
    body_size_limit: Size = Size(0)
    sample_limit: int = Field(default=0, ge=0)
    target_limit: int = Field(default=0, ge=0)
    label_limit: int = Field(default=0, ge=0)
    label_name_length_limit: int = Field(default=0, ge=0)
    label_value_length_limit: int = Field(default=0, ge=0)
    keep_dropped_targets: int = Field(default=0, ge=0)
    metric_name_validation_scheme: str = ""
    always_scrape_classic_histograms: bool = False
    convert_classic_histograms_to_nhcb: bool = False

    @field_validator("scrape_protocols")
    @classmethod
    def _check_protocols(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        seen: set[str] = set()
        for p in v:
            if p not in SCRAPE_PROTOCOLS:
                raise ValueError(
                    f'unknown scrape protocol "{p}", supported: {", ".join(SCRAPE_PROTOCOLS)}'
                )
            if p in seen:
                raise ValueError(f"duplicated protocol in scrape_protocols, got {', '.join(v)}")
            seen.add(p)
        return v


INHERITED_FROM_GLOBAL = tuple(_ScrapeLimits.model_fields)


class GlobalConfig(_ScrapeLimits):
    """The `global:` section."""

    _prom_type = "config.GlobalConfig"
    evaluation_interval: Duration = Duration(60_000)
    rule_query_offset: Duration = Duration(0)
    query_log_file: FilePath | None = None
    scrape_failure_log_file: FilePath | None = None
    external_labels: dict[LabelName, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _default_timeout(cls, data: Any) -> Any:
        # Prometheus: an unset global timeout is min(10s, global interval).
        if isinstance(data, dict) and "scrape_timeout" not in data and "scrape_interval" in data:
            try:
                interval = Duration._validate(data["scrape_interval"])
            except Exception:
                return data
            if interval < 10_000:
                data = {**data, "scrape_timeout": interval}
        return data

    @model_validator(mode="after")
    def _check(self) -> GlobalConfig:
        if self.scrape_timeout > self.scrape_interval:
            raise _located("global scrape timeout greater than scrape interval", "scrape_timeout")
        return self


class ScrapeConfig(HTTPClientConfig, _ScrapeLimits):
    """One `scrape_configs` entry. After loading, inherited fields hold the effective values."""

    _prom_type = "config.ScrapeConfig"
    job_name: str
    honor_labels: bool = False
    honor_timestamps: bool = True
    track_timestamps_staleness: bool = False
    params: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    metrics_path: str = "/metrics"
    scheme: Scheme = "http"
    enable_compression: bool = True
    native_histogram_bucket_limit: int = Field(default=0, ge=0)
    native_histogram_min_bucket_factor: float = 0.0
    metric_name_escaping_scheme: str = ""
    scrape_classic_histograms: bool = False
    static_configs: tuple[StaticConfig, ...] = ()
    file_sd_configs: tuple[FileSDConfig, ...] = ()
    relabel_configs: tuple[RelabelConfig, ...] = ()
    metric_relabel_configs: tuple[RelabelConfig, ...] = ()

    @field_validator("job_name")
    @classmethod
    def _job_name(cls, v: str) -> str:
        if v == "":
            raise ValueError("job_name is empty; every scrape config needs a unique job_name")
        return v


class AlertmanagerConfig(HTTPClientConfig):
    """One `alerting.alertmanagers` entry."""

    _prom_type = "config.AlertmanagerConfig"
    scheme: Scheme = "http"
    path_prefix: str = "/"
    timeout: Duration = Duration(10_000)
    api_version: Literal["v2"] = "v2"
    static_configs: tuple[StaticConfig, ...] = ()
    file_sd_configs: tuple[FileSDConfig, ...] = ()
    relabel_configs: tuple[RelabelConfig, ...] = ()
    alert_relabel_configs: tuple[RelabelConfig, ...] = ()


class AlertingConfig(_Model):
    _prom_type = "config.AlertingConfig"
    alert_relabel_configs: tuple[RelabelConfig, ...] = ()
    alertmanagers: tuple[AlertmanagerConfig, ...] = ()


class QueueConfig(_Model):
    """Remote-write queue tuning (typed; Vigil's sender uses what applies to it)."""

    _prom_type = "config.QueueConfig"
    capacity: int = Field(default=10_000, ge=0)
    max_shards: int = Field(default=50, ge=0)
    min_shards: int = Field(default=1, ge=0)
    max_samples_per_send: int = Field(default=2_000, ge=0)
    batch_send_deadline: Duration = Duration(5_000)
    min_backoff: Duration = Duration(30)
    max_backoff: Duration = Duration(5_000)
    retry_on_http_429: bool = True
    sample_age_limit: Duration = Duration(0)


class MetadataConfig(_Model):
    _prom_type = "config.MetadataConfig"
    send: bool = True
    send_interval: Duration = Duration(60_000)
    max_samples_per_send: int = Field(default=500, ge=0)


class RemoteWriteConfig(HTTPClientConfig):
    _prom_type = "config.RemoteWriteConfig"
    url: str
    name: str = ""
    remote_timeout: Duration = Duration(30_000)
    headers: dict[str, str] = Field(default_factory=dict)
    write_relabel_configs: tuple[RelabelConfig, ...] = ()
    send_exemplars: bool = False
    send_native_histograms: bool = False
    round_robin_dns: bool = False
    protobuf_message: str = "prometheus.WriteRequest"
    queue_config: QueueConfig = Field(default_factory=QueueConfig)
    metadata_config: MetadataConfig = Field(default_factory=MetadataConfig)
    sigv4: dict[str, Any] | None = None
    azuread: dict[str, Any] | None = None
    google_iam: dict[str, Any] | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/]", v):
            raise ValueError(f'invalid remote write url "{v}" (use http://host:port/path)')
        return v


class RemoteReadConfig(HTTPClientConfig):
    _prom_type = "config.RemoteReadConfig"
    url: str
    name: str = ""
    remote_timeout: Duration = Duration(60_000)
    headers: dict[str, str] = Field(default_factory=dict)
    read_recent: bool = False
    required_matchers: dict[str, str] = Field(default_factory=dict)
    filter_external_labels: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/]", v):
            raise ValueError(f'invalid remote read url "{v}" (use http://host:port/path)')
        return v


class TSDBConfig(_Model):
    _prom_type = "config.TSDBConfig"
    out_of_order_time_window: Duration = Duration(0)


class ExemplarsConfig(_Model):
    _prom_type = "config.ExemplarsConfig"
    max_exemplars: int = Field(default=100_000, ge=0)


class StorageConfig(_Model):
    _prom_type = "config.StorageConfig"
    tsdb: TSDBConfig = Field(default_factory=TSDBConfig)
    exemplars: ExemplarsConfig = Field(default_factory=ExemplarsConfig)


class VigilConfig(_Model):
    """Vigil's own `vigil:` section (Prometheus keeps these as command-line flags)."""

    _prom_type = "config.VigilConfig"
    listen_address: str = "127.0.0.1:9090"
    # Relative to the working directory, like Prometheus's --storage.tsdb.path flag.
    data_dir: str = "./data"
    retention_time: Duration = Duration(15 * 24 * 3600 * 1000)
    retention_size: Size | None = None
    # Decoded block chunks kept for queries; unset: a sixteenth of memory, kept
    # within 256MB-2GB (tsdb.chunk_cache.auto_chunk_cache_bytes). 0 turns it off.
    chunk_cache_size: Size | None = None
    wal_fsync: Literal["batch", "always", "never"] = "batch"
    out_of_order_time_window: Duration = Duration(0)
    lookback_delta: Duration = Duration(5 * 60 * 1000)
    query_timeout: Duration = Duration(2 * 60 * 1000)
    query_max_samples: int = Field(default=50_000_000, ge=1)
    self_scrape: bool = True
    # An Alertmanager config file; when set, Vigil runs the notification pipeline
    # in-process and serves Alertmanager's API v2 on its own address.
    alertmanager_config: FilePath | None = None
    # How long a pushed group lives without a new push when the client sends no
    # X-Vigil-TTL header; unset: until deleted.
    push_default_ttl: Duration | None = None

    @field_validator("listen_address")
    @classmethod
    def _addr(cls, v: str) -> str:
        _host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or int(port) > 65535:
            raise ValueError(f'listen_address "{v}" must be host:port, e.g. 127.0.0.1:9090')
        return v


def inherit_global(sc: ScrapeConfig, g: GlobalConfig) -> ScrapeConfig:
    """`sc` with every inheritable field it does not set taken from `g` (as Prometheus)."""
    update: dict[str, Any] = {}
    for name in INHERITED_FROM_GLOBAL:
        if name not in sc.model_fields_set:
            update[name] = getattr(g, name)
    if "scrape_timeout" not in sc.model_fields_set:
        interval = update.get("scrape_interval", sc.scrape_interval)
        update["scrape_timeout"] = Duration(min(g.scrape_timeout, interval))
    return sc.model_copy(update=update) if update else sc


SELF_SCRAPE_JOB = "vigil"


def with_self_scrape(config: Config, address: str) -> Config:
    """`config` plus a job "vigil" scraping `address` (host:port) at /metrics.

    Unchanged when `config.vigil.self_scrape` is false or a job named "vigil"
    already exists. The added job inherits the global interval, timeout and limits.
    """
    if not config.vigil.self_scrape or config.scrape_config(SELF_SCRAPE_JOB) is not None:
        return config
    job = ScrapeConfig.model_validate(
        {"job_name": SELF_SCRAPE_JOB, "static_configs": [{"targets": [address]}]}
    )
    job = inherit_global(job, config.global_config)
    return config.model_copy(update={"scrape_configs": (*config.scrape_configs, job)})


_RULE_PATH_RE = re.compile(r"^[^*]*(\*[^/]*)?$")


class Config(_Model):
    """The whole configuration file. Build it with `vigil.config.load_config[_file]`."""

    _prom_type = "config.plain"
    global_config: GlobalConfig = Field(default_factory=GlobalConfig, alias="global")
    rule_files: tuple[FilePath, ...] = ()
    scrape_config_files: tuple[FilePath, ...] = ()
    scrape_configs: tuple[ScrapeConfig, ...] = ()
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    remote_write: tuple[RemoteWriteConfig, ...] = ()
    remote_read: tuple[RemoteReadConfig, ...] = ()
    storage: StorageConfig = Field(default_factory=StorageConfig)
    tracing: dict[str, Any] | None = None
    otlp: dict[str, Any] | None = None
    runtime: dict[str, Any] | None = None
    vigil: VigilConfig = Field(default_factory=VigilConfig)

    @field_validator("rule_files")
    @classmethod
    def _rule_files(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for i, rf in enumerate(v):
            if not _RULE_PATH_RE.match(rf):
                raise _located(
                    f'invalid rule file path "{rf}" (a * is allowed only in the last path element)',
                    i,
                )
        return v

    @model_validator(mode="after")
    def _inherit_and_check(self) -> Config:
        g = self.global_config
        seen: dict[str, int] = {}
        filled: list[ScrapeConfig] = []
        for i, sc in enumerate(self.scrape_configs):
            if sc.job_name in seen:
                raise _located(
                    f'found multiple scrape configs with job name "{sc.job_name}" '
                    f"(the first is scrape_configs[{seen[sc.job_name]}]); job names must be unique",
                    "scrape_configs",
                    i,
                    "job_name",
                )
            seen[sc.job_name] = i
            sc = inherit_global(sc, g)
            if sc.scrape_timeout > sc.scrape_interval:
                raise _located(
                    f'scrape timeout greater than scrape interval for scrape config with job name "{sc.job_name}" '
                    f"({sc.scrape_timeout} > {sc.scrape_interval}); lower scrape_timeout or raise scrape_interval",
                    "scrape_configs",
                    i,
                    "scrape_timeout",
                )
            filled.append(sc)
        # Frozen model: the after-validator is the one place allowed to finish construction.
        object.__setattr__(self, "scrape_configs", tuple(filled))
        names = set()
        for i, rw in enumerate(self.remote_write):
            if rw.name:
                if rw.name in names:
                    raise _located(
                        f'found multiple remote write configs with job name "{rw.name}"',
                        "remote_write",
                        i,
                        "name",
                    )
                names.add(rw.name)
        return self

    def scrape_config(self, job_name: str) -> ScrapeConfig | None:
        """The scrape config for `job_name`, or None."""
        for sc in self.scrape_configs:
            if sc.job_name == job_name:
                return sc
        return None

    def to_dict(self) -> dict[str, Any]:
        """The effective configuration as plain data, defaults filled, secrets hidden."""
        out = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        # Prometheus lists job_name first; pydantic orders inherited fields first.
        out["scrape_configs"] = [
            {"job_name": sc.pop("job_name"), **sc} for sc in out["scrape_configs"]
        ]
        return out

    def to_yaml(self) -> str:
        """The effective configuration as YAML (what `/api/v1/status/config` shows)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False)
