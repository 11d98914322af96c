"""Interaction payloads as Discord sends them, and the record of how the bot answered one.

The payload builders read the bot's own command tree, so option names, types, choices and
ranges come from the code under test; values the Discord client would refuse to send are
rejected here (InvalidInvocation) instead of reaching the bot.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import discord
from discord import app_commands
from discord.enums import AppCommandOptionType as Opt

from .errors import InvalidInvocation
from .payloads import JsonDict, member_payload, new_id, role_payload, text_channel_payload, user_payload
from .recorder import Edit, Post

# Interaction types (Discord's InteractionType).
APPLICATION_COMMAND = 2
COMPONENT = 3
AUTOCOMPLETE = 4
MODAL_SUBMIT = 5


@dataclass
class InteractionResult:
    """How the bot answered one interaction. Posts are live: later edits show up here too."""

    interaction_id: int
    name: str  # "council convene", or the clicked custom_id
    user_id: int
    channel_id: int
    response_type: int | None = None  # 4 message, 5 deferred, 6 deferred update, 7 update, 8 choices, 9 modal
    response: Post | None = None  # message made by 4/5 (or updated by 7)
    followups: list[Post] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)  # edit_original_response, followup edits, type 7
    modal: JsonDict | None = None  # the modal sent by a type 9 response
    choices: list[JsonDict] | None = None  # autocomplete choices sent by a type 8 response
    message_id: int | None = None  # the message whose component (or modal) this interaction came from

    @property
    def acknowledged(self) -> bool:
        return self.response_type is not None

    @property
    def deferred(self) -> bool:
        return self.response_type == 5

    @property
    def ephemeral(self) -> bool:
        return bool(self.response and self.response.ephemeral)

    @property
    def content(self) -> str | None:
        """The original response's current text (a followup that filled a defer included)."""
        return self.response.content if self.response else None

    @property
    def embeds(self) -> list[JsonDict]:
        return self.response.embeds if self.response else []

    @property
    def messages(self) -> list[Post]:
        """Every distinct message the user got, in order: the response, then real followups."""
        out = [self.response] if self.response and self.response_type in (4, 5) else []
        return out + [post for post in self.followups if not post.replaced_deferred]

    @property
    def texts(self) -> list[str]:
        return [post.content or "" for post in self.messages]


@dataclass
class InteractionSession:
    """Server-side state of one interaction token."""

    id: int
    token: str
    type: int
    name: str
    user_payload: JsonDict
    channel_id: int
    created_at: float
    result: InteractionResult
    message_id: int | None = None  # the message a clicked component is on
    original_id: int | None = None
    loading: bool = False  # deferred and not yet filled
    followup_ids: set[int] = field(default_factory=set)


# -- commands -------------------------------------------------------------------------------------

AnyCommand = app_commands.Command[Any, ..., Any] | app_commands.Group


@dataclass
class ResolvedCommand:
    root: AnyCommand
    chain: list[AnyCommand]  # root ... leaf
    command: app_commands.Command[Any, ..., Any]
    guild_scoped: bool

    @property
    def qualified_name(self) -> str:
        return " ".join(c.name for c in self.chain)


def resolve_command(tree: app_commands.CommandTree, guild: discord.Guild, path: Sequence[str]) -> ResolvedCommand:
    if not path:
        raise InvalidInvocation("name the command, e.g. slash(user, 'council', 'convene', ...)")
    root = tree.get_command(path[0])
    guild_scoped = root is None
    if root is None:
        root = tree.get_command(path[0], guild=guild)
    if root is None:
        known = sorted(c.name for c in [*tree.get_commands(), *tree.get_commands(guild=guild)])
        raise InvalidInvocation(f"/{path[0]} is not in the command tree (known: {known})")
    chain: list[AnyCommand] = [root]  # type: ignore[list-item]
    node: Any = root
    for name in path[1:]:
        if not isinstance(node, app_commands.Group):
            raise InvalidInvocation(f"/{' '.join(path)}: {node.qualified_name} has no subcommands")
        child = node.get_command(name)
        if child is None:
            names = [c.name for c in node.commands]
            raise InvalidInvocation(f"/{node.qualified_name} has no subcommand {name!r} (has {names})")
        chain.append(child)
        node = child
    if not isinstance(node, app_commands.Command):
        raise InvalidInvocation(f"/{node.qualified_name} needs a subcommand: {[c.name for c in node.commands]}")
    return ResolvedCommand(root, chain, node, guild_scoped)  # type: ignore[arg-type]


def check_visible(resolved: ResolvedCommand, permissions: discord.Permissions) -> None:
    """Discord hides commands whose default_permissions the member lacks (admins see all)."""
    check_permitted(f"/{resolved.qualified_name}", resolved.root.default_permissions, permissions)


def check_permitted(name: str, required: discord.Permissions | None, permissions: discord.Permissions) -> None:
    if required is None or permissions.administrator:
        return
    if not required.is_subset(permissions):
        raise InvalidInvocation(f"{name} needs {required!r}; Discord would not show it to this member")


def resolve_context_menu(
    tree: app_commands.CommandTree, guild: discord.Guild, name: str, kind: discord.AppCommandType
) -> tuple[app_commands.ContextMenu, bool]:
    """The context menu `name` of `kind` (user or message), and whether it is guild-scoped."""
    for scope, guild_scoped in ((None, False), (guild, True)):
        menu = tree.get_command(name, guild=scope, type=kind)
        if isinstance(menu, app_commands.ContextMenu):
            return menu, guild_scoped
    known = sorted(c.name for scope in (None, guild) for c in tree.get_commands(guild=scope, type=kind))
    raise InvalidInvocation(f"no {kind.name} context menu {name!r} in the command tree (known: {known})")


def _choice_value(spec: JsonDict, value: Any) -> Any:
    choices = spec.get("choices")
    if not choices:
        return value
    if isinstance(value, app_commands.Choice):
        value = value.value
    if isinstance(value, Enum):
        value = value.value
    for choice in choices:
        if value == choice["value"] or value == choice["name"]:
            return choice["value"]
    raise InvalidInvocation(f"{spec['name']}={value!r} is not one of {[c['value'] for c in choices]}")


def _option(spec: JsonDict, value: Any, resolved: dict[str, dict[str, JsonDict]], guild: discord.Guild) -> JsonDict:
    name, kind = spec["name"], Opt(spec["type"])
    value = _choice_value(spec, value)
    if kind is Opt.string:
        value = str(value)
        low, high = spec.get("min_length"), spec.get("max_length", 6000)  # 6000: Discord's cap
        if (low is not None and len(value) < low) or (high is not None and len(value) > high):
            raise InvalidInvocation(f"{name} must be {low}-{high} characters, got {len(value)}")
    elif kind in (Opt.integer, Opt.number):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInvocation(f"{name} must be a number, got {value!r}")
        value = int(value) if kind is Opt.integer else float(value)
        low, high = spec.get("min_value"), spec.get("max_value")
        if (low is not None and value < low) or (high is not None and value > high):
            raise InvalidInvocation(f"{name} must be within {low}..{high}, got {value}")
    elif kind is Opt.boolean:
        value = bool(value)
    elif kind in (Opt.user, Opt.mentionable) and isinstance(value, (discord.Member, discord.User)):
        resolved.setdefault("users", {})[str(value.id)] = user_payload(value)
        if isinstance(value, discord.Member):
            resolved.setdefault("members", {})[str(value.id)] = member_payload(
                value, with_user=False, permissions=value.guild_permissions.value
            )
        value = str(value.id)
    elif kind in (Opt.role, Opt.mentionable) and isinstance(value, discord.Role):
        resolved.setdefault("roles", {})[str(value.id)] = role_payload(value)
        value = str(value.id)
    elif kind is Opt.channel and isinstance(value, (discord.abc.GuildChannel, discord.Thread)):
        allowed = spec.get("channel_types")
        if allowed and value.type.value not in allowed:
            raise InvalidInvocation(f"{name} accepts channel types {allowed}, not {value.type.name}")
        entry = (
            channel_payload(value)
            if isinstance(value, (discord.TextChannel, discord.Thread))
            else {"id": value.id, "name": value.name, "type": value.type.value, "guild_id": guild.id}
        )
        entry["permissions"] = "0"
        resolved.setdefault("channels", {})[str(value.id)] = entry
        value = str(value.id)
    else:
        raise InvalidInvocation(f"the harness cannot send {name}={value!r} as a {kind.name} option")
    return {"name": name, "type": kind.value, "value": value}


def build_options(
    command: app_commands.Command[Any, ..., Any],
    values: dict[str, Any],
    guild: discord.Guild,
    *,
    focused: str | None = None,
) -> tuple[list[JsonDict], JsonDict]:
    """Options for the leaf command, keyed by python or display name, validated like the client.

    With `focused` (autocomplete), that option's value goes as typed with `focused: true`, and
    required options may still be missing.
    """
    options: list[JsonDict] = []
    resolved: dict[str, dict[str, JsonDict]] = {}
    remaining = dict(values)
    focus_found = False
    for param in command._params.values():
        spec = param.to_dict()
        key = param.name if param.name in remaining else spec["name"]
        if focused in (param.name, spec["name"]):
            if not spec.get("autocomplete"):
                raise InvalidInvocation(f"/{command.qualified_name} {spec['name']} has no autocomplete")
            typed = remaining.pop(key, "")
            options.append({"name": spec["name"], "type": spec["type"], "value": typed, "focused": True})
            focus_found = True
            continue
        # The client omits empty options; it cannot send "" or nothing for a required one.
        if key not in remaining or remaining[key] is None or remaining[key] == "":
            remaining.pop(key, None)
            if spec["required"] and focused is None:
                raise InvalidInvocation(f"/{command.qualified_name} needs {spec['name']}")
            continue
        options.append(_option(spec, remaining.pop(key), resolved, guild))
    if focused is not None and not focus_found:
        raise InvalidInvocation(f"/{command.qualified_name} has no option {focused!r}")
    if remaining:
        raise InvalidInvocation(f"/{command.qualified_name} has no option(s) {sorted(remaining)}")
    return options, resolved


def nest_options(resolved: ResolvedCommand, leaf_options: list[JsonDict]) -> list[JsonDict]:
    """Wrap leaf options in subcommand (type 1) / subcommand group (type 2) levels."""
    options = leaf_options
    for node in reversed(resolved.chain[1:]):
        kind = 1 if isinstance(node, app_commands.Command) else 2
        options = [{"name": node.name, "type": kind, "options": options}]
    return options


def find_component(components: list[JsonDict], custom_id: str) -> JsonDict | None:
    """The component with `custom_id` in a message's components (rows, containers, sections)."""
    for component in components:
        if component.get("custom_id") == custom_id:
            return component
        nested = [*(component.get("components") or []), *(c for c in (component.get("accessory"),) if c)]
        found = find_component(nested, custom_id)
        if found is not None:
            return found
    return None


def channel_payload(channel: discord.TextChannel | discord.Thread) -> JsonDict:
    if isinstance(channel, discord.TextChannel):
        return text_channel_payload(channel)
    return {
        "id": channel.id,
        "type": channel.type.value,
        "guild_id": channel.guild.id,
        "parent_id": channel.parent_id,
        "name": channel.name,
        "owner_id": channel.owner_id,
        "message_count": channel.message_count,
        "member_count": channel.member_count,
        "rate_limit_per_user": channel.slowmode_delay,
        "thread_metadata": {
            "archived": channel.archived,
            "auto_archive_duration": channel.auto_archive_duration,
            "archive_timestamp": channel.archive_timestamp.isoformat(),
            "locked": channel.locked,
        },
    }


def interaction_payload(
    *,
    interaction_type: int,
    application_id: int,
    guild: discord.Guild,
    channel: discord.TextChannel | discord.Thread,
    member: discord.Member,
    permissions: int,
    app_permissions: int,
    data: JsonDict,
    message: JsonDict | None = None,
) -> JsonDict:
    """An INTERACTION_CREATE payload; keys discord.py 2.7 requires are all present."""
    payload: JsonDict = {
        "id": new_id(),
        "application_id": application_id,
        "type": interaction_type,
        "token": secrets.token_urlsafe(32),
        "version": 1,
        "attachment_size_limit": 10 * 1024 * 1024,
        "guild_id": guild.id,
        "guild_locale": "en-US",
        "locale": "en-US",
        "channel_id": channel.id,
        "channel": channel_payload(channel),
        "member": member_payload(member, permissions=permissions),
        "app_permissions": str(app_permissions),
        "entitlements": [],
        "authorizing_integration_owners": {"0": str(guild.id)},
        "context": 0,
        "data": data,
    }
    if message is not None:
        payload["message"] = message
    return payload
