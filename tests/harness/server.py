"""The fake Discord server's state (messages, threads, webhooks, interactions) and the operations
the route handlers (routes_channels.py, routes_webhooks.py) build on.

Each operation mutates the state, feeds the resulting gateway event to discord.py (`parse_*`,
so listeners fire as they would), records what a user would see, and returns the JSON Discord
would return, or raises the HTTPException Discord's answer would become.
"""

from __future__ import annotations

import copy
import io
import mimetypes
import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import discord
from discord.ext.test import backend as dpy_backend

from . import limits
from .errors import http_error, missing_permissions, rate_limited, unknown
from .interactions import InteractionSession
from .payloads import (
    FLAG_EPHEMERAL,
    FLAG_HAS_THREAD,
    FLAG_LOADING,
    JsonDict,
    iso_now,
    member_payload,
    message_payload,
    new_id,
    thread_payload,
    user_payload,
    webhook_payload,
)
from .recorder import Edit, Post, Recorder, compute_pings

Channel = discord.TextChannel | discord.Thread | discord.DMChannel

MAX_WEBHOOKS_PER_CHANNEL = 15


@dataclass
class WebhookInfo:
    """A webhook as the fake server knows it."""

    id: int
    token: str
    channel_id: int
    guild_id: int
    name: str
    creator_id: int | None
    application_id: int | None  # set when the bot's application created it
    deleted: bool = False

    @property
    def created_by_bot(self) -> bool:
        return self.application_id is not None


class FakeDiscord:
    """Server-side state for one test."""

    def __init__(self, bot: discord.Client, guild: discord.Guild, recorder: Recorder) -> None:
        self.bot = bot
        self.state = bot._connection
        self.guild = guild
        self.recorder = recorder
        self.cdn: dict[str, bytes] = {}  # attachments by URL, as the CDN serves them
        self.messages: dict[int, JsonDict] = {}  # raw payloads by id, ephemeral ones included
        self.threads: dict[int, JsonDict] = {}  # every thread ever created, archived ones too
        self.thread_members: dict[int, set[int]] = {}  # thread id -> the users in it
        # Faults for the next webhook executes (and, separately, the bot's own sends in channels and threads):
        # "before" a 502 without posting, "after" posts and then a 502 (the uncertain case: the message exists,
        # the caller saw a 5xx), "reset"/"reset-after" the same with a dropped connection, "429" a rate limit,
        # "refuse" a 400, "forbid" a 403; "ok" lets one through. See errors.fault.
        self.execute_faults: list[str] = []
        self.send_faults: list[str] = []
        # Statuses the next thread creations fail with (429: rate limited after discord.py's retries).
        self.thread_faults: list[int] = []
        self.webhooks: dict[int, WebhookInfo] = {}
        self.webhook_creations: Counter[int] = Counter()  # channel id -> POSTs that created one
        self.typing: list[tuple[int, float]] = []  # (channel id, when) for every typing indicator sent
        self.interactions: dict[str, InteractionSession] = {}  # by token
        # Members by id, whatever discord.py caches (without the members intent it caches none).
        self.members: dict[int, discord.Member] = {}
        self.synced_commands: dict[int | None, list[JsonDict]] = {}  # guild id (None = global)
        # Discord drops an interaction that is not acknowledged within 3 seconds.
        self.interaction_deadline = 3.0
        self.now: Callable[[], float] = lambda: self.bot.loop.time()

    def attach(self, bot: discord.Client, guild: discord.Guild, members: dict[int, discord.Member]) -> None:
        """Serve a new bot (after a restart); everything stored server-side stays as it was."""
        self.bot, self.state, self.guild, self.members = bot, bot._connection, guild, members

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def bot_user(self) -> discord.ClientUser:
        assert self.bot.user is not None
        return self.bot.user

    @property
    def application_id(self) -> int:
        return self.bot_user.id

    def channel_listing(self, channel_id: int) -> list[JsonDict]:
        # dpytest's own helpers (add_reaction, verify) read its per-channel lists: keep them in sync.
        config = dpy_backend._cur_config
        assert config is not None
        return config.messages.setdefault(channel_id, [])

    def resolve(self, channel_id: int) -> Channel:
        channel = self.guild.get_channel_or_thread(channel_id)
        if channel is None and channel_id in self.threads:
            # Archived threads leave discord.py's cache but still exist on Discord.
            channel = discord.Thread(guild=self.guild, state=self.state, data=copy.deepcopy(self.threads[channel_id]))
        if channel is None:
            channel = self.state._get_private_channel(channel_id)  # type: ignore[assignment]
        if not isinstance(channel, (discord.TextChannel, discord.Thread, discord.DMChannel)):
            raise unknown("Channel")
        return channel

    def bot_permissions(self, channel: Channel) -> discord.Permissions:
        if isinstance(channel, discord.DMChannel):
            return discord.Permissions.text()
        parent = channel.parent if isinstance(channel, discord.Thread) else channel
        assert parent is not None and self.guild.me is not None
        return parent.permissions_for(self.guild.me)

    def require(self, channel: Channel, *names: str) -> None:
        perms = self.bot_permissions(channel)
        if perms.administrator:
            return
        if not all(getattr(perms, name) for name in names):
            raise missing_permissions()

    def display_name(self, user_id: int) -> str:
        member = self.members.get(user_id) or self.guild.get_member(user_id)
        if member is not None:
            return member.display_name
        user = self.bot.get_user(user_id)
        return user.display_name if user else str(user_id)

    def prepare_thread_post(self, thread_id: int) -> None:
        """Discord unarchives a thread when someone posts in it, unless it is locked."""
        meta = self.threads[thread_id]["thread_metadata"]
        if meta["locked"] and not self.bot_permissions(self.resolve(thread_id)).manage_threads:
            raise http_error(400, 50083, "Thread is locked") if meta["archived"] else missing_permissions()
        if meta["archived"]:
            self.update_thread(thread_id, {"archived": False})

    # -- messages --------------------------------------------------------------------------------

    def create_message(
        self,
        channel: Channel,
        body: JsonDict,
        *,
        kind: str,
        author: JsonDict,
        author_name: str,
        files: list[discord.File] | None = None,
        member: JsonDict | None = None,
        webhook_id: int | None = None,
        application_id: int | None = None,
        interaction: JsonDict | None = None,
        flags: int = 0,
        interaction_id: int | None = None,
        response_type: int | None = None,
        heard: bool = True,
    ) -> tuple[JsonDict, Post]:
        """Create a message, store it, dispatch MESSAGE_CREATE (unless ephemeral, or not `heard`: the bot
        was not connected to receive it), record it."""
        message_id = new_id()
        content = body.get("content")
        allowed = body.get("allowed_mentions")
        pings = compute_pings(content, allowed)
        guild_id = None if isinstance(channel, discord.DMChannel) else self.guild.id
        mentioned = [self.members.get(user_id) for user_id in pings.users]
        uploads = [(file.filename, self._read(file)) for file in files or []]
        attachments = [self._attachment(channel.id, filename, data) for filename, data in uploads]
        payload = message_payload(
            message_id=message_id,
            channel_id=channel.id,
            guild_id=guild_id,
            author=author,
            content=content,
            embeds=copy.deepcopy(body.get("embeds") or []),
            components=copy.deepcopy(body.get("components") or []),
            attachments=attachments,
            mentions=[{**user_payload(m), "member": member_payload(m, with_user=False)} for m in mentioned if m],
            mention_roles=list(pings.roles),
            mention_everyone=pings.everyone,
            flags=flags,
            tts=bool(body.get("tts")),
            member=member,
            webhook_id=webhook_id,
            application_id=application_id,
            interaction=interaction,
        )
        reference = body.get("message_reference")
        if reference and reference.get("message_id"):
            referenced = self.messages.get(int(reference["message_id"]))
            payload["type"] = 19  # reply
            payload["message_reference"] = {**reference, "channel_id": reference.get("channel_id", channel.id)}
            payload["referenced_message"] = copy.deepcopy(referenced) if referenced else None
            if referenced is not None:
                payload["referenced_message"].pop("referenced_message", None)
        is_thread = isinstance(channel, discord.Thread)
        post = Post(
            kind=kind,  # type: ignore[arg-type]
            message_id=message_id,
            channel_id=channel.id,
            thread_id=channel.id if is_thread else None,
            parent_id=getattr(channel, "parent_id", None) if is_thread else (channel.id if guild_id else None),
            author_id=int(author["id"]),
            author_name=author_name,
            content=content,
            embeds=copy.deepcopy(body.get("embeds") or []),
            components=copy.deepcopy(body.get("components") or []),
            attachments=[a["filename"] for a in attachments],
            files=dict(uploads),
            ephemeral=bool(flags & FLAG_EPHEMERAL),
            flags=flags,
            username=body.get("username"),
            avatar_url=body.get("avatar_url"),
            allowed_mentions=copy.deepcopy(allowed),
            pings=pings,
            webhook_id=webhook_id,
            interaction_id=interaction_id,
            response_type=response_type,
            reply_to=int(reference["message_id"]) if reference and reference.get("message_id") else None,
        )
        self.recorder.add(post)
        self.messages[message_id] = payload
        if not post.ephemeral:
            self.channel_listing(channel.id).append(payload)
            if heard:
                self.state.parse_message_create(copy.deepcopy(payload))
        return payload, post

    @staticmethod
    def _read(file: discord.File) -> bytes:
        fp = file.fp
        start = fp.tell()
        data = fp.read()
        fp.seek(start)
        return data

    def _attachment(self, channel_id: int, filename: str, data: bytes) -> JsonDict:
        """An attachment as Discord describes it; its bytes are served by the fake CDN at its URL."""
        attachment_id = new_id()
        url = f"https://cdn.discordapp.test/attachments/{channel_id}/{attachment_id}/{filename}"
        self.cdn[url] = data
        described: JsonDict = {
            "id": attachment_id,
            "filename": filename,
            "size": len(data),
            "url": url,
            "proxy_url": url,
        }
        content_type = mimetypes.guess_type(filename)[0]
        if content_type:
            described["content_type"] = content_type
        return described

    def edit_message(
        self, message_id: int, body: JsonDict, *, via: str, files: list[discord.File] | None = None
    ) -> JsonDict:
        payload = self.messages.get(message_id)
        post = self.recorder.get(message_id)
        if payload is None or post is None or post.deleted:
            raise unknown("Message")
        limits.check_message(body, partial=True)
        updated = copy.deepcopy(payload)
        if files:  # uploaded with the edit (a followup filling a deferral): they join the message's attachments
            uploads = [(file.filename, self._read(file)) for file in files]
            updated["attachments"] = [
                *updated.get("attachments", []),
                *(self._attachment(int(payload["channel_id"]), filename, data) for filename, data in uploads),
            ]
            post.attachments.extend(filename for filename, _ in uploads)
            post.files.update(uploads)
        for key in ("content", "embeds", "components", "allowed_mentions"):
            if key in body:
                updated[key] = body[key] if body[key] is not None else ("" if key == "content" else [])
        # Ephemerality can't change after the fact; editing a "thinking" message finishes it.
        flags = int(body.get("flags", updated.get("flags", 0)))
        updated["flags"] = (flags & ~(FLAG_LOADING | FLAG_EPHEMERAL)) | (payload.get("flags", 0) & FLAG_EPHEMERAL)
        limits.check_not_empty(updated)
        updated["edited_timestamp"] = iso_now()
        payload.clear()
        payload.update(updated)  # in place: dpytest's channel lists hold the same dict
        fields = copy.deepcopy(body)
        fields["flags"] = updated["flags"]
        edit = Edit(
            message_id=message_id,
            via=via,  # type: ignore[arg-type]
            content=body.get("content") if "content" in body else None,
            embeds=copy.deepcopy(body["embeds"]) if "embeds" in body else None,
            fields=fields,
        )
        self.recorder.apply_edit(post, edit)
        if not post.ephemeral:
            self.state.parse_message_update(copy.deepcopy(payload))
        return copy.deepcopy(payload)

    def delete_message(self, message_id: int) -> None:
        payload = self.messages.get(message_id)
        post = self.recorder.get(message_id)
        if payload is None or (post is not None and post.deleted):
            raise unknown("Message")
        if post is not None:
            post.deleted = True
        channel_id = int(payload["channel_id"])
        listing = self.channel_listing(channel_id)
        if payload in listing:
            listing.remove(payload)
        if not (post and post.ephemeral):
            self.state.parse_message_delete({"id": message_id, "channel_id": channel_id, "guild_id": self.guild.id})

    def human_message(
        self,
        member: discord.Member,
        channel: discord.TextChannel | discord.Thread,
        content: str,
        *,
        reply_to: int | None = None,
        heard: bool = True,
        files: Sequence[tuple[str, bytes]] = (),
    ) -> JsonDict:
        """A member posts (with `files`, (filename, bytes) each, as attachments): MESSAGE_CREATE with the guild, channel (thread) and member data set right.
        Not `heard`: the message is in the channel, but the bot was not there to receive the event.

        `reply_to`: the id of a message in the same channel this one replies to (the client's Reply),
        sent as `message_reference`; Discord then adds the replied message as `referenced_message`."""
        if len(content) > limits.CONTENT_MAX:
            raise ValueError(f"Discord does not let members post more than {limits.CONTENT_MAX} characters")
        body: JsonDict = {"content": content}
        if reply_to is not None:
            replied = self.messages.get(reply_to)
            post = self.recorder.get(reply_to)
            # The client only offers Reply on a message it shows, in the channel being written in.
            if (
                replied is None
                or int(replied["channel_id"]) != channel.id
                or (post and (post.ephemeral or post.deleted))
            ):
                raise ValueError(f"There is no message {reply_to} in channel {channel.id} to reply to")
            body["message_reference"] = {"message_id": reply_to, "channel_id": channel.id, "guild_id": self.guild.id}
        thread = self.threads.get(channel.id)
        if thread is not None and thread["thread_metadata"]["archived"]:
            self.update_thread(channel.id, {"archived": False})  # posting unarchives, as on Discord
        payload, _ = self.create_message(
            channel,
            body,
            kind="human",
            author=user_payload(member),
            author_name=member.display_name,
            member=member_payload(member, with_user=False),
            heard=heard,
            files=[discord.File(io.BytesIO(data), filename=name) for name, data in files],
        )
        return payload

    # -- threads ---------------------------------------------------------------------------------

    def create_thread(self, channel: Channel, body: JsonDict, *, starter_id: int | None) -> JsonDict:
        if not isinstance(channel, discord.TextChannel):
            raise http_error(400, 50024, "Cannot execute action on this channel type")
        limits.check_thread_name(body.get("name"))
        limits.check_archive_duration(body.get("auto_archive_duration"))
        thread_type = int(body.get("type") or discord.ChannelType.public_thread.value)
        private = thread_type == discord.ChannelType.private_thread.value
        self.require(channel, "view_channel", "create_private_threads" if private else "create_public_threads")
        if self.thread_faults:
            status = self.thread_faults.pop(0)
            raise rate_limited() if status == 429 else http_error(status, 0, f"Thread creation failed ({status})")
        if starter_id is not None:
            starter = self.messages.get(starter_id)
            if starter is None or int(starter["channel_id"]) != channel.id:
                raise unknown("Message")
            if starter.get("flags", 0) & FLAG_HAS_THREAD:
                raise http_error(400, 160004, "A thread has already been created for this message")
            starter["flags"] = starter.get("flags", 0) | FLAG_HAS_THREAD
        data = thread_payload(
            # A thread started from a message shares the message's id, as on Discord.
            thread_id=starter_id if starter_id is not None else new_id(),
            guild_id=self.guild.id,
            parent_id=channel.id,
            owner_id=self.bot_user.id,
            name=body["name"],
            thread_type=thread_type,
            auto_archive_duration=body.get("auto_archive_duration") or 1440,
            rate_limit_per_user=body.get("rate_limit_per_user") or 0,
            invitable=body.get("invitable", True),
        )
        self.threads[data["id"]] = data
        self.thread_members[data["id"]] = {self.bot_user.id}
        self.channel_listing(data["id"])
        self.state.parse_thread_create({**copy.deepcopy(data), "newly_created": True})
        return copy.deepcopy(data)

    def create_private_thread(
        self, channel: discord.TextChannel, name: str, *, owner: discord.Member, members: set[int]
    ) -> JsonDict:
        """A member opens a private thread and adds people to it. The bot hears of it (THREAD_CREATE) only
        if it can see it: as one of its members, or with Manage Threads."""
        limits.check_thread_name(name)
        data = thread_payload(
            thread_id=new_id(),
            guild_id=self.guild.id,
            parent_id=channel.id,
            owner_id=owner.id,
            name=name,
            thread_type=discord.ChannelType.private_thread.value,
            invitable=False,
        )
        joined = {owner.id, *members}
        if self.bot_user.id in joined:
            data["member"]["user_id"] = self.bot_user.id  # the bot's own membership ("me")
        else:
            del data["member"]
        self.threads[data["id"]] = data
        self.thread_members[data["id"]] = joined
        self.channel_listing(data["id"])
        if self.bot_sees_thread(data["id"]):
            self.state.parse_thread_create({**copy.deepcopy(data), "newly_created": True})
        return copy.deepcopy(data)

    def bot_sees_thread(self, thread_id: int) -> bool:
        """Discord's rule: View Channel in the parent, and for a private thread membership or Manage Threads."""
        data = self.threads[thread_id]
        parent = self.guild.get_channel(int(data["parent_id"]))
        if not isinstance(parent, discord.TextChannel):
            return False
        perms = self.bot_permissions(parent)
        if perms.administrator:
            return True
        if not perms.view_channel:
            return False
        private = data["type"] == discord.ChannelType.private_thread.value
        return not private or perms.manage_threads or self.bot_user.id in self.thread_members.get(thread_id, set())

    def update_thread(self, thread_id: int, changes: JsonDict) -> JsonDict:
        data = self.threads[thread_id]
        meta = data["thread_metadata"]
        if "name" in changes:
            limits.check_thread_name(changes["name"])
            data["name"] = changes["name"]
        for key in ("archived", "locked", "auto_archive_duration", "invitable"):
            if key in changes:
                meta[key] = changes[key]
        if "archived" in changes:
            meta["archive_timestamp"] = iso_now()
        if "rate_limit_per_user" in changes:
            data["rate_limit_per_user"] = changes["rate_limit_per_user"]
        self.state.parse_thread_update(copy.deepcopy(data))
        return copy.deepcopy(data)

    # -- webhooks --------------------------------------------------------------------------------

    def webhooks_in(self, channel_id: int) -> list[WebhookInfo]:
        return [info for info in self.webhooks.values() if info.channel_id == channel_id and not info.deleted]

    def add_webhook(
        self, channel: discord.TextChannel, name: str, *, creator: discord.abc.User, by_bot: bool
    ) -> WebhookInfo:
        info = WebhookInfo(
            id=new_id(),
            token=secrets.token_urlsafe(24),
            channel_id=channel.id,
            guild_id=self.guild.id,
            name=name,
            creator_id=creator.id,
            application_id=self.application_id if by_bot else None,
        )
        self.webhooks[info.id] = info
        return info

    def webhook_json(self, info: WebhookInfo) -> JsonDict:
        creator: discord.abc.User | None = None
        if info.creator_id is not None:
            creator = self.members.get(info.creator_id) or self.bot.get_user(info.creator_id)
        return webhook_payload(
            webhook_id=info.id,
            token=info.token,
            guild_id=info.guild_id,
            channel_id=info.channel_id,
            name=info.name,
            creator=user_payload(creator) if creator else None,
            application_id=info.application_id,
        )

    def webhook_or_404(self, webhook_id: str, token: str | None = None) -> WebhookInfo:
        info = self.webhooks.get(int(webhook_id))
        if info is None or info.deleted or (token is not None and token != info.token):
            raise unknown("Webhook")
        return info

    # -- interactions ----------------------------------------------------------------------------

    def is_interaction(self, template: str, params: dict[str, str]) -> bool:
        """An interaction endpoint: a callback, or a followup / @original under the application's id and
        an interaction's token (Discord keeps these out of the global rate limit)."""
        if template.startswith("/interactions/"):
            return True
        token = params.get("webhook_token")
        if not template.startswith("/webhooks/") or token is None or self.session_for(token) is None:
            return False
        return params.get("webhook_id") == str(self.application_id)

    def open_interaction(self, session: InteractionSession) -> None:
        self.interactions[session.token] = session

    def session_for(self, token: str, interaction_id: str | None = None) -> InteractionSession | None:
        session = self.interactions.get(token)
        if session is not None and interaction_id is not None and int(interaction_id) != session.id:
            return None
        return session

    def interaction_message(
        self,
        session: InteractionSession,
        body: JsonDict,
        *,
        flags: int,
        kind: str = "interaction",
        response_type: int | None = None,
        files: list[discord.File] | None = None,
    ) -> tuple[JsonDict, Post]:
        channel = self.resolve(session.channel_id)
        return self.create_message(
            channel,
            body,
            kind=kind,
            files=files,
            author=user_payload(self.bot_user),
            author_name=self.display_name(self.bot_user.id),
            application_id=self.application_id,
            interaction={"id": session.id, "type": session.type, "name": session.name, "user": session.user_payload},
            flags=flags,
            interaction_id=session.id,
            response_type=response_type,
        )


__all__ = ["FakeDiscord", "WebhookInfo"]
