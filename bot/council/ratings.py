"""Peer ratings: every member that took part rates every other member's contribution, and a scoreboard follows.

A rating round rates the transcript up to its newest member turn; that turn's id names the round. Each
rater is asked once, all of them at once, each call bounded by the provider timeout. Its reply must give
one line per other member (`Name | clarity | insight | self-awareness | reason`, scores 1-5); JSON is
accepted too. What cannot be read is stored as unparseable with the raw reply, never guessed, and a rater
whose provider fails is stored as failed; neither stops the others.

When a round runs again (a second `/council rate`, or after a restart), raters whose rows are stored are
not asked again. Once its scoreboard is posted, the round is done: `/council rate` rates a council again
only after members have spoken since, and an ended council is rated once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.council.calls import MemberCalls
from bot.council.framing import READING_RULES, escape
from bot.council.language import Language, for_parsing, of_transcript
from bot.council.language import instruction as language_instruction
from bot.council.moderation import CouncilModeration
from bot.council.prompts import TranscriptLine, conversation_request
from bot.council.publisher import CouncilPublisher, PlaceGone
from bot.council.scoreboard import Scoreboard, build_scoreboard, scoreboard_text
from bot.council.seats import Seat, SeatTable
from bot.council.spending import CouncilSpending
from bot.council.transcript_view import prompt_lines
from bot.providers.base import ChatRequest, ProviderError
from storage import ratings_repository as ratings_repo
from storage import repository as repo
from storage.database import Database
from storage.models import Council, CouncilMessage, PeerRating
from storage.repository import ACTIVE_STATES

log = logging.getLogger(__name__)

SCORE_RANGE = range(1, 6)
REASON_LIMIT = 300  # one sentence; a longer "reason" is cut, not dropped
RAW_LIMIT = 20_000
FORMAT_LINE = "Name | clarity | insight | self-awareness | reason"


class RatingError(ValueError):
    """A rating round that cannot run; the message is shown to the person who asked, as is."""


# -- the prompt ----------------------------------------------------------------------------------------


def rating_system_prompt(
    seat: Seat, others: Sequence[Seat], topic: str, *, ended: bool, language: Language | None = None
) -> str:
    role = f", {seat.role}," if seat.role else ""
    example = others[0].name if others else "Name"
    return "\n".join(
        [
            seat.spec.persona,
            "",
            f"You are {seat.name}{role} a member of an AI council that met in a Discord thread.",
            f"The topic: {escape(topic)}",
            "The council is over." if ended else "The council is under way; rate what has been said so far.",
            READING_RULES,
            f"Rate the contributions of each other member: {', '.join(escape(o.label) for o in others)}. "
            "Do not rate yourself.",
            "Give each of them three whole-number scores from 1 (poor) to 5 (excellent):",
            "- clarity: how clear and well organised their contributions were;",
            "- insight: how much they added that was new, sound and useful;",
            "- self-awareness: how well they acknowledged uncertainty, limits and their own mistakes.",
            "Then one sentence of reason. Judge what they wrote, not its length or whether they agreed with you.",
            "Reply with exactly one line per member, in this form, and nothing else:",
            FORMAT_LINE,
            f"For example: {example} | 4 | 3 | 5 | Clear and candid about its doubts, but it added little new.",
            language_instruction(language),
        ]
    )


def rating_request(
    seat: Seat,
    seats: Sequence[Seat],
    others: Sequence[Seat],
    *,
    topic: str,
    lines: Sequence[TranscriptLine],
    ended: bool,
    budget_tokens: int | None,
    language: Language | None = None,
) -> ChatRequest:
    """The rater sees the transcript as it did in its turns (same rendering, same budget), then the ask."""
    system = rating_system_prompt(seat, others, topic, ended=ended, language=language)
    opening = f"The council is convened. Topic: {escape(topic)}"
    closing = f"Now rate {', '.join(o.name for o in others)}: one line each, `{FORMAT_LINE}`."
    return conversation_request(
        seat, seats, lines, system=system, opening=opening, closing=closing, budget_tokens=budget_tokens
    )


# -- reading the reply ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedRating:
    ratee: str
    clarity: int
    insight: int
    self_awareness: int
    reason: str


_SCORE = re.compile(r"^(?:[a-z][a-z _-]*\s*[:=]\s*)?(\d+)(?:\s*/\s*(\d+))?\.?$", re.IGNORECASE)
_LIST_MARK = re.compile(r"^(?:[-*•>]+|\d+[.)])\s*")
_LABEL = re.compile(r"^(?:name|member|ratee)\s*[:=]\s*", re.IGNORECASE)


def parse_score(value: object) -> int | None:
    """A whole score 1-5 from `4`, `"4"`, `"4/5"` or `"clarity: 4"`; None for anything else (out of range,
    fractions, another scale)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value in SCORE_RANGE else None
    if not isinstance(value, str):
        return None
    match = _SCORE.match(value.strip().strip("*_`"))
    if match is None or (match.group(2) is not None and match.group(2) != "5"):
        return None
    score = int(match.group(1))
    return score if score in SCORE_RANGE else None


def clean_name(text: str) -> str:
    """`**1. Claude (the Coordinator)**` → `claude`: markdown, list marks, labels and a role dropped."""
    name = text.strip().strip("*_`\"' ")
    name = _LIST_MARK.sub("", name)
    name = _LABEL.sub("", name).strip("*_`\"' ")
    name = re.sub(r"\s*\(.*\)\s*$", "", name)
    return name.strip(" :").casefold()


def parse_ratings(reply: str, ratees: Sequence[str]) -> dict[str, ParsedRating]:
    """The readable ratings in `reply`, by ratee name. A member with no line, a bad score, or two different
    lines gets nothing: the caller records it as unparseable."""
    names = {name.casefold(): name for name in ratees}
    reply = for_parsing(reply)  # full-width `｜` and `４` as `|` and `4`, whatever language the reasons are in
    candidates = _json_candidates(reply)
    if candidates is None:
        candidates = _line_candidates(reply)
    found: dict[str, ParsedRating | None] = {}
    for name_text, scores, reason in candidates:
        name = names.get(clean_name(name_text))
        if name is None:  # a header line, the rater itself, or someone not in this council
            continue
        values = [parse_score(score) for score in scores]
        rating = (
            ParsedRating(name, values[0], values[1], values[2], _one_sentence(reason))
            if len(values) == 3 and all(v is not None for v in values)
            else None
        )
        if name in found and found[name] != rating:
            rating = None  # two different answers for one member: neither is taken
        found[name] = rating  # type: ignore[assignment]
    return {name: rating for name, rating in found.items() if rating is not None}


Candidate = tuple[str, list[object], str]


def _without_fences(reply: str) -> str:
    return "\n".join(line for line in reply.splitlines() if not line.strip().startswith("```"))


def _line_candidates(reply: str) -> list[Candidate]:
    candidates: list[Candidate] = []
    for line in _without_fences(reply).splitlines():
        if "|" not in line:
            continue
        parts = [part.strip() for part in line.strip().strip("|").split("|")]
        if len(parts) >= 4:
            candidates.append((parts[0], list(parts[1:4]), " | ".join(parts[4:])))
    return candidates


def _json_candidates(reply: str) -> list[Candidate] | None:
    """Ratings given as JSON (a list of objects, {"ratings": [...]}, or {name: {...}}); None if no JSON."""
    text = _without_fences(reply)
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    end = max(text.rfind("}"), text.rfind("]"))
    if start < 0 or end <= start:
        return None
    try:
        data: Any = json.loads(text[start : end + 1])
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("ratings"), list):
        data = data["ratings"]
    items: list[tuple[str, dict[str, Any]]] = []
    if isinstance(data, list):
        items = [(str(i.get("member") or i.get("name") or ""), i) for i in data if isinstance(i, dict)]
    elif isinstance(data, dict):
        items = [(str(name), value) for name, value in data.items() if isinstance(value, dict)]
    else:
        return None
    candidates: list[Candidate] = []
    for name, item in items:
        keys = {re.sub(r"[^a-z]", "", str(key).casefold()): value for key, value in item.items()}
        scores = [keys.get("clarity"), keys.get("insight"), keys.get("selfawareness")]
        candidates.append((name, scores, str(keys.get("reason") or "")))
    return candidates


def _one_sentence(reason: str) -> str:
    reason = " ".join(reason.split()).strip("*_` ")
    return reason if len(reason) <= REASON_LIMIT else reason[: REASON_LIMIT - 1].rstrip() + "…"


# -- running a round -------------------------------------------------------------------------------------


def is_member_turn(line: CouncilMessage) -> bool:
    return line.author_kind == "ai" and line.visibility == "visible" and line.turn_key.startswith("ai:")


def members_taking_part(seats: Sequence[Seat], lines: Sequence[CouncilMessage]) -> list[Seat]:
    """Seated members with at least one turn the others saw, in seat order (benched ones included: they
    are rated, though they do not rate)."""
    spoken = {line.author_name for line in lines if is_member_turn(line)}
    return [seat for seat in seats if seat.name in spoken]


class PeerRatings:
    """Rating rounds: on demand (`rate`), after a council concludes (`after_conclude`,
    when `automatic`), and the scoreboard a stop left unposted (`recover`)."""

    def __init__(
        self,
        db: Database,
        calls: MemberCalls,
        publisher: CouncilPublisher,
        seats: SeatTable,
        spending: CouncilSpending,
        moderation: CouncilModeration | None,
        *,
        automatic: bool,
    ) -> None:
        self.db = db
        self.calls = calls
        self.publisher = publisher
        self.seats = seats
        self.spending = spending
        self.moderation = moderation
        self.automatic = automatic
        self._running: set[int] = set()  # councils with a round in progress in this process

    async def after_conclude(self, council: Council) -> None:
        """Rate a council that reached its end (not one that failed) if at least two members spoke."""
        if not self.automatic or council.state != "concluded" or council.id is None:
            return
        if await self.spending.limit_reached(council):  # ratings would spend past the limit it just reached
            log.info("Council %s: no peer ratings at its end: it reached its token or cost limit", council.id)
            return
        try:
            await self.rate(council.id, automatic=True)
        except RatingError as skipped:
            log.info("Council %s: no peer ratings at its end: %s", council.id, skipped)

    async def rate(self, council_id: int, *, automatic: bool = False) -> Scoreboard:
        """Run (or finish) the council's rating round for its transcript as it stands, store it, post the
        scoreboard, and return it. RatingError says why not."""
        if council_id in self._running:
            raise RatingError("The members are rating each other already; the scoreboard follows in the thread.")
        self._running.add(council_id)
        try:
            return await self._rate(council_id, automatic)
        finally:
            self._running.discard(council_id)

    async def _rate(self, council_id: int, automatic: bool) -> Scoreboard:
        council = await repo.get_council(self.db, council_id)
        if council is None or council.state == "starting":
            raise RatingError("This council has not started yet.")
        moderation = self.moderation
        if moderation is not None and (await moderation.gate.policy(council.guild_id)).halted:
            raise RatingError("Councils in this server are halted by its moderators (`/governance resume-all`).")
        lines = await repo.transcript(self.db, council_id)
        seats = await self.seats.of(council_id)
        taking_part = members_taking_part(seats, lines)
        if len(taking_part) < 2:
            raise RatingError("Peer ratings need at least two members who have spoken in the council.")
        as_of = max(line.id or 0 for line in lines if is_member_turn(line))
        turn_key = f"scoreboard:{as_of}"
        recovering = False
        stored = await repo.get_message_by_turn(self.db, council_id, turn_key)
        if stored is not None and stored.discord_ids:
            raise RatingError(
                "The members have rated each other already for everything said so far; "
                + (
                    "an ended council is rated once."
                    if council.state not in ACTIVE_STATES
                    else "ask again after they have spoken more."
                )
            )
        ratees = [seat.name for seat in taking_part]
        if stored is None:
            done = await ratings_repo.raters_in_round(self.db, council_id, as_of)
            shown = [line for line in lines if (line.id or 0) <= as_of]
            raters = [seat for seat in taking_part if seat.active and seat.name not in done]
            await asyncio.gather(*(self._ask(council, seat, seats, taking_part, shown, as_of) for seat in raters))
        else:
            recovering = True
        board = await self._board(council, as_of, ratees)
        if stored is None:
            stored, _ = await repo.add_message(
                self.db,
                council_id=council_id,
                round_number=council.current_round,
                author_kind="system",
                author_name="Peer ratings",
                turn_key=turn_key,
                content=scoreboard_text(board),
                visibility=ratings_repo.SCOREBOARD_VISIBILITY,
            )
        try:
            await self._post(council, stored, board, recovering=recovering)
        except PlaceGone as gone:
            if automatic:
                log.warning("Council %s: its scoreboard is stored but the thread is gone: %s", council_id, gone)
                return board
            raise RatingError("The council's thread can no longer be posted in; the ratings are stored.") from gone
        return board

    async def _board(self, council: Council, as_of: int, ratees: Sequence[str]) -> Scoreboard:
        rows = await ratings_repo.round_ratings(self.db, council.id or 0, as_of)
        number = await ratings_repo.round_number(self.db, council.id or 0, as_of)
        return build_scoreboard(council, number, ratees, rows)

    async def _post(self, council: Council, stored: CouncilMessage, board: Scoreboard, *, recovering: bool) -> None:
        # `recovering`: a process that stopped may have posted it without recording that, so look first.
        ids = await self.publisher.post_scoreboard(council, board, recovering=recovering)
        await repo.record_posted(self.db, stored.id or 0, ids)

    async def _ask(
        self,
        council: Council,
        seat: Seat,
        seats: Sequence[Seat],
        taking_part: Sequence[Seat],
        lines: Sequence[CouncilMessage],
        as_of: int,
    ) -> None:
        others = [other for other in taking_part if other.name != seat.name]
        request = rating_request(
            seat,
            seats,
            others,
            topic=council.topic,
            lines=await prompt_lines(self.db, council.id or 0, lines),
            ended=council.state not in ACTIVE_STATES,
            budget_tokens=self.calls.context_budget,
            language=of_transcript(council.language, council.topic, lines),
        )

        def row(ratee: str, status: str, **values: Any) -> PeerRating:
            return PeerRating(
                council_id=council.id or 0,
                guild_id=council.guild_id,
                as_of_message_id=as_of,
                rater=seat.name,
                ratee=ratee,
                status=status,
                **values,
            )

        try:
            completion = await self.calls.client(seat.spec).complete(request, timeout=self.calls.timeout)
        except ProviderError as error:
            log.warning("rating failed council=%s member=%s error=%s", council.id, seat.name, error.kind)
            rows = [row(o.name, "failed", reason=str(error)[:REASON_LIMIT]) for o in others]
            await ratings_repo.store_rater_ratings(self.db, council.id or 0, rows)
            return
        parsed = parse_ratings(completion.text, [o.name for o in others])
        withheld = await self._withheld_reasons(council, seat.name, parsed)
        raw = completion.text[:RAW_LIMIT]
        rows = [
            row(
                o.name,
                "rated",
                clarity=rating.clarity,
                insight=rating.insight,
                self_awareness=rating.self_awareness,
                reason=rating.reason,
                reason_withheld=o.name in withheld,
                raw_reply=raw,
            )
            if (rating := parsed.get(o.name)) is not None
            else row(o.name, "unparseable", raw_reply=raw)
            for o in others
        ]
        log.info(
            "rating council=%s member=%s readable=%d of %d tokens_in=%s tokens_out=%s",
            council.id,
            seat.name,
            len(parsed),
            len(others),
            completion.input_tokens,
            completion.output_tokens,
        )
        await ratings_repo.store_rater_ratings(
            self.db,
            council.id or 0,
            rows,
            tokens_in=completion.input_tokens,
            tokens_out=completion.output_tokens,
        )

    async def _withheld_reasons(self, council: Council, rater: str, parsed: dict[str, ParsedRating]) -> set[str]:
        """Ratees whose reason the server's moderation flags. Reasons are AI text like any reply: screened
        together first (one judge call in the usual case), then one by one to find the flagged ones."""
        moderation = self.moderation
        reasons = {name: rating.reason for name, rating in parsed.items() if rating.reason}
        if moderation is None or not reasons:
            return set()

        async def flagged(text: str) -> bool:
            return bool((await moderation.screen_ai(council, rater, text)).concerns)

        if not await flagged("\n".join(reasons.values())):
            return set()
        one_by_one = {name for name, text in reasons.items() if await flagged(text)}
        return one_by_one or set(reasons)  # flagged together but not apart: withhold them all, to be safe

    async def server_scoreboard(self, guild_id: int) -> list[ratings_repo.MemberAggregate]:
        """Every rated member of the server's ended councils, best overall first."""
        return await ratings_repo.server_scoreboard(self.db, guild_id)

    async def board_of(self, council: Council, stored: CouncilMessage) -> Scoreboard:
        """The scoreboard a stored scoreboard line shows, rebuilt from the ratings behind it (its chart's data)."""
        as_of = int(stored.turn_key.removeprefix("scoreboard:"))
        lines = await repo.transcript(self.db, council.id or 0, up_to_id=as_of)
        ratees = [seat.name for seat in members_taking_part(await self.seats.of(council.id or 0), lines)]
        return await self._board(council, as_of, ratees)

    async def recover(self, owns: Callable[[int], bool]) -> None:
        """Post the scoreboards a stop left stored but unposted (looking in the thread first)."""
        for stored in await ratings_repo.unposted_scoreboards(self.db):
            council = await repo.get_council(self.db, stored.council_id)
            if council is None or not owns(council.guild_id) or council.thread_id is None:
                continue
            board = await self.board_of(council, stored)
            try:
                await self._post(council, stored, board, recovering=True)
            except PlaceGone:
                log.warning("Council %s: its stored scoreboard cannot be posted; the thread is gone", council.id)
