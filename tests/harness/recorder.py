"""Structured records of everything that appears in the fake Discord.

Tests assert on these rather than on discord.py objects: who posted what, where, how, and what it
looks like after edits. A `Post` is mutable: edits are applied to it (and logged in `post.edits`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

PostKind = Literal["channel", "webhook", "interaction", "followup", "human", "dm"]

_USER_MENTION = re.compile(r"<@!?(\d{15,21})>")
_ROLE_MENTION = re.compile(r"<@&(\d{15,21})>")
_EVERYONE = re.compile(r"@(everyone|here)\b")


@dataclass(frozen=True)
class Pings:
    """Who a message actually notifies, after applying allowed_mentions the way Discord does."""

    users: tuple[int, ...] = ()
    roles: tuple[int, ...] = ()
    everyone: bool = False

    def __bool__(self) -> bool:
        return bool(self.users or self.roles or self.everyone)


def compute_pings(content: str | None, allowed_mentions: dict[str, Any] | None) -> Pings:
    text = content or ""
    if allowed_mentions is None:  # Discord's default: parse everything
        parse, users, roles = {"users", "roles", "everyone"}, set(), set()
    else:
        parse = set(allowed_mentions.get("parse") or [])
        users = {int(u) for u in allowed_mentions.get("users") or []}
        roles = {int(r) for r in allowed_mentions.get("roles") or []}
    found_users = [int(u) for u in _USER_MENTION.findall(text)]
    found_roles = [int(r) for r in _ROLE_MENTION.findall(text)]
    return Pings(
        users=tuple(u for u in dict.fromkeys(found_users) if "users" in parse or u in users),
        roles=tuple(r for r in dict.fromkeys(found_roles) if "roles" in parse or r in roles),
        everyone=bool(_EVERYONE.search(text)) and "everyone" in parse,
    )


@dataclass
class Edit:
    """One edit of a message. `content`/`embeds` are None when the edit did not touch them."""

    message_id: int
    via: Literal["channel", "webhook", "interaction", "followup"]
    content: str | None
    embeds: list[dict[str, Any]] | None
    fields: dict[str, Any]


@dataclass
class Post:
    """A message as Discord shows it (kept current: edits are applied in place)."""

    kind: PostKind
    message_id: int
    channel_id: int  # where it landed: the thread's id for thread posts
    thread_id: int | None  # == channel_id when it landed in a thread, else None
    parent_id: int | None  # the text channel (a thread's parent, or the channel itself)
    author_id: int
    author_name: str  # what readers see: webhook username, member display name, bot name
    content: str | None
    embeds: list[dict[str, Any]]
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[str] = field(default_factory=list)  # filenames
    files: dict[str, bytes] = field(default_factory=dict)  # filename -> the bytes uploaded
    ephemeral: bool = False
    flags: int = 0
    username: str | None = None  # webhook `username` override as sent
    avatar_url: str | None = None  # webhook `avatar_url` as sent
    allowed_mentions: dict[str, Any] | None = None  # as sent; None = Discord default (ping all)
    pings: Pings = field(default_factory=Pings)
    webhook_id: int | None = None
    interaction_id: int | None = None
    response_type: int | None = None  # interaction callback type (4 message, 5 deferred, ...)
    # A followup that filled a deferred ("thinking") response: Discord edits the original message
    # instead of creating one, so its text lives on the original post too.
    replaced_deferred: bool = False
    reply_to: int | None = None  # message id this one replies to
    deleted: bool = False
    edits: list[Edit] = field(default_factory=list)

    @property
    def visible(self) -> bool:
        """Seen by everyone in the channel (not ephemeral, not deleted, not a duplicate record)."""
        return not (self.ephemeral or self.deleted or self.replaced_deferred)

    @property
    def embed_titles(self) -> list[str | None]:
        return [embed.get("title") for embed in self.embeds]


@dataclass(frozen=True)
class Reaction:
    message_id: int
    channel_id: int
    emoji: str
    user_id: int


class Recorder:
    """The append-only log of posts, edits and reactions, plus lookups over it."""

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.edits: list[Edit] = []
        self.reactions: list[Reaction] = []
        self._by_id: dict[int, Post] = {}

    def add(self, post: Post) -> Post:
        self.posts.append(post)
        # A defer-filling followup shares the original's id; the original stays the canonical one.
        if not post.replaced_deferred:
            self._by_id[post.message_id] = post
        return post

    def get(self, message_id: int) -> Post | None:
        return self._by_id.get(message_id)

    def apply_edit(self, post: Post, edit: Edit) -> None:
        if edit.content is not None or "content" in edit.fields:
            post.content = edit.content
        if edit.embeds is not None:
            post.embeds = edit.embeds
        if "components" in edit.fields:
            post.components = edit.fields["components"] or []
        if "allowed_mentions" in edit.fields:
            post.allowed_mentions = edit.fields["allowed_mentions"]
        if "flags" in edit.fields:
            post.flags = edit.fields["flags"]
        post.pings = compute_pings(post.content, post.allowed_mentions)
        post.edits.append(edit)
        self.edits.append(edit)

    def in_channel(
        self, channel_id: int, *, kinds: Iterable[str] | None = None, include_hidden: bool = False
    ) -> list[Post]:
        wanted = set(kinds) if kinds is not None else None
        return [
            post
            for post in self.posts
            if post.channel_id == channel_id
            and (include_hidden or post.visible)
            and (wanted is None or post.kind in wanted)
        ]

    def transcript(self, channel_id: int) -> list[tuple[str, str]]:
        return [(post.author_name, post.content or "") for post in self.in_channel(channel_id)]
