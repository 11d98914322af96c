"""DiscordHarness: drive a commands.Bot the way Discord would, and read back what it posted.

harness = await DiscordHarness.start(bot, monkeypatch)
try:
    result = await harness.slash(harness.members["convener"], "council", "convene", topic="...")
    ...
finally:
    await harness.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import aiohttp
import discord
import discord.ext.test as dpytest
import discord.http as dhttp
import pytest
from discord.ext.test import backend as dpy_backend

from . import fake_http, guard, modals, world
from .errors import HarnessError, InvalidInvocation, NoResponseError
from .http_server import DiscordHttpServer
from .interactions import (
    APPLICATION_COMMAND,
    AUTOCOMPLETE,
    COMPONENT,
    MODAL_SUBMIT,
    InteractionResult,
    InteractionSession,
    build_options,
    check_permitted,
    check_visible,
    find_component,
    interaction_payload,
    nest_options,
    resolve_command,
    resolve_context_menu,
)
from .payloads import JsonDict, iso_now, member_payload, new_id, overwrite_payload, text_channel_payload, user_payload
from .rate_limits import RateLimits
from .recorder import Post, Reaction, Recorder
from .routes_channels import ChannelRoutes
from .routes_webhooks import WebhookRoutes
from .server import FakeDiscord, WebhookInfo

# What humans get by default (Discord's usual @everyone set); the bot's default covers what a
# bot posting through webhooks into threads needs.
MEMBER_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    embed_links=True,
    attach_files=True,
    add_reactions=True,
    read_message_history=True,
    use_application_commands=True,
    use_external_emojis=True,
    change_nickname=True,
)
MODERATOR_PERMISSIONS = discord.Permissions(manage_threads=True, manage_messages=True)
BOT_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    manage_threads=True,
    manage_webhooks=True,
    manage_messages=True,
    embed_links=True,
    attach_files=True,
    add_reactions=True,
    read_message_history=True,
    use_external_emojis=True,
)

Target = discord.TextChannel | discord.Thread
Overwrites = Mapping[discord.Role | discord.Member, discord.PermissionOverwrite]


class DiscordHarness:
    """One fake guild with a text channel and members, wired to one bot. Build with `start()`."""

    def __init__(self) -> None:
        raise TypeError("use `await DiscordHarness.start(bot, monkeypatch)`")

    # -- lifecycle ----------------------------------------------------------------------------

    @classmethod
    async def start(
        cls,
        bot: discord.ext.commands.Bot,
        monkeypatch: pytest.MonkeyPatch,
        *,
        channel_name: str = "council",
        bot_permissions: discord.Permissions = BOT_PERMISSIONS,
        settle_timeout: float = 10.0,
        ignore_task: guard.TaskFilter | None = None,
        http: bool = False,
        rate_limits: bool | RateLimits = False,
    ) -> DiscordHarness:
        """Configure dpytest around `bot`, install the fakes, run `setup_hook()`.

        `ignore_task(task) -> bool` excludes long-lived bot tasks (e.g. a worker loop started in
        setup_hook) from the waits after each dispatch.

        `http=True` serves the fake Discord over loopback HTTP, so the bot's REST traffic runs through
        discord.py's real request code (its rate limiter and retries, the bot's `http_trace`).
        `rate_limits=True` (or a `RateLimits` of your own) enforces Discord's rate limits: over HTTP as
        headers and 429s, in-process as waits (a 429 waited out as discord.py would).
        """
        self = object.__new__(cls)
        self.bot = bot
        self.rate_limits = RateLimits() if rate_limits is True else (rate_limits or None)
        self.http_server: DiscordHttpServer | None = None
        self.settle_timeout = settle_timeout
        self.ignore_task = ignore_task
        self.recorder = Recorder()
        self._tracker = guard.TaskTracker()
        self._errors = guard.ErrorCapture()
        self._checked_tasks: set[int] = set()
        self._closed = False
        self._command_ids: dict[str, int] = {}
        self._tracker.install()
        self._errors.install()
        try:
            await self._build(monkeypatch, channel_name, bot_permissions, http)
        except BaseException:
            # Don't leak the task factory / log handler (or a half-started bot) into other tests.
            self._errors.uninstall()
            self._tracker.uninstall()
            bot.ws = None
            await bot.close()
            if self.http_server is not None:
                await self.http_server.close()
            raise
        return self

    async def _build(
        self, monkeypatch: pytest.MonkeyPatch, channel_name: str, bot_permissions: discord.Permissions, http: bool
    ) -> None:
        bot = self.bot
        router = fake_http.Router()
        self.router = router  # router.log: every REST request the bot made, as (method, url path)
        router.limits = self.rate_limits
        fake_http.install(monkeypatch, router, over_http=http)
        if http:
            self.http_server = DiscordHttpServer(router)
            await self.http_server.start()
            # The webhook adapter builds its URLs from the same Route class.
            monkeypatch.setattr(dhttp.Route, "BASE", self.http_server.base_url)
        # Order matters (see TESTING-DISCORD.md): configure() replaces the connection state, which
        # drops the command tree; setup_hook() must run after, against the new state.
        await bot._async_setup_hook()
        built_with = bot.http  # configure() replaces it, and with it the bot's http_trace
        dpytest.configure(bot, guilds=["AI Council test"], text_channels=[channel_name], voice_channels=0, members=0)
        state = self._wire(bot)
        self._connect(bot, built_with)

        self.guild = dpytest.get_config().guilds[0]
        self.channel = dpytest.get_config().channels[0]
        self.server = FakeDiscord(bot, self.guild, self.recorder)
        router.interaction = self.server.is_interaction
        router.cdn = self.server.cdn.get
        ChannelRoutes(self.server).register(router)
        WebhookRoutes(self.server).register(router)
        # All permissions come from roles, so set_bot_permissions() is exact.
        dpy_backend.update_role(self.guild.default_role, permissions=0)
        self.roles = {
            "member": dpy_backend.make_role("Member", self.guild, permissions=MEMBER_PERMISSIONS.value),
            "moderator": dpy_backend.make_role("Moderator", self.guild, permissions=MODERATOR_PERMISSIONS.value),
            "bot": dpy_backend.make_role("Bot", self.guild, permissions=bot_permissions.value),
        }
        # GUILD_CREATE always carries the bot's own member, whatever the intents: cache it with the
        # bot role (dpytest's member add is dropped when the members intent is off).
        me = _member(state.user, [self.roles["bot"]], self.guild)  # type: ignore[arg-type]
        self.guild._add_member(me)
        self.server.members[me.id] = me
        self.members: dict[str, discord.Member] = {}
        self.add_member("convener")
        self.add_member("moderator", roles=("moderator",))
        self.add_member("user")
        await self._run_setup_hook()

    @staticmethod
    def _wire(bot: discord.ext.commands.Bot) -> Any:
        """Re-attach what dpytest.configure() drops; returns the bot's (fake) connection state."""
        state = bot._connection
        state.loop = asyncio.get_running_loop()  # set by Client._async_setup_hook on the state configure() replaced
        state._command_tree = bot.tree
        bot.tree._state = state  # the tree keeps the old state/http for sync() otherwise
        bot.tree._http = bot.http
        state.application_id = state.user.id  # type: ignore[union-attr]
        bot.ws = None  # dpytest's fake socket has no .open; Client.close() would trip over it
        return state

    def _connect(self, bot: discord.ext.commands.Bot, built_with: dhttp.HTTPClient) -> None:
        """HTTP mode: give dpytest's HTTPClient what `static_login()` would (a session, the global-limit
        event, a token) and the options the bot was built with (`http_trace` sees every request)."""
        if self.http_server is None:
            return
        http = bot.http
        http.http_trace = built_with.http_trace
        http.max_ratelimit_timeout = built_with.max_ratelimit_timeout
        http.use_clock = built_with.use_clock
        http.token = fake_http.BOT_TOKEN
        http._HTTPClient__session = aiohttp.ClientSession(  # type: ignore[attr-defined]
            connector=aiohttp.TCPConnector(limit=0),
            trace_configs=None if http.http_trace is None else [http.http_trace],
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        http._global_over = asyncio.Event()
        http._global_over.set()

    async def _run_setup_hook(self) -> None:
        mark = self._tracker.mark()
        await self.bot.setup_hook()
        await self._settle_and_check(mark)
        self._start_mark = self._tracker.mark()

    async def restart(self, bot: discord.ext.commands.Bot) -> None:
        """Stop the running bot (as a redeploy or crash would) and run `bot`, a new instance, on the
        same fake Discord: guild, channels, threads, roles, members, messages, webhooks, interaction
        tokens and synced commands keep their ids. The new bot gets them the way a restarted bot
        does (GUILD_CREATE, then REST), never the old bot's objects; then its `setup_hook()` runs.
        """
        if bot is self.bot:
            raise HarnessError("restart() needs a new bot instance (the old one would keep its memory)")
        await self._settle_and_check(self._start_mark, timeout=min(self.settle_timeout, 5.0))
        kept = world.snapshot(self.server)
        await self._stop_bot()
        self.bot = bot
        await bot._async_setup_hook()
        built_with = bot.http
        guild, members = world.restore(bot, kept)
        self._wire(bot)
        self._connect(bot, built_with)  # a new process: a new session, the same server
        self.guild, self.channel = guild, guild.get_channel(self.channel.id)  # type: ignore[assignment]
        self.roles = {key: guild.get_role(role.id) for key, role in self.roles.items()}  # type: ignore[misc]
        self.server.attach(bot, guild, members)
        self.members = {key: members[member.id] for key, member in self.members.items()}
        await self._run_setup_hook()

    async def _stop_bot(self) -> None:
        await dpytest.empty_queue()
        try:
            await self.bot.close()
        finally:
            await self.bot.http.close()  # HTTP mode: the session (Client.close() closes it too)
        # Whatever the bot left running (a timed-out settle, view timeouts) must not outlive it
        # and fire into the next bot or the next test's loop.
        current = asyncio.current_task()
        leftovers = [task for task in self._tracker.since(0) if not task.done() and task is not current]
        for task in leftovers:
            task.cancel()
        if leftovers:
            await asyncio.wait(leftovers, timeout=1.0)

    async def close(self) -> None:
        """Settle, drain dpytest, close the bot, uninstall the guards. Raises late bot errors."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._settle_and_check(self._start_mark, timeout=min(self.settle_timeout, 5.0))
        finally:
            try:
                await self._stop_bot()
            finally:
                if self.http_server is not None:
                    await self.http_server.close()
                self._errors.uninstall()
                self._tracker.uninstall()

    # -- members, roles, channels ---------------------------------------------------------------

    def add_member(
        self, key: str, *, roles: tuple[str, ...] = (), permissions: discord.Permissions | None = None
    ) -> discord.Member:
        """A member with the Member role, plus named harness roles and/or a role with `permissions`."""
        user = dpy_backend.make_user(key, len(self.members) + 1)
        granted = [self.roles["member"], *(self.roles[name] for name in roles)]
        if permissions is not None:
            granted.append(dpy_backend.make_role(f"{key}-perms", self.guild, permissions=permissions.value))
        dpy_backend.make_member(user, self.guild, roles=granted)  # GUILD_MEMBER_ADD, cached per intents
        member = self.guild.get_member(user.id) or _member(user, granted, self.guild)
        self.members[key] = member
        self.server.members[member.id] = member
        return member

    def add_role(
        self,
        name: str,
        *,
        permissions: discord.Permissions | None = None,
        members: Iterable[discord.Member] = (),
    ) -> discord.Role:
        """A new guild role (GUILD_ROLE_CREATE), known by `name` to add_member(roles=...) and
        give_role(); `members` get it right away."""
        if name in self.roles:
            raise HarnessError(f"the harness already has a role {name!r}")
        value = (permissions or discord.Permissions.none()).value
        role = dpy_backend.make_role(name, self.guild, permissions=value)
        self.roles[name] = role
        for member in members:
            self.give_role(member, role)
        return role

    def give_role(self, member: discord.Member, *roles: discord.Role | str) -> discord.Member:
        """Grant roles (objects or harness role names): GUILD_MEMBER_UPDATE, and every later
        payload (interaction.user.roles, permissions) includes them."""
        member = self.server.members.get(member.id, member)
        wanted = [self.roles[r] if isinstance(r, str) else r for r in roles]
        return self._set_roles(member, [*member.roles, *(r for r in wanted if r not in member.roles)])

    def take_role(self, member: discord.Member, *roles: discord.Role | str) -> discord.Member:
        """Revoke roles (objects or harness role names); the opposite of give_role()."""
        member = self.server.members.get(member.id, member)
        unwanted = {(self.roles[r] if isinstance(r, str) else r).id for r in roles}
        return self._set_roles(member, [r for r in member.roles if r.id not in unwanted])

    def _set_roles(self, member: discord.Member, roles: list[discord.Role]) -> discord.Member:
        data = {**member_payload(member), "guild_id": self.guild.id}
        data["roles"] = [role.id for role in roles if not role.is_default()]
        # discord.py updates the member it caches (if it does, that is `member`); the harness's
        # own object is updated the same way when the members intent is off.
        self.bot._connection.parse_guild_member_update(copy.deepcopy(data))  # type: ignore[arg-type]
        member._update(data)  # type: ignore[arg-type]
        return member

    def delete_thread(self, thread: discord.Thread) -> None:
        """A user deletes a thread: it leaves the cache and every route answers Unknown Channel."""
        self.server.threads.pop(thread.id, None)
        self.guild._remove_thread(thread)  # type: ignore[attr-defined]

    def add_channel(self, name: str, *, overwrites: Overwrites | None = None) -> discord.TextChannel:
        """Another text channel in the guild (CHANNEL_CREATE is dispatched), with permission overwrites
        for roles and members if given, e.g. a staff-only channel:
        `{harness.guild.default_role: PermissionOverwrite(view_channel=False), staff: PermissionOverwrite(view_channel=True)}`
        (give the bot's role, `harness.roles["bot"]`, an allow too, or it cannot see the channel either)."""
        payloads = [overwrite_payload(target, o) for target, o in (overwrites or {}).items()]
        return dpy_backend.make_text_channel(name, self.guild, permission_overwrites=payloads or None)

    def set_overwrite(
        self,
        channel: discord.TextChannel,
        target: discord.Role | discord.Member,
        overwrite: discord.PermissionOverwrite | None,
    ) -> discord.TextChannel:
        """Set (or with None, remove) a channel's permission overwrite for a role or member: CHANNEL_UPDATE.
        Interaction payloads and the fakes' permission checks follow it from then on."""
        kept = {t: o for t, o in channel.overwrites.items() if t.id != target.id}
        if overwrite is not None:
            kept[target] = overwrite
        data = {
            **text_channel_payload(channel),
            "permission_overwrites": [overwrite_payload(t, o) for t, o in kept.items()],
        }
        self.bot._connection.parse_channel_update(data)  # type: ignore[arg-type]
        updated = self.guild.get_channel(channel.id)
        assert isinstance(updated, discord.TextChannel)
        return updated

    def delete_channel(self, channel: discord.TextChannel) -> None:
        """A user deletes a channel: its threads go with it (CHANNEL_DELETE), and every route answers
        Unknown Channel for both."""
        for thread_id, data in list(self.server.threads.items()):
            if int(data["parent_id"]) == channel.id:
                self.server.threads.pop(thread_id)
        dpy_backend.delete_channel(channel)

    def private_thread(
        self,
        channel: discord.TextChannel,
        name: str,
        *,
        owner: discord.Member,
        members: Iterable[discord.Member | discord.ClientUser] = (),
    ) -> discord.Thread:
        """`owner` opens a private thread in `channel` and adds `members` (the bot too, if listed). Who is in
        it is answered by GET /channels/{id}/thread-members/{user_id}; `add_to_thread` changes it."""
        data = self.server.create_private_thread(channel, name, owner=owner, members={m.id for m in members})
        thread = self.server.resolve(int(data["id"]))
        assert isinstance(thread, discord.Thread)
        return thread

    def add_to_thread(self, thread: discord.Thread, member: discord.Member, *, joined: bool = True) -> None:
        """Someone adds `member` to a thread (or with `joined=False`, removes them)."""
        members = self.server.thread_members.setdefault(thread.id, set())
        (members.add if joined else members.discard)(member.id)

    def archive_thread(self, thread: discord.Thread) -> None:
        """Discord archives the thread (inactivity): THREAD_UPDATE, and discord.py drops it from its cache."""
        self.server.update_thread(thread.id, {"archived": True})

    def set_bot_permissions(self, permissions: discord.Permissions) -> None:
        """What the bot may do in the guild: enforced by the fakes and sent as app_permissions."""
        dpy_backend.update_role(self.roles["bot"], permissions=permissions.value)

    def seed_webhook(
        self, channel: discord.TextChannel, name: str, *, owner: discord.Member | None = None
    ) -> WebhookInfo:
        """A webhook that already exists in `channel`, made by a member (not by this bot)."""
        return self.server.add_webhook(channel, name, creator=owner or self.members["user"], by_bot=False)

    # -- driving the bot ----------------------------------------------------------------------

    async def slash(
        self,
        user: discord.Member,
        *path: str,
        channel: Target | None = None,
        permissions: int | discord.Permissions | None = None,
        app_permissions: int | discord.Permissions | None = None,
        wait_background: bool = True,
        require_response: bool = True,
        **options: Any,
    ) -> InteractionResult:
        """Run `/path... option=value` as `user` in `channel` (default: the harness channel).

        `permissions` overrides the member's resolved permissions in the payload (default: what
        their roles grant in that channel); `app_permissions` likewise for the bot.
        """
        channel = channel or self.channel
        member_perms = self._perms(permissions, self._permissions_in(channel, user))
        resolved = resolve_command(self.bot.tree, self.guild, path)
        check_visible(resolved, discord.Permissions(member_perms))
        leaf_options, resolved_data = build_options(resolved.command, options, self.guild)
        data: dict[str, Any] = {
            "id": self._command_id(resolved.root.name),
            "name": resolved.root.name,
            "type": 1,
            "options": nest_options(resolved, leaf_options),
            "resolved": resolved_data,
        }
        if resolved.guild_scoped:
            data["guild_id"] = self.guild.id
        payload = self._interaction(APPLICATION_COMMAND, user, channel, member_perms, app_permissions, data)
        return await self._run_interaction(payload, resolved.qualified_name, wait_background, require_response)

    async def click(
        self,
        user: discord.Member,
        message: discord.Message | Post | int,
        custom_id: str,
        *,
        component_type: int | None = None,
        values: list[str] | None = None,
        permissions: int | discord.Permissions | None = None,
        wait_background: bool = True,
        require_response: bool = True,
    ) -> InteractionResult:
        """Click a button (or pick `values` in a select) on a message in the fake Discord.

        The component must be on the message as it stands and not disabled, as in the client.
        Calls may run at once (`asyncio.gather`); each sees the message as it was when clicked.
        """
        message_id = _message_id(message)
        stored = self._stored_message(message_id)
        component = find_component(stored.get("components") or [], custom_id)
        if component is None:
            raise InvalidInvocation(f"message {message_id} has no component {custom_id!r}")
        if component.get("disabled"):
            raise InvalidInvocation(f"{custom_id!r} on message {message_id} is disabled")
        channel = self.server.resolve(int(stored["channel_id"]))
        assert not isinstance(channel, discord.DMChannel)
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type or component["type"]}
        if values is not None:
            data["values"] = values
        member_perms = self._perms(permissions, self._permissions_in(channel, user))
        payload = self._interaction(COMPONENT, user, channel, member_perms, None, data, message=copy.deepcopy(stored))
        return await self._run_interaction(payload, custom_id, wait_background, require_response, message_id=message_id)

    async def submit_modal(
        self,
        user: discord.Member,
        modal: InteractionResult | JsonDict,
        values: Mapping[str, str | list[str]],
        *,
        channel: Target | None = None,
        message: discord.Message | Post | int | None = None,
        permissions: int | discord.Permissions | None = None,
        wait_background: bool = True,
        require_response: bool = True,
    ) -> InteractionResult:
        """Fill in and submit a modal (MODAL_SUBMIT, type 5); the modal's `on_submit` runs.

        `modal` is the InteractionResult that opened it (its channel, and the message whose
        button opened it, are used) or a modal dict (then pass `channel` / `message`). `values`
        maps input custom_ids to text (a list of values for a select). Checked like the client:
        unknown inputs, required inputs left empty, min/max length. Untouched inputs submit their
        prefilled value.
        """
        message_id = _message_id(message) if message is not None else None
        if isinstance(modal, InteractionResult):
            if modal.modal is None:
                raise InvalidInvocation(f"{modal.name}: the bot answered with type {modal.response_type}, not a modal")
            if modal.user_id != user.id:
                raise InvalidInvocation("only the member the modal was shown to can submit it")
            channel = channel or self.server.resolve(modal.channel_id)  # type: ignore[assignment]
            message_id = message_id or modal.message_id
            modal = modal.modal
        target = channel or self.channel
        data = modals.submission(modal, dict(values))
        stored = self.server.messages.get(message_id) if message_id is not None else None
        member_perms = self._perms(permissions, self._permissions_in(target, user))
        payload = self._interaction(
            MODAL_SUBMIT, user, target, member_perms, None, data, message=copy.deepcopy(stored) if stored else None
        )
        return await self._run_interaction(
            payload, modal["custom_id"], wait_background, require_response, message_id=message_id
        )

    async def context_menu(
        self,
        user: discord.Member,
        name: str,
        target: discord.Message | Post | int | discord.Member | discord.User,
        *,
        channel: Target | None = None,
        permissions: int | discord.Permissions | None = None,
        app_permissions: int | discord.Permissions | None = None,
        wait_background: bool = True,
        require_response: bool = True,
    ) -> InteractionResult:
        """Run the context menu command `name` (Apps > name) on a message the fake Discord holds
        (bot, webhook or human; message id, Post or discord.Message) or on a member/user."""
        resolved: JsonDict = {}
        if isinstance(target, (discord.Member, discord.User)):
            kind, target_id = discord.AppCommandType.user, target.id
            resolved["users"] = {str(target.id): user_payload(target)}
            if isinstance(target, discord.Member):
                perms = target.guild_permissions.value
                resolved["members"] = {str(target.id): member_payload(target, with_user=False, permissions=perms)}
            where = channel or self.channel
        else:
            kind, target_id = discord.AppCommandType.message, _message_id(target)
            stored = self._stored_message(target_id)
            resolved["messages"] = {str(target_id): copy.deepcopy(stored)}
            where = self.server.resolve(int(stored["channel_id"]))  # type: ignore[assignment]
            if channel is not None and channel.id != where.id:
                raise InvalidInvocation(f"message {target_id} is in channel {where.id}, not {channel.id}")
        menu, guild_scoped = resolve_context_menu(self.bot.tree, self.guild, name, kind)
        member_perms = self._perms(permissions, self._permissions_in(where, user))
        check_permitted(repr(name), menu.default_permissions, discord.Permissions(member_perms))
        data: JsonDict = {
            "id": self._command_id(f"{name}#{kind.value}"),
            "name": name,
            "type": kind.value,
            "target_id": str(target_id),
            "resolved": resolved,
        }
        if guild_scoped:
            data["guild_id"] = self.guild.id
        payload = self._interaction(APPLICATION_COMMAND, user, where, member_perms, app_permissions, data)
        return await self._run_interaction(payload, name, wait_background, require_response)

    async def autocomplete(
        self,
        user: discord.Member,
        *path: str,
        focused: str,
        value: Any = "",
        channel: Target | None = None,
        permissions: int | discord.Permissions | None = None,
        **options: Any,
    ) -> list[JsonDict]:
        """The choices ({"name", "value"} dicts) the bot offers while `user` types `value` into
        option `focused` of /path (APPLICATION_COMMAND_AUTOCOMPLETE, answered with type 8).
        Other options go along as already filled; required ones may still be missing."""
        channel = channel or self.channel
        member_perms = self._perms(permissions, self._permissions_in(channel, user))
        resolved = resolve_command(self.bot.tree, self.guild, path)
        check_visible(resolved, discord.Permissions(member_perms))
        leaf_options, resolved_data = build_options(
            resolved.command, {**options, focused: value}, self.guild, focused=focused
        )
        data: JsonDict = {
            "id": self._command_id(resolved.root.name),
            "name": resolved.root.name,
            "type": 1,
            "options": nest_options(resolved, leaf_options),
            "resolved": resolved_data,
        }
        if resolved.guild_scoped:
            data["guild_id"] = self.guild.id
        payload = self._interaction(AUTOCOMPLETE, user, channel, member_perms, None, data)
        result = await self._run_interaction(payload, resolved.qualified_name, True, True)
        return result.choices or []

    async def say(
        self,
        user: discord.Member,
        channel: Target | None,
        content: str,
        *,
        reply_to: int | None = None,
        wait_background: bool = True,
        files: Sequence[tuple[str, bytes]] = (),
    ) -> discord.Message:
        """`user` posts `content` in `channel` (a text channel or thread); on_message runs.
        `reply_to`: a message id in that channel, to post it as a reply to that message. `files`: (filename,
        bytes) attached to it, served by the fake CDN."""
        target = channel or self.channel
        mark = self._tracker.mark()
        payload = self.server.human_message(user, target, content, reply_to=reply_to, files=files)
        await self._settle_and_check(mark, background=wait_background)
        state = self.bot._connection
        return discord.Message(state=state, channel=target, data=copy.deepcopy(payload))  # type: ignore[arg-type]

    async def dispatch(self, event: str, *args: Any, wait_background: bool = True) -> None:
        """Dispatch a client event (e.g. "ready") and wait for the listeners."""
        mark = self._tracker.mark()
        self.bot.dispatch(event, *args)
        await self._settle_and_check(mark, background=wait_background)

    @contextlib.contextmanager
    def allow_errors(self, pattern: str = "") -> Iterator[list[logging.LogRecord]]:
        """Collect (instead of failing on) logged errors whose text matches `pattern` (a regex
        searched in the message and traceback) while the block runs; yields the collected records."""
        bucket: list[logging.LogRecord] = []
        allowance = (re.compile(pattern), bucket)
        self._errors.allowances.append(allowance)
        try:
            yield bucket
        finally:
            self._errors.allowances.remove(allowance)

    async def settle(self, timeout: float | None = None) -> None:
        """Wait for everything the bot started since setup (background work included)."""
        await self._settle_and_check(self._start_mark, timeout=timeout)

    # -- reading what happened ----------------------------------------------------------------

    @property
    def posts(self) -> list[Post]:
        """Every message in the fake Discord, in order (ephemeral, deleted, human included)."""
        return self.recorder.posts

    def posts_in(
        self, channel_id: int, *, kinds: tuple[str, ...] | None = None, include_hidden: bool = False
    ) -> list[Post]:
        """Messages in a channel/thread as its readers see them (edits applied)."""
        return self.recorder.in_channel(channel_id, kinds=kinds, include_hidden=include_hidden)

    def thread_transcript(self, thread_id: int) -> list[tuple[str, str]]:
        """(author display name, content) of every visible message in the thread, in order."""
        return self.recorder.transcript(thread_id)

    transcript = thread_transcript

    @property
    def threads(self) -> list[discord.Thread]:
        """Every thread created, in creation order (archived ones too)."""
        return [self.server.resolve(thread_id) for thread_id in self.server.threads]  # type: ignore[misc]

    @property
    def webhooks(self) -> list[WebhookInfo]:
        return [info for info in self.server.webhooks.values() if not info.deleted]

    @property
    def webhook_creations(self) -> dict[int, int]:
        """channel id -> how many times the bot created a webhook there."""
        return dict(self.server.webhook_creations)

    def typing_in(self, channel_id: int) -> list[float]:
        """When the bot sent a typing indicator in the channel or thread (loop time)."""
        return [at for where, at in self.server.typing if where == channel_id]

    @property
    def reactions(self) -> list[Reaction]:
        return self.recorder.reactions

    @property
    def synced_commands(self) -> dict[int | None, list[dict[str, Any]]]:
        return self.server.synced_commands

    # -- internals ------------------------------------------------------------------------------

    def _permissions_in(self, channel: Target, member: discord.Member) -> int:
        parent = channel.parent if isinstance(channel, discord.Thread) else channel
        assert parent is not None
        return parent.permissions_for(self.server.members.get(member.id, member)).value

    @staticmethod
    def _perms(value: int | discord.Permissions | None, default: int) -> int:
        if value is None:
            return default
        return value.value if isinstance(value, discord.Permissions) else int(value)

    def _command_id(self, name: str) -> int:
        return self._command_ids.setdefault(name, new_id())

    def _stored_message(self, message_id: int) -> JsonDict:
        stored = self.server.messages.get(message_id)
        post = self.recorder.get(message_id)
        if stored is None or (post is not None and post.deleted):
            raise InvalidInvocation(f"no message {message_id} in the fake Discord")
        return stored

    def _interaction(
        self,
        interaction_type: int,
        user: discord.Member,
        channel: Target,
        member_perms: int,
        app_permissions: int | discord.Permissions | None,
        data: dict[str, Any],
        message: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return interaction_payload(
            interaction_type=interaction_type,
            application_id=self.server.application_id,
            guild=self.guild,
            channel=channel,
            # The member as the server knows them now (roles granted since, a restarted bot).
            member=self.server.members.get(user.id, user),
            permissions=member_perms,
            app_permissions=self._perms(app_permissions, self.server.bot_permissions(channel).value),
            data=data,
            message=message,
        )

    async def _run_interaction(
        self,
        payload: dict[str, Any],
        name: str,
        wait_background: bool,
        require_response: bool,
        message_id: int | None = None,
    ) -> InteractionResult:
        user = payload["member"]["user"]
        result = InteractionResult(int(payload["id"]), name, int(user["id"]), int(payload["channel_id"]))
        result.message_id = message_id
        session = InteractionSession(
            id=int(payload["id"]),
            token=payload["token"],
            type=payload["type"],
            name=name,
            user_payload=dict(user),
            channel_id=int(payload["channel_id"]),
            created_at=self.server.now(),
            result=result,
            message_id=message_id,
        )
        self.server.open_interaction(session)
        mark = self._tracker.mark()
        self.bot._connection.parse_interaction_create(payload)  # type: ignore[arg-type]
        await self._settle_and_check(mark, background=wait_background)
        if require_response and not result.acknowledged:
            raise NoResponseError(f"{name}: the bot never answered the interaction ('The application did not respond')")
        return result

    async def _settle_and_check(self, mark: int, *, background: bool = True, timeout: float | None = None) -> None:
        try:
            await guard.settle(
                self._tracker,
                mark,
                timeout=self.settle_timeout if timeout is None else timeout,
                background=background,
                ignore=self.ignore_task,
            )
        finally:
            # Errors logged so far fail the test even if waiting timed out. Task deaths are judged
            # only once nothing is left running that might still await (and handle) them.
            guard.raise_if_failed(self._errors, self._tracker.since(mark), self._checked_tasks, check_tasks=background)


def _message_id(message: discord.Message | Post | int) -> int:
    if isinstance(message, int):
        return message
    return message.message_id if isinstance(message, Post) else message.id


def _member(user: discord.abc.User, roles: list[discord.Role], guild: discord.Guild) -> discord.Member:
    data = {"user": user_payload(user), "roles": [r.id for r in roles], "joined_at": iso_now(), "flags": 0}
    return discord.Member(data=data, guild=guild, state=guild._state)  # type: ignore[arg-type]


__all__ = ["BOT_PERMISSIONS", "MEMBER_PERMISSIONS", "MODERATOR_PERMISSIONS", "DiscordHarness"]
