"""A process that writes to a store until it is killed (driven by test_crash_safety.py).

Usage: ``python -m tests.client.store.crash_worker <store path>``. The process is a fork
server, so that each worker starts in milliseconds with tablesync already imported: for each
line ``<seed>`` read on stdin it forks a worker and prints ``pid <pid>``; the worker prints
``ready`` once the store is open, then mixes local writes (table ``local``) with pulled pages
(table ``pulled``: page k holds rows ``p{k}-0`` … and stores the delta token ``k`` with them)
until it is killed; the server then prints ``exit <wait status>``.
"""

from __future__ import annotations

import faulthandler
import os
import random
import signal
import sys

from tablesync import QueueError
from tablesync.client._context import SyncContext, delta_token_key
from tablesync.client._sqlite_store import SQLiteStore

PAGE_SIZE = 50
TOKEN_KEY = delta_token_key("pulled", "all")


def pulled_page(page: int) -> list[dict[str, object]]:
    return [
        {"id": f"p{page}-{n}", "page": page, "updatedAt": "2024-01-01T00:00:00.000Z",
         "version": str(page), "deleted": False}
        for n in range(PAGE_SIZE)
    ]  # fmt: skip


def step(context: SyncContext, rng: random.Random, local: list[str], next_page: int) -> int:
    action = rng.random()
    if action < 0.15:
        context.apply_pulled_page(
            "pulled", pulled_page(next_page), delta_token=(TOKEN_KEY, str(next_page))
        )
        return next_page + 1
    if action < 0.45 or not local:
        local.append(context.insert("local", {"n": rng.random()})["id"])
    elif action < 0.5:
        local.extend(i["id"] for i in context.insert_many("local", [{"n": 1}, {"n": 2}]))
    elif action < 0.8:
        context.update("local", {"id": rng.choice(local), "n": rng.random()})
    else:
        item_id = rng.choice(local)
        try:
            context.delete("local", item_id)
        except QueueError:
            pass  # a second delete of the same item: refused, by design
        local.remove(item_id)
    return next_page


def say(line: str) -> None:
    # One write(2) per line: the fork server and its worker share the pipe, and a write this
    # small is atomic, so their lines never interleave.
    os.write(sys.stdout.fileno(), f"{line}\n".encode())


def work(path: str, seed: int) -> None:
    faulthandler.register(signal.SIGUSR1)  # the test asks for a stack dump if we hang
    rng = random.Random(seed)
    context = SyncContext(SQLiteStore(path))
    local = [item["id"] for item in context.query("local")]
    next_page = int(context.get_delta_token("pulled", "all") or 0) + 1
    say("ready")
    while True:
        next_page = step(context, rng, local, next_page)


def main() -> None:
    path = sys.argv[1]
    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            try:
                work(path, int(line))
            finally:
                os._exit(1)  # never return into the fork server's loop
        say(f"pid {pid}")
        _, status = os.waitpid(pid, 0)
        say(f"exit {status}")


if __name__ == "__main__":
    main()
