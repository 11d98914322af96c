""" "Message details" (Apps menu on a message): the model, provider, tokens and cost behind one member message,
and the member's reasoning when it kept one."""

from __future__ import annotations

import io

import discord

from bot.council.reports import LineDetails, as_utc
from cogs.council._embeds import COLOUR, clip

REASONING_INLINE = 4000  # characters shown in the embed (Discord's limit is 4,096); longer ones are attached


def details_embed(details: LineDetails) -> discord.Embed:
    title = f"{details.author} — {details.role}" if details.role else details.author
    embed = discord.Embed(title=clip(title, 256), colour=COLOUR)
    if details.model is None:
        embed.description = "This member has left the catalog since; its model and prices are no longer known."
    else:
        embed.add_field(name="Model", value=clip(f"`{details.model}`", 1024))
        embed.add_field(name="Provider", value=clip(f"{details.provider} · {details.endpoint_host}", 1024))
    embed.add_field(name="Round", value=f"{details.round} ({details.kind})", inline=False)
    embed.add_field(name="Tokens", value=f"{details.tokens_in:,} in · {details.tokens_out:,} out")
    if details.latency_ms is not None:
        embed.add_field(name="Took", value=f"{details.latency_ms / 1000:.1f} s")
    if details.cost is not None:
        embed.add_field(name="Estimated cost", value=f"≈ ${details.cost:.4f}")
    embed.timestamp = as_utc(details.written_at)
    embed.set_footer(text="/council info shows each member's exact system prompt.")
    return embed


def details_message(details: LineDetails, line_id: int) -> tuple[list[discord.Embed], list[discord.File]]:
    """The details, and the member's reasoning behind the message when it kept one: in a second embed, or as a
    text file when it is longer than an embed holds."""
    embeds, files = [details_embed(details)], []
    reasoning = (details.reasoning or "").strip()
    if reasoning:
        shown = discord.Embed(title=clip(f"{details.author}'s reasoning", 256), colour=COLOUR)
        if len(reasoning) <= REASONING_INLINE:
            shown.description = reasoning
        else:
            name = f"reasoning-{line_id}.txt"
            shown.description = f"{len(reasoning):,} characters: attached as `{name}`."
            files.append(discord.File(io.BytesIO(reasoning.encode("utf-8")), filename=name))
        shown.set_footer(text="What the model reasoned before it answered. The other members never read it.")
        embeds.append(shown)
    return embeds, files
