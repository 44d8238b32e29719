"""GPU exporter: the no-NVML path for real; metric shapes through a stand-in NVML.

CI machines have no NVIDIA driver, so the real library path tested here is the
one that fails; the device-reading code runs against a small stand-in module that
answers like pynvml does (the real pynvml cannot run without a GPU).
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest
from exporter_helpers import scrape, value, values

from vigil.exporters import create
from vigil.exporters.gpu import GpuExporter


def _real_gpu_present() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return False
    pynvml.nvmlShutdown()
    return True


no_gpu = pytest.mark.skipif(_real_gpu_present(), reason="this machine has a GPU")


@no_gpu
def test_without_nvml_reports_down_with_reason(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="vigil.exporters.gpu"):
        exporter = create("gpu")
        s = scrape(exporter)
        scrape(exporter)
    exporter.close()
    assert value(s, "vigil_gpu_exporter_up") == 0
    assert value(s, "vigil_gpu_exporter_devices") == 0
    (reason,) = values(s, "vigil_gpu_exporter_error")
    assert "NVML" in dict(reason)["reason"] or "pynvml" in dict(reason)["reason"]
    assert not [k for k in s if k[0].startswith("DCGM_")]
    assert len(caplog.records) == 1, "logged once, not on every scrape"


@no_gpu
def test_startup_error_unless_idle() -> None:
    assert create("gpu").startup_error()
    assert create("gpu", {"idle_without_gpu": "true"}).startup_error() is None


class FakeNVMLError(Exception):
    pass


class FakeNVML:
    """Answers like pynvml for two GPUs; the second lacks energy and encoder support."""

    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, gpus: int = 2) -> None:
        self.gpus = gpus
        self.initialised = False

    def nvmlInit(self) -> None:
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.initialised = False

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54.15"

    def nvmlDeviceGetCount(self) -> int:
        return self.gpus

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, h: int) -> bytes:
        return b"NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetUUID(self, h: int) -> str:
        return f"GPU-0000000{h}"

    def nvmlDeviceGetMinorNumber(self, h: int) -> int:
        return h

    def nvmlDeviceGetPciInfo(self, h: int) -> Any:
        return SimpleNamespace(busId=f"00000000:0{h}:00.0")

    def nvmlDeviceGetClockInfo(self, h: int, kind: int) -> int:
        return 1980 if kind == self.NVML_CLOCK_SM else 2619

    def nvmlDeviceGetTemperature(self, h: int, kind: int) -> int:
        return 40 + h

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        return 123456  # mW

    def nvmlDeviceGetTotalEnergyConsumption(self, h: int) -> int:
        if h == 1:
            raise FakeNVMLError("Not Supported")
        return 987654321

    def nvmlDeviceGetPcieReplayCounter(self, h: int) -> int:
        return 0

    def nvmlDeviceGetUtilizationRates(self, h: int) -> Any:
        return SimpleNamespace(gpu=87, memory=42)

    def nvmlDeviceGetEncoderUtilization(self, h: int) -> list[int]:
        if h == 1:
            raise FakeNVMLError("Not Supported")
        return [5, 167000]

    def nvmlDeviceGetDecoderUtilization(self, h: int) -> list[int]:
        return [0, 167000]

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        total = 80 * 1024**3
        return SimpleNamespace(total=total, used=10 * 1024**3, free=total - 10 * 1024**3)


def test_dcgm_names_labels_and_units() -> None:
    s = scrape(GpuExporter({"hostname": "gpu-node-1"}, nvml=FakeNVML()))
    labels = {
        "gpu": "0",
        "UUID": "GPU-00000000",
        "device": "nvidia0",
        "modelName": "NVIDIA H100 80GB HBM3",
        "Hostname": "gpu-node-1",
        "pci_bus_id": "00000000:00:00.0",
        "DCGM_FI_DRIVER_VERSION": "550.54.15",
    }
    assert value(s, "vigil_gpu_exporter_up") == 1
    assert value(s, "vigil_gpu_exporter_devices") == 2
    assert value(s, "DCGM_FI_DEV_GPU_UTIL", **labels) == 87
    assert value(s, "DCGM_FI_DEV_MEM_COPY_UTIL", **labels) == 42
    assert value(s, "DCGM_FI_DEV_FB_USED", **labels) == 10 * 1024
    assert value(s, "DCGM_FI_DEV_FB_FREE", **labels) == 70 * 1024
    assert value(s, "DCGM_FI_DEV_GPU_TEMP", **labels) == 40
    assert value(s, "DCGM_FI_DEV_POWER_USAGE", **labels) == pytest.approx(123.456)
    assert value(s, "DCGM_FI_DEV_SM_CLOCK", **labels) == 1980
    assert value(s, "DCGM_FI_DEV_MEM_CLOCK", **labels) == 2619
    assert value(s, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", **labels) == 987654321
    assert len(values(s, "DCGM_FI_DEV_GPU_UTIL")) == 2
    # Unsupported fields are left out for that GPU, not reported as 0.
    assert len(values(s, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION")) == 1
    assert len(values(s, "DCGM_FI_DEV_ENC_UTIL")) == 1
    # The seeds' hand-written exporter names, for their rules and dashboards.
    seed = {"gpu_id": "1", "gpu_name": "NVIDIA H100 80GB HBM3"}
    assert value(s, "gpu_temperature_celsius", **seed) == 41
    assert value(s, "gpu_memory_total_bytes", **seed) == 80 * 1024**3
    assert value(s, "gpu_memory_allocated_bytes", **seed) == 10 * 1024**3
    assert value(s, "gpu_utilization_percent", **seed) == 87


def test_legacy_names_can_be_turned_off() -> None:
    s = scrape(GpuExporter({"legacy_names": "false"}, nvml=FakeNVML()))
    assert not [k for k in s if k[0].startswith("gpu_")]


def test_zero_gpus_is_down() -> None:
    exporter = GpuExporter({}, nvml=FakeNVML(gpus=0))
    s = scrape(exporter)
    assert value(s, "vigil_gpu_exporter_up") == 0
    assert value(s, "vigil_gpu_exporter_error", reason="NVML found no GPU") == 1
    assert exporter.startup_error() == "NVML found no GPU"


def test_close_shuts_nvml_down() -> None:
    nvml = FakeNVML()
    exporter = GpuExporter({}, nvml=nvml)
    assert nvml.initialised
    exporter.close()
    assert not nvml.initialised
