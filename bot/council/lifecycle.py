"""The few lifecycle operations the parts of the engine may ask for, without holding the engine.

Implemented by the council runners (bot/council/running.py): a part that must wait for a council to run,
let it go on, or end it asks through this interface, typed as a Protocol so it imports nothing that builds it.
"""

from __future__ import annotations

from typing import Protocol

from bot.council.publisher import PermissionMissing
from storage.models import Council


class CouncilEnded(Exception):
    """The council is no longer active (concluded, failed): its runner stops quietly."""


class CouncilLifecycle(Protocol):
    async def ready(self, council_id: int) -> Council:
        """The council once it may take its next turn (it waits while paused, held or halted); raises
        CouncilEnded once it has ended."""
        ...

    def is_running(self, council_id: int) -> bool:
        """Whether this process runs the council now."""
        ...

    def is_ending(self, council_id: int) -> bool:
        """Whether the council's runner is being stopped because the council is concluded."""
        ...

    def continue_council(self, council_id: int) -> None:
        """A council that was waiting (paused, held, halted) runs again: let it take its next turn."""
        ...

    async def conclude(self, council_id: int, reason: str, *, rate: bool = True) -> bool:
        """End the council now; whether this call ended it."""
        ...

    async def end_without_thread(self, council_id: int) -> None:
        """The council's thread is gone: it concludes, its transcript kept."""
        ...

    async def pause_for(self, council_id: int, missing: PermissionMissing) -> bool:
        """The bot lost a permission the council needs: pause it and say which; whether it waits now."""
        ...
