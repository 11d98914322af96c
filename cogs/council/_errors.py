"""What Discord's errors mean for a council: its thread gone, a permission missing, a post refused for good,
or Discord not answering for now (bot/council/publisher.py names the four)."""

from __future__ import annotations

import aiohttp
import discord

from bot.council.publisher import PermissionMissing, PlaceGone, PlaceUnavailable, PostRefused

UNKNOWN_WEBHOOK = 10015  # the webhook was deleted
THREAD_LOCKED = 50083  # posting in an archived thread that is locked
MAX_WEBHOOKS = 30007  # the channel has Discord's maximum of webhooks
# A post whose fate is unknown: the message may exist although the call failed (webhook posts carry no nonce).
UNCERTAIN = (discord.DiscordServerError, aiohttp.ClientError, TimeoutError)

# What the bot itself needs to show a council, by the name a server's settings give each permission.
THREAD_NEEDS = {
    "view_channel": "View Channel",
    "send_messages_in_threads": "Send Messages in Threads",
    "read_message_history": "Read Message History",
    "embed_links": "Embed Links",
}


def closed_to_us(error: discord.HTTPException) -> bool:
    """The thread is gone or locked: no retry can post there, and no permission would change that."""
    return isinstance(error, discord.NotFound) or error.code == THREAD_LOCKED


def missing_permissions(where: discord.abc.GuildChannel | discord.Thread, needs: dict[str, str]) -> list[str]:
    """The permissions of `needs` the bot lacks in `where` now (names as a server's settings show them)."""
    me = where.guild.me
    if me is None:
        return []
    # A thread's permissions are its channel's: asked of the thread, discord.py strips those that follow from
    # a missing one (no Embed Links without Send Messages), which would name permissions nobody took away.
    channel = where.parent if isinstance(where, discord.Thread) else where
    if channel is None:
        return []
    granted = channel.permissions_for(me)
    missing = [label for name, label in needs.items() if not getattr(granted, name)]
    if not missing and isinstance(where, discord.Thread) and where.locked and not granted.manage_threads:
        missing.append("Manage Threads")  # only they may post in a locked thread
    return missing


def describe(error: discord.HTTPException) -> str:
    """Discord's refusal in words a server's people can act on, without a stack trace."""
    text = " ".join((error.text or "").split())
    return f"HTTP {error.status}" + (f": {text[:300]}" if text else "")


def translate(
    error: BaseException, where: discord.abc.GuildChannel | discord.Thread, needs: dict[str, str], what: str
) -> Exception:
    """The engine's name for what a failed request means (see the module docstring)."""
    if isinstance(error, discord.HTTPException):
        if closed_to_us(error):
            return PlaceGone(f"{what}: {error.status} {error.code}")
        if isinstance(error, discord.Forbidden):
            return PermissionMissing(missing_permissions(where, needs), describe(error))
        if error.status == 429 or error.status >= 500:
            return PlaceUnavailable(f"{what}: {describe(error)}")
        return PostRefused(describe(error))
    if isinstance(error, UNCERTAIN | OSError):
        return PlaceUnavailable(f"{what}: {type(error).__name__}")
    return error if isinstance(error, Exception) else RuntimeError(str(error))
