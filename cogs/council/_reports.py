"""Discord renderings of the council reports (`bot.council.reports`): `/council info`, `usage` and `export`.

Discord's limits shape them: an embed field holds 1,024 characters and a message 10 embeds of 6,000
characters in all, so `/council info` is an embed per member over as many messages as needed, and a
system prompt too long for a field is attached whole as a `.txt` file instead of being cut.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import discord

from bot.council.reports import MemberCard, MemberUsage
from cogs.council._embeds import COLOUR, clip
from storage.models import Council

# Discord's attachment limit for servers without boosts has been 8 MiB for most of its history and is
# higher now; 8 MiB is what every server accepts.
ATTACHMENT_LIMIT = 8 * 1024 * 1024
FIELD_LIMIT = 1024
MESSAGE_EMBED_CHARS = 6000
MESSAGE_EMBEDS = 10
MESSAGE_FILES = 10


@dataclass
class Page:
    """One message of an answer."""

    content: str | None = None
    embeds: list[discord.Embed] = field(default_factory=list)
    files: list[discord.File] = field(default_factory=list)

    def send_options(self) -> dict[str, object]:
        options: dict[str, object] = {"embeds": self.embeds, "ephemeral": True}
        if self.content:
            options["content"] = self.content
        if self.files:
            options["files"] = self.files
        return options


async def send_pages(interaction: discord.Interaction, pages: Sequence[Page]) -> None:
    """The first page answers the interaction, the rest follow; all of them only for the asker."""
    first, *rest = pages
    await interaction.response.send_message(**first.send_options())  # type: ignore[arg-type]
    for page in rest:
        await interaction.followup.send(**page.send_options())  # type: ignore[arg-type]


# -- /council info -----------------------------------------------------------------------------------


def info_pages(council: Council, cards: Sequence[MemberCard]) -> list[Page]:
    """An embed per member, packed into as few messages as Discord's limits allow."""
    pages = [Page(content=f"**Council #{council.id}**: what stands behind each member. {_INFO_NOTE}")]
    used_names: set[str] = set()
    for card in cards:
        embed, file = _member_embed(card, used_names)
        page = pages[-1]
        if page.embeds and (
            len(page.embeds) >= MESSAGE_EMBEDS
            or sum(len(e) for e in page.embeds) + len(embed) > MESSAGE_EMBED_CHARS
            or (file is not None and len(page.files) >= MESSAGE_FILES)
        ):
            page = Page()
            pages.append(page)
        page.embeds.append(embed)
        if file is not None:
            page.files.append(file)
    if not cards:
        pages[0].content = f"Council #{council.id} has no members left in the catalog."
    return pages


_INFO_NOTE = (
    "Each system prompt is exactly what the member receives; one too long for an embed is attached as a "
    "`.txt` file. API keys are never shown, only the name of the variable that holds one."
)


def _member_embed(card: MemberCard, used_names: set[str]) -> tuple[discord.Embed, discord.File | None]:
    title = f"{card.name} — {card.role or 'no role'}" + (" (benched)" if card.benched else "")
    embed = discord.Embed(title=clip(title, 256), colour=COLOUR)
    embed.add_field(name="Provider", value=card.provider)
    embed.add_field(name="Model", value=clip(f"`{card.model}`", FIELD_LIMIT))
    embed.add_field(name="Endpoint", value=clip(card.endpoint_host, FIELD_LIMIT))
    temperature = "provider default" if card.temperature is None else f"{card.temperature:g}"
    embed.add_field(name="Temperature", value=temperature)
    embed.add_field(name="Max output tokens", value=f"{card.max_output_tokens:,}")
    key = f"from `{card.api_key_env}`" if card.api_key_env else "none needed"
    embed.add_field(name="API key", value=clip(key, FIELD_LIMIT))
    if card.tools:
        listed = "\n".join(f"`{name}`: {POLICY_WORDS.get(policy, policy)}" for name, policy in card.tools)
        embed.add_field(name="Tools", value=clip(listed, FIELD_LIMIT), inline=False)
    inline = f"```\n{card.system_prompt}\n```"
    if len(inline) <= FIELD_LIMIT and "```" not in card.system_prompt:
        embed.add_field(name="System prompt", value=inline, inline=False)
        return embed, None
    filename = _unique(f"system-prompt-{_slug(card.name)}.txt", used_names)
    embed.add_field(
        name="System prompt",
        value=f"{len(card.system_prompt):,} characters, too long for an embed: attached whole as `{filename}`.",
        inline=False,
    )
    return embed, text_file(card.system_prompt, filename)


POLICY_WORDS = {
    "allow": "runs",
    "notify": "runs, and the moderators are told",
    "hold": "waits for a moderator's approval",
}


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", name.casefold()).strip("-.") or "member"


def _unique(filename: str, used: set[str]) -> str:
    stem, dot, ext = filename.rpartition(".")
    candidate, n = filename, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}-{n}{dot}{ext}"
    used.add(candidate)
    return candidate


def text_file(text: str, filename: str) -> discord.File:
    return discord.File(io.BytesIO(text.encode("utf-8")), filename=filename)


# -- /council usage ----------------------------------------------------------------------------------


def usage_embed(council: Council, rows: Sequence[MemberUsage]) -> discord.Embed:
    embed = discord.Embed(title=clip(f"Council #{council.id}: usage", 256), colour=COLOUR)
    embed.description = clip(council.topic, 4096)
    for row in rows[:22]:  # a council seats at most 8; room for members since removed from the catalog
        embed.add_field(name=clip(row.name, 256), value=_usage_value(row), inline=False)
    total_in = sum(row.tokens_in for row in rows)
    total_out = sum(row.tokens_out for row in rows)
    known = [row.cost for row in rows if row.cost is not None]
    total_cost = f"≈ ${sum(known):.4f}" + ("" if len(known) == len(rows) else " (members with unknown prices left out)")
    embed.add_field(
        name="All members",
        value=f"{sum(r.turns for r in rows)} turns answered, {sum(r.failed_turns for r in rows)} failed\n"
        f"{total_in:,} tokens in · {total_out:,} out\n{total_cost}",
        inline=False,
    )
    embed.set_footer(
        text="Latency: from the request to the whole reply (p50 is the median turn). Costs are estimates from the "
        "catalog's prices and count chair and review calls. Calls by the moderation judge are not counted, nor "
        "peer-rating calls (their tokens are in /council status)."
    )
    return embed


def _usage_value(row: MemberUsage) -> str:
    if row.cost is None:
        cost = "cost unknown: no longer in the catalog"
    elif not row.priced:
        cost = "≈ $0.0000 (no price set in the catalog)"
    else:
        cost = f"≈ ${row.cost:.4f}"
    turns = f"{row.turns} turn{'s' if row.turns != 1 else ''} answered, {row.failed_turns} failed"
    if row.tool_calls:
        turns += (
            f"\n{row.tool_calls} tool call{'s' if row.tool_calls != 1 else ''}, {row.tool_ms / 1000:.1f} s in tools"
        )
    if row.latency_p50_ms is None or row.latency_max_ms is None:
        latency = "latency: not recorded"
    else:
        latency = f"latency p50 {row.latency_p50_ms / 1000:.1f} s · max {row.latency_max_ms / 1000:.1f} s"
    return f"{turns}\n{row.tokens_in:,} tokens in · {row.tokens_out:,} out\n{latency}\n{cost}"


# -- /council export ---------------------------------------------------------------------------------


def export_page(council: Council, markdown: str, json_text: str, html: str) -> Page:
    """The three files, each attached only if Discord will take it; what does not fit is said plainly."""
    files: list[discord.File] = []
    lines = [f"**Council #{council.id}**'s record:"]
    room = ATTACHMENT_LIMIT  # for all attachments of the message together, to be safe
    for filename, text, what in (
        (f"council-{council.id}.md", markdown, "the transcript as the thread showed it, and moderation decisions"),
        (f"council-{council.id}.json", json_text, "every line with its visibility, escalations and audit entries"),
        (f"council-{council.id}.html", html, "the thread as it looked, for a browser (it loads nothing from anywhere)"),
    ):
        data = text.encode("utf-8")
        if len(data) > room:
            lines.append(
                f"- `{filename}` ({_size(len(data))}) is not attached: it does not fit in Discord's "
                f"{_size(ATTACHMENT_LIMIT)} attachment limit."
            )
            continue
        room -= len(data)
        files.append(discord.File(io.BytesIO(data), filename=filename))
        lines.append(f"- `{filename}`: {what}.")
    return Page(content="\n".join(lines), files=files)


def _size(size: int) -> str:
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"
