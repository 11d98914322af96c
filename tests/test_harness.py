"""Proves the Discord harness against a toy bot: commands in, recorded Discord traffic out."""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import AsyncIterator

import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.council_helpers import both_transports
from tests.harness import DiscordHarness, HarnessError, InvalidInvocation, NoResponseError, UnhandledBotError

WEBHOOK_NAME = "Toy Council"
NO_MENTIONS = discord.AllowedMentions.none()
SPEAKERS = (
    ("Claude", "https://example.test/claude.png"),
    ("Llama", "https://example.test/llama.png"),
)


class AckView(discord.ui.View):
    """A persistent view: its button answers by updating the message it is on (type 7)."""

    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Ack", custom_id="toy:ack")
    async def ack(self, interaction: discord.Interaction, button: discord.ui.Button[AckView]) -> None:
        await interaction.response.edit_message(content=f"acknowledged by {interaction.user.display_name}", view=None)


class ConfirmView(discord.ui.View):
    """A short-lived view: discord.py starts a timeout task for it that the harness must not await."""

    def __init__(self) -> None:
        super().__init__(timeout=300)

    @discord.ui.button(label="Confirm", custom_id="toy:confirm")
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button[ConfirmView]) -> None:
        await interaction.response.send_message("confirmed", ephemeral=True)
        self.stop()


class EscalateButton(discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=r"toy:esc:(?P<id>[0-9]+)"):
    """A button that carries its state in its custom_id: any bot instance can answer it."""

    def __init__(self, case_id: int) -> None:
        super().__init__(discord.ui.Button(label="Escalate", custom_id=f"toy:esc:{case_id}"))
        self.case_id = case_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button[discord.ui.View], match: re.Match[str], /
    ) -> EscalateButton:
        return cls(int(match["id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(ReasonModal(self.case_id))


class ReasonModal(discord.ui.Modal, title="Escalate report"):
    """Opened from the report's button; on submit it updates that message (type 7)."""

    reason: discord.ui.TextInput[ReasonModal] = discord.ui.TextInput(
        label="Reason", custom_id="reason", min_length=5, max_length=100
    )
    note: discord.ui.TextInput[ReasonModal] = discord.ui.TextInput(
        label="Note", custom_id="note", required=False, max_length=20, default="none"
    )

    def __init__(self, case_id: int) -> None:
        super().__init__(custom_id=f"toy:reason:{case_id}")
        self.case_id = case_id

    async def on_submit(self, interaction: discord.Interaction) -> None:
        assert interaction.message is not None
        embed = interaction.message.embeds[0]
        embed.add_field(
            name="Escalated", value=f"{self.reason.value} ({self.note.value}) by {interaction.user.display_name}"
        )
        closed = discord.ui.View()
        closed.add_item(discord.ui.Button(label="Escalated", custom_id=f"toy:esc:{self.case_id}", disabled=True))
        await interaction.response.edit_message(embed=embed, view=closed)


class FeedbackModal(discord.ui.Modal, title="Feedback"):
    """Persistent (fixed custom_ids, no timeout): registered in setup_hook, so a restarted bot
    still takes the submission of a modal its previous instance opened."""

    text: discord.ui.TextInput[FeedbackModal] = discord.ui.TextInput(
        label="Feedback", custom_id="toy:feedback:text", style=discord.TextStyle.paragraph, max_length=50
    )

    def __init__(self) -> None:
        super().__init__(custom_id="toy:feedback", timeout=None)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"thanks: {self.text.value}", ephemeral=True)


class SeverityModal(discord.ui.Modal, title="Severity"):
    """The newer layout: labels around a string select and a text input."""

    def __init__(self) -> None:
        super().__init__(custom_id="toy:severity")
        self.level: discord.ui.Select[SeverityModal] = discord.ui.Select(
            custom_id="level",
            required=True,
            options=[discord.SelectOption(label="Low", value="low"), discord.SelectOption(label="High", value="high")],
        )
        self.details: discord.ui.TextInput[SeverityModal] = discord.ui.TextInput(custom_id="details", required=False)
        self.add_item(discord.ui.Label(text="Level", component=self.level))
        self.add_item(discord.ui.Label(text="Details", component=self.details))

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"{self.level.values} {self.details.value!r}", ephemeral=True)


class ClaimView(discord.ui.View):
    """Persistent; the first click claims the message, later ones are told who has it."""

    def __init__(self) -> None:
        super().__init__(timeout=None)
        self.claims: dict[int, str] = {}
        self.in_flight = self.max_in_flight = 0

    @discord.ui.button(label="Claim", custom_id="toy:claim")
    async def claim(self, interaction: discord.Interaction, button: discord.ui.Button[ClaimView]) -> None:
        assert interaction.message is not None
        await interaction.response.defer()  # type 6: no message of its own
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        owner = self.claims.setdefault(interaction.message.id, interaction.user.display_name)
        await asyncio.sleep(0.01)  # slow work: a concurrent click arrives meanwhile
        self.in_flight -= 1
        if owner != interaction.user.display_name:
            await interaction.followup.send(f"already claimed by {owner}", ephemeral=True)
            return
        done = discord.ui.View()
        done.add_item(discord.ui.Button(label=f"Claimed by {owner}", custom_id="toy:claim", disabled=True))
        await interaction.message.edit(content=f"claimed by {owner}", view=done)


class ToyCog(commands.Cog):
    toy = app_commands.Group(name="toy", description="Toy council commands", guild_only=True)
    admin = app_commands.Group(
        name="toyadmin", description="Moderator commands", default_permissions=discord.Permissions(manage_threads=True)
    )

    def __init__(self, bot: ToyBot) -> None:
        self.bot = bot
        self.webhook_ids: set[int] = set()
        self.heard: list[tuple[int, str, str]] = []
        self.own_webhook_messages = 0

    @toy.command(name="run", description="Convene a toy council in a new thread")
    @app_commands.choices(
        mode=[
            app_commands.Choice(name="Round robin", value="round-robin"),
            app_commands.Choice(name="Parallel", value="parallel"),
        ]
    )
    async def run(
        self,
        interaction: discord.Interaction,
        topic: app_commands.Range[str, 3, 200],
        rounds: app_commands.Range[int, 1, 3] = 1,
        mode: str = "round-robin",
        thread_name: str | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        channel = interaction.channel
        assert isinstance(channel, discord.TextChannel)
        starter = await channel.send(
            embed=discord.Embed(title=f"Council: {topic}", description=f"{rounds} round(s), {mode}"),
            allowed_mentions=NO_MENTIONS,
        )
        thread = await starter.create_thread(name=thread_name or topic, auto_archive_duration=1440)
        webhook = await self._webhook(channel)
        for name, avatar in SPEAKERS:
            await webhook.send(
                f"{name} on {topic}, asked by <@{interaction.user.id}>",
                username=name,
                avatar_url=avatar,
                thread=thread,
                wait=True,
                allowed_mentions=NO_MENTIONS,
            )
        await thread.send(embed=discord.Embed(title="Council finished"))
        await interaction.followup.send(f"Convened in {thread.mention}", ephemeral=True)

    async def _webhook(self, channel: discord.TextChannel) -> discord.Webhook:
        assert self.bot.user is not None
        hooks = await channel.webhooks()
        mine = [h for h in hooks if h.name == WEBHOOK_NAME and h.user and h.user.id == self.bot.user.id]
        webhook = mine[0] if mine else await channel.create_webhook(name=WEBHOOK_NAME)
        self.webhook_ids.add(webhook.id)
        return webhook

    @toy.command(name="ping", description="Ephemeral reply")
    async def ping(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("pong", ephemeral=True)

    @toy.command(name="edit", description="Reply, then edit the reply and a followup")
    async def edit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("draft")
        await interaction.edit_original_response(content="final")
        followup = await interaction.followup.send("second", wait=True)
        await followup.edit(content="second, edited")

    @toy.command(name="perms", description="Report what the interaction says about permissions")
    async def perms(self, interaction: discord.Interaction) -> None:
        assert isinstance(interaction.user, discord.Member)
        await interaction.response.send_message(
            f"member_manage_threads={interaction.permissions.manage_threads} "
            f"guild_manage_threads={interaction.user.guild_permissions.manage_threads} "
            f"app_manage_webhooks={interaction.app_permissions.manage_webhooks} "
            f"channel={type(interaction.channel).__name__}",
            ephemeral=True,
        )

    @toy.command(name="button", description="Post a message with a button")
    async def button(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("press it", view=AckView())

    @toy.command(name="confirm", description="Ask for confirmation with a timed view")
    async def confirm(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("Sure?", view=ConfirmView(), ephemeral=True)

    @toy.command(name="boom", description="Fails")
    async def boom(self, interaction: discord.Interaction) -> None:
        raise RuntimeError("kaboom")

    @toy.command(name="long", description="Sends more than Discord allows")
    async def long(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("x" * 2001)

    @toy.command(name="silent", description="Never answers")
    async def silent(self, interaction: discord.Interaction) -> None:
        return None

    @toy.command(name="slow", description="Answers too late")
    async def slow(self, interaction: discord.Interaction) -> None:
        await asyncio.sleep(0.05)
        await interaction.response.send_message("too late")

    @toy.command(name="later", description="Answers now, posts from a background task")
    async def later(self, interaction: discord.Interaction) -> None:
        channel = interaction.channel
        assert isinstance(channel, discord.TextChannel)

        async def post() -> None:
            await asyncio.sleep(0.01)
            await channel.send("done in the background")

        self.background = asyncio.create_task(post())
        await interaction.response.send_message("working on it", ephemeral=True)

    @toy.command(name="spawn", description="Starts a background task that fails")
    async def spawn(self, interaction: discord.Interaction) -> None:
        async def later() -> None:
            await asyncio.sleep(0)
            raise ValueError("background failure")

        asyncio.create_task(later())  # noqa: RUF006  (an unretrieved failure is what this test needs)
        await interaction.response.send_message("started", ephemeral=True)

    @toy.command(name="gather", description="Handles a failing subtask itself")
    async def gather(self, interaction: discord.Interaction) -> None:
        async def fails() -> None:
            raise ValueError("handled")

        outcomes = await asyncio.gather(asyncio.create_task(fails()), return_exceptions=True)
        await interaction.response.send_message(f"{len(outcomes)} outcome(s)", ephemeral=True)

    @admin.command(name="reset", description="Moderators only")
    async def reset(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("reset", ephemeral=True)

    @toy.command(name="feedback", description="Opens a modal")
    async def feedback(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(FeedbackModal())

    @toy.command(name="severity", description="Opens a modal with a select")
    async def severity(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(SeverityModal())

    @toy.command(name="badmodal", description="Opens a modal Discord refuses")
    async def badmodal(self, interaction: discord.Interaction) -> None:
        modal = discord.ui.Modal(title="t" * 46)
        modal.add_item(discord.ui.TextInput(label="x"))
        await interaction.response.send_modal(modal)

    @toy.command(name="claimable", description="Posts a message moderators can claim")
    async def claimable(self, interaction: discord.Interaction) -> None:
        assert isinstance(interaction.channel, discord.TextChannel)
        self.claim_message = await interaction.channel.send("unclaimed", view=self.bot.claim_view)
        await interaction.response.send_message("posted", ephemeral=True)

    @toy.command(name="close", description="Closes the claimable message")
    async def close(self, interaction: discord.Interaction) -> None:
        await self.claim_message.edit(embed=discord.Embed(title="Closed"), view=None)
        await interaction.response.send_message("closed", ephemeral=True)

    @toy.command(name="whoami", description="Reports the caller's roles")
    async def whoami(self, interaction: discord.Interaction) -> None:
        assert isinstance(interaction.user, discord.Member)
        roles = ",".join(sorted(r.name for r in interaction.user.roles if not r.is_default()))
        await interaction.response.send_message(
            f"roles={roles} manage_messages={interaction.permissions.manage_messages}", ephemeral=True
        )

    @toy.command(name="pick", description="Autocompleted members")
    async def pick(
        self, interaction: discord.Interaction, members: str, rounds: app_commands.Range[int, 1, 3] = 1
    ) -> None:
        await interaction.response.send_message(f"picked {members} for {rounds}", ephemeral=True)

    @pick.autocomplete("members")
    async def pick_members(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        if current == "*":  # more than Discord takes
            return [app_commands.Choice(name=f"m{i}", value=f"m{i}") for i in range(26)]
        rounds = interaction.namespace.rounds or 1
        names = ("Claude", "Clippy", "Llama", "Gemini")
        return [
            app_commands.Choice(name=f"{name} x{rounds}", value=name)
            for name in names
            if name.lower().startswith(current.lower())
        ]

    async def cog_load(self) -> None:
        self.bot.tree.add_command(app_commands.ContextMenu(name="Report to moderators", callback=self.report))
        self.bot.tree.add_command(app_commands.ContextMenu(name="Inspect member", callback=self.inspect))

    async def report(self, interaction: discord.Interaction, message: discord.Message) -> None:
        channel = interaction.channel
        parent = channel.parent if isinstance(channel, discord.Thread) else channel
        assert isinstance(parent, discord.TextChannel)
        embed = discord.Embed(title="Report", description=message.content or "(no text)")
        embed.add_field(name="Author", value=message.author.display_name)
        embed.add_field(name="Where", value=f"<#{message.channel.id}>")
        view = discord.ui.View(timeout=None)
        view.add_item(EscalateButton(message.id))
        await parent.send(embed=embed, view=view, allowed_mentions=NO_MENTIONS)
        await interaction.response.send_message("Reported.", ephemeral=True)

    async def inspect(self, interaction: discord.Interaction, member: discord.Member) -> None:
        roles = ",".join(sorted(r.name for r in member.roles if not r.is_default()))
        await interaction.response.send_message(f"{member.display_name}: {roles}", ephemeral=True)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.webhook_id in self.webhook_ids:
            self.own_webhook_messages += 1
            return
        if message.author.bot or not isinstance(message.channel, discord.Thread):
            return
        if message.content == "explode":
            raise RuntimeError("listener blew up")
        self.heard.append((message.channel.id, message.author.display_name, message.content))
        await message.add_reaction("👀")
        await message.channel.send(f"Noted, {message.author.display_name}.", allowed_mentions=NO_MENTIONS)


class ToyBot(commands.Bot):
    def __init__(self, *, members_intent: bool = True) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        intents.members = members_intent  # off, discord.py caches no members but the bot's own
        super().__init__(command_prefix="!", intents=intents)

        self.tree.on_error = self.on_app_command_error

    async def setup_hook(self) -> None:
        await self.add_cog(ToyCog(self))
        self.add_view(AckView())
        self.claim_view = ClaimView()
        self.add_view(self.claim_view)
        self.add_view(FeedbackModal())
        self.add_dynamic_items(EscalateButton)

    async def on_app_command_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        # Like the real bot: log it (not through the `discord` logger) and tell the user.
        logging.getLogger("toy").error("Command failed", exc_info=error)
        if not interaction.response.is_done():
            await interaction.response.send_message("Something went wrong.", ephemeral=True)


@pytest.fixture
async def harness(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, discord_transport: str
) -> AsyncIterator[DiscordHarness]:
    bot = ToyBot(members_intent=getattr(request, "param", True))
    h = await DiscordHarness.start(bot, monkeypatch, http=discord_transport == "http")
    yield h
    await h.close()


# Runs a test with and without the members intent (the real bot has it off).
both_intents = pytest.mark.parametrize("harness", [True, False], ids=["members", "no-members"], indirect=True)


def toy(h: DiscordHarness) -> ToyCog:
    cog = h.bot.get_cog("ToyCog")
    assert isinstance(cog, ToyCog)
    return cog


# -- slash commands, threads, webhooks ------------------------------------------------------------


@both_transports
async def test_convene_defers_opens_thread_and_posts_through_one_webhook(harness: DiscordHarness) -> None:
    convener = harness.members["convener"]
    result = await harness.slash(convener, "toy", "run", topic="Tabs or spaces", rounds=2, mode="Parallel")

    assert result.deferred and result.ephemeral
    [thread] = harness.threads
    assert thread.name == "Tabs or spaces" and thread.parent_id == harness.channel.id
    # The first followup after a defer fills the "thinking" message and stays ephemeral.
    assert result.content == f"Convened in <#{thread.id}>"
    assert [f.replaced_deferred for f in result.followups] == [True]
    assert result.texts == [f"Convened in <#{thread.id}>"]

    [starter] = harness.posts_in(harness.channel.id)
    assert starter.kind == "channel" and starter.embed_titles == ["Council: Tabs or spaces"]
    assert starter.embeds[0]["description"] == "2 round(s), parallel"
    assert starter.message_id == thread.id  # Discord gives the thread its starter message's id

    webhook_posts = harness.posts_in(thread.id, kinds=("webhook",))
    assert [(p.username, p.avatar_url) for p in webhook_posts] == list(SPEAKERS)
    for post in webhook_posts:
        assert post.thread_id == thread.id and post.parent_id == harness.channel.id
        assert post.allowed_mentions == {"parse": []}
        assert f"<@{convener.id}>" in (post.content or "") and not post.pings
    assert harness.thread_transcript(thread.id) == [
        ("Claude", f"Claude on Tabs or spaces, asked by <@{convener.id}>"),
        ("Llama", f"Llama on Tabs or spaces, asked by <@{convener.id}>"),
        ("FakeApp", ""),
    ]
    assert harness.posts_in(thread.id)[-1].embed_titles == ["Council finished"]

    # on_message saw both webhook posts and could ignore them by webhook_id.
    assert toy(harness).own_webhook_messages == 2 and toy(harness).heard == []

    # A second council reuses the webhook it created.
    await harness.slash(convener, "toy", "run", topic="Vim or Emacs")
    assert len(harness.threads) == 2
    assert harness.webhook_creations == {harness.channel.id: 1}
    assert [w.name for w in harness.webhooks] == [WEBHOOK_NAME]


async def test_bot_does_not_reuse_someone_elses_webhook(harness: DiscordHarness) -> None:
    harness.seed_webhook(harness.channel, WEBHOOK_NAME)
    await harness.slash(harness.members["convener"], "toy", "run", topic="Ownership")
    assert harness.webhook_creations == {harness.channel.id: 1}
    assert len(harness.webhooks) == 2


async def test_ephemeral_reply_is_recorded_but_not_in_the_channel(harness: DiscordHarness) -> None:
    result = await harness.slash(harness.members["user"], "toy", "ping")
    assert result.response_type == 4 and result.ephemeral and result.content == "pong"
    assert result.response is not None and result.response.kind == "interaction"
    assert harness.posts_in(harness.channel.id) == []
    assert harness.posts_in(harness.channel.id, include_hidden=True) == [result.response]


@both_transports
async def test_edits_are_recorded_and_applied(harness: DiscordHarness) -> None:
    result = await harness.slash(harness.members["user"], "toy", "edit")
    assert result.content == "final" and not result.ephemeral
    assert [e.content for e in result.edits] == ["final", "second, edited"]
    assert [e.via for e in result.edits] == ["interaction", "followup"]
    assert harness.transcript(harness.channel.id) == [("FakeApp", "final"), ("FakeApp", "second, edited")]


# -- options and permissions ------------------------------------------------------------------------


async def test_options_are_validated_like_the_discord_client(harness: DiscordHarness) -> None:
    user = harness.members["user"]
    with pytest.raises(InvalidInvocation, match="rounds"):
        await harness.slash(user, "toy", "run", topic="Valid topic", rounds=4)
    with pytest.raises(InvalidInvocation, match="topic"):
        await harness.slash(user, "toy", "run", topic="no")
    with pytest.raises(InvalidInvocation, match="needs topic"):
        await harness.slash(user, "toy", "run")
    with pytest.raises(InvalidInvocation, match="not one of"):
        await harness.slash(user, "toy", "run", topic="Valid topic", mode="chaos")
    with pytest.raises(InvalidInvocation, match="no option"):
        await harness.slash(user, "toy", "run", topic="Valid topic", colour="red")
    with pytest.raises(InvalidInvocation, match="no subcommand"):
        await harness.slash(user, "toy", "nope")
    with pytest.raises(InvalidInvocation, match="needs a subcommand"):
        await harness.slash(user, "toy")
    assert harness.posts == []


async def test_member_and_app_permissions_reach_the_interaction(harness: DiscordHarness) -> None:
    plain = await harness.slash(harness.members["user"], "toy", "perms")
    assert plain.content == (
        "member_manage_threads=False guild_manage_threads=False app_manage_webhooks=True channel=TextChannel"
    )
    mod = await harness.slash(harness.members["moderator"], "toy", "perms")
    assert mod.content is not None and mod.content.startswith("member_manage_threads=True guild_manage_threads=True")

    await harness.slash(harness.members["convener"], "toy", "run", topic="Permissions")
    [thread] = harness.threads
    overridden = await harness.slash(
        harness.members["user"],
        "toy",
        "perms",
        channel=thread,
        permissions=discord.Permissions(manage_threads=True),
        app_permissions=discord.Permissions.none(),
    )
    assert overridden.content == (
        "member_manage_threads=True guild_manage_threads=False app_manage_webhooks=False channel=Thread"
    )


async def test_default_permissions_hide_a_command(harness: DiscordHarness) -> None:
    with pytest.raises(InvalidInvocation, match="would not show it"):
        await harness.slash(harness.members["user"], "toyadmin", "reset")
    result = await harness.slash(harness.members["moderator"], "toyadmin", "reset")
    assert result.content == "reset"


@both_transports
async def test_bot_permissions_are_enforced(harness: DiscordHarness) -> None:
    harness.set_bot_permissions(discord.Permissions(view_channel=True, send_messages=True))
    with pytest.raises(UnhandledBotError, match="50013"):
        await harness.slash(harness.members["convener"], "toy", "run", topic="No threads allowed")


# -- humans, buttons ------------------------------------------------------------------------------


@both_transports
async def test_human_message_in_thread_reaches_on_message(harness: DiscordHarness) -> None:
    await harness.slash(harness.members["convener"], "toy", "run", topic="Humans")
    [thread] = harness.threads
    user = harness.members["user"]

    message = await harness.say(user, thread, "What about tabs?")
    assert isinstance(message.channel, discord.Thread) and message.channel.id == thread.id
    assert toy(harness).heard == [(thread.id, "user", "What about tabs?")]
    assert [(r.message_id, r.emoji) for r in harness.reactions] == [(message.id, "👀")]
    assert harness.thread_transcript(thread.id)[-2:] == [("user", "What about tabs?"), ("FakeApp", "Noted, user.")]

    # Humans in the channel itself are not council input.
    await harness.say(user, harness.channel, "outside")
    assert len(toy(harness).heard) == 1


async def test_a_human_reply_carries_the_replied_message_as_discord_sends_it(harness: DiscordHarness) -> None:
    await harness.slash(harness.members["convener"], "toy", "run", topic="Replies")
    [thread] = harness.threads
    llama = harness.posts_in(thread.id, kinds=("webhook",))[-1]
    user = harness.members["user"]

    reply = await harness.say(user, thread, "Why Llama?", reply_to=llama.message_id)
    assert reply.type == discord.MessageType.reply and reply.reference is not None
    assert reply.reference.message_id == llama.message_id and reply.reference.channel_id == thread.id
    replied = reply.reference.resolved
    assert isinstance(replied, discord.Message) and replied.webhook_id == llama.webhook_id
    assert replied.author.name == "Llama" and replied.content == llama.content
    assert harness.posts_in(thread.id, kinds=("human",))[-1].reply_to == llama.message_id
    assert toy(harness).heard[-1] == (thread.id, "user", "Why Llama?")

    # The client offers Reply only on a message shown in the channel being written in.
    with pytest.raises(ValueError, match="no message"):
        await harness.say(user, harness.channel, "elsewhere", reply_to=llama.message_id)
    with pytest.raises(ValueError, match="no message"):
        await harness.say(user, thread, "nothing", reply_to=12345)


async def test_posting_unarchives_a_thread(harness: DiscordHarness) -> None:
    await harness.slash(harness.members["convener"], "toy", "run", topic="Archive me")
    [thread] = harness.threads
    await thread.edit(archived=True)
    assert harness.threads[0].archived
    await harness.say(harness.members["user"], thread, "still here")
    assert not harness.threads[0].archived
    fetched = await harness.bot.fetch_channel(thread.id)
    assert isinstance(fetched, discord.Thread) and fetched.name == "Archive me"


@both_transports
async def test_button_click_updates_the_message(harness: DiscordHarness) -> None:
    posted = await harness.slash(harness.members["convener"], "toy", "button")
    assert posted.response is not None and posted.response.components
    clicked = await harness.click(harness.members["user"], posted.response.message_id, "toy:ack")
    assert clicked.response_type == 7
    assert posted.response.content == "acknowledged by user" and posted.response.components == []


async def test_timed_view_does_not_block_and_can_be_clicked(harness: DiscordHarness) -> None:
    asked = await harness.slash(harness.members["user"], "toy", "confirm")
    assert asked.response is not None and asked.ephemeral
    answered = await harness.click(harness.members["user"], asked.response.message_id, "toy:confirm")
    assert answered.response_type == 4 and answered.content == "confirmed" and answered.ephemeral


async def test_background_work_can_be_awaited_later(harness: DiscordHarness) -> None:
    user = harness.members["user"]
    await harness.slash(user, "toy", "later", wait_background=False)
    assert harness.transcript(harness.channel.id) == []
    await harness.settle()
    assert harness.transcript(harness.channel.id) == [("FakeApp", "done in the background")]
    # By default the harness waits for everything the command started.
    await harness.slash(user, "toy", "later")
    assert len(harness.transcript(harness.channel.id)) == 2


# -- guards -----------------------------------------------------------------------------------------


@both_transports
async def test_guard_fails_on_an_exception_in_a_command(harness: DiscordHarness) -> None:
    with pytest.raises(UnhandledBotError, match="kaboom"):
        await harness.slash(harness.members["user"], "toy", "boom")


async def test_guard_fails_on_an_exception_in_a_listener(harness: DiscordHarness) -> None:
    await harness.slash(harness.members["convener"], "toy", "run", topic="Listeners")
    with pytest.raises(UnhandledBotError, match="listener blew up"):
        await harness.say(harness.members["user"], harness.threads[0], "explode")


async def test_expected_errors_can_be_allowed(harness: DiscordHarness) -> None:
    with harness.allow_errors("kaboom") as logged:
        result = await harness.slash(harness.members["user"], "toy", "boom")
    assert result.content == "Something went wrong." and len(logged) == 1


async def test_handled_task_failures_are_not_reported(harness: DiscordHarness) -> None:
    result = await harness.slash(harness.members["user"], "toy", "gather")
    assert result.content == "1 outcome(s)"


async def test_guard_fails_on_a_failing_background_task(harness: DiscordHarness) -> None:
    with pytest.raises(UnhandledBotError, match="background failure"):
        await harness.slash(harness.members["user"], "toy", "spawn")


async def test_unanswered_interaction_fails(harness: DiscordHarness) -> None:
    with pytest.raises(NoResponseError):
        await harness.slash(harness.members["user"], "toy", "silent")


@both_transports
async def test_answering_after_the_deadline_fails(harness: DiscordHarness) -> None:
    harness.server.interaction_deadline = 0.01
    with pytest.raises(UnhandledBotError, match="10062"):
        await harness.slash(harness.members["user"], "toy", "slow")


# -- Discord's limits ---------------------------------------------------------------------------------


async def test_discord_limits_fail_inside_commands(harness: DiscordHarness) -> None:
    with pytest.raises(UnhandledBotError, match="50035"):
        await harness.slash(harness.members["user"], "toy", "long")
    with pytest.raises(UnhandledBotError, match="between 1 and 100"):
        await harness.slash(harness.members["user"], "toy", "run", topic="Long names", thread_name="t" * 101)


@both_transports
async def test_message_limits(harness: DiscordHarness) -> None:
    channel = harness.channel
    with pytest.raises(discord.HTTPException) as error:
        await channel.send("x" * 2001)
    assert error.value.status == 400 and error.value.code == 50035 and "2000 or fewer" in error.value.text
    await channel.send("x" * 2000)
    with pytest.raises(discord.HTTPException, match="empty message"):
        await channel.send(embeds=[])

    too_many_fields = discord.Embed(title="t")
    for i in range(26):
        too_many_fields.add_field(name=f"f{i}", value="v")
    cases = [
        discord.Embed(title="t" * 257),
        discord.Embed(description="d" * 4097),
        too_many_fields,
        discord.Embed().add_field(name="n" * 257, value="v"),
        discord.Embed().add_field(name="n", value="v" * 1025),
        discord.Embed().set_footer(text="f" * 2049),
    ]
    for embed in cases:
        with pytest.raises(discord.HTTPException) as error:
            await channel.send(embed=embed)
        assert error.value.code == 50035
    with pytest.raises(discord.HTTPException, match="6000"):
        await channel.send(embeds=[discord.Embed(description="d" * 4000), discord.Embed(description="d" * 2001)])
    # discord.py itself refuses > 10 embeds; the fake enforces it for raw requests too.
    route = discord.http.Route("POST", "/channels/{channel_id}/messages", channel_id=channel.id)
    with pytest.raises(discord.HTTPException, match="10 or fewer"):
        await harness.bot.http.request(route, json={"embeds": [{"title": str(i)} for i in range(11)]})
    assert [p.content for p in harness.posts] == ["x" * 2000]


@both_transports
async def test_webhook_and_thread_limits(harness: DiscordHarness) -> None:
    channel = harness.channel
    starter = await channel.send("starter")
    with pytest.raises(discord.HTTPException, match="between 1 and 100"):
        await starter.create_thread(name="t" * 101)
    thread = await starter.create_thread(name="t" * 100)
    with pytest.raises(discord.HTTPException, match="already been created"):
        await starter.create_thread(name="again")

    webhook = await channel.create_webhook(name=WEBHOOK_NAME)
    for bad in ("u" * 81, "Discord Bot", "clyde"):
        with pytest.raises(discord.HTTPException) as error:
            await webhook.send("hi", username=bad, thread=thread, wait=True)
        assert error.value.code == 50035
    with pytest.raises(discord.HTTPException, match="well formed URL"):
        await webhook.send("hi", username="Ok", avatar_url="not a url", wait=True)
    with pytest.raises(discord.HTTPException, match="2000 or fewer"):
        await webhook.send("x" * 2001, username="Ok", thread=thread, wait=True)
    with pytest.raises(discord.HTTPException):
        await channel.create_webhook(name="My Discord hook")

    # Without wait=True Discord returns nothing; the message is still posted.
    assert await webhook.send("fire and forget", username="Ok", thread=thread) is None
    sent = await webhook.send("kept", username="Ok", thread=thread, wait=True)
    await sent.edit(content="kept, edited")
    assert harness.thread_transcript(thread.id) == [("Ok", "fire and forget"), ("Ok", "kept, edited")]

    other = await harness.add_channel("elsewhere").send("x")
    foreign_thread = await other.create_thread(name="foreign")
    with pytest.raises(discord.NotFound):
        await webhook.send("wrong thread", username="Ok", thread=foreign_thread, wait=True)


@both_transports
async def test_files_replies_and_history(harness: DiscordHarness) -> None:
    channel = harness.channel
    sent = await channel.send("report", file=discord.File(io.BytesIO(b"abc"), filename="report.txt"))
    reply = await sent.reply("see above", mention_author=False)
    assert [(p.content, p.attachments, p.reply_to) for p in harness.posts_in(channel.id)] == [
        ("report", ["report.txt"], None),
        ("see above", [], sent.id),
    ]
    assert harness.posts_in(channel.id)[0].files == {"report.txt": b"abc"}
    assert sent.attachments[0].size == 3
    history = [m.content async for m in channel.history(limit=10)]
    assert history == ["see above", "report"]
    assert (await channel.fetch_message(reply.id)).content == "see above"
    await reply.delete()
    assert harness.transcript(channel.id) == [("FakeApp", "report")]


@both_transports
async def test_command_sync_is_served(harness: DiscordHarness) -> None:
    synced = await harness.bot.tree.sync(guild=harness.guild)
    assert synced == [] and harness.synced_commands == {harness.guild.id: []}
    synced = await harness.bot.tree.sync()
    assert sorted(c.name for c in synced) == ["Inspect member", "Report to moderators", "toy", "toyadmin"]


def test_command_sync_refuses_what_discord_refuses() -> None:
    from tests.harness import limits

    def command(**changes: object) -> dict[str, object]:
        option = {"type": 3, "name": "topic", "description": "What about"}
        return {"type": 1, "name": "toy", "description": "A toy", "options": [option], **changes}

    def subcommand(n: int) -> dict[str, object]:
        options = [{"type": 3, "name": f"opt{m}", "description": "e" * 100} for m in range(2)]
        return {"type": 1, "name": f"sub{n:02d}", "description": "d" * 100, "options": options}

    limits.check_command(command())
    limits.check_command({"type": 3, "name": "Report to moderators"})  # menus: spaces and capitals, no description
    refused = [
        command(name="Toy"),
        command(name="has space"),
        command(description=""),
        command(description="x" * 101),
        command(options=[{"type": 3, "name": f"o{n}", "description": "d"} for n in range(26)]),
        command(options=[{"type": 3, "name": "o", "description": "d", "choices": [{"name": "", "value": "v"}]}]),
        command(options=[subcommand(n) for n in range(20)]),  # about 6,300 characters in all
    ]
    for bad in refused:
        with pytest.raises(discord.HTTPException):
            limits.check_command(bad)


async def test_the_council_bot_commands_fit_discords_limits(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """The real bot's tree, as it syncs it: the fake refuses what Discord would, so a sync that got through
    is one Discord accepts."""
    from storage.scratch import scratch_database
    from tests.conftest import make_catalog
    from tests.council_helpers import make_bot
    from tests.harness import limits

    async with scratch_database(None, tmp_path) as db:
        bot = make_bot(db, make_catalog("http://127.0.0.1:9"), tmp_path)
        started = await DiscordHarness.start(bot, monkeypatch)
        try:
            synced = {c["name"]: c for c in started.synced_commands[None]}
            assert {"council", "governance", "Report to moderators", "Message details"} <= set(synced)
            for index, command in enumerate(synced.values()):
                limits.check_command(command, index)
        finally:
            await started.close()


# -- modals ---------------------------------------------------------------------------------------


@both_transports
async def test_modal_submit_reaches_on_submit(harness: DiscordHarness) -> None:
    user = harness.members["user"]
    opened = await harness.slash(user, "toy", "feedback")
    assert opened.response_type == 9 and opened.modal is not None
    assert opened.modal["custom_id"] == "toy:feedback" and opened.modal["title"] == "Feedback"

    with pytest.raises(InvalidInvocation, match="required"):
        await harness.submit_modal(user, opened, {})
    with pytest.raises(InvalidInvocation, match="0-50 characters"):
        await harness.submit_modal(user, opened, {"toy:feedback:text": "x" * 51})
    with pytest.raises(InvalidInvocation, match="no input"):
        await harness.submit_modal(user, opened, {"toy:feedback:text": "ok", "other": "x"})
    with pytest.raises(InvalidInvocation, match="shown to"):
        await harness.submit_modal(harness.members["moderator"], opened, {"toy:feedback:text": "ok"})

    sent = await harness.submit_modal(user, opened, {"toy:feedback:text": "more tabs"})
    assert sent.response_type == 4 and sent.ephemeral and sent.content == "thanks: more tabs"


@both_transports
async def test_modal_from_a_button_updates_the_message_it_came_from(harness: DiscordHarness) -> None:
    user, mod = harness.members["user"], harness.members["moderator"]
    said = await harness.say(user, harness.channel, "buy cheap pills")
    await harness.context_menu(mod, "Report to moderators", said)
    report = harness.posts_in(harness.channel.id, kinds=("channel",))[-1]

    opened = await harness.click(mod, report.message_id, f"toy:esc:{said.id}")
    assert opened.response_type == 9 and opened.modal is not None
    assert opened.modal["custom_id"] == f"toy:reason:{said.id}" and opened.message_id == report.message_id
    with pytest.raises(InvalidInvocation, match="5-100 characters"):
        await harness.submit_modal(mod, opened, {"reason": "spam"})

    done = await harness.submit_modal(mod, opened, {"reason": "spam links"})  # "note" keeps its default
    assert done.response_type == 7 and done.message_id == report.message_id
    assert report.embeds[0]["fields"][-1] == {
        "name": "Escalated",
        "value": "spam links (none) by moderator",
        "inline": True,
    }
    [button] = report.components[0]["components"]
    assert button["disabled"] is True and button["label"] == "Escalated"
    with pytest.raises(InvalidInvocation, match="disabled"):
        await harness.click(mod, report.message_id, f"toy:esc:{said.id}")
    with pytest.raises(InvalidInvocation, match="no component"):
        await harness.click(mod, report.message_id, "toy:nope")


async def test_modal_with_labels_and_a_select(harness: DiscordHarness) -> None:
    user = harness.members["user"]
    opened = await harness.slash(user, "toy", "severity")
    with pytest.raises(InvalidInvocation, match="takes 1-1 values"):
        await harness.submit_modal(user, opened, {})
    with pytest.raises(InvalidInvocation, match="not \\['urgent'\\]"):
        await harness.submit_modal(user, opened, {"level": ["urgent"]})
    sent = await harness.submit_modal(user, opened, {"level": ["high"]})
    assert sent.content == "['high'] ''"


async def test_a_modal_discord_refuses_fails_the_command(harness: DiscordHarness) -> None:
    with pytest.raises(UnhandledBotError, match="between 1 and 45"):
        await harness.slash(harness.members["user"], "toy", "badmodal")


# -- context menus ------------------------------------------------------------------------------------


@both_transports
async def test_message_context_menu_on_webhook_and_human_posts_in_a_thread(harness: DiscordHarness) -> None:
    user, mod = harness.members["user"], harness.members["moderator"]
    await harness.slash(harness.members["convener"], "toy", "run", topic="Reports")
    [thread] = harness.threads
    claude = harness.posts_in(thread.id, kinds=("webhook",))[0]
    human = await harness.say(user, thread, "tabs forever")

    for target in (claude, human):
        result = await harness.context_menu(mod, "Report to moderators", target)
        assert result.content == "Reported." and result.ephemeral and result.channel_id == thread.id
    reports = [p for p in harness.posts_in(harness.channel.id) if p.embed_titles == ["Report"]]
    assert [(r.embeds[0]["description"], [f["value"] for f in r.embeds[0]["fields"]]) for r in reports] == [
        (claude.content, ["Claude", f"<#{thread.id}>"]),
        ("tabs forever", ["user", f"<#{thread.id}>"]),
    ]

    with pytest.raises(InvalidInvocation, match="not"):
        await harness.context_menu(mod, "Report to moderators", human, channel=harness.channel)
    with pytest.raises(InvalidInvocation, match="no message context menu"):
        await harness.context_menu(mod, "Nope", human)
    await human.delete()
    with pytest.raises(InvalidInvocation, match="no message"):
        await harness.context_menu(mod, "Report to moderators", human)


@both_intents
async def test_user_context_menu(harness: DiscordHarness) -> None:
    result = await harness.context_menu(harness.members["user"], "Inspect member", harness.members["moderator"])
    assert result.content == "moderator: Member,Moderator"


# -- concurrency, edits -------------------------------------------------------------------------------


@both_transports
async def test_concurrent_clicks_each_get_their_own_result(harness: DiscordHarness) -> None:
    mod = harness.members["moderator"]
    mod2 = harness.add_member("mod2", roles=("moderator",))
    await harness.slash(mod, "toy", "claimable")
    [message] = harness.posts_in(harness.channel.id)

    first, second = await asyncio.gather(
        harness.click(mod, message.message_id, "toy:claim"), harness.click(mod2, message.message_id, "toy:claim")
    )
    assert harness.bot.claim_view.max_in_flight == 2  # type: ignore[attr-defined]  # both ran at once
    assert (first.user_id, second.user_id) == (mod.id, mod2.id)
    assert first.response_type == second.response_type == 6
    assert first.followups == [] and second.texts == ["already claimed by moderator"]
    assert second.followups[0].ephemeral

    # interaction.message.edit() after a defer: applied, with the disabled button visible.
    assert message.content == "claimed by moderator" and [e.via for e in message.edits] == ["channel"]
    [button] = message.components[0]["components"]
    assert button["disabled"] is True and button["label"] == "Claimed by moderator"

    # message.edit(embed=..., view=None) on a message the bot posted in the channel.
    await harness.slash(mod, "toy", "close")
    assert message.embed_titles == ["Closed"] and message.components == []
    assert message.content == "claimed by moderator" and len(message.edits) == 2


# -- autocomplete ---------------------------------------------------------------------------------------


@both_transports
async def test_autocomplete_returns_the_bots_choices(harness: DiscordHarness) -> None:
    user = harness.members["user"]
    choices = await harness.autocomplete(user, "toy", "pick", focused="members", value="Cl", rounds=2)
    assert choices == [{"name": "Claude x2", "value": "Claude"}, {"name": "Clippy x2", "value": "Clippy"}]
    assert len(await harness.autocomplete(user, "toy", "pick", focused="members")) == 4
    with pytest.raises(InvalidInvocation, match="no autocomplete"):
        await harness.autocomplete(user, "toy", "pick", focused="rounds", value="1")
    with pytest.raises(InvalidInvocation, match="no option"):
        await harness.autocomplete(user, "toy", "pick", focused="colour")
    with pytest.raises(UnhandledBotError, match="25 or fewer"):
        await harness.autocomplete(user, "toy", "pick", focused="members", value="*")


# -- roles ----------------------------------------------------------------------------------------------


@both_intents
async def test_new_roles_reach_interaction_payloads(harness: DiscordHarness) -> None:
    user = harness.members["user"]
    role = harness.add_role("Council Mods", permissions=discord.Permissions(manage_messages=True))
    assert harness.bot.get_guild(harness.guild.id).get_role(role.id) is not None  # type: ignore[union-attr]
    before = await harness.slash(user, "toy", "whoami")
    assert before.content == "roles=Member manage_messages=False"

    harness.give_role(user, "Council Mods")
    after = await harness.slash(user, "toy", "whoami")
    assert after.content == "roles=Council Mods,Member manage_messages=True"
    mod2 = harness.add_member("mod2", roles=("Council Mods",))
    assert (await harness.slash(mod2, "toy", "whoami")).content == "roles=Council Mods,Member manage_messages=True"

    harness.take_role(user, role)
    assert (await harness.slash(user, "toy", "whoami")).content == "roles=Member manage_messages=False"
    with pytest.raises(HarnessError, match="already"):
        harness.add_role("Council Mods")


# -- restarts -------------------------------------------------------------------------------------------


@both_transports
@both_intents
async def test_dynamic_button_from_the_previous_bot_reaches_the_new_one(harness: DiscordHarness) -> None:
    user, mod = harness.members["user"], harness.members["moderator"]
    await harness.slash(harness.members["convener"], "toy", "run", topic="Before the restart")
    [thread] = harness.threads
    said = await harness.say(user, thread, "rude remark")
    await harness.context_menu(mod, "Report to moderators", said)
    report = harness.posts_in(harness.channel.id)[-1]
    asked = await harness.slash(user, "toy", "confirm")  # a timed view: lives only in the old bot
    stale = await harness.click(mod, report.message_id, f"toy:esc:{said.id}")  # modal left open
    opened_before = await harness.slash(user, "toy", "feedback")
    harness.add_role("Council Mods", members=(user,))
    old = harness.bot

    with pytest.raises(HarnessError, match="new bot"):
        await harness.restart(old)
    await harness.restart(ToyBot(members_intent=old.intents.members))
    new = harness.bot
    assert new is not old and old.is_closed() and toy(harness).heard == []
    assert new.user is not None and old.user is not None and new.user.id == old.user.id
    assert harness.guild.id == old.guilds[0].id and harness.guild is not old.guilds[0]
    assert isinstance(new.get_channel(thread.id), discord.Thread)
    assert harness.members["moderator"].id == mod.id
    whoami = await harness.slash(user, "toy", "whoami")  # roles and members kept their ids
    assert whoami.content == "roles=Council Mods,Member manage_messages=False"

    # A persistent modal opened by the old bot is still taken. A modal only the old bot knew is
    # not (discord.py matches modals by exact custom_id, no templates), nor is a timed view.
    with pytest.raises(NoResponseError):
        await harness.submit_modal(mod, stale, {"reason": "too late now"})
    thanks = await harness.submit_modal(user, opened_before, {"toy:feedback:text": "smooth"})
    assert thanks.content == "thanks: smooth"
    assert asked.response is not None
    with pytest.raises(NoResponseError):
        await harness.click(user, asked.response.message_id, "toy:confirm")

    # The DynamicItem template registered in the new bot's setup_hook answers the old message.
    opened = await harness.click(mod, report.message_id, f"toy:esc:{said.id}")
    assert opened.modal is not None and opened.modal["custom_id"] == f"toy:reason:{said.id}"
    await harness.submit_modal(mod, opened, {"reason": "rude to members"})
    assert report.embeds[0]["fields"][-1]["value"] == "rude to members (none) by moderator"

    # The new bot finds its webhook (same application) and posts where the old one did.
    await harness.slash(harness.members["convener"], "toy", "run", topic="After the restart")
    assert harness.webhook_creations == {harness.channel.id: 1} and len(harness.threads) == 2
    assert toy(harness).own_webhook_messages == 2
