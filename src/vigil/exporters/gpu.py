"""GPU exporter: NVIDIA GPUs through NVML, named as dcgm-exporter names them.

Per GPU: ``DCGM_FI_DEV_GPU_UTIL``, ``DCGM_FI_DEV_MEM_COPY_UTIL``,
``DCGM_FI_DEV_ENC_UTIL``, ``DCGM_FI_DEV_DEC_UTIL`` (percent);
``DCGM_FI_DEV_FB_USED``, ``DCGM_FI_DEV_FB_FREE``, ``DCGM_FI_DEV_FB_TOTAL`` (MiB);
``DCGM_FI_DEV_GPU_TEMP`` (C); ``DCGM_FI_DEV_POWER_USAGE`` (W);
``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`` (mJ); ``DCGM_FI_DEV_SM_CLOCK`` and
``DCGM_FI_DEV_MEM_CLOCK`` (MHz); ``DCGM_FI_DEV_PCIE_REPLAY_COUNTER`` — with
dcgm-exporter's labels ``gpu``, ``UUID``, ``device``, ``modelName``, ``Hostname``,
``pci_bus_id`` and ``DCGM_FI_DRIVER_VERSION``.  A field the GPU does not support
is left out for that GPU rather than reported as 0.

With ``legacy_names`` (default true) the seed documents' hand-written exporter
names are exposed as well (``gpu_utilization_percent``,
``gpu_temperature_celsius``, ``gpu_memory_total_bytes``,
``gpu_memory_allocated_bytes`` with ``gpu_id``/``gpu_name``), so their alert
rules and dashboards load unchanged.  ``gpu_memory_allocated_bytes`` is NVML's
used memory (all processes), not one PyTorch process's allocator figure.

Without the ``pynvml`` module (package nvidia-ml-py), without the NVML library
(no driver) or without a GPU, ``vigil_gpu_exporter_up`` is 0, the reason is
logged once and exposed as ``vigil_gpu_exporter_error{reason}``.  NVML
initialisation is retried on later scrapes, so a driver loaded after start is
picked up.  ``startup_error()`` lets the standalone server refuse to start on
a machine without GPU unless ``idle_without_gpu=true``.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from prometheus_client.metrics_core import Metric

from vigil.exporters.base import (
    ErrorLogger,
    Family,
    Options,
    opt_bool,
    opt_str,
    reject_unknown,
    up_metric,
)

log = logging.getLogger("vigil.exporters.gpu")

OPTIONS = ("idle_without_gpu", "legacy_names", "hostname")

LABELS = ["gpu", "UUID", "device", "modelName", "Hostname", "pci_bus_id", "DCGM_FI_DRIVER_VERSION"]

MIB = 1024.0 * 1024.0

# (metric, kind, help, reader(nvml, handle) -> value).  Kinds follow dcgm-exporter:
# its counters lack _total, so they are mirrored as untyped.
_Reader = Callable[[Any, Any], float]
_FIELDS: tuple[tuple[str, str, str, _Reader], ...] = (
    (
        "DCGM_FI_DEV_SM_CLOCK",
        "gauge",
        "SM clock frequency (in MHz).",
        lambda n, h: n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM),
    ),
    (
        "DCGM_FI_DEV_MEM_CLOCK",
        "gauge",
        "Memory clock frequency (in MHz).",
        lambda n, h: n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_MEM),
    ),
    (
        "DCGM_FI_DEV_GPU_TEMP",
        "gauge",
        "GPU temperature (in C).",
        lambda n, h: n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU),
    ),
    (
        "DCGM_FI_DEV_POWER_USAGE",
        "gauge",
        "Power draw (in W).",
        lambda n, h: n.nvmlDeviceGetPowerUsage(h) / 1000.0,
    ),
    (
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "untyped",
        "Total energy consumption since boot (in mJ).",
        lambda n, h: n.nvmlDeviceGetTotalEnergyConsumption(h),
    ),
    (
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
        "untyped",
        "Total number of PCIe retries.",
        lambda n, h: n.nvmlDeviceGetPcieReplayCounter(h),
    ),
    (
        "DCGM_FI_DEV_GPU_UTIL",
        "gauge",
        "GPU utilization (in %).",
        lambda n, h: n.nvmlDeviceGetUtilizationRates(h).gpu,
    ),
    (
        "DCGM_FI_DEV_MEM_COPY_UTIL",
        "gauge",
        "Memory utilization (in %).",
        lambda n, h: n.nvmlDeviceGetUtilizationRates(h).memory,
    ),
    (
        "DCGM_FI_DEV_ENC_UTIL",
        "gauge",
        "Encoder utilization (in %).",
        lambda n, h: n.nvmlDeviceGetEncoderUtilization(h)[0],
    ),
    (
        "DCGM_FI_DEV_DEC_UTIL",
        "gauge",
        "Decoder utilization (in %).",
        lambda n, h: n.nvmlDeviceGetDecoderUtilization(h)[0],
    ),
    (
        "DCGM_FI_DEV_FB_FREE",
        "gauge",
        "Framebuffer memory free (in MiB).",
        lambda n, h: n.nvmlDeviceGetMemoryInfo(h).free / MIB,
    ),
    (
        "DCGM_FI_DEV_FB_USED",
        "gauge",
        "Framebuffer memory used (in MiB).",
        lambda n, h: n.nvmlDeviceGetMemoryInfo(h).used / MIB,
    ),
    (
        "DCGM_FI_DEV_FB_TOTAL",
        "gauge",
        "Framebuffer memory total (in MiB).",
        lambda n, h: n.nvmlDeviceGetMemoryInfo(h).total / MIB,
    ),
)


def _text(value: object) -> str:
    """Older pynvml returns bytes for strings, newer returns str."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _load_nvml() -> ModuleType:
    import pynvml  # imported lazily: optional dependency, and slow-ish to load

    return pynvml


class GpuExporter:
    """dcgm-exporter-compatible GPU metrics straight from NVML (no DCGM daemon)."""

    name = "gpu"

    def __init__(
        self, options: Options | None = None, nvml: ModuleType | Any | None = None
    ) -> None:
        """``nvml`` replaces the ``pynvml`` module (tests, or a wrapped NVML)."""
        options = options or {}
        reject_unknown(self.name, options, OPTIONS)
        self.idle_without_gpu = opt_bool(options, "idle_without_gpu", False)
        self.legacy_names = opt_bool(options, "legacy_names", True)
        self.hostname = opt_str(options, "hostname", socket.gethostname())
        self._nvml_override = nvml
        self._nvml: Any = None
        self._lock = threading.Lock()  # NVML init/shutdown must not race two scrapes
        self._errors = ErrorLogger(log, "gpu exporter")
        self._reason: str | None = None
        self._init()

    def _init(self) -> None:
        """Initialise NVML if not yet done; sets ``_reason`` when it cannot be used."""
        if self._nvml is not None:
            return
        try:
            nvml = self._nvml_override if self._nvml_override is not None else _load_nvml()
        except ImportError:
            self._fail("the pynvml module is not installed (pip install nvidia-ml-py)")
            return
        try:
            nvml.nvmlInit()
        except Exception as err:  # NVMLError subclasses are generated per error code
            self._fail(f"NVML unavailable (no NVIDIA driver?): {_text(err) or type(err).__name__}")
            return
        self._nvml = nvml
        self._reason = None

    def _fail(self, reason: str) -> None:
        self._reason = reason
        self._errors.failed(reason)

    def startup_error(self) -> str | None:
        """Why a standalone server should not start, or None (GPU found, or idling allowed)."""
        if self.idle_without_gpu:
            return None
        with self._lock:
            self._init()
            if (
                self._reason is None
                and self._nvml is not None
                and self._nvml.nvmlDeviceGetCount() == 0
            ):
                self._fail("NVML found no GPU")
        return self._reason

    def describe(self) -> list[Metric]:
        return []

    def close(self) -> None:
        with self._lock:
            if self._nvml is not None:
                try:
                    self._nvml.nvmlShutdown()
                except Exception as err:
                    log.debug("nvmlShutdown failed: %s", err)
                self._nvml = None

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            self._init()
            metrics: list[Metric] = []
            count = 0
            if self._nvml is not None:
                try:
                    count, metrics = self._devices(self._nvml)
                    if count == 0:
                        self._fail("NVML found no GPU")
                    else:
                        self._reason = None
                        self._errors.ok()
                except Exception as err:
                    self._fail(f"NVML query failed: {_text(err) or type(err).__name__}")
                    metrics = []
        yield up_metric(
            "vigil_gpu_exporter_up",
            "Whether NVML answered and found at least one GPU.",
            self._reason is None,
        )
        devices = Family("vigil_gpu_exporter_devices", "GPUs NVML reports.", "gauge")
        devices.add(count)
        yield devices.metric
        if self._reason is not None:
            error = Family(
                "vigil_gpu_exporter_error", "Why GPU metrics are unavailable.", "gauge", ["reason"]
            )
            error.add(1.0, self._reason)
            yield error.metric
        yield from metrics

    def _devices(self, nvml: Any) -> tuple[int, list[Metric]]:
        fams = [Family(name, doc, kind, LABELS) for name, kind, doc, _ in _FIELDS]
        legacy_labels = ["gpu_id", "gpu_name"]
        legacy = {
            "util": Family(
                "gpu_utilization_percent", "GPU utilization percentage", "gauge", legacy_labels
            ),
            "temp": Family(
                "gpu_temperature_celsius", "GPU temperature in Celsius", "gauge", legacy_labels
            ),
            "total": Family(
                "gpu_memory_total_bytes", "Total GPU memory in bytes", "gauge", legacy_labels
            ),
            "used": Family(
                "gpu_memory_allocated_bytes",
                "GPU memory in use in bytes (all processes)",
                "gauge",
                legacy_labels,
            ),
        }
        try:
            driver = _text(nvml.nvmlSystemGetDriverVersion())
        except Exception:
            driver = ""
        count = int(nvml.nvmlDeviceGetCount())
        for index in range(count):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            model = _text(nvml.nvmlDeviceGetName(handle))
            labels = [
                str(index),
                _text(nvml.nvmlDeviceGetUUID(handle)),
                f"nvidia{self._optional(nvml.nvmlDeviceGetMinorNumber, handle, index)}",
                model,
                self.hostname,
                _text(self._optional(lambda h: nvml.nvmlDeviceGetPciInfo(h).busId, handle, "")),
                driver,
            ]
            values: dict[str, float] = {}
            for fam, (name, _, _, read) in zip(fams, _FIELDS, strict=True):
                try:
                    value = float(read(nvml, handle))
                except Exception:
                    continue  # NotSupported on this GPU (e.g. energy on older boards)
                values[name] = value
                fam.add(value, *labels)
            if self.legacy_names:
                legacy_values = (str(index), model)
                if "DCGM_FI_DEV_GPU_UTIL" in values:
                    legacy["util"].add(values["DCGM_FI_DEV_GPU_UTIL"], *legacy_values)
                if "DCGM_FI_DEV_GPU_TEMP" in values:
                    legacy["temp"].add(values["DCGM_FI_DEV_GPU_TEMP"], *legacy_values)
                if "DCGM_FI_DEV_FB_TOTAL" in values:
                    legacy["total"].add(values["DCGM_FI_DEV_FB_TOTAL"] * MIB, *legacy_values)
                    legacy["used"].add(values["DCGM_FI_DEV_FB_USED"] * MIB, *legacy_values)
        metrics = [f.metric for f in fams if f]
        if self.legacy_names:
            metrics += [f.metric for f in legacy.values() if f]
        return count, metrics

    @staticmethod
    def _optional(fn: Callable[[Any], Any], handle: Any, default: Any) -> Any:
        try:
            return fn(handle)
        except Exception:
            return default


def create(options: Options) -> GpuExporter:
    """Factory for the exporter registry."""
    return GpuExporter(options)
