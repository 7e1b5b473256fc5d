"""The ``dijk`` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dijk import __version__

app = typer.Typer(
    name="dijk",
    help="Dijk: an API security gateway. Start with `dijk demo`.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish)
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Check and document configuration files.", no_args_is_help=True)
app.add_typer(config_app, name="config")

try:  # sub-apps of later capabilities
    from dijk.cli.audit import audit_app

    app.add_typer(audit_app, name="audit")
except ImportError:  # pragma: no cover - present once the audit package lands
    pass

from dijk.cli.keys import keys_app  # noqa: E402 - sub-apps of the privacy capability
from dijk.cli.lint import lint  # noqa: E402 - the security-testing commands
from dijk.cli.privacy import breach_app, privacy_app  # noqa: E402
from dijk.cli.waf import waf_app  # noqa: E402

app.add_typer(privacy_app, name="privacy")
app.add_typer(waf_app, name="waf")
app.add_typer(breach_app, name="breach")
app.add_typer(keys_app, name="keys")
app.command("lint")(lint)

from dijk.cli.discover import discover_app  # noqa: E402 - sub-app of API discovery

app.add_typer(discover_app, name="discover")

from dijk.cli.admin import admin_app  # noqa: E402 - the dashboard's user helper

app.add_typer(admin_app, name="admin")


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"dijk {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Dijk: an API security gateway. Start with `dijk demo`."""


@app.command()
def serve(
    config: Annotated[Path, typer.Option("--config", "-c", help="Configuration file (YAML).")],
    worker: Annotated[int, typer.Option(hidden=True, help="Run as worker N (internal).")] = 0,
    worker_dir: Annotated[Path | None, typer.Option(hidden=True)] = None,
    ready_fd: Annotated[int, typer.Option(hidden=True)] = -1,
) -> None:
    """Run the gateway from a configuration file (SIGHUP reloads it)."""
    from dijk import logs
    from dijk.cli.run import run_gateway
    from dijk.config import ConfigError, load_config
    from dijk.proxy.workers import Supervisor, run_worker, worker_count

    try:
        loaded = load_config(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    logs.configure(loaded.logging.level, loaded.logging.format)
    count = worker_count(loaded.workers)
    try:
        if worker and worker_dir is not None:
            run_worker(str(config), worker, worker_dir, ready_fd)
        elif count > 1:
            raise typer.Exit(Supervisor(str(config), count).run())
        else:
            run_gateway(loaded, str(config))
    except OSError as exc:
        typer.echo(f"error: cannot start: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Gateway port.", min=1, max=65535)] = 8080,
    upstream_port: Annotated[
        int, typer.Option(help="Demo upstream (Polder Bank) port.", min=1, max=65535)
    ] = 8081,
    admin_port: Annotated[int, typer.Option(help="Admin listener port.", min=1, max=65535)] = 9090,
    data_dir: Annotated[Path, typer.Option(help="Where the demo keeps its state.")] = Path(".dijk"),
    print_config: Annotated[
        bool, typer.Option("--print-config", help="Print the demo configuration and exit.")
    ] = False,
    vulnerable: Annotated[
        bool,
        typer.Option(
            "--vulnerable",
            help="Serve 'Polder Bank, unsafe build' on --port instead: planted flaws, "
            "no gateway, loopback only (a target for `dijk scan`).",
        ),
    ] = False,
) -> None:
    """Run the Polder Bank demo API behind the gateway, with the admin listener."""
    from dijk import logs
    from dijk.cli.demo import demo_config_text, run_demo, run_vulnerable

    if print_config:
        typer.echo(demo_config_text(), nl=False)
        return
    if vulnerable:
        run_vulnerable(port)
        return
    logs.configure("info", "json")
    run_demo(port, upstream_port, admin_port, data_dir)


@config_app.command("validate")
def config_validate(
    file: Annotated[Path, typer.Argument(help="Configuration file to check.")],
    no_env: Annotated[
        bool,
        typer.Option(
            "--no-env",
            help="Ignore the environment: no DIJK_* overrides, and secrets named by *_env"
            " variables may be unset (CI without secrets).",
        ),
    ] = False,
) -> None:
    """Exit 0 if FILE is valid; else print `FILE:LINE: path: message` per problem, exit 1."""
    from dijk.config import ConfigError, load_config
    from dijk.config.environment import is_missing_variable
    from dijk.proxy.state import build_state

    try:
        config = load_config(file, use_env=not no_env)
        try:
            state = build_state(config, 0, str(file))
        except ConfigError as exc:
            if no_env and all(is_missing_variable(issue.message) for issue in exc.issues):
                state = None  # only secrets that are not set here: the file itself is valid
            else:
                raise
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    routes = len(config.routes)
    if state is not None:
        for target in state.upstreams.values():
            target.balancer.close()
    typer.echo(f"{file}: valid ({routes} route{'s' if routes != 1 else ''})")


@config_app.command("reference")
def config_reference() -> None:
    """Print the configuration reference (Markdown), generated from the typed models."""
    from dijk.config.reference import render_reference

    typer.echo(render_reference())


from dijk.cli.scan import scan_command  # noqa: E402 - the DAST command, listed after the rest

app.command("scan")(scan_command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
