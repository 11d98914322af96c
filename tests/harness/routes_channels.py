"""Fake routes for channel messages, reactions, channels, threads and command sync (via `bot.http`)."""

from __future__ import annotations

import copy

import discord
from discord.ext.test import callbacks as dpy_callbacks

from . import errors, limits
from .errors import http_error, missing_access, missing_permissions, unknown
from .fake_http import Request, Router
from .payloads import FLAG_EPHEMERAL, JsonDict, iso_of, new_id, text_channel_payload, user_payload
from .recorder import Reaction
from .server import FakeDiscord


class ChannelRoutes:
    def __init__(self, server: FakeDiscord) -> None:
        self.server = server

    def register(self, router: Router) -> None:
        add = router.add
        add("POST", "/channels/{channel_id}/messages", self.r_send)
        add("GET", "/channels/{channel_id}/messages", self.r_history)
        add("GET", "/channels/{channel_id}/messages/{message_id}", self.r_get_message)
        add("PATCH", "/channels/{channel_id}/messages/{message_id}", self.r_edit_message)
        add("DELETE", "/channels/{channel_id}/messages/{message_id}", self.r_delete_message)
        add("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me", self.r_react)
        add("POST", "/channels/{channel_id}/typing", self.r_typing)
        add("GET", "/channels/{channel_id}", self.r_get_channel)
        add("GET", "/users/{user_id}", self.r_get_user)
        add("PATCH", "/channels/{channel_id}", self.r_edit_channel)
        add("POST", "/channels/{channel_id}/messages/{message_id}/threads", self.r_thread_from_message)
        add("POST", "/channels/{channel_id}/threads", self.r_thread)
        for method in ("PUT", "DELETE"):  # joining and leaving threads (who is in a private thread matters)
            add(method, "/channels/{channel_id}/thread-members/@me", self.r_thread_membership)
            add(method, "/channels/{channel_id}/thread-members/{user_id}", self.r_thread_membership)
        add("GET", "/channels/{channel_id}/thread-members/{user_id}", self.r_get_thread_member)
        add("GET", "/guilds/{guild_id}/threads/active", self.r_active_threads)
        add("GET", "/channels/{channel_id}/threads/archived/public", self.r_archived_threads)
        commands = "/applications/{application_id}/commands"
        for path in (commands, "/applications/{application_id}/guilds/{guild_id}/commands"):
            add("PUT", path, self.r_sync_commands)
            add("GET", path, self.r_get_commands)

    async def r_typing(self, request: Request) -> None:
        channel = self.server.resolve(int(request.params["channel_id"]))
        if isinstance(channel, discord.Thread):
            self.server.require(channel, "view_channel", "send_messages_in_threads")
        elif isinstance(channel, discord.TextChannel):
            self.server.require(channel, "view_channel", "send_messages")
        self.server.typing.append((channel.id, self.server.now()))

    async def r_send(self, request: Request) -> JsonDict:
        channel = self.server.resolve(int(request.params["channel_id"]))
        body = request.body or {}
        if isinstance(channel, discord.Thread):
            self.server.require(channel, "view_channel", "send_messages_in_threads")
            self.server.prepare_thread_post(channel.id)
        elif isinstance(channel, discord.TextChannel):
            self.server.require(channel, "view_channel", "send_messages")
        limits.check_message(body, attachments=len(request.files))
        fault = self.server.send_faults.pop(0) if self.server.send_faults else None
        if fault not in (None, "ok", "after", "reset-after"):
            raise errors.fault(fault)
        payload, _ = self.server.create_message(
            channel,
            body,
            kind="dm" if isinstance(channel, discord.DMChannel) else "channel",
            author=user_payload(self.server.bot_user),
            author_name=self.server.display_name(self.server.bot_user.id),
            files=request.files,
            flags=int(body.get("flags") or 0) & ~FLAG_EPHEMERAL,  # only interactions can be ephemeral
        )
        # Keep dpytest's sent-message queue (dpytest.verify()) working for channel sends.
        state = self.server.state
        message = discord.Message(state=state, channel=channel, data=copy.deepcopy(payload))  # type: ignore[arg-type]
        await dpy_callbacks.dispatch_event("send_message", message)
        if fault in ("after", "reset-after"):
            raise errors.fault(fault)
        return copy.deepcopy(payload)

    async def r_history(self, request: Request) -> list[JsonDict]:
        channel = self.server.resolve(int(request.params["channel_id"]))
        self.server.require(channel, "view_channel", "read_message_history")
        listing = sorted(self.server.channel_listing(channel.id), key=lambda m: int(m["id"]))
        query = request.query
        limit = int(query.get("limit") or 50)
        if query.get("before"):
            listing = [m for m in listing if int(m["id"]) < int(query["before"])]
        if query.get("after"):
            listing = [m for m in listing if int(m["id"]) > int(query["after"])][:limit]
        # Discord returns newest first.
        return [copy.deepcopy(m) for m in reversed(listing[-limit:])]

    def _channel_message(self, request: Request) -> JsonDict:
        payload = self.server.messages.get(int(request.params["message_id"]))
        post = self.server.recorder.get(int(request.params["message_id"]))
        elsewhere = payload is not None and int(payload["channel_id"]) != int(request.params["channel_id"])
        if payload is None or elsewhere or (post is not None and (post.deleted or post.ephemeral)):
            raise unknown("Message")
        return payload

    async def r_get_message(self, request: Request) -> JsonDict:
        return copy.deepcopy(self._channel_message(request))

    async def r_edit_message(self, request: Request) -> JsonDict:
        payload = self._channel_message(request)
        if int(payload["author"]["id"]) != self.server.bot_user.id or payload.get("webhook_id"):
            raise http_error(403, 50005, "Cannot edit a message authored by another user")
        return self.server.edit_message(int(payload["id"]), request.body or {}, via="channel")

    async def r_delete_message(self, request: Request) -> None:
        payload = self._channel_message(request)
        if int(payload["author"]["id"]) != self.server.bot_user.id:
            self.server.require(self.server.resolve(int(payload["channel_id"])), "manage_messages")
        self.server.delete_message(int(payload["id"]))

    async def r_react(self, request: Request) -> None:
        payload = self._channel_message(request)
        channel = self.server.resolve(int(payload["channel_id"]))
        self.server.require(channel, "view_channel", "read_message_history", "add_reactions")
        emoji = request.params["emoji"]
        self.server.recorder.reactions.append(Reaction(int(payload["id"]), channel.id, emoji, self.server.bot_user.id))
        name, _, emoji_id = emoji.partition(":")
        data = {
            "message_id": int(payload["id"]),
            "channel_id": channel.id,
            "user_id": self.server.bot_user.id,
            "guild_id": self.server.guild.id,
            "emoji": {"id": int(emoji_id) if emoji_id else None, "name": name},
            "burst": False,
            "type": 0,
        }
        self.server.state.parse_message_reaction_add(data)

    async def r_get_user(self, request: Request) -> JsonDict:
        user_id = int(request.params["user_id"])
        member = self.server.members.get(user_id)
        if member is None:
            raise http_error(404, 10013, "Unknown User")
        return user_payload(member)

    async def r_get_channel(self, request: Request) -> JsonDict:
        channel_id = int(request.params["channel_id"])
        if channel_id in self.server.threads:
            if not self.server.bot_sees_thread(channel_id):
                raise missing_access()
            return copy.deepcopy(self.server.threads[channel_id])
        channel = self.server.resolve(channel_id)
        if isinstance(channel, discord.TextChannel):
            perms = self.server.bot_permissions(channel)
            if not (perms.view_channel or perms.administrator):
                raise missing_access()
            return text_channel_payload(channel)
        raise unknown("Channel")

    def _visible_thread(self, request: Request) -> int:
        thread_id = int(request.params["channel_id"])
        if thread_id not in self.server.threads:
            raise unknown("Channel")
        if not self.server.bot_sees_thread(thread_id):
            raise missing_access()
        return thread_id

    async def r_thread_membership(self, request: Request) -> None:
        thread_id = self._visible_thread(request)
        user_id = int(request.params.get("user_id") or self.server.bot_user.id)
        members = self.server.thread_members.setdefault(thread_id, set())
        (members.add if request.method == "PUT" else members.discard)(user_id)

    async def r_get_thread_member(self, request: Request) -> JsonDict:
        thread_id = self._visible_thread(request)
        user_id = int(request.params["user_id"])
        if user_id not in self.server.thread_members.get(thread_id, set()):
            raise unknown("Member")
        return {"id": thread_id, "user_id": user_id, "join_timestamp": iso_of(thread_id), "flags": 0}

    async def r_edit_channel(self, request: Request) -> JsonDict:
        channel_id = int(request.params["channel_id"])
        body = request.body or {}
        if channel_id in self.server.threads:
            thread = self.server.resolve(channel_id)
            perms = self.server.bot_permissions(thread)
            owner = self.server.threads[channel_id]["owner_id"] == self.server.bot_user.id
            if ("locked" in body or not owner) and not (perms.manage_threads or perms.administrator):
                raise missing_permissions()
            return self.server.update_thread(channel_id, body)
        channel = self.server.resolve(channel_id)
        if not isinstance(channel, discord.TextChannel):
            raise unknown("Channel")
        self.server.require(channel, "manage_channels")
        data = text_channel_payload(channel)
        for key in ("name", "topic", "rate_limit_per_user", "nsfw"):
            if key in body:
                data[key] = body[key]
        self.server.state.parse_channel_update(copy.deepcopy(data))
        return data

    async def r_thread_from_message(self, request: Request) -> JsonDict:
        channel = self.server.resolve(int(request.params["channel_id"]))
        return self.server.create_thread(channel, request.body or {}, starter_id=int(request.params["message_id"]))

    async def r_thread(self, request: Request) -> JsonDict:
        if request.query.get("use_nested_fields"):
            raise NotImplementedError("the harness does not fake forum channels")
        channel = self.server.resolve(int(request.params["channel_id"]))
        return self.server.create_thread(channel, request.body or {}, starter_id=None)

    async def r_active_threads(self, request: Request) -> JsonDict:
        active = [t for t in self.server.threads.values() if not t["thread_metadata"]["archived"]]
        return {"threads": copy.deepcopy(active), "members": []}

    async def r_archived_threads(self, request: Request) -> JsonDict:
        parent = int(request.params["channel_id"])
        threads = self.server.threads.values()
        archived = [t for t in threads if t["parent_id"] == parent and t["thread_metadata"]["archived"]]
        return {"threads": copy.deepcopy(archived), "members": [], "has_more": False}

    async def r_sync_commands(self, request: Request) -> list[JsonDict]:
        guild_id = int(request.params["guild_id"]) if "guild_id" in request.params else None
        stored = []
        for index, command in enumerate(request.body or []):
            limits.check_command(command, index)  # as Discord does: nothing is stored if one is refused
        for command in request.body or []:
            entry = {"id": new_id(), "application_id": self.server.application_id, "version": "1", "description": ""}
            entry.update(copy.deepcopy(command))
            if guild_id is not None:
                entry["guild_id"] = guild_id
            stored.append(entry)
        self.server.synced_commands[guild_id] = stored
        return copy.deepcopy(stored)

    async def r_get_commands(self, request: Request) -> list[JsonDict]:
        guild_id = int(request.params["guild_id"]) if "guild_id" in request.params else None
        return copy.deepcopy(self.server.synced_commands.get(guild_id, []))


__all__ = ["ChannelRoutes"]
