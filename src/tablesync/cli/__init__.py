"""The ``tablesync`` command line (``pip install tablesync[cli]``)."""

from __future__ import annotations


def main() -> None:
    """Entry point of the ``tablesync`` command."""
    try:
        from ._commands import cli
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise SystemExit(
            f"The tablesync command needs its extras: pip install 'tablesync[cli,server]' ({exc})"
        ) from exc
    cli()
