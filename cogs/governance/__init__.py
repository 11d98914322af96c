"""The /governance commands, the escalation buttons, and "Report to moderators"."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.governance._cog import GovernanceCog

if TYPE_CHECKING:
    from bot.app import CouncilBot


async def setup(bot: CouncilBot) -> None:
    await bot.add_cog(GovernanceCog(bot))
