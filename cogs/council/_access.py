"""Who may read a council: whoever can see its thread, as Discord decides it.

discord.py resolves a member's permissions from the cached roles and channel overwrites, as Discord does
(owner, Administrator, @everyone, roles, then the member's own overwrite; a timed-out member keeps only
View Channel and Read Message History). A council is readable by a member with View Channel and Read
Message History in its thread, which takes them from its parent channel; for a private thread they must
also be in it, or have Manage Threads there. Where the thread is gone, its parent channel decides; where
the channel is gone too (its threads went with it), only Manage Server does: nobody else can see any of it
in Discord any more, and the server's managers answer for what the server keeps.

Lists (`/council history`, `/council scoreboard`) resolve this once per channel, not once per council, and
ask Discord nothing for public threads: every council's thread is opened from its starter message, and
Discord makes such threads public and never changes a thread's type, so a public thread shows exactly what
its parent shows. Only private threads discord.py has in its cache (active ones) are judged one by one.
A single council is judged in full: a thread that left the cache (archived) is fetched to learn its type.
"""

from __future__ import annotations

import discord

from storage import report_repository as reports_repo
from storage.database import Database
from storage.models import Council
from storage.report_repository import ReadableCouncils


def can_read_in(permissions: discord.Permissions) -> bool:
    """Discord shows a channel's messages, past ones included, with both of these."""
    return permissions.view_channel and permissions.read_message_history


async def can_read(member: discord.Member, council: Council) -> bool:
    """Whether `member` may read anything of `council`: its status, record, members, usage, messages."""
    guild = member.guild
    if council.guild_id != guild.id:
        return False
    parent = guild.get_channel(council.channel_id)
    if parent is None:
        return member.guild_permissions.manage_guild
    if council.thread_id is None:  # never opened: where it was convened decides
        return can_read_in(parent.permissions_for(member))
    thread = guild.get_thread(council.thread_id)
    if thread is None:
        try:
            fetched = await guild.fetch_channel(council.thread_id)
        except discord.NotFound:  # deleted: its parent channel decides
            return can_read_in(parent.permissions_for(member))
        except discord.Forbidden:
            # The bot can no longer see the thread (a private one it is not in, or the channel closed to it),
            # so its type is unknown: only those who see every thread there, private ones too, may read it.
            seen = parent.permissions_for(member)
            return can_read_in(seen) and seen.manage_threads
        if not isinstance(fetched, discord.Thread) or fetched.parent_id != parent.id:
            return False
        thread = fetched
    return await _thread_readable(thread, member)


async def readable(db: Database, member: discord.Member) -> ReadableCouncils:
    """The server's councils `member` may read, as the channels they were held in and the private threads
    among them closed to `member`: one look per channel, and one request per private council thread."""
    guild = member.guild
    channels: set[int] = set()
    for channel_id in await reports_repo.council_channels(db, guild.id):
        channel = guild.get_channel(channel_id)
        if channel is None:
            if member.guild_permissions.manage_guild:
                channels.add(channel_id)
        elif can_read_in(channel.permissions_for(member)):
            channels.add(channel_id)
    private = [
        thread
        for thread in guild.threads
        if thread.type is discord.ChannelType.private_thread and thread.parent_id in channels
    ]
    councils = await reports_repo.council_threads_among(db, guild.id, [thread.id for thread in private])
    hidden = [thread.id for thread in private if thread.id in councils and not await _thread_readable(thread, member)]
    return ReadableCouncils(frozenset(channels), frozenset(hidden))


async def _thread_readable(thread: discord.Thread, member: discord.Member) -> bool:
    if thread.parent is None:  # its channel is gone
        return member.guild_permissions.manage_guild
    permissions = thread.permissions_for(member)
    if not can_read_in(permissions):
        return False
    if thread.type is not discord.ChannelType.private_thread or permissions.manage_threads:
        return True
    # discord.py's cache of a thread's members is partial without the members intent: ask Discord.
    try:
        await thread.fetch_member(member.id)
    except discord.NotFound:  # not in it
        return False
    except discord.Forbidden:  # the bot was taken out of it and cannot tell who is in it
        return False
    return True
