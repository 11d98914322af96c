"""The harness's channel permissions, private threads and deleted channels, as Discord has them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import discord
import pytest
from discord.ext import commands

from tests.harness import DiscordHarness

HIDDEN = discord.PermissionOverwrite(view_channel=False)
SHOWN = discord.PermissionOverwrite(view_channel=True)


class BareBot(commands.Bot):
    def __init__(self) -> None:
        super().__init__(command_prefix="!", intents=discord.Intents.default())


@pytest.fixture
async def harness(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DiscordHarness]:
    h = await DiscordHarness.start(BareBot(), monkeypatch)
    yield h
    await h.close()


def staff_channel(harness: DiscordHarness, *, bot_allowed: bool = True) -> tuple[discord.TextChannel, discord.Role]:
    staff = harness.add_role("Staff")
    overwrites: dict[discord.Role | discord.Member, discord.PermissionOverwrite] = {
        harness.guild.default_role: HIDDEN,
        staff: SHOWN,
    }
    if bot_allowed:
        overwrites[harness.roles["bot"]] = SHOWN
    return harness.add_channel("staff", overwrites=overwrites), staff


async def test_channel_overwrites_decide_what_members_and_the_bot_may_see(harness: DiscordHarness) -> None:
    channel, staff = staff_channel(harness)
    user = harness.members["user"]
    assert not channel.permissions_for(user).view_channel  # @everyone's deny wins over the Member role
    harness.give_role(user, staff)
    assert channel.permissions_for(harness.server.members[user.id]).view_channel
    assert (await harness.guild.fetch_channel(channel.id)).id == channel.id

    harness.set_overwrite(channel, harness.roles["bot"], None)
    with pytest.raises(discord.Forbidden) as refused:
        await harness.guild.fetch_channel(channel.id)
    assert refused.value.code == 50001
    with pytest.raises(discord.Forbidden):
        await channel.send("hello")


async def test_a_private_thread_is_seen_by_its_members_and_by_manage_threads(harness: DiscordHarness) -> None:
    user, convener = harness.members["user"], harness.members["convener"]
    bot_user = harness.bot.user
    assert bot_user is not None
    thread = harness.private_thread(harness.channel, "secret", owner=convener, members=(bot_user,))
    assert thread.type is discord.ChannelType.private_thread
    assert harness.guild.get_thread(thread.id) is not None  # THREAD_CREATE reached the bot

    assert (await thread.fetch_member(convener.id)).id == convener.id
    with pytest.raises(discord.NotFound) as unknown:
        await thread.fetch_member(user.id)
    assert unknown.value.code == 10007
    harness.add_to_thread(thread, user)
    assert (await thread.fetch_member(user.id)).id == user.id
    harness.add_to_thread(thread, user, joined=False)
    with pytest.raises(discord.NotFound):
        await thread.fetch_member(user.id)

    # A private thread the bot is not in, without Manage Threads: Discord neither tells it nor shows it.
    harness.set_bot_permissions(discord.Permissions(view_channel=True, send_messages=True, read_message_history=True))
    hidden = harness.private_thread(harness.channel, "hidden", owner=convener)
    assert harness.guild.get_thread(hidden.id) is None
    with pytest.raises(discord.Forbidden) as refused:
        await harness.guild.fetch_channel(hidden.id)
    assert refused.value.code == 50001


async def test_archived_and_deleted_threads_and_deleted_channels(harness: DiscordHarness) -> None:
    starter = await harness.channel.send("start")
    thread = await starter.create_thread(name="talk")
    harness.archive_thread(thread)
    assert harness.guild.get_thread(thread.id) is None  # discord.py forgets archived threads
    fetched = await harness.guild.fetch_channel(thread.id)
    assert isinstance(fetched, discord.Thread) and fetched.archived

    harness.delete_channel(harness.channel)
    assert harness.guild.get_channel(harness.channel.id) is None
    for gone in (thread.id, harness.channel.id):
        with pytest.raises(discord.NotFound):
            await harness.guild.fetch_channel(gone)
