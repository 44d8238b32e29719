"""Vigil's configuration: one YAML file in Prometheus's syntax plus a `vigil:` section.

Load it with `load_config_file(path)` (or `load_config(text)`), which returns a
`LoadedConfig` holding the frozen `Config`, warnings for accepted-but-unsupported
parts, and the source text. Invalid input raises `ConfigError`, whose `problems`
each name file, line, column and what to do.
"""

from vigil.config.loader import (
    ConfigError,
    ConfigProblem,
    LoadedConfig,
    load_config,
    load_config_file,
)
from vigil.config.models import (
    AlertingConfig,
    AlertmanagerConfig,
    Authorization,
    BasicAuth,
    Config,
    ExemplarsConfig,
    FileSDConfig,
    GlobalConfig,
    HTTPClientConfig,
    MetadataConfig,
    OAuth2,
    QueueConfig,
    RemoteReadConfig,
    RemoteWriteConfig,
    ScrapeConfig,
    StaticConfig,
    StorageConfig,
    TLSConfig,
    TSDBConfig,
    VigilConfig,
    inherit_global,
    with_self_scrape,
)
from vigil.config.types import Duration, Secret, Size, parse_duration_ms, parse_size_bytes
from vigil.model.relabel import RelabelAction, RelabelConfig

__all__ = [
    "AlertingConfig",
    "AlertmanagerConfig",
    "Authorization",
    "BasicAuth",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "Duration",
    "ExemplarsConfig",
    "FileSDConfig",
    "GlobalConfig",
    "HTTPClientConfig",
    "LoadedConfig",
    "MetadataConfig",
    "OAuth2",
    "QueueConfig",
    "RelabelAction",
    "RelabelConfig",
    "RemoteReadConfig",
    "RemoteWriteConfig",
    "ScrapeConfig",
    "Secret",
    "Size",
    "StaticConfig",
    "StorageConfig",
    "TLSConfig",
    "TSDBConfig",
    "VigilConfig",
    "inherit_global",
    "load_config",
    "load_config_file",
    "parse_duration_ms",
    "parse_size_bytes",
    "with_self_scrape",
]
