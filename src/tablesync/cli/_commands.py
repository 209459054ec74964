"""The ``tablesync`` click group: ``serve`` and ``purge-tombstones``."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any

import click

from .._exceptions import ServerConfigError
from .._version import __version__

DEV_DATABASE = "sqlite:///tablesync.db"
#: What each server process serves, built from the environment that ``serve`` sets.
APP = "tablesync.server._factory:app_from_environment"
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="tablesync")
def cli() -> None:
    """tablesync: offline data sync for Python (server and client tools)."""


@cli.command()
@click.option(
    "--database", metavar="URL", help="Database URL (sqlite:///file.db, postgresql://...)."
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Tables and settings from a TOML file.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port to listen on (0 picks a free one).",
)
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Processes."
)
@click.option(
    "--dynamic-schema/--no-dynamic-schema",
    default=None,
    help="Create tables and columns from the data clients send (default: on in development mode).",
)
@click.option(
    "--shutdown-timeout",
    default=30,
    show_default=True,
    type=click.IntRange(1, 3600),
    help="Seconds to let in-flight requests finish on shutdown.",
)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="Log one line per request (a reverse proxy in front often logs them already).",
)
def serve(
    database: str | None,
    config_path: Path | None,
    host: str,
    port: int,
    workers: int,
    dynamic_schema: bool | None,
    shutdown_timeout: int,
    access_log: bool,
) -> None:
    """Serve the /tables API with uvicorn.

    With no options: development mode on ./tablesync.db with a dynamic schema.
    """
    import uvicorn

    from ..server._factory import CONFIG_VAR, DATABASE_VAR, DYNAMIC_VAR, app_from_environment
    from . import _workers

    development = database is None and config_path is None
    if development:
        database = DEV_DATABASE
        dynamic_schema = True if dynamic_schema is None else dynamic_schema
        click.echo(
            f"Development mode: database {database}, dynamic schema "
            f"{'on' if dynamic_schema else 'off'}, http://{host}:{port} "
            "(use --database/--config for production)",
            err=True,
        )
    _set_env(DATABASE_VAR, database)
    _set_env(CONFIG_VAR, str(config_path.resolve()) if config_path else None)
    _set_env(DYNAMIC_VAR, None if dynamic_schema is None else str(dynamic_schema).lower())
    try:
        # Fail fast, in the parent, on a bad config or database (and create the schema once).
        app_from_environment().state.tablesync.schema.engine.dispose()
    except ServerConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    settings: dict[str, Any] = {
        "factory": True,
        "http": _http_protocol(),
        "host": host,
        "port": port,
        "timeout_graceful_shutdown": shutdown_timeout,
        "log_level": "info",
        "access_log": access_log,
    }
    if workers > 1 and _workers.supported():
        _workers.serve_workers(uvicorn.Config(APP, **settings), workers)
    elif workers == 1:
        _workers.run_server(uvicorn.Config(APP, **settings))
    else:
        uvicorn.run(APP, workers=workers, **settings)


def _http_protocol() -> Any:
    """The HTTP protocol: httptools with a deadline for each request's headers (``_protocol``)."""
    try:
        from ._protocol import HeaderDeadlineProtocol
    except ImportError:  # no httptools: uvicorn's own choice, without the deadline
        return "auto"
    return HeaderDeadlineProtocol


def _set_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def parse_duration(text: str) -> dt.timedelta:
    """``30d``, ``12h``, ``90m``, ``45s`` or ``2w`` as a timedelta."""
    match = _DURATION.match(text)
    if match is None:
        raise click.BadParameter(f"{text!r} is not a duration such as 30d, 12h, 90m or 2w")
    return dt.timedelta(**{_UNITS[match[2]]: int(match[1])})


@cli.command("purge-tombstones")
@click.option("--database", metavar="URL", help="Database URL (default: the config's).")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the database URL from this TOML file.",
)
@click.option(
    "--table", "tables", multiple=True, required=True, help="Table to purge (repeatable)."
)
@click.option("--older-than", required=True, help="Retention, e.g. 30d: keep newer tombstones.")
def purge_tombstones_command(
    database: str | None, config_path: Path | None, tables: tuple[str, ...], older_than: str
) -> None:
    """Delete soft-deleted rows older than a retention period.

    Clients offline for longer than the retention never learn about those deletions:
    pick a retention longer than any device stays offline.
    """
    from ..server import load_config, purge_tombstones

    retention = parse_duration(older_than)
    try:
        url = database or (load_config(config_path).database if config_path else None)
        if url is None:
            raise click.UsageError("give --database URL or a --config naming one")
        for table in tables:
            removed = purge_tombstones(url, table, retention)
            click.echo(f"{table}: {removed} tombstone(s) removed")
    except ServerConfigError as exc:
        raise click.ClickException(str(exc)) from exc
