import subprocess
import sys

FORBIDDEN = (
    "vigil.tsdb", "vigil.promql", "vigil.web", "vigil.scrape", "vigil.storage",
    "vigil.alerting", "vigil.rules", "vigil.config", "numpy", "starlette",
    "fastapi", "opentelemetry", "prometheus_client", "psutil", "yaml",
)  # fmt: skip


def test_import_vigil_sdk_loads_nothing_of_the_server() -> None:
    code = (
        "import sys, vigil.sdk\n"
        "assert callable(vigil.sdk.__getattr__)\n"
        f"bad = sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r}))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_logging_and_health_do_not_pull_web_stacks() -> None:
    code = (
        "import sys\n"
        "from vigil import sdk\n"
        "sdk.setup_logging(service='x'); sdk.HealthChecker(); sdk.bind\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('starlette','fastapi','vigil.tsdb','numpy','opentelemetry')))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
