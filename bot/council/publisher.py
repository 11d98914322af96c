"""What the engine needs from the place councils are shown (Discord, or a test double)."""

from __future__ import annotations

from typing import Protocol

from bot.council.seats import Seat
from storage.models import Council


class CouncilPublisher(Protocol):
    async def post_member_message(self, council: Council, seat: Seat, content: str) -> list[int]:
        """Show a member's words under its own name; return the ids of the messages created."""
        ...

    async def post_notice(self, council: Council, text: str) -> list[int]:
        """Show a short system notice in the council's thread; return the message ids."""
        ...

    async def council_finished(self, council: Council) -> None:
        """The council reached `concluded` or `failed`; `council.end_reason` says why."""
        ...
