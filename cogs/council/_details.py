""" "Message details" (Apps menu on a message): the model, provider, tokens and cost behind one member message,
and the member's reasoning when it kept one."""

from __future__ import annotations

import io

import discord

from bot.council.reports import LineDetails, ToolDetails, as_utc
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


def tool_details_message(details: ToolDetails, line_id: int) -> tuple[list[discord.Embed], list[discord.File]]:
    """A tool call in full: its arguments and its result (attached as a file when longer than an embed holds)."""
    embed = discord.Embed(
        title=clip(f"{details.member} called {details.server or '?'}.{details.tool}", 256), colour=COLOUR
    )
    embed.add_field(name="Arguments", value=clip(f"```json\n{details.arguments}\n```", 1024), inline=False)
    embed.add_field(name="Policy", value=details.policy)
    embed.add_field(
        name="Outcome", value=details.status + (" (the tool reported an error)" if details.is_error else "")
    )
    if details.duration_ms is not None:
        embed.add_field(name="Took", value=f"{details.duration_ms / 1000:.1f} s")
    embed.timestamp = as_utc(details.called_at)
    files: list[discord.File] = []
    if details.result is None:
        embed.description = "The result is not shown: it has not run yet, or the moderators have not cleared it."
    elif len(details.result) <= REASONING_INLINE:
        embed.description = details.result or "(an empty result)"
    else:
        name = f"tool-result-{line_id}.txt"
        embed.description = f"{len(details.result):,} characters: attached as `{name}`."
        files.append(discord.File(io.BytesIO(details.result.encode("utf-8")), filename=name))
    embed.set_footer(text="What the tool gave back, as its server sent it. Members read it framed as a tool result.")
    return [embed], files
