"""Embeds for the moderators' channel and the governance commands."""

from __future__ import annotations

from collections.abc import Sequence

import discord

from bot.governance.gate import Policy
from bot.governance.rules import RuleBook
from cogs.council._embeds import clip
from storage.models import AuditEntry, Council, Escalation, GuildRule

PENDING = discord.Colour.orange()
OUTCOME_COLOURS = {
    "approved": discord.Colour.green(),
    "rejected": discord.Colour.red(),
    "expired": discord.Colour.dark_grey(),
}


def quoted(text: str, *, spoiler: bool, limit: int = 1024) -> str:
    """Message text shown inert: in a code block (no markdown, links or mentions), spoilered when asked."""
    body = clip(text.replace("```", "`\u200b``"), limit - 20)
    block = f"```\n{body}\n```"
    return f"||{block}||" if spoiler else block


def reporters(item: Escalation) -> str:
    """How many people reported the message, and who (names as they were; the list may stop early)."""
    count = item.report_count
    head = "1 person" if count == 1 else f"{count} people"
    names = discord.utils.escape_mentions(discord.utils.escape_markdown(item.reporters))
    return clip(f"{head}: {names}" if names else head, 1024)


def thread_link(council: Council) -> str:
    if council.thread_id is None:
        return "no thread"
    return f"https://discord.com/channels/{council.guild_id}/{council.thread_id}"


def escalation(item: Escalation, council: Council) -> discord.Embed:
    state = item.state
    title = f"Escalation #{item.id}: {item.category}"
    embed = discord.Embed(title=clip(title, 256), colour=OUTCOME_COLOURS.get(state, PENDING))
    embed.add_field(name="Council", value=clip(f"#{council.id}: {council.topic}", 1024), inline=False)
    embed.add_field(name="Member", value=clip(item.author_name, 1024))
    embed.add_field(name="Source", value=item.source)
    embed.add_field(name="Thread", value=f"[open]({thread_link(council)})")
    embed.add_field(name="Reason", value=clip(item.reason or "—", 1024), inline=False)
    embed.add_field(name="Message", value=quoted(item.content, spoiler=item.spoiler), inline=False)
    if item.report_count:
        embed.add_field(name="Reported by", value=reporters(item), inline=False)
    if state == "pending":
        waiting = "Held: not shown, the council waits." if item.held else "Shown in the thread; the council goes on."
        embed.set_footer(text=waiting)
        embed.timestamp = item.expires_at
    else:
        outcome = {
            "approved": f"Approved by {item.decided_by_name}",
            "rejected": f"Rejected by {item.decided_by_name}" + (" and the council ended" if item.end_council else ""),
            "expired": "Expired undecided: " + ("the message stays withheld" if item.held else "no change"),
        }[state]
        if item.decision_reason and state == "rejected":
            outcome += f": {item.decision_reason}"
        embed.add_field(name="Decision", value=clip(outcome, 1024), inline=False)
        embed.timestamp = item.decided_at
    return embed


def policy(current: Policy, rulebook: RuleBook, rules: Sequence[GuildRule]) -> discord.Embed:
    embed = discord.Embed(title="Governance policy", colour=PENDING)
    embed.add_field(
        name="Mode",
        value="hold: flagged messages wait for a moderator" if current.holds else "notify: shown, moderators told",
    )
    embed.add_field(name="Judge", value=current.judge_member or "none")
    embed.add_field(name="Timeout", value=f"{current.timeout_s // 60} min")
    embed.add_field(
        name="Moderators",
        value=(f"<#{current.moderator_channel_id}>" if current.moderator_channel_id else "no channel set")
        + (f" · <@&{current.moderator_role_id}>" if current.moderator_role_id else ""),
        inline=False,
    )
    lines = [
        f"{'✅' if category.id in current.enabled_categories else '⬜'} `{category.id}` {category.title}"
        for category in rulebook.categories
    ]
    embed.add_field(name="Categories", value=clip("\n".join(lines), 1024), inline=False)
    custom = "\n".join(f"`#{r.id}` {r.kind} `{clip(r.pattern, 60)}` → {r.category}" for r in rules[:15])
    embed.add_field(name="Server rules", value=clip(custom or "none", 1024), inline=False)
    if current.halted:
        embed.add_field(name="Halted", value="Every council in this server is halted.", inline=False)
    return embed


def audit(entries: Sequence[AuditEntry]) -> discord.Embed:
    embed = discord.Embed(title="Governance audit (newest first)", colour=PENDING)
    lines = [
        f"<t:{int(entry.created_at.timestamp())}:f> **{entry.kind}** {discord.utils.escape_markdown(entry.actor_name)}"
        + (f" · council #{entry.council_id}" if entry.council_id else "")
        + f"\n{discord.utils.escape_markdown(clip(entry.detail, 300))}"
        for entry in entries
    ]
    embed.description = clip("\n".join(lines) or "Nothing recorded yet.", 4096)
    return embed


def queue(items: Sequence[tuple[Escalation, Council]]) -> discord.Embed:
    embed = discord.Embed(title="Pending escalations", colour=PENDING)
    lines = [
        f"**#{item.id}** {item.category} · {discord.utils.escape_markdown(item.author_name)} in council #{council.id}"
        f" · {'held' if item.held else 'shown'} · [thread]({thread_link(council)})"
        + (
            f" · [escalation](https://discord.com/channels/{item.guild_id}/{item.mod_channel_id}/{item.mod_message_id})"
            if item.mod_message_id
            else ""
        )
        for item, council in items
    ]
    embed.description = clip("\n".join(lines) or "Nothing is waiting for a decision.", 4096)
    return embed
