""" "Message details" (Apps menu on a message): the model, provider, tokens and cost behind one member message."""

from __future__ import annotations

import discord

from bot.council.reports import LineDetails, as_utc
from cogs.council._embeds import COLOUR, clip


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
