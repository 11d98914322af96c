"""Fake routes for webhooks and interactions: management via `bot.http`; execute, interaction
callbacks, followups and @original via the patched webhook adapter."""

from __future__ import annotations

import copy
import dataclasses

import discord

from . import errors, limits
from .errors import form_error, http_error, unknown
from .fake_http import Request, Router
from .interactions import AUTOCOMPLETE, COMPONENT, MODAL_SUBMIT, InteractionSession
from .modals import check_modal
from .payloads import FLAG_EPHEMERAL, FLAG_LOADING, JsonDict
from .server import MAX_WEBHOOKS_PER_CHANNEL, FakeDiscord

# Interaction callback types (Discord's InteractionResponseType).
MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE, CHOICES, MODAL = 4, 5, 6, 7, 8, 9


class WebhookRoutes:
    def __init__(self, server: FakeDiscord) -> None:
        self.server = server

    def register(self, router: Router) -> None:
        add = router.add
        add("GET", "/channels/{channel_id}/webhooks", self.r_channel_webhooks)
        add("POST", "/channels/{channel_id}/webhooks", self.r_create_webhook)
        for path in ("/webhooks/{webhook_id}", "/webhooks/{webhook_id}/{webhook_token}"):
            add("GET", path, self.r_get_webhook)
            add("DELETE", path, self.r_delete_webhook)
        add("POST", "/webhooks/{webhook_id}/{webhook_token}", self.r_execute)
        handlers = {
            "GET": self.r_get_webhook_message,
            "PATCH": self.r_edit_webhook_message,
            "DELETE": self.r_delete_webhook_message,
        }
        for method, handler in handlers.items():
            add(method, "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}", handler)
            add(method, "/webhooks/{webhook_id}/{webhook_token}/messages/@original", handler)
        add("POST", "/interactions/{webhook_id}/{webhook_token}/callback", self.r_callback)

    async def r_channel_webhooks(self, request: Request) -> list[JsonDict]:
        channel = self.server.resolve(int(request.params["channel_id"]))
        if not isinstance(channel, discord.TextChannel):
            raise http_error(400, 50024, "Cannot execute action on this channel type")
        self.server.require(channel, "manage_webhooks")
        return [self.server.webhook_json(w) for w in self.server.webhooks_in(channel.id)]

    async def r_create_webhook(self, request: Request) -> JsonDict:
        channel = self.server.resolve(int(request.params["channel_id"]))
        if not isinstance(channel, discord.TextChannel):
            raise http_error(400, 50024, "Cannot execute action on this channel type")
        self.server.require(channel, "manage_webhooks")
        name = (request.body or {}).get("name")
        limits.check_name("name", name)
        if len(self.server.webhooks_in(channel.id)) >= MAX_WEBHOOKS_PER_CHANNEL:
            raise http_error(400, 30007, f"Maximum number of webhooks reached ({MAX_WEBHOOKS_PER_CHANNEL})")
        info = self.server.add_webhook(channel, name, creator=self.server.bot_user, by_bot=True)
        self.server.webhook_creations[channel.id] += 1
        return self.server.webhook_json(info)

    async def r_get_webhook(self, request: Request) -> JsonDict:
        info = self.server.webhook_or_404(request.params["webhook_id"], request.params.get("webhook_token"))
        return self.server.webhook_json(info)

    async def r_delete_webhook(self, request: Request) -> None:
        self.server.webhook_or_404(request.params["webhook_id"], request.params.get("webhook_token")).deleted = True

    async def r_execute(self, request: Request) -> JsonDict | None:
        token = request.params["webhook_token"]
        session = self.server.session_for(token)
        if session is not None and int(request.params["webhook_id"]) == self.server.application_id:
            return self._followup(session, request)
        info = self.server.webhook_or_404(request.params["webhook_id"], token)
        body = request.body or {}
        if body.get("thread_name"):
            raise NotImplementedError("the harness does not fake forum channels (thread_name)")
        thread_id = request.query.get("thread_id")
        if thread_id:
            thread = self.server.threads.get(int(thread_id))
            if thread is None or thread["parent_id"] != info.channel_id:
                # Discord only lets a webhook post in threads of its own channel.
                raise unknown("Channel")
            self.server.prepare_thread_post(int(thread_id))
            channel = self.server.resolve(int(thread_id))
        else:
            channel = self.server.resolve(info.channel_id)
        limits.check_message(body, attachments=len(request.files))
        if "username" in body:
            limits.check_name("username", body["username"])
        if "avatar_url" in body:
            limits.check_avatar_url(body["avatar_url"])
        username = body.get("username") or info.name
        fault = self.server.execute_faults.pop(0) if self.server.execute_faults else None
        if fault not in (None, "ok", "after", "reset-after"):
            raise errors.fault(fault)
        payload, _ = self.server.create_message(
            channel,
            body,
            kind="webhook",
            author={"id": info.id, "username": username, "discriminator": "0000", "avatar": None, "bot": True},
            author_name=username,
            files=request.files,
            webhook_id=info.id,
            application_id=info.application_id,
        )
        if fault in ("after", "reset-after"):
            raise errors.fault(fault)
        # `wait` arrives as 0/1: without it Discord answers 204 No Content.
        return copy.deepcopy(payload) if int(request.query.get("wait") or 0) else None

    def _webhook_message(self, request: Request) -> tuple[InteractionSession | None, JsonDict]:
        token = request.params["webhook_token"]
        session = self.server.session_for(token)
        message_id = request.params.get("message_id")
        if session is not None and int(request.params["webhook_id"]) == self.server.application_id:
            if message_id is None:  # @original
                if session.original_id is None:
                    raise unknown("Message")
                return session, self.server.messages[session.original_id]
            if int(message_id) not in session.followup_ids and int(message_id) != session.original_id:
                raise unknown("Message")
            return session, self.server.messages[int(message_id)]
        info = self.server.webhook_or_404(request.params["webhook_id"], token)
        payload = self.server.messages.get(int(message_id)) if message_id else None
        # Messages in a thread need ?thread_id=, or Discord looks in the webhook's channel.
        where = int(request.query.get("thread_id") or info.channel_id)
        if payload is None or payload.get("webhook_id") != info.id or int(payload["channel_id"]) != where:
            raise unknown("Message")
        post = self.server.recorder.get(int(payload["id"]))
        if post is not None and post.deleted:
            raise unknown("Message")
        return None, payload

    async def r_get_webhook_message(self, request: Request) -> JsonDict:
        return copy.deepcopy(self._webhook_message(request)[1])

    async def r_edit_webhook_message(self, request: Request) -> JsonDict:
        session, payload = self._webhook_message(request)
        body = request.body or {}
        if session is None:
            return self.server.edit_message(int(payload["id"]), body, via="webhook")
        via = "interaction" if int(payload["id"]) == session.original_id else "followup"
        result = self.server.edit_message(int(payload["id"]), body, via=via)
        if via == "interaction":
            session.loading = False  # edit_original_response fills a deferred response too
        post = self.server.recorder.get(int(payload["id"]))
        assert post is not None
        session.result.edits.append(post.edits[-1])
        return result

    async def r_delete_webhook_message(self, request: Request) -> None:
        _, payload = self._webhook_message(request)
        self.server.delete_message(int(payload["id"]))

    async def r_callback(self, request: Request) -> JsonDict:
        server = self.server
        session = server.session_for(request.params["webhook_token"], request.params["webhook_id"])
        if session is None or server.now() - session.created_at > server.interaction_deadline:
            raise unknown("interaction")  # 10062: too late, the token is gone
        if session.result.response_type is not None:
            raise http_error(400, 40060, "Interaction has already been acknowledged.")
        body = request.body or {}
        response_type = int(body["type"])
        data = body.get("data") or {}
        if response_type in (DEFERRED_UPDATE, UPDATE_MESSAGE) and session.type not in (COMPONENT, MODAL_SUBMIT):
            raise form_error(["type"], "INTERACTION_RESPONSE_TYPE_INVALID", "Invalid for this interaction")
        if response_type == MODAL and session.type == MODAL_SUBMIT:
            raise form_error(["type"], "INTERACTION_RESPONSE_TYPE_INVALID", "A modal cannot answer a modal submit")
        if (response_type == CHOICES) != (session.type == AUTOCOMPLETE):
            # Autocomplete is answered with choices (8), and only autocomplete is.
            raise form_error(["type"], "INTERACTION_RESPONSE_TYPE_INVALID", "Invalid for this interaction")
        result = session.result
        message: JsonDict | None = None
        if response_type == MESSAGE:
            limits.check_message(data, attachments=len(request.files))
            flags = int(data.get("flags") or 0)
            message, result.response = server.interaction_message(
                session, data, flags=flags, response_type=MESSAGE, files=request.files
            )
            session.original_id = result.response.message_id
        elif response_type == DEFERRED_MESSAGE:
            # The user sees "<bot> is thinking..." until a followup or an edit fills it.
            flags = (int(data.get("flags") or 0) & FLAG_EPHEMERAL) | FLAG_LOADING
            message, result.response = server.interaction_message(
                session, {"content": None}, flags=flags, response_type=DEFERRED_MESSAGE
            )
            session.original_id, session.loading = result.response.message_id, True
        elif response_type == UPDATE_MESSAGE:
            assert session.message_id is not None
            message = server.edit_message(session.message_id, data, via="interaction")
            result.response = server.recorder.get(session.message_id)
            assert result.response is not None
            result.edits.append(result.response.edits[-1])
        elif response_type == CHOICES:
            limits.check_choices(data.get("choices") or [])
            result.choices = copy.deepcopy(data.get("choices") or [])
        elif response_type == MODAL:
            check_modal(data)
            result.modal = copy.deepcopy(data)
        result.response_type = response_type
        answer: JsonDict = {
            "interaction": {
                "id": session.id,
                "type": session.type,
                "response_message_id": message["id"] if message else None,
                "response_message_loading": response_type == DEFERRED_MESSAGE,
                "response_message_ephemeral": bool(result.response and result.response.ephemeral),
            },
            "resource": {"type": response_type},
        }
        if message is not None:
            answer["resource"]["message"] = copy.deepcopy(message)
        return answer

    def _followup(self, session: InteractionSession, request: Request) -> JsonDict:
        if session.result.response_type is None:
            raise unknown("Webhook")  # Discord knows no followup webhook before the ack
        body = request.body or {}
        limits.check_message(body, attachments=len(request.files))
        result = session.result
        if session.loading and session.original_id is not None:
            # The first followup after a defer replaces the "thinking" message and keeps its
            # visibility: ephemeral=... on this followup is ignored by Discord. Its files come with it.
            fill = {k: v for k, v in body.items() if k not in ("flags", "attachments")}
            uploads = {"files": request.files} if request.files else {}
            payload = self.server.edit_message(session.original_id, fill, via="followup", **uploads)
            session.loading = False
            original = self.server.recorder.get(session.original_id)
            assert original is not None
            post = dataclasses.replace(original, kind="followup", replaced_deferred=True, edits=[])
            self.server.recorder.add(post)
            result.followups.append(post)
            return payload
        flags = int(body.get("flags") or 0) & FLAG_EPHEMERAL
        payload, post = self.server.interaction_message(
            session, body, flags=flags, kind="followup", files=request.files
        )
        session.followup_ids.add(post.message_id)
        result.followups.append(post)
        return copy.deepcopy(payload)
