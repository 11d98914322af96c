"""Builders for the JSON payloads Discord sends (gateway events, REST responses).

discord.py only ever sees these dicts, so their shape decides whether the bot under test behaves
as it would against Discord. Ids are ints (dpytest's own stores compare ids as ints).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import discord
from discord.ext.test import factories as facts

JsonDict = dict[str, Any]

# Discord's message flags the fakes care about.
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
FLAG_HAS_THREAD = 1 << 5


def new_id() -> int:
    """A snowflake for now; dpytest's generator keeps ids unique and time-ordered."""
    return facts.make_id()


def iso_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def iso_of(snowflake: int) -> str:
    return discord.utils.snowflake_time(snowflake).isoformat()


def user_payload(user: discord.abc.User) -> JsonDict:
    return {
        "id": user.id,
        "username": user.name,
        "global_name": getattr(user, "global_name", None),
        "discriminator": user.discriminator,
        "avatar": None,
        "bot": user.bot,
    }


def member_payload(member: discord.Member, *, with_user: bool = True, permissions: int | None = None) -> JsonDict:
    """A guild member as Discord sends it; `permissions` only appears in interaction payloads."""
    data: JsonDict = {
        "roles": [role.id for role in member.roles if role.id != member.guild.id],
        "joined_at": (member.joined_at or dt.datetime.now(dt.UTC)).isoformat(),
        "nick": member.nick,
        "avatar": None,
        "deaf": False,
        "mute": False,
        "pending": False,
        "flags": 0,
        "communication_disabled_until": None,
    }
    if with_user:
        data["user"] = user_payload(member)
    if permissions is not None:
        data["permissions"] = str(permissions)
    return data


def role_payload(role: discord.Role) -> JsonDict:
    return facts.dict_from_role(role)


def guild_payload(
    guild: discord.Guild, *, members: list[JsonDict], channels: list[JsonDict], threads: list[JsonDict]
) -> JsonDict:
    """GUILD_CREATE for `guild` as it stands (roles from the guild, the rest as given)."""
    roles = [role_payload(role) for role in guild.roles]
    data: JsonDict = facts.make_guild_dict(
        guild.name, guild.owner_id or 0, roles, id_num=guild.id, member_count=len(members)
    )
    data.update(members=members, channels=channels, threads=threads)
    return data


def text_channel_payload(channel: discord.TextChannel) -> JsonDict:
    return {
        "id": channel.id,
        "type": discord.ChannelType.text.value,
        "guild_id": channel.guild.id,
        "name": channel.name,
        "position": channel.position,
        "parent_id": channel.category_id,
        "topic": channel.topic,
        "nsfw": channel.nsfw,
        "rate_limit_per_user": channel.slowmode_delay,
        "last_message_id": channel.last_message_id,
        "permission_overwrites": [overwrite_payload(k, v) for k, v in channel.overwrites.items()],
    }


def overwrite_payload(target: discord.Role | discord.Member | Any, overwrite: discord.PermissionOverwrite) -> JsonDict:
    """A channel permission overwrite as Discord sends it: `type` is 0 for a role and 1 for a member
    (dpytest's own factory sends the strings "role"/"member", which discord.py reads as neither)."""
    allow, deny = overwrite.pair()
    kind = 0 if isinstance(target, discord.Role) else 1
    return {"id": target.id, "type": kind, "allow": str(allow.value), "deny": str(deny.value)}


def thread_payload(
    *,
    thread_id: int,
    guild_id: int,
    parent_id: int,
    owner_id: int,
    name: str,
    thread_type: int = discord.ChannelType.public_thread.value,
    auto_archive_duration: int = 1440,
    rate_limit_per_user: int = 0,
    invitable: bool = True,
) -> JsonDict:
    now = iso_now()
    return {
        "id": thread_id,
        "guild_id": guild_id,
        "parent_id": parent_id,
        "owner_id": owner_id,
        "name": name,
        "type": thread_type,
        "last_message_id": None,
        "rate_limit_per_user": rate_limit_per_user or 0,
        "message_count": 0,
        "member_count": 1,
        "total_message_sent": 0,
        "flags": 0,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": auto_archive_duration,
            "archive_timestamp": now,
            "locked": False,
            "invitable": invitable,
            "create_timestamp": now,
        },
        # The creator (the bot) is joined to the thread it made.
        "member": {"id": thread_id, "user_id": owner_id, "join_timestamp": now, "flags": 0},
    }


def message_payload(
    *,
    message_id: int,
    channel_id: int,
    guild_id: int | None,
    author: JsonDict,
    content: str | None,
    embeds: list[JsonDict] | None = None,
    components: list[JsonDict] | None = None,
    attachments: list[JsonDict] | None = None,
    mentions: list[JsonDict] | None = None,
    mention_roles: list[int] | None = None,
    mention_everyone: bool = False,
    flags: int = 0,
    tts: bool = False,
    member: JsonDict | None = None,
    webhook_id: int | None = None,
    application_id: int | None = None,
    interaction: JsonDict | None = None,
    message_type: int = 0,
) -> JsonDict:
    data: JsonDict = {
        "id": message_id,
        "channel_id": channel_id,
        "author": author,
        "content": content or "",
        "timestamp": iso_of(message_id),
        "edited_timestamp": None,
        "tts": tts,
        "mention_everyone": mention_everyone,
        "mentions": mentions or [],
        "mention_roles": mention_roles or [],
        "attachments": attachments or [],
        "embeds": embeds or [],
        "components": components or [],
        "pinned": False,
        "type": message_type,
        "flags": flags,
    }
    if guild_id is not None:
        data["guild_id"] = guild_id
    if member is not None:
        data["member"] = member
    if webhook_id is not None:
        data["webhook_id"] = webhook_id
    if application_id is not None:
        data["application_id"] = application_id
    if interaction is not None:
        # The deprecated `interaction` field; discord.py 2.7 reads id/type/name/user from it.
        data["interaction"] = interaction
    return data


def webhook_payload(
    *,
    webhook_id: int,
    token: str,
    guild_id: int,
    channel_id: int,
    name: str,
    creator: JsonDict | None,
    application_id: int | None,
    avatar: str | None = None,
) -> JsonDict:
    return {
        "id": webhook_id,
        "type": 1,  # incoming
        "guild_id": guild_id,
        "channel_id": channel_id,
        "name": name,
        "avatar": avatar,
        "token": token,
        "application_id": application_id,
        "user": creator,
    }
