"""The /council commands and the council threads."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.council._cog import CouncilCog

if TYPE_CHECKING:
    from bot.app import CouncilBot


async def setup(bot: CouncilBot) -> None:
    await bot.add_cog(CouncilCog(bot))
