"""A phone and a laptop keep a to-do list offline and sync through tablesync's server.

Run by ``scripts/demo``: it starts ``tablesync serve`` on a SQLite file only after the phone
has already worked offline, then shows push, pull, a conflict and its resolution.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tablesync import Client, PushFailedError, Query, RetryPolicy, SQLiteStore

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    """A TCP port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def running_server(workdir: Path, port: int) -> Iterator[str]:
    """Start ``tablesync serve`` on a SQLite file and stop it afterwards."""
    command = [
        str(Path(sys.executable).with_name("tablesync")),
        "serve",
        "--database",
        f"sqlite:///{workdir / 'server.db'}",
        "--config",
        str(HERE / "todo.toml"),
        "--port",
        str(port),
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise SystemExit("the server did not start")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def show(device: str, client: Client) -> None:
    """Print a device's local rows and its queue length."""
    rows = client.sync_table("todoitem").query(Query(order_by="text"))
    listed = ", ".join(f"{row['text']}{' ✓' if row.get('done') else ''}" for row in rows)
    print(f"  {device:7} [{listed}]  pending: {len(client.pending_operations)}")


def main(workdir: Path) -> None:
    """Run the story with databases in ``workdir``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    offline_retry = RetryPolicy(max_attempts=1)  # the demo should not wait on a dead network
    phone = Client(url, store=SQLiteStore(workdir / "phone.db"), retry=offline_retry)
    laptop = Client(url, store=SQLiteStore(workdir / "laptop.db"))
    phone_todo = phone.sync_table("todoitem")

    print("1. The phone works offline: the server is not even running.")
    milk = phone_todo.insert({"text": "milk", "done": False, "priority": 1})
    phone_todo.insert({"text": "bread", "done": False, "priority": 2})
    phone_todo.update({**milk, "done": True})
    show("phone", phone)
    try:
        phone.push()
    except PushFailedError as failed:
        print(f"   push: {failed.result.status.name}; the queue is kept")

    with running_server(workdir, port):
        print(f"2. The server is up at {url} (SQLite file {workdir / 'server.db'}).")
        result = phone.push()
        print(f"   phone push: {result.status.name}, {result.completed} operations sent")
        laptop_todo = laptop.sync_table("todoitem")
        pulled = laptop_todo.pull(query_id="all")
        print(f"   laptop pull: {pulled.upserted} rows")
        show("phone", phone)
        show("laptop", laptop)

        print("3. Both edit 'bread' offline; the laptop syncs first.")
        bread_phone = next(r for r in phone_todo.query() if r["text"] == "bread")
        bread_laptop = laptop_todo.get(bread_phone["id"])
        assert bread_laptop is not None
        laptop_todo.update({**bread_laptop, "text": "bread (rye)"})
        phone_todo.update({**bread_phone, "text": "bread (white)"})
        laptop.push()
        try:
            phone.push()
        except PushFailedError as failed:
            for error in failed.result.errors:
                ours, theirs = error.item or {}, error.server_item or {}
                print(
                    f"   phone push: conflict {error.status}: ours {ours.get('text')!r}, "
                    f"server {theirs.get('text')!r} -> keep the server's copy"
                )
                error.cancel_and_update(theirs)

        print("4. Everyone syncs and converges.")
        phone.sync("todoitem")
        laptop.sync("todoitem")
        show("phone", phone)
        show("laptop", laptop)
        phone_rows = phone_todo.query(Query(order_by="id"))
        laptop_rows = laptop_todo.query(Query(order_by="id"))
        same = [(r["id"], r["text"], r["version"]) for r in phone_rows] == [
            (r["id"], r["text"], r["version"]) for r in laptop_rows
        ]
        print(f"   devices identical: {same}")
        if not same:
            raise SystemExit("the devices did not converge")
    phone.close()
    laptop.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, help="keep the databases here (default: temp dir)")
    args = parser.parse_args()
    if args.workdir:
        shutil.rmtree(args.workdir, ignore_errors=True)
        args.workdir.mkdir(parents=True)
        main(args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="tablesync-demo-") as tmp:
            main(Path(tmp))
