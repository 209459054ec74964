"""Progress reports of push and pull, for progress bars and logs."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass


class SyncPhase(enum.StrEnum):
    """Which part of a sync a progress report is about."""

    PUSH = "push"
    PULL = "pull"


@dataclass(frozen=True, slots=True)
class SyncProgress:
    """One progress report.

    Example:
        >>> SyncProgress(SyncPhase.PULL, "todoitem", done=50, total=None)
        SyncProgress(phase=<SyncPhase.PULL: 'pull'>, table='todoitem', done=50, total=None)
    """

    phase: SyncPhase
    table: str | None
    """The table being pulled, or of the operation just pushed (``None`` at the start)."""
    done: int
    """Operations pushed, or items received, so far."""
    total: int | None
    """Operations to push (known up front); ``None`` for a pull, whose size is unknown."""


ProgressCallback = Callable[[SyncProgress], None]
"""Called with each :class:`SyncProgress`; it runs inline, so keep it quick."""


def report(callback: ProgressCallback | None, progress: SyncProgress) -> None:
    """Call ``callback`` if there is one."""
    if callback is not None:
        callback(progress)
