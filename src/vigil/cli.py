"""The `vigil` command line. Commands only: each one hands off to a subsystem."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from vigil import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vigil")
def main() -> None:
    """Vigil: Prometheus-compatible metrics, PromQL and alerting in one process.

    Start a server with `vigil up`; everything else checks, imports or tests.
    """


@main.command()
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML config (Prometheus syntax plus a `vigil:` section). Default: built-in.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the store keeps its data. Default: ./data (or vigil.data_dir).",
)
@click.option(
    "--listen",
    metavar="HOST:PORT",
    help="Address to serve HTTP on. Default: 127.0.0.1:9090 (loopback only).",
)
@click.option(
    "--retention-time",
    metavar="DURATION",
    help="Delete data older than this, e.g. 15d, 90d, 1y. Default: 15d.",
)
@click.option(
    "--retention-size",
    metavar="SIZE",
    help="Keep blocks under this total size, e.g. 10GB. Default: unlimited.",
)
@click.option(
    "--alertmanager-config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Alertmanager config: run the notification pipeline in-process (API v2 on the same address).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def up(
    config_file: Path | None,
    data_dir: Path | None,
    listen: str | None,
    retention_time: str | None,
    retention_size: str | None,
    alertmanager_config: Path | None,
    log_level: str,
) -> None:
    """Start Vigil: scrape, store and serve until interrupted (Ctrl-C).

    Reloads its config on SIGHUP or `POST /-/reload`.
    """
    from vigil.app import ServerOptions, run_server

    opts = ServerOptions(
        config_file=config_file,
        data_dir=data_dir,
        listen=listen,
        retention_time=retention_time,
        retention_size=retention_size,
        log_level=log_level,
        alertmanager_config=alertmanager_config,
    )
    sys.exit(run_server(opts))


@main.group()
def check() -> None:
    """Validate configs and expositions (promtool-compatible exit codes)."""


@check.command("config")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def check_config(files: tuple[Path, ...]) -> None:
    """Check Vigil/Prometheus config FILES; exit 1 if any is invalid."""
    from vigil.config import ConfigError, load_config_file

    failed = False
    for path in files:
        try:
            loaded = load_config_file(path)
        except ConfigError as exc:
            failed = True
            click.echo(f"FAILED: {exc}", err=True)
            continue
        except OSError as exc:
            failed = True
            click.echo(f"FAILED: {path}: {exc.strerror or exc}", err=True)
            continue
        for warning in loaded.warnings:
            click.echo(f"  WARNING: {warning}", err=True)
        click.echo(f"SUCCESS: {path} is valid Vigil/Prometheus config syntax")
    sys.exit(1 if failed else 0)


@check.command("rules")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--lint-fatal", is_flag=True, help="Exit 3 when lint findings exist.")
def check_rules(files: tuple[Path, ...], lint_fatal: bool) -> None:
    """Check Prometheus rule FILES (promtool's messages and exit codes)."""
    from vigil.rules.check import check_rules as check

    sys.exit(check([str(f) for f in files], lint_fatal=lint_fatal))


@check.command("alertmanager-config")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
def check_alertmanager_config(files: tuple[Path, ...]) -> None:
    """Check Alertmanager config FILES (stdin when none), as `amtool check-config`."""
    from vigil.alerting.check import check_config

    sys.exit(check_config([str(f) for f in files]))


@check.command("metrics")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["prometheus", "openmetrics"]),
    default="prometheus",
    show_default=True,
    help="Exposition format of stdin.",
)
def check_metrics(fmt: str) -> None:
    """Lint an exposition read from stdin.

    Exit codes as promtool: 0 fine, 1 does not parse, 3 lint findings only.
    """
    from vigil.scrape.lint import check_metrics as lint

    code, messages = lint(sys.stdin.buffer.read(), fmt)
    for message in messages:
        click.echo(message, err=True)
    sys.exit(code)


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Data dir to write blocks into (no server may be running on it).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "openmetrics", "prometheus"]),
    default="auto",
    show_default=True,
)
def import_(file: Path, data_dir: Path, fmt: str) -> None:
    """Backfill FILE (OpenMetrics or Prometheus text with timestamps) into a data dir."""
    from vigil.app import import_into_data_dir

    sys.exit(import_into_data_dir(file, data_dir, fmt))


@main.command("promqltest")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def promqltest(files: tuple[Path, ...]) -> None:
    """Run Prometheus promqltest scripts against Vigil's engine."""
    from vigil.promql.promqltest import main as run

    sys.exit(run([str(f) for f in files]))


@main.command("alertmanager")
@click.option(
    "--config",
    "config_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Alertmanager configuration file (Alertmanager's own format).",
)
@click.option(
    "--data-dir",
    default="./data-alertmanager",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where silences and the notification log are kept.",
)
@click.option("--listen", default="127.0.0.1:9093", show_default=True, metavar="HOST:PORT")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def alertmanager(config_file: Path, data_dir: Path, listen: str, log_level: str) -> None:
    """Run only the Alertmanager-compatible notification pipeline (API v2, amtool works)."""
    from vigil.alerting.server import run_standalone

    sys.exit(run_standalone(config_file, data_dir, listen, log_level))


@main.command("exporter")
@click.argument("name")
@click.option("--listen", default="127.0.0.1:9100", show_default=True, metavar="HOST:PORT")
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Exporter option, repeatable (e.g. --option addr=127.0.0.1:6379).",
)
def exporter(name: str, listen: str, options: tuple[str, ...]) -> None:
    """Run one built-in exporter standalone: system, process, redis, postgres, gpu."""
    from vigil.exporters.standalone import serve

    parsed: dict[str, str] = {}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--option")
        parsed[key] = value
    serve(name, listen, parsed)


@main.group("test")
def test_group() -> None:
    """Test routing decisions and rules without running a server."""


@test_group.command("rules")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def test_rules(files: tuple[Path, ...]) -> None:
    """Run rule unit tests in promtool's format (input_series, alert_rule_test, ...)."""
    from vigil.rules.unittest import test_rules as run

    sys.exit(run([str(f) for f in files]))


@test_group.command("routes")
@click.argument("config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("labels", nargs=-1)
@click.option(
    "--verify.receivers",
    "verify",
    default=None,
    help="Comma-separated receivers expected; exit 1 if they differ.",
)
def test_routes(config_file: Path, labels: tuple[str, ...], verify: str | None) -> None:
    """Print the receivers an alert with LABELS (name=value ...) is routed to.

    Same output as `amtool config routes test`.
    """
    from vigil.alerting.config import load_config_file
    from vigil.alerting.route import test_routes as route_test
    from vigil.config.loader import ConfigError

    pairs = {}
    for item in labels:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not name=value", param_hint="LABELS")
        pairs[name] = value.strip('"')
    try:
        config = load_config_file(config_file)
    except ConfigError as exc:
        click.echo(f"FAILED: {exc}", err=True)
        sys.exit(1)
    receivers = ",".join(route_test(config, pairs))
    click.echo(receivers)
    if verify is not None and verify != receivers:
        click.echo("WARNING: Expected receivers did not match resolved receivers.", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
