"""A council's results as charts (bot/pictures/), from the engine's own data: a scoreboard, a review's ranking,
the server's ratings, what each member used, and every chart its transcript page shows. The Discord cog and the
terminal rehearsal both draw through here; each only decides where the PNGs go."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from bot.catalog import Catalog
from bot.council.publisher import Table
from bot.council.reports import CouncilRecord, MemberUsage
from bot.council.scoreboard import MemberScores, Scoreboard
from bot.pictures import charts
from bot.pictures.charts import Chart
from bot.pictures.render import draw
from storage.models import CouncilMessage
from storage.ratings_repository import MemberAggregate

Colours = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class LineChart:
    """The chart of one transcript line (a ranking or a scoreboard), and the file name it goes by."""

    line_id: int
    name: str  # "ranking-<line id>" or "ratings-<number>"
    png: bytes


def colours(catalog: Catalog) -> dict[str, str]:
    """The members' colours from the catalog (a member without one gets the charts' palette by seat)."""
    return {spec.name: spec.colour for spec in catalog if spec.colour}


def _rated(members: Iterable[MemberScores | MemberAggregate]) -> list[charts.RatedMember]:
    return [charts.RatedMember(m.name, m.clarity, m.insight, m.self_awareness, m.overall) for m in members]


async def scoreboard_chart(board: Scoreboard, colours: Colours) -> Chart | None:
    return await draw(
        "peer ratings", charts.ratings_chart, f"Peer ratings #{board.number}", _rated(board.members), colours
    )


async def server_chart(board: Sequence[MemberAggregate], colours: Colours) -> Chart | None:
    return await draw("server ratings", charts.ratings_chart, "Peer ratings, ended councils", _rated(board), colours)


async def ranking_chart(table: Table, colours: Colours) -> Chart | None:
    if not table.places:
        return None
    members = [charts.RankedMember(name, places) for name, places in table.places]
    return await draw("ranking", charts.ranking_chart, "The answers ranked", members, colours)


async def usage_chart(council_id: int, rows: Sequence[MemberUsage], colours: Colours) -> Chart | None:
    members = [
        charts.MemberCost(
            r.name, r.tokens_in, r.tokens_out, r.cost, r.latency_p50_ms / 1000 if r.latency_p50_ms is not None else None
        )
        for r in rows
    ]
    return await draw("usage", charts.usage_chart, f"Council #{council_id}: usage", members, colours)


def _charted(line: CouncilMessage) -> str | None:
    """Which chart a transcript line's page shows beside it: a review ranking's, a scoreboard's, or none."""
    if line.id is None:
        return None
    if line.author_kind == "table" and line.visibility == "visible" and Table.loads(line.content).places:
        return "ranking"
    return "ratings" if line.visibility == "scoreboard" else None


def has_charts(record: CouncilRecord) -> bool:
    return any(_charted(line) for line in record.messages)


async def record_charts(
    record: CouncilRecord, colours: Colours, board_of: Callable[[CouncilMessage], Awaitable[Scoreboard]]
) -> list[LineChart]:
    """Every chart the record's transcript page shows: each review ranking's, and each scoreboard's (rebuilt from
    its stored ratings by `board_of`), in transcript order; one that cannot be drawn is left out."""
    drawn = []
    for line in record.messages:
        kind = _charted(line)
        if kind == "ranking":
            chart = await ranking_chart(Table.loads(line.content), colours)
            name = f"ranking-{line.id}"
        elif kind == "ratings":
            board = await board_of(line)
            chart = await scoreboard_chart(board, colours)
            name = f"ratings-{board.number}"
        else:
            continue
        if chart is not None:
            drawn.append(LineChart(line.id or 0, name, chart.png))
    return drawn
