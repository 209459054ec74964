"""The benchmark data set: N movie-like rows with ids ``id-000000`` ..., and ways to load it.

Rows are loaded straight into the databases (not through the API) so that seeding 100,000 rows
takes seconds; each row gets a unique ``updatedAt`` one millisecond apart, in the past.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

TABLE = "bench"
COLUMNS = {
    "title": "string",
    "year": "integer",
    "rating": "string",
    "duration": "integer",
    "bestPictureWinner": "boolean",
}
RATINGS = ("G", "PG", "PG-13", "R", "NC-17", None)
_CHUNK = 2000


def user_values(n: int) -> dict[str, Any]:
    """The user columns of row ``n`` (deterministic)."""
    return {
        "title": f"Movie {n:06d}",
        "year": 1920 + n % 100,
        "rating": RATINGS[n % len(RATINGS)],
        "duration": 60 + n % 140,
        "bestPictureWinner": n % 97 == 0,
    }


def row_id(n: int) -> str:
    """The id of row ``n``."""
    return f"id-{n:06d}"


def _base_stamp(rows: int) -> dt.datetime:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return now - dt.timedelta(milliseconds=rows + 60_000)


def _chunks(rows: int) -> Iterator[range]:
    for start in range(0, rows, _CHUNK):
        yield range(start, min(rows, start + _CHUNK))


def config_toml(
    database: str, path: Path, tables: Sequence[str] = (TABLE,), page_size: int | None = None
) -> Path:
    """Write a ``tablesync serve --config`` file serving ``tables`` on ``database``."""
    columns = "\n".join(f'{name} = "{kind}"' for name, kind in COLUMNS.items())
    text = f'[server]\ndatabase = "{database}"\n'
    for table in tables:
        text += f"\n[tables.{table}]\n"
        if page_size is not None:
            text += f"page_size = {page_size}\nmax_top = {max(page_size, 1000)}\n"
        text += f"\n[tables.{table}.columns]\n{columns}\n"
    path.write_text(text)
    return path


def seed_tablesync(database: str, rows: int, table: str = TABLE) -> None:
    """Create the schema with ``create_app`` and bulk-insert ``rows`` rows."""
    from tablesync.server import Table, create_app

    app = create_app(database, tables=[Table(table, columns=COLUMNS)])  # type: ignore[arg-type]
    service = app.state.tablesync
    state = service.schema.get(table.lower())
    engine = service.schema.engine
    if engine.dialect.name == "sqlite":
        engine.dispose()
        _seed_sqlite_file(database.removeprefix("sqlite:///"), table, rows)
        return
    _seed_with_sqlalchemy(engine, state.table, rows)


def _seed_sqlite_file(path: str, table: str, rows: int) -> None:
    """Straight sqlite3 (5x faster than SQLAlchemy for a million rows), in the server's formats.

    ``UtcDateTime`` stores fixed-width ISO text with a ``Z``; booleans are 0/1.
    """
    import sqlite3

    from tablesync.protocol import format_datetime
    from tablesync.server._clock import new_version

    names = ["id", *COLUMNS, "createdAt", "updatedAt", "version", "deleted"]
    quoted = ", ".join(f'"{name}"' for name in names)
    sql = f'INSERT INTO "{table}" ({quoted}) VALUES ({", ".join("?" * len(names))})'
    base = _base_stamp(rows)
    conn = sqlite3.connect(path)
    try:
        for chunk in _chunks(rows):
            batch = []
            for n in chunk:
                stamp = format_datetime(base + dt.timedelta(milliseconds=n))
                values = user_values(n)
                values["bestPictureWinner"] = int(values["bestPictureWinner"])
                batch.append((row_id(n), *values.values(), stamp, stamp, new_version(), 0))
            conn.executemany(sql, batch)
            conn.commit()
        conn.execute("ANALYZE")
        conn.commit()
    finally:
        conn.close()


def _seed_with_sqlalchemy(engine: Any, table: Any, rows: int) -> None:
    from tablesync.server._clock import new_version

    base = _base_stamp(rows)
    try:
        for chunk in _chunks(rows):
            batch = []
            for n in chunk:
                stamp = base + dt.timedelta(milliseconds=n)
                batch.append(
                    {
                        "id": row_id(n),
                        **user_values(n),
                        "createdAt": stamp,
                        "updatedAt": stamp,
                        "version": new_version(),
                        "deleted": False,
                    }
                )
            with engine.begin() as conn:
                conn.execute(table.insert(), batch)
        with engine.begin() as conn:
            conn.exec_driver_sql(f'ANALYZE "{table.name}"')
    finally:
        engine.dispose()


def seed_node(url: str, rows: int) -> None:
    """Create the Node server's table through its API, then bulk-load through its test route.

    The Node server stores dates as ISO text and ``version`` as an integer counter in text.
    """
    headers = {"ZUMO-API-VERSION": "2.0.0"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
        # The first insert makes the dynamic schema create the columns with their types.
        first = http.post(f"/tables/{TABLE}", json={"id": row_id(0), **user_values(0)})
        first.raise_for_status()
        base = _base_stamp(rows)
        for chunk in _chunks(rows):
            batch = [_node_row(n, base) for n in chunk if n > 0]
            if batch:
                http.post(f"/_interop/bulk/{TABLE}", json=batch).raise_for_status()


def _node_row(n: int, base: dt.datetime) -> dict[str, Any]:
    stamp = (base + dt.timedelta(milliseconds=n)).isoformat(timespec="milliseconds")
    stamp = stamp.replace("+00:00", "Z")
    values = user_values(n)
    values["bestPictureWinner"] = int(values["bestPictureWinner"])
    return {
        "id": row_id(n),
        **values,
        "createdAt": stamp,
        "updatedAt": stamp,
        "version": "1",
        "deleted": 0,
    }
