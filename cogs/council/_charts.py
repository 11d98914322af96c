"""Charts beside the text of a council's results: drawn off the event loop (bot/pictures/), attached as PNGs
to the embeds that carry the same figures as text (which stay, for screen readers and copy-paste)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import discord

from bot.catalog import Catalog
from bot.council import result_charts
from bot.council.publisher import Table
from bot.council.reports import MemberUsage
from bot.council.scoreboard import Scoreboard
from storage.ratings_repository import MemberAggregate

CHART_MEMBERS = 8  # bars a chart can tell apart (the palette's colours); the table lists the rest


@dataclass(frozen=True, slots=True)
class Picture:
    """A drawn chart as Discord takes it: made into a fresh File for each attempt to send it."""

    filename: str
    png: bytes

    def file(self) -> discord.File:
        return discord.File(io.BytesIO(self.png), filename=self.filename)

    @property
    def url(self) -> str:
        return f"attachment://{self.filename}"


async def scoreboard_picture(board: Scoreboard, catalog: Catalog) -> Picture | None:
    chart = await result_charts.scoreboard_chart(board, result_charts.colours(catalog))
    return Picture(f"ratings-{board.council_id}-{board.number}.png", chart.png) if chart else None


async def server_picture(guild_id: int, board: Sequence[MemberAggregate], catalog: Catalog) -> Picture | None:
    chart = await result_charts.server_chart(board, result_charts.colours(catalog))
    return Picture(f"ratings-server-{guild_id}.png", chart.png) if chart else None


async def ranking_picture(council_id: int, table: Table, catalog: Catalog) -> Picture | None:
    chart = await result_charts.ranking_chart(table, result_charts.colours(catalog))
    return Picture(f"ranking-{council_id}.png", chart.png) if chart else None


async def usage_picture(council_id: int, rows: Sequence[MemberUsage], catalog: Catalog) -> Picture | None:
    chart = await result_charts.usage_chart(council_id, rows, result_charts.colours(catalog))
    return Picture(f"usage-{council_id}.png", chart.png) if chart else None
