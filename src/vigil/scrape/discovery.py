"""Service discovery: static target lists and file-based discovery (`file_sd_configs`).

A provider turns SD configs into `TargetGroup`s. `DiscoveryManager` runs the
providers of every job, polls files in one background thread, and reports a job's
full list of groups through `on_update(job_name, groups)` whenever it changes.

File SD follows Prometheus: each file (JSON by `.json` extension, else YAML) holds a
list of `{targets: [...], labels: {...}}`; each group's source is `path:index` and
its labels gain `__meta_filepath`. A file that fails to read or parse keeps its last
good groups and its error is listed in `errors` (and logged) until it is fixed; a
file that disappears (or stops matching a glob) drops its groups.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from vigil.config.models import FileSDConfig, ScrapeConfig, StaticConfig
from vigil.model.labels import LABEL_NAME_RE, Labels

log = logging.getLogger(__name__)

ADDRESS_LABEL = "__address__"
META_FILEPATH = "__meta_filepath"

SDConfig = StaticConfig | FileSDConfig
OnUpdate = Callable[[str, list["TargetGroup"]], None]


@dataclass(frozen=True, slots=True)
class TargetGroup:
    """A set of targets sharing labels. Each target's labels contain `__address__`.

    `source` identifies the group within its job (e.g. ``"0"`` for the first static
    config, ``"/etc/sd/a.json:2"`` for the third group of a file).
    """

    source: str
    targets: list[Labels]
    labels: Labels


def static_groups(configs: Sequence[StaticConfig]) -> list[TargetGroup]:
    """One group per static config, sources "0", "1", ... as in Prometheus."""
    return [
        TargetGroup(
            source=str(i),
            targets=[Labels.from_sorted([(ADDRESS_LABEL, t)]) for t in sc.targets],
            labels=Labels.from_dict(sc.labels),
        )
        for i, sc in enumerate(configs)
    ]


def sd_configs_of(cfg: Any) -> list[SDConfig]:
    """The SD configs a scrape or alertmanager config declares, static first."""
    out: list[SDConfig] = []
    static = tuple(getattr(cfg, "static_configs", ()) or ())
    out.extend(static)
    out.extend(getattr(cfg, "file_sd_configs", ()) or ())
    return out


def jobs_from_scrape_configs(configs: Sequence[ScrapeConfig]) -> dict[str, list[SDConfig]]:
    """`{job_name: sd configs}` for `DiscoveryManager.apply_config`."""
    return {sc.job_name: sd_configs_of(sc) for sc in configs}


class FileFormatError(ValueError):
    """A file_sd file's content is not a list of target groups."""


def parse_file_groups(path: str, text: str) -> list[TargetGroup]:
    """Parse one file_sd file's text. Raise `FileFormatError` naming what and where."""
    if path.lower().endswith(".json"):
        try:
            data = json.loads(text) if text.strip() else []
        except json.JSONDecodeError as exc:
            raise FileFormatError(
                f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
            ) from None
        strict = False  # Prometheus ignores unknown keys in JSON groups
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
            raise FileFormatError(f"invalid YAML{where}: {exc.problem}") from None
        except yaml.YAMLError as exc:
            raise FileFormatError(f"invalid YAML: {exc}") from None
        strict = True
    if data is None:
        data = []
    if not isinstance(data, list):
        raise FileFormatError("expected a list of target groups ({targets: [...], labels: {...}})")
    groups = []
    for i, entry in enumerate(data):
        groups.append(_parse_group(path, i, entry, strict))
    return groups


def _parse_group(path: str, i: int, entry: Any, strict: bool) -> TargetGroup:
    where = f"group {i}"
    if not isinstance(entry, dict):
        raise FileFormatError(f"{where}: expected a mapping with targets and labels")
    if strict:
        for key in entry:
            if key not in ("targets", "labels"):
                raise FileFormatError(
                    f'{where}: field {key} not found (use "targets" and "labels")'
                )
    targets = entry.get("targets") or []
    if not isinstance(targets, list):
        raise FileFormatError(f"{where}: targets must be a list of host:port strings")
    tls: list[Labels] = []
    for t in targets:
        if not isinstance(t, str | int) or isinstance(t, bool):
            raise FileFormatError(f"{where}: target {t!r} is not a host:port string")
        tls.append(Labels.from_sorted([(ADDRESS_LABEL, str(t))]))
    raw_labels = entry.get("labels") or {}
    if not isinstance(raw_labels, dict):
        raise FileFormatError(f"{where}: labels must be a mapping of label name to value")
    labels: dict[str, str] = {}
    for k, v in raw_labels.items():
        if not isinstance(k, str) or not LABEL_NAME_RE.match(k):
            raise FileFormatError(f'{where}: "{k}" is not a valid label name')
        if isinstance(v, dict | list) or v is None:
            raise FileFormatError(f'{where}: label "{k}" must have a string value')
        labels[k] = str(v)
    labels[META_FILEPATH] = path
    return TargetGroup(source=f"{path}:{i}", targets=tls, labels=Labels.from_dict(labels))


def _signature(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class FileSDProvider:
    """Reads the files of one `file_sd_configs` entry; `refresh()` re-reads what changed.

    Not thread-safe by itself: `DiscoveryManager` calls it from one thread at a time.
    """

    def __init__(
        self, config: FileSDConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self._clock = clock
        self._by_file: dict[str, list[TargetGroup]] = {}
        self._sigs: dict[str, tuple[int, int, int] | None] = {}
        self._errors: dict[str, str] = {}
        self._last_full = float("-inf")

    @property
    def errors(self) -> list[str]:
        """Current problems, one per broken file: ``"path: reason"``."""
        return [f"{p}: {e}" for p, e in sorted(self._errors.items())]

    def groups(self) -> list[TargetGroup]:
        """All groups, in file-name order."""
        return [g for p in sorted(self._by_file) for g in self._by_file[p]]

    def list_files(self) -> list[str]:
        files: set[str] = set()
        for pattern in self.config.files:
            files.update(p for p in glob.glob(pattern) if os.path.isfile(p))
        return sorted(files)

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read files whose mtime/size changed (all of them when `force` or a full
        refresh_interval has passed). Return True when the groups changed."""
        now = self._clock()
        full = force or (now - self._last_full) * 1000 >= self.config.refresh_interval
        if full:
            self._last_full = now
        changed = False
        present = self.list_files()
        for path in [p for p in self._by_file if p not in present]:
            del self._by_file[path]
            self._sigs.pop(path, None)
            self._errors.pop(path, None)
            changed = True
        for path in [p for p in self._errors if p not in present]:
            del self._errors[path]
            self._sigs.pop(path, None)
        for path in present:
            sig = _signature(path)
            if not full and path in self._sigs and self._sigs[path] == sig:
                continue
            self._sigs[path] = sig
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                groups = parse_file_groups(path, text)
            except (OSError, UnicodeDecodeError, FileFormatError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                if self._errors.get(path) != reason:
                    log.error(
                        "file_sd: error reading %s: %s (keeping its last good targets)",
                        path,
                        reason,
                    )
                self._errors[path] = reason
                continue
            self._errors.pop(path, None)
            if self._by_file.get(path) != groups:
                self._by_file[path] = groups
                changed = True
        return changed


@dataclass
class _Job:
    configs: list[SDConfig]
    static: list[TargetGroup]
    files: list[FileSDProvider] = field(default_factory=list)
    last_sent: list[TargetGroup] | None = None

    def groups(self) -> list[TargetGroup]:
        out = list(self.static)
        for fp in self.files:
            out.extend(fp.groups())
        return out


class DiscoveryManager:
    """Runs the discovery of every job and reports changes.

    `on_update(job_name, groups)` receives the job's complete current groups (not a
    delta). It is called with an internal lock held, so never concurrently, either
    from the thread calling `apply_config`/`refresh` or from the polling thread
    started by `start()`. Files are checked every `poll_interval` seconds (mtime and
    size) and fully re-read every `refresh_interval` of their config.
    """

    def __init__(
        self,
        on_update: OnUpdate,
        *,
        poll_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_update = on_update
        self._poll_interval = poll_interval
        self._clock = clock
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def apply_config(self, jobs: Mapping[str, Sequence[SDConfig]] | Any) -> None:
        """Replace the set of jobs, read their targets now, and report every job.

        `jobs` is `{job_name: [StaticConfig | FileSDConfig, ...]}` or a whole
        `vigil.config.Config` (its `scrape_configs` are used). Jobs whose SD configs
        are unchanged keep their providers (files are not re-read). Removed jobs get
        no further updates; dropping them is the caller's business. When any job has
        file SD, the polling thread is started if it is not running yet.
        """
        if not isinstance(jobs, Mapping):
            jobs = jobs_from_scrape_configs(jobs.scrape_configs)
        with self._lock:
            new: dict[str, _Job] = {}
            for name, configs in jobs.items():
                configs = list(configs)
                old = self._jobs.get(name)
                if old is not None and old.configs == configs:
                    new[name] = old
                    continue
                statics = [c for c in configs if isinstance(c, StaticConfig)]
                job = _Job(configs=configs, static=static_groups(statics))
                for c in configs:
                    if isinstance(c, FileSDConfig):
                        fp = FileSDProvider(c, clock=self._clock)
                        fp.refresh(force=True)
                        job.files.append(fp)
                    elif not isinstance(c, StaticConfig):
                        raise TypeError(f"job {name!r}: unsupported SD config {type(c).__name__}")
                new[name] = job
            self._jobs = new
            for name, job in new.items():
                self._send(name, job, always=True)
            needs_polling = any(job.files for job in new.values())
        if needs_polling:
            self.start()

    def refresh(self, *, force: bool = False) -> None:
        """Check every file now (the polling thread calls this); report changed jobs."""
        with self._lock:
            for name, job in self._jobs.items():
                changed = False
                for fp in job.files:
                    changed |= fp.refresh(force=force)
                if changed:
                    self._send(name, job, always=False)

    def _send(self, name: str, job: _Job, *, always: bool) -> None:
        groups = job.groups()
        if not always and groups == job.last_sent:
            return
        job.last_sent = groups
        try:
            self._on_update(name, list(groups))
        except Exception:
            # A failing consumer must not stop discovery for the other jobs.
            log.exception("discovery: on_update for job %s failed", name)

    @property
    def errors(self) -> dict[str, list[str]]:
        """Current discovery problems by job (only jobs that have some)."""
        with self._lock:
            out: dict[str, list[str]] = {}
            for name, job in self._jobs.items():
                errs = [e for fp in job.files for e in fp.errors]
                if errs:
                    out[name] = errs
            return out

    def groups(self, job_name: str) -> list[TargetGroup]:
        """The job's current groups ([] for an unknown job)."""
        with self._lock:
            job = self._jobs.get(job_name)
            return job.groups() if job is not None else []

    def start(self) -> None:
        """Start the polling thread (idempotent; a no-op after `stop()`)."""
        if self._stopped or (self._thread is not None and self._thread.is_alive()):
            return
        self._thread = threading.Thread(target=self._run, name="vigil-discovery", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._poll_interval):
            try:
                self.refresh()
            except Exception:
                log.exception("discovery: refresh failed")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the polling thread and wait for it (up to `timeout` seconds). Final."""
        self._stopped = True
        self._stop.set()
        t = self._thread
        if t is not None:
            t.join(timeout)
        self._thread = None
