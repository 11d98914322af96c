"""Charts beside the text of a council's results: drawn off the event loop (bot/pictures/), attached as PNGs
to the embeds that carry the same figures as text (which stay, for screen readers and copy-paste)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import discord

from bot.catalog import Catalog
from bot.council.publisher import Table
from bot.council.reports import MemberUsage
from bot.council.scoreboard import Scoreboard
from bot.pictures import charts
from bot.pictures.render import draw
from storage.ratings_repository import MemberAggregate

CHART_MEMBERS = 8  # bars a chart can tell apart (the palette's colours); the table lists the rest


@dataclass(frozen=True, slots=True)
class Picture:
    """A drawn chart as Discord takes it: made into a fresh File for each attempt to send it."""

    filename: str
    png: bytes

    def file(self) -> discord.File:
        import io

        return discord.File(io.BytesIO(self.png), filename=self.filename)

    @property
    def url(self) -> str:
        return f"attachment://{self.filename}"


def colours(catalog: Catalog) -> dict[str, str]:
    return {spec.name: spec.colour for spec in catalog if spec.colour}


async def scoreboard_picture(board: Scoreboard, catalog: Catalog) -> Picture | None:
    members = [charts.RatedMember(m.name, m.clarity, m.insight, m.self_awareness, m.overall) for m in board.members]
    chart = await draw("peer ratings", charts.ratings_chart, f"Peer ratings #{board.number}", members, colours(catalog))
    return Picture(f"ratings-{board.council_id}-{board.number}.png", chart.png) if chart else None


async def server_picture(guild_id: int, board: Sequence[MemberAggregate], catalog: Catalog) -> Picture | None:
    members = [charts.RatedMember(m.name, m.clarity, m.insight, m.self_awareness, m.overall) for m in board]
    chart = await draw(
        "server ratings", charts.ratings_chart, "Peer ratings, ended councils", members, colours(catalog)
    )
    return Picture(f"ratings-server-{guild_id}.png", chart.png) if chart else None


async def ranking_picture(council_id: int, table: Table, catalog: Catalog) -> Picture | None:
    if not table.places:
        return None
    members = [charts.RankedMember(name, places) for name, places in table.places]
    chart = await draw("ranking", charts.ranking_chart, "The answers ranked", members, colours(catalog))
    return Picture(f"ranking-{council_id}.png", chart.png) if chart else None


async def usage_picture(council_id: int, rows: Sequence[MemberUsage], catalog: Catalog) -> Picture | None:
    members = [
        charts.MemberCost(
            r.name,
            r.tokens_in,
            r.tokens_out,
            r.cost,
            r.latency_p50_ms / 1000 if r.latency_p50_ms is not None else None,
        )
        for r in rows
    ]
    chart = await draw("usage", charts.usage_chart, f"Council #{council_id}: usage", members, colours(catalog))
    return Picture(f"usage-{council_id}.png", chart.png) if chart else None
