"""A peer-ratings scoreboard as data: each member's mean scores, the raters' reasons, and what went wrong;
built from the stored ratings of one round and rendered by each publisher."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from storage.models import Council, PeerRating
from storage.repository import ACTIVE_STATES


@dataclass(frozen=True, slots=True)
class MemberScores:
    """How the others rated one member in a round; None means no readable rating."""

    name: str
    ratings: int
    clarity: float | None
    insight: float | None
    self_awareness: float | None

    @property
    def overall(self) -> float | None:
        if self.clarity is None or self.insight is None or self.self_awareness is None:
            return None
        return (self.clarity + self.insight + self.self_awareness) / 3


@dataclass(frozen=True, slots=True)
class RatingReason:
    rater: str
    ratee: str
    scores: tuple[int, int, int]
    reason: str  # empty when withheld or not given
    withheld: bool  # the server's moderation flagged it: left out


@dataclass(frozen=True, slots=True)
class Scoreboard:
    """A round's results as they are shown: plain data, rendered by the publisher."""

    council_id: int
    topic: str
    number: int  # the council's first, second… rating round
    round_number: int
    rounds: int
    ended: bool
    members: tuple[MemberScores, ...]  # best overall first; members without readable ratings last
    reasons: tuple[RatingReason, ...]
    problems: tuple[str, ...]  # raters that failed, replies that could not be read


def build_scoreboard(council: Council, number: int, ratees: Sequence[str], rows: Sequence[PeerRating]) -> Scoreboard:
    members = []
    for name in ratees:
        rated = [r for r in rows if r.ratee == name and r.status == "rated"]
        members.append(
            MemberScores(
                name,
                len(rated),
                _mean([r.clarity for r in rated]),
                _mean([r.insight for r in rated]),
                _mean([r.self_awareness for r in rated]),
            )
        )
    members.sort(key=lambda m: (m.overall is None, -(m.overall or 0), m.name.casefold()))
    # Seat order, whatever order the raters answered in.
    order = {name: n for n, name in enumerate(ratees)}
    rows = sorted(rows, key=lambda r: (order.get(r.rater, len(order)), order.get(r.ratee, len(order))))
    reasons = tuple(
        RatingReason(
            r.rater,
            r.ratee,
            (r.clarity or 0, r.insight or 0, r.self_awareness or 0),
            "" if r.reason_withheld else r.reason,
            r.reason_withheld,
        )
        for r in rows
        if r.status == "rated"
    )
    problems: list[str] = []
    for rater in dict.fromkeys(r.rater for r in rows):
        own = [r for r in rows if r.rater == rater]
        failed = next((r for r in own if r.status == "failed"), None)
        if failed is not None:
            problems.append(f"{rater} could not rate: {failed.reason.removeprefix(f'{rater}: ')}")
            continue
        unread = [r.ratee for r in own if r.status == "unparseable"]
        if unread:
            problems.append(f"{rater}'s reply gave no readable rating for {', '.join(unread)}.")
    return Scoreboard(
        council_id=council.id or 0,
        topic=council.topic,
        number=number,
        round_number=council.current_round,
        rounds=council.rounds,
        ended=council.state not in ACTIVE_STATES,
        members=tuple(members),
        reasons=reasons,
        problems=tuple(problems),
    )


def _mean(values: Sequence[int | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def score_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def scoreboard_text(board: Scoreboard) -> str:
    """The scoreboard as plain text: what the transcript keeps (and the export shows)."""
    lines = [f"📊 Peer ratings #{board.number} of council #{board.council_id}, {when_text(board)}"]
    for m in board.members:
        lines.append(
            f"{m.name}: clarity {score_text(m.clarity)} · insight {score_text(m.insight)} · "
            f"self-awareness {score_text(m.self_awareness)} · overall {score_text(m.overall)} "
            f"({m.ratings} rating{'s' if m.ratings != 1 else ''})"
        )
    for r in board.reasons:
        said = "(reason left out: flagged by the server's moderation)" if r.withheld else (r.reason or "(no reason)")
        lines.append(f"- {r.rater} on {r.ratee} ({'/'.join(map(str, r.scores))}): {said}")
    lines += [f"⚠️ {problem}" for problem in board.problems]
    return "\n".join(lines)


def when_text(board: Scoreboard) -> str:
    return "at its end" if board.ended else f"during round {board.round_number} of {board.rounds}"
