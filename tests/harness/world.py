"""What Discord keeps while a bot restarts, and how a new bot instance picks it up.

A restarted bot holds nothing in memory: it learns the guild from GUILD_CREATE (roles, channels,
active threads, the members it may cache) and everything else (messages, webhooks) over REST,
which the fake server answers from its own, untouched state.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import discord
import discord.ext.test as dpytest
from discord.ext.test import backend as dpy_backend

from .payloads import JsonDict, guild_payload, member_payload, text_channel_payload, user_payload
from .server import FakeDiscord


@dataclass
class World:
    user: JsonDict  # the application's bot user: same id after the restart
    guild: JsonDict  # GUILD_CREATE
    members: dict[int, JsonDict]
    listings: dict[int, list[JsonDict]]  # dpytest's per-channel message lists


def snapshot(server: FakeDiscord) -> World:
    members = {member_id: member_payload(m) for member_id, m in server.members.items()}
    # Active threads the bot can see (a private one only as a member or with Manage Threads).
    active = [
        t for t in server.threads.values() if not t["thread_metadata"]["archived"] and server.bot_sees_thread(t["id"])
    ]
    guild = guild_payload(
        server.guild,
        members=list(members.values()),
        channels=[text_channel_payload(c) for c in server.guild.text_channels],
        threads=copy.deepcopy(active),
    )
    listings = dict(dpy_backend._cur_config.messages) if dpy_backend._cur_config else {}
    return World(user_payload(server.bot_user), guild, members, listings)


def restore(bot: discord.Client, world: World) -> tuple[discord.Guild, dict[int, discord.Member]]:
    """Configure dpytest around `bot` (after `_async_setup_hook()`) with the world's ids; return
    the guild as the new bot sees it, and every member (cached or not) by id."""
    dpytest.configure(bot, guilds=[], text_channels=[], voice_channels=0, members=0)
    state = bot._connection
    state.user = discord.ClientUser(state=state, data=world.user)  # type: ignore[arg-type]
    state.stop_dispatch()  # type: ignore[attr-defined]  # the world exists already: no join events
    state.parse_guild_create(world.guild)  # type: ignore[arg-type]
    state.start_dispatch()  # type: ignore[attr-defined]
    assert dpy_backend._cur_config is not None
    dpy_backend._cur_config.messages.update(world.listings)
    guild = state._get_guild(int(world.guild["id"]))
    assert guild is not None
    members = {
        member_id: guild.get_member(member_id) or discord.Member(data=data, guild=guild, state=state)  # type: ignore[arg-type]
        for member_id, data in world.members.items()
    }
    return guild, members
