"""Which Discord errors mean a council's thread can no longer be posted in."""

from __future__ import annotations

import discord

UNKNOWN_WEBHOOK = 10015  # the webhook was deleted
THREAD_LOCKED = 50083  # posting in an archived thread that is locked


def closed_to_us(error: discord.HTTPException) -> bool:
    """The thread is gone, locked or forbidden: no retry can post there."""
    return isinstance(error, discord.NotFound | discord.Forbidden) or error.code == THREAD_LOCKED
