"""Embeds for council threads, kept within Discord's embed limits."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import discord

from bot.catalog import Catalog, MemberSpec
from bot.council.engine import CouncilPlan, CouncilStatus
from bot.council.language import Language, detect
from bot.council.publisher import Table
from bot.council.seats import Seat
from bot.providers.keys import KeyStatus
from storage.models import Council

COLOUR = discord.Colour.from_rgb(88, 101, 242)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _seat_lines(seats: Sequence[Seat], limit: int = 1024) -> str:
    """One line per seat; whole lines only, with a count of those that do not fit the field."""
    lines: list[str] = []
    for index, seat in enumerate(seats):
        line = clip(_seat_line(seat), 300)
        rest = f"… and {len(seats) - index} more (/council info lists them all)"
        if len("\n".join([*lines, line])) + (len(rest) + 1 if index < len(seats) - 1 else 0) > limit:
            lines.append(rest)
            break
        lines.append(line)
    return "\n".join(lines)


def _seat_line(seat: Seat) -> str:
    line = f"**{seat.name}** — {seat.role or 'no role'} · `{seat.spec.model}`"
    if seat.dismissed:
        return f"~~{line}~~ (dismissed)"
    return f"{line} (benched)" if seat.benched else line


def convened(
    plan: CouncilPlan, council_id: int, convener_mention: str, *, template_name: str | None = None
) -> discord.Embed:
    embed = discord.Embed(title=clip(f"Council #{council_id}: {plan.topic}", 256), colour=COLOUR)
    embed.description = clip(plan.topic, 4096)
    embed.add_field(name="Members", value=_seat_lines(plan.seats), inline=False)
    embed.add_field(name="Mode", value=plan.mode)
    embed.add_field(name="Rounds", value=str(plan.rounds))
    embed.add_field(name="Convened by", value=convener_mention)
    if plan.chair:
        embed.add_field(name="Chair", value=plan.chair)
    limits = _limits(plan.max_tokens, plan.max_cost)
    if limits:
        embed.add_field(name="Limits", value=limits)
    if template_name:  # templates: a session of a permanent council, whose members recall its earlier sessions
        embed.add_field(name="Template", value=clip(discord.utils.escape_markdown(template_name), 1024))
    embed.add_field(name="Language", value=language_line(plan.language, plan.topic))
    embed.set_footer(
        text="Write in the thread to join the discussion. /council info shows what stands behind each member."
    )
    return embed


def language_line(chosen: str | None, topic: str) -> str:
    """What the members are told to write in: the convener's choice, or the topic's language until people in the
    thread switch to another."""
    if chosen:
        return f"{Language(chosen).name} (the convener's choice)"
    found = detect(topic)
    told = f"{found.name}, the topic's" if found is not None else "the topic's"
    return f"{told}, or the one people switch to in the thread"


def _keys_line(spec: MemberSpec, status: KeyStatus) -> str:
    if not status.keys:
        return f"missing key: set {spec.key_names}"
    if status.keys == 1:
        return f"key set ({spec.key_names})"
    return f"{status.keys} keys, {status.usable} usable now ({spec.key_names})"


STATE_WORDS = {
    "running": "deliberating",
    "paused": "paused",
    "held": "waiting for the moderators",
    "halted": "halted by the moderators",
    "concluded": "concluded",
    "failed": "stopped",
}


def live(report: CouncilStatus, speaking: Sequence[str], *, waiting: str | None = None) -> discord.Embed:
    """The thread's starter embed while the council runs: round, who is speaking, tokens and cost so far;
    `waiting`: what the council is waiting for (an outage), shown instead of who speaks."""
    council = report.council
    embed = discord.Embed(title=clip(f"Council #{council.id}: {council.topic}", 256), colour=COLOUR)
    embed.description = clip(council.topic, 4096)
    embed.add_field(name="Members", value=_seat_lines(report.seats) or "none", inline=False)
    embed.add_field(name="Mode", value=council.mode)
    embed.add_field(name="Round", value=f"{council.current_round} of {council.rounds}")
    now = ", ".join(speaking) if speaking and council.state == "running" else None
    shown = clip(now, 1024) if now else STATE_WORDS.get(council.state, council.state)
    embed.add_field(name="Speaking", value=f"⏳ waiting: {waiting}" if waiting else shown)
    embed.add_field(
        name="Tokens so far",
        value=f"{council.tokens_in:,} in · {council.tokens_out:,} out · ≈ ${report.estimated_cost:.4f}",
    )
    if report.chair:
        embed.add_field(name="Chair", value=report.chair)
    limits = _limits(council.max_tokens, council.max_cost)
    if limits:
        embed.add_field(name="Limits", value=limits)
    embed.add_field(name="Convened by", value=f"<@{council.convener_id}>")
    embed.add_field(name="Language", value=language_line(council.language, council.topic))
    if report.template_name:
        embed.add_field(name="Template", value=clip(discord.utils.escape_markdown(report.template_name), 1024))
    embed.set_footer(
        text="Write in the thread to join the discussion. /council info shows what stands behind each member."
    )
    return embed


def status(report: CouncilStatus) -> discord.Embed:
    council = report.council
    embed = discord.Embed(title=clip(f"Council #{council.id}: {council.topic}", 256), colour=COLOUR)
    embed.add_field(name="State", value=council.state)
    embed.add_field(name="Round", value=f"{council.current_round} of {council.rounds}")
    embed.add_field(name="Mode", value=council.mode)
    chair = report.chair
    if chair:
        embed.add_field(name="Chair", value=chair)
    limits = _limits(council.max_tokens, council.max_cost)
    if limits:
        embed.add_field(name="Limits", value=limits)
    embed.add_field(name="Language", value=language_line(council.language, council.topic))
    embed.add_field(name="Members", value=_seat_lines(report.seats) or "none", inline=False)
    embed.add_field(name="Messages", value=f"{report.ai_messages} from members, {report.human_messages} from humans")
    embed.add_field(
        name="Tokens",
        value=f"{council.tokens_in:,} in · {council.tokens_out:,} out · ≈ ${report.estimated_cost:.4f}",
    )
    if council.thread_id:
        embed.add_field(name="Thread", value=f"<#{council.thread_id}>")
    if council.end_reason:
        embed.add_field(name="Ended", value=clip(council.end_reason, 1024), inline=False)
    return embed


def table(table: Table) -> discord.Embed:
    """A table from the engine (a review's ranking); rows that would pass the embed's limit are counted."""
    embed = discord.Embed(title=clip(table.title, 256), colour=COLOUR)
    lines: list[str] = []
    used = 0
    for index, row in enumerate(table.rows):
        row = clip(row, 300)
        if used + len(row) + 1 > 3900:
            lines.append(f"… and {len(table.rows) - index} more")
            break
        lines.append(row)
        used += len(row) + 1
    embed.description = "\n".join(lines) or "—"
    if table.note:
        embed.set_footer(text=clip(table.note, 2048))
    return embed


def _limits(max_tokens: int | None, max_cost: float | None) -> str:
    parts = []
    if max_tokens is not None:
        parts.append(f"{max_tokens:,} tokens")
    if max_cost is not None:
        parts.append(f"${max_cost:,.2f}")
    return " · ".join(parts)


def finished(council: Council) -> discord.Embed:
    title = "Council concluded" if council.state == "concluded" else "Council stopped"
    embed = discord.Embed(title=title, colour=COLOUR if council.state == "concluded" else discord.Colour.red())
    embed.description = clip(council.end_reason or "", 4096)
    embed.add_field(name="Rounds", value=f"{council.current_round} of {council.rounds}")
    embed.add_field(name="Tokens", value=f"{council.tokens_in:,} in · {council.tokens_out:,} out")
    embed.set_footer(text="The thread and its transcript stay as they are.")
    return embed


def catalog(members: Catalog, key_status: Callable[[MemberSpec], KeyStatus]) -> discord.Embed:
    """The catalog as people see it: each member's provider and model, and its keys by count (never a key)."""
    embed = discord.Embed(title="AI members", colour=COLOUR)
    for spec in list(members)[:25]:
        key = "no key needed" if not spec.api_key_env else _keys_line(spec, key_status(spec))
        mark = "🟢" if spec.is_available() else "⚪"
        embed.add_field(
            name=clip(f"{mark} {spec.name} — {spec.role or 'no default role'}", 256),
            value=clip(f"{spec.provider} · `{spec.model}` · {spec.base_url_host}\n{key}", 1024),
            inline=False,
        )
    return embed
