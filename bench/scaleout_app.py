"""The app the scale-out benchmark serves: ``uvicorn scaleout_app:build --factory``.

``tablesync serve`` always uses the strict clock; the benchmark needs the naive one beside
it, so it builds the app itself from ``SCALEOUT_DATABASE`` and ``SCALEOUT_STRICT``.
"""

from __future__ import annotations

import os

from _seed import COLUMNS, TABLE
from starlette.applications import Starlette

from tablesync.server import Table, create_app


def build() -> Starlette:
    """The ``bench`` table on ``SCALEOUT_DATABASE``, strict clock unless ``SCALEOUT_STRICT=0``."""
    strict = os.environ.get("SCALEOUT_STRICT", "1") != "0"
    table = Table(TABLE, columns=COLUMNS)  # type: ignore[arg-type]
    return create_app(os.environ["SCALEOUT_DATABASE"], tables=[table], strict_clock=strict)
