"""What the engine needs from the place councils are shown (Discord, or a test double)."""

from __future__ import annotations

from typing import Protocol

from bot.council.seats import Seat
from bot.governance.gate import Policy
from storage.models import Council, Escalation


class PlaceGone(Exception):
    """The council's thread is gone or closed to the bot: nothing more can be shown there."""


class CouncilPublisher(Protocol):
    async def post_member_message(
        self, council: Council, seat: Seat, content: str, *, recovering: bool = False
    ) -> list[int]:
        """Show a member's words under its own name; return the ids of the messages created.

        With `recovering`, the words may already be there (the process died between posting and
        recording): look in the thread's recent history first and post only what is missing.
        """
        ...

    async def post_notice(self, council: Council, text: str, *, recovering: bool = False) -> list[int]:
        """Show a short system notice in the council's thread; return the message ids."""
        ...

    async def council_finished(self, council: Council) -> None:
        """The council reached `concluded` or `failed`; `council.end_reason` says why."""
        ...

    async def post_escalation(self, council: Council, escalation: Escalation, policy: Policy) -> tuple[int, int] | None:
        """Put an escalation before the moderators; (channel id, message id), or None without a channel."""
        ...

    async def escalation_decided(self, council: Council, escalation: Escalation) -> None:
        """Show the outcome on the escalation."""
        ...

    async def delete_messages(self, council: Council, message_ids: list[int]) -> None:
        """Remove messages (a withheld member reply) from the thread."""
        ...
