"""Discord renderings of peer ratings: a council's scoreboard in its thread, and `/council scoreboard`.

A scoreboard is a table of members × criteria, then each member's reasons in an embed of its own,
packed into as few messages as Discord's limits allow (10 embeds and 6,000 characters a message). Each
message's text names the scoreboard and its part, so a restart can find what is already in the thread.
"""

from __future__ import annotations

from collections.abc import Sequence

import discord

from bot.council.scoreboard import MemberScores, Scoreboard, score_text, when_text
from cogs.council._embeds import COLOUR, clip
from storage.ratings_repository import MemberAggregate

MESSAGE_EMBED_CHARS = 6000
MESSAGE_EMBEDS = 10
DESCRIPTION_LIMIT = 4096
FIELD_LIMIT = 1024
NAME_WIDTH = 14
SERVER_ROWS = 40  # a description holds about this many table rows

MODELS_RATING_MODELS = (
    "These are models rating models: judges of this kind favour longer answers and text like their own, "
    "so read the figures as a hint, not a verdict."
)


def scoreboard_messages(board: Scoreboard) -> list[tuple[str, list[discord.Embed]]]:
    """(content, embeds) for each message of the scoreboard, in order."""
    pages: list[list[discord.Embed]] = [[_table_embed(board)]]
    for embed in _reason_embeds(board):
        page = pages[-1]
        if len(page) >= MESSAGE_EMBEDS or sum(len(e) for e in page) + len(embed) > MESSAGE_EMBED_CHARS - 200:
            page = []
            pages.append(page)
        page.append(embed)
    heading = f"📊 **Peer ratings #{board.number}** · council #{board.council_id}"
    if len(pages) == 1:
        return [(heading, pages[0])]
    return [(f"{heading} · part {n} of {len(pages)}", page) for n, page in enumerate(pages, 1)]


def _table_embed(board: Scoreboard) -> discord.Embed:
    embed = discord.Embed(title=clip(f"Peer ratings, {when_text(board)}", 256), colour=COLOUR)
    rows = [_table_row(m) for m in board.members]
    header = f"{'member':<{NAME_WIDTH}} clar  insi  self  all   n"
    embed.description = clip(
        f"Each member rated every other member from 1 to 5; nobody rated itself.\n```\n{header}\n"
        + "\n".join(rows)
        + "\n```",
        DESCRIPTION_LIMIT,
    )
    if board.problems:
        embed.add_field(name="Not counted", value=clip("\n".join(f"⚠️ {p}" for p in board.problems), FIELD_LIMIT))
    embed.set_footer(
        text=clip(f"clar = clarity · insi = insight · self = self-awareness. {MODELS_RATING_MODELS}", 2048)
    )
    return embed


def _table_row(m: MemberScores) -> str:
    name = clip(m.name, NAME_WIDTH)
    scores = [score_text(v) for v in (m.clarity, m.insight, m.self_awareness, m.overall)]
    return f"{name:<{NAME_WIDTH}} " + "  ".join(f"{s:>4}" for s in scores) + f"  {m.ratings}"


def _reason_embeds(board: Scoreboard) -> list[discord.Embed]:
    embeds = []
    for member in board.members:
        lines = []
        for r in (r for r in board.reasons if r.ratee == member.name):
            if r.withheld:
                said = "*reason left out: the server's moderation flagged it*"
            else:
                said = discord.utils.escape_mentions(r.reason) if r.reason else "*no reason given*"
            lines.append(f"**{r.rater}** ({' · '.join(map(str, r.scores))}): {said}")
        if lines:
            embed = discord.Embed(title=clip(f"On {member.name}", 256), colour=COLOUR)
            embed.description = clip("\n".join(lines), DESCRIPTION_LIMIT)
            embeds.append(embed)
    return embeds


def server_embed(guild_name: str, board: Sequence[MemberAggregate]) -> discord.Embed:
    """`/council scoreboard`: the server's members, best overall first, with what stands behind each figure."""
    embed = discord.Embed(title=clip(f"Peer ratings in {guild_name}", 256), colour=COLOUR)
    if not board:
        embed.description = (
            "No ended council in this server has peer ratings yet. Members rate each other when a council "
            "concludes, or when its convener runs `/council rate`."
        )
        return embed
    header = f"{'member':<{NAME_WIDTH}}  all  clar  insi  self  ratings councils"
    rows = [
        f"{clip(m.name, NAME_WIDTH):<{NAME_WIDTH}} "
        + " ".join(f"{v:>4.1f} " for v in (m.overall, m.clarity, m.insight, m.self_awareness))
        + f"{m.ratings:>7} {m.councils:>8}"
        for m in board[:SERVER_ROWS]
    ]
    more = f"\n…and {len(board) - SERVER_ROWS} more." if len(board) > SERVER_ROWS else ""
    embed.description = clip(f"```\n{header}\n" + "\n".join(rows) + f"\n```{more}", DESCRIPTION_LIMIT)
    embed.add_field(
        name="How to read it",
        value="Means of 1-5 scores from the other members of each ended council, counting each council's "
        "latest rating round; `ratings` is how many readable ratings stand behind a row.",
        inline=False,
    )
    embed.add_field(name="Models rating models", value=MODELS_RATING_MODELS, inline=False)
    return embed
