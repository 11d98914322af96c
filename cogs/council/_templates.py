"""Embeds for `/council template list` and `/council history`, kept within Discord's embed limits."""

from __future__ import annotations

from collections.abc import Sequence

import discord

from bot.council.memory import day
from cogs.council._embeds import COLOUR, clip
from storage.models import Council
from storage.template_repository import StoredTemplate

HISTORY_LIMIT = 15  # sessions shown at once: about 200 characters each stays far inside the 4,096 of a description
EMBED_BUDGET = 5500  # of Discord's 6,000 characters per message, leaving room for the title and footer


def thread_link(council: Council) -> str | None:
    if council.thread_id is None:
        return None
    return f"https://discord.com/channels/{council.guild_id}/{council.thread_id}"


def describe_members(stored: StoredTemplate) -> str:
    return ", ".join(f"{m.name} ({m.role})" if m.role else m.name for m in stored.members) or "no members"


def template_list(templates: Sequence[StoredTemplate]) -> discord.Embed:
    embed = discord.Embed(title="Council templates", colour=COLOUR)
    if not templates:
        embed.description = (
            "This server has no templates yet. In a council's thread, `/council template save` makes one."
        )
        return embed
    used = len(embed.title or "")
    shown = 0
    for stored in templates[:25]:
        template = stored.template
        name = clip(template.name, 256)
        value = clip(
            f"{describe_members(stored)}\n{template.mode} · {template.rounds} round(s) · "
            f"{stored.sessions} session(s) · saved by {template.created_by_name}",
            1024,
        )
        if used + len(name) + len(value) > EMBED_BUDGET:
            break
        embed.add_field(name=name, value=value, inline=False)
        used += len(name) + len(value)
        shown += 1
    footer = "Convene one with /council convene template:<name>. /council history <name> lists its sessions."
    if shown < len(templates):
        footer = f"{len(templates) - shown} more not shown. " + footer
    embed.set_footer(text=footer)
    return embed


def history(councils: Sequence[Council], total: int, stored: StoredTemplate | None) -> discord.Embed:
    """Newest first: number, topic, date, state and a link to the thread."""
    title = f"Sessions of {stored.template.name}" if stored else "Recent councils in this server"
    embed = discord.Embed(title=clip(title, 256), colour=COLOUR)
    if not councils:
        embed.description = "No sessions yet." if stored else "No councils yet."
        return embed
    lines = []
    for index, council in enumerate(councils):
        number = f"Session {total - index} · #{council.id}" if stored else f"#{council.id}"
        topic = discord.utils.escape_markdown(clip(council.topic, 80)).replace("[", "(").replace("]", ")")
        link = thread_link(council)
        lines.append(
            f"**{number}** · {day(council.created_at)} · {council.state} · "
            + (f"[{topic}]({link})" if link else f"{topic} (no thread)")
        )
    embed.description = clip("\n".join(lines), 4096)
    if total > len(councils):
        embed.set_footer(text=f"The {len(councils)} most recent of {total}.")
    return embed
