"""How a council's rounds go, per mode (`council.mode`, read again at every round so `/council mode` applies
from the next one):

- round-robin: one member after another, each seeing everything said before.
- parallel: everyone at once, seeing the rounds before; posted in seat order.
- conductor: the chair gives the floor after every turn (bot/council/conductor.py).
- debate: parallel rounds; from round 2 each member revises or defends, and the debate ends early once
  every member holds its position (bot/council/debate.py).
- review: parallel rounds, then anonymous peer ranking of the last answers and the chair's synthesis
  (bot/council/review.py), once the last round is done.

Every step is stored under its own key before it is shown, so a restarted council picks up where it was.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.council import conductor, debate, review
from bot.council.calls import MemberCalls
from bot.council.lifecycle import CouncilLifecycle
from bot.council.posting import LinePosting
from bot.council.publisher import Table
from bot.council.seats import Seat, SeatTable
from bot.council.spending import CouncilSpending
from bot.council.turns import MemberTurns
from bot.providers.base import ProviderError
from storage import deliberation_repository as deliberation_repo
from storage import repository as repo
from storage.database import Database
from storage.models import Council, CouncilMessage, ReviewBallot

log = logging.getLogger(__name__)

MODES = ("round-robin", "parallel", "conductor", "debate", "review")
MODE_HELP = {
    "round-robin": "one after another, each seeing everything said before",
    "parallel": "all at once each round, posted in seat order",
    "conductor": "the chair gives the floor after every turn",
    "debate": "answer alone, then revise or defend until every member holds its position",
    "review": "answer, rank each other's answers anonymously, then the chair's synthesis",
}


@dataclass(frozen=True, slots=True)
class RoundParts:
    """What a round uses: the members' turns, posting, the seats, the council's limits, waiting for it to run,
    and (for a chair's choice or a ranking) the members' providers."""

    db: Database
    calls: MemberCalls
    turns: MemberTurns
    posting: LinePosting
    seats: SeatTable
    spending: CouncilSpending
    lifecycle: CouncilLifecycle


class Deliberation:
    def __init__(self, parts: RoundParts) -> None:
        self.parts = parts
        self.db = parts.db

    async def round(self, council: Council, round_number: int) -> str | None:
        """Run one round; a reason to conclude the council now, or None to go on."""
        if council.mode == "conductor":
            return await self._conducted(council, round_number)
        if council.mode == "debate":
            return await self._debate(council, round_number)
        if council.mode == "review":
            return await self._together(council, round_number, _review_instruction(round_number, council.rounds))
        if council.mode == "parallel":
            return await self._together(council, round_number)
        return await self._in_turn(council, round_number)

    async def finale(self, council: Council) -> str | None:
        """After the last round: a review council ranks its answers and the chair sums up."""
        if council.mode != "review":
            return None
        return await ReviewStage(self.parts).run(council, council.rounds)

    # -- modes ---------------------------------------------------------------------------------------

    async def _in_turn(self, council: Council, round_number: int) -> str | None:
        parts = self.parts
        order = [seat.name for seat in _active(await parts.seats.of(council.id))]
        for name in order:
            council = await parts.lifecycle.ready(council.id)
            if reason := await parts.spending.limit_reached(council):
                return reason
            seats = await parts.seats.of(council.id)
            seat = next((s for s in _active(seats) if s.name == name), None)
            if seat is None:  # dismissed or benched since the round began
                continue
            await parts.posting.post(council, seats, await parts.turns.generate(council, seats, seat, round_number))
            await parts.turns.answer_requests(council)
        return None

    async def _together(
        self,
        council: Council,
        round_number: int,
        instruction: str | None = None,
        shape: Callable[[str], str] | None = None,
    ) -> str | None:
        # Everyone answers the transcript as it stood when the round began; posts follow seat order,
        # each as soon as it and the ones before it are ready.
        parts = self.parts
        if reason := await parts.spending.limit_reached(council):
            return reason
        seats = await parts.seats.of(council.id)
        cutoff = await repo.last_message_id(self.db, council.id)
        tasks = [
            asyncio.create_task(
                parts.turns.generate(
                    council, seats, seat, round_number, up_to_id=cutoff, instruction=instruction, shape=shape
                )
            )
            for seat in _active(seats)
        ]
        try:
            for task in tasks:
                await parts.posting.post(council, seats, await task)
        finally:
            await _settle(tasks)
        await parts.turns.answer_requests(council)
        return None

    async def _debate(self, council: Council, round_number: int) -> str | None:
        shape = debate.mark_stance if round_number > 1 else None
        reason = await self._together(council, round_number, debate.instruction(round_number), shape)
        if reason or round_number == 1:
            return reason
        stances = []
        for seat in _active(await self.parts.seats.of(council.id)):
            line = await repo.get_message_by_turn(self.db, council.id, f"ai:r{round_number}:{seat.name}")
            stances.append(debate.stance_of(line.content) if line is not None else None)
        if debate.everyone_holds(stances):
            return f"Every member holds its position after round {round_number}; the debate has settled."
        return None

    async def _conducted(self, council: Council, round_number: int) -> str | None:
        parts = self.parts
        order = [seat.name for seat in _active(await parts.seats.of(council.id))]
        previous: Seat | None = None
        for index in range(len(order)):
            council = await parts.lifecycle.ready(council.id)
            if reason := await parts.spending.limit_reached(council):
                return reason
            seats = await parts.seats.of(council.id)
            # Members invited during the round join at the next one, as announced.
            candidates = [seat for seat in _active(seats) if seat.name in order]
            if not candidates:
                return None
            seat, why = await self._give_floor(council, seats, candidates, round_number, index, previous, order)
            chair = parts.seats.chair(council, seats)
            instruction = f"{chair.name}, the chair, gave you the floor: {why}" if why and chair else None
            message = await parts.turns.generate(
                council,
                seats,
                seat,
                round_number,
                turn_key=f"ai:r{round_number}:t{index}:{seat.name}",
                instruction=instruction,
            )
            await parts.posting.post(council, seats, message)
            await parts.turns.answer_requests(council)
            previous = seat
        return None

    async def _give_floor(
        self,
        council: Council,
        seats: Sequence[Seat],
        candidates: Sequence[Seat],
        round_number: int,
        index: int,
        previous: Seat | None,
        order: Sequence[str],
    ) -> tuple[Seat, str | None]:
        """Who speaks next: the chair's stored choice if there is one (a restart), else the chair is asked."""
        parts = self.parts
        key = f"floor:r{round_number}:t{index}"
        line = await repo.get_message_by_turn(self.db, council.id, key)
        if line is None:
            line = await self._ask_chair(council, seats, candidates, round_number, key, previous, order)
        await parts.posting.post(council, seats, line)
        chosen = next((s for s in candidates if s.name == line.addressed_to), None)
        if chosen is None:  # the chosen member left since; seat order decides
            return conductor.fallback(candidates, previous, order), None
        return chosen, _why_from(line.content)

    async def _ask_chair(
        self,
        council: Council,
        seats: Sequence[Seat],
        candidates: Sequence[Seat],
        round_number: int,
        key: str,
        previous: Seat | None,
        order: Sequence[str],
    ) -> CouncilMessage:
        parts = self.parts
        chair = parts.seats.chair(council, seats)
        tokens = (0, 0)
        problem: str
        if chair is None:
            problem = "no chair is seated"
        else:
            request = conductor.request(
                chair,
                candidates,
                topic=council.topic,
                transcript=await parts.turns.transcript_text(council, chair),
                previous=previous,
                language=await parts.turns.language(council),
            )
            try:
                completion = await parts.calls.client(chair.spec).complete(request, timeout=parts.calls.timeout)
            except ProviderError as error:
                problem = f"the chair could not answer ({error.kind})"
            else:
                tokens = (completion.input_tokens, completion.output_tokens)
                seat, why, problem = conductor.parse(completion.text, candidates, previous)
                if seat is not None:
                    why = await parts.turns.screened_aside(council, chair.name, why)
                    text = f"🎼 {chair.name} gives the floor to **{seat.name}**" + (f": {why}" if why else ".")
                    return await self._store_floor(council, chair.name, seat.name, round_number, key, text, tokens)
        seat = conductor.fallback(candidates, previous, order)
        who = chair.name if chair is not None else "The chair"
        text = f"🎼 {who} did not give the floor ({problem}); **{seat.name}** speaks next in seat order."
        return await self._store_floor(council, who, seat.name, round_number, key, text, tokens)

    async def _store_floor(
        self, council: Council, chair: str, chosen: str, round_number: int, key: str, text: str, tokens: tuple[int, int]
    ) -> CouncilMessage:
        line, _ = await repo.add_message(
            self.db,
            council_id=council.id,
            round_number=round_number,
            author_kind="system",
            author_name=chair,
            turn_key=key,
            content=text,
            tokens_in=tokens[0],
            tokens_out=tokens[1],
            addressed_to=chosen,
        )
        return line


class ReviewStage:
    """Anonymous peer ranking of the last round's answers, the ranking table, then the chair's synthesis."""

    def __init__(self, parts: RoundParts) -> None:
        self.parts = parts
        self.db = parts.db

    async def run(self, council: Council, round_number: int) -> str | None:
        parts = self.parts
        seats = await parts.seats.of(council.id)
        answers: dict[str, str] = {}
        for line in await repo.transcript(self.db, council.id):
            if line.author_kind == "ai" and line.visibility == "visible" and _is_turn(line, round_number):
                answers[line.author_name] = line.content  # a member given the floor twice: its last word
        reviewers = [seat for seat in _active(seats) if seat.name in answers]
        if len(answers) < 2 or not reviewers:
            await self._show_once(
                council, seats, f"ranking:r{round_number}", "system", "⚖️ Fewer than two answers: nothing to rank."
            )
        else:
            asked = [
                asyncio.create_task(self._ballot(council, seats, seat, round_number, answers)) for seat in reviewers
            ]
            try:
                ballots = [await task for task in asked]
            finally:
                await _settle(asked)
            table = ranking_table(ballots, list(answers))
            await self._show_once(council, seats, f"ranking:r{round_number}", "table", table.dumps())
        council = await parts.lifecycle.ready(council.id)
        if reason := await parts.spending.limit_reached(council):
            return reason
        chair = parts.seats.chair(council, seats)
        if chair is not None:
            ranked = await deliberation_repo.list_ballots(self.db, council.id, round_number)
            order = review.standings(_readable(ranked), list(answers))
            message = await parts.turns.generate(
                council,
                seats,
                chair,
                round_number,
                turn_key=f"ai:synthesis:r{round_number}:{chair.name}",
                instruction=_synthesis_instruction(order),
            )
            await parts.posting.post(council, seats, message)
        return None

    async def _ballot(
        self, council: Council, seats: Sequence[Seat], seat: Seat, round_number: int, answers: dict[str, str]
    ) -> tuple[str, str | None, str]:
        """(reviewer, ranking as comma-separated names or None, state); asked once, recorded first."""
        parts = self.parts
        seed = review.seed_for(council.id, round_number, seat.name)
        labels = review.labels_for(seed, seat.name, list(answers))
        ballot = await deliberation_repo.open_ballot(
            self.db,
            council_id=council.id,
            round_number=round_number,
            reviewer=seat.name,
            seed=seed,
            labels=json.dumps(labels),
        )
        if ballot.state != "asked":
            return ballot.reviewer, ballot.ranking, ballot.state
        labels = json.loads(ballot.labels)  # as first drawn, should the seat order have changed since
        request = review.request(
            seat,
            seats,
            topic=council.topic,
            labels=labels,
            answers=answers,
            language=await parts.turns.language(council),
        )
        try:
            completion = await parts.calls.client(seat.spec).complete(request, timeout=parts.calls.timeout)
        except ProviderError as error:
            await deliberation_repo.close_ballot(self.db, ballot.id, state="failed", ranking=None)
            await repo.add_message(
                self.db,
                council_id=council.id,
                round_number=round_number,
                author_kind="system",
                author_name=seat.name,
                turn_key=f"review:r{round_number}:{seat.name}",
                content=f"{seat.name} could not rank the answers: {error}",
                visibility="record",
            )
            return seat.name, None, "failed"
        order = review.parse_ranking(completion.text, list(labels))
        ranking = ",".join(labels[label] for label in order) if order is not None else None
        await repo.add_message(
            self.db,
            council_id=council.id,
            round_number=round_number,
            author_kind="ai",
            author_name=seat.name,
            turn_key=f"review:r{round_number}:{seat.name}",
            content=completion.text,
            tokens_in=completion.input_tokens,
            tokens_out=completion.output_tokens,
            visibility="record",
        )
        state = "ranked" if ranking is not None else "unreadable"
        await deliberation_repo.close_ballot(self.db, ballot.id, state=state, ranking=ranking)
        return seat.name, ranking, state

    async def _show_once(self, council: Council, seats: Sequence[Seat], key: str, kind: str, content: str) -> None:
        line, _ = await repo.add_message(
            self.db,
            council_id=council.id,
            round_number=council.rounds,
            author_kind=kind,
            author_name="council",
            turn_key=key,
            content=content,
        )
        await self.parts.posting.post(council, seats, line)


def ranking_table(ballots: Sequence[tuple[str, str | None, str]], names: Sequence[str]) -> Table:
    rankings = [ranking.split(",") for _, ranking, state in ballots if state == "ranked" and ranking]
    rows = []
    order = review.standings(rankings, names)
    for place, row in enumerate(order, start=1):
        if row.mean_position is None:
            rows.append(f"–. **{row.name}**: no readable ranking placed it")
            continue
        firsts = f" · ranked first {row.first_places}×" if row.first_places else ""
        rows.append(
            f"{place}. **{row.name}**: mean place {row.mean_position:.2f} from {row.ballots} ranking(s){firsts}"
        )
    for reviewer, _, state in ballots:
        if state == "unreadable":
            rows.append(f"⚠️ {reviewer}'s ranking could not be read and is not counted.")
        elif state == "failed":
            rows.append(f"⚠️ {reviewer} could not rank the answers.")
    return Table(
        title="⚖️ Peer review: the answers ranked",
        rows=tuple(rows),
        note="Each member ranked the others' answers without their names, its own left out; 1 is best.",
        places=tuple((row.name, row.places) for row in order if row.places),
    )


def _readable(ballots: Sequence[ReviewBallot]) -> list[list[str]]:
    return [ballot.ranking.split(",") for ballot in ballots if ballot.state == "ranked" and ballot.ranking]


def _synthesis_instruction(order: Sequence[review.Standing]) -> str:
    ranked = (
        "; ".join(f"{row.name} ({row.mean_position:.2f})" for row in order if row.mean_position is not None)
        or "no ranking could be read"
    )
    return (
        "You chair this council. The members have answered and then ranked each other's answers anonymously "
        f"(mean place, 1 is best): {ranked}. Write the council's synthesis: the best answer to the topic you "
        "can give, drawing on the strongest points of every answer, naming where members disagree and what "
        "remains uncertain. Do not just restate the ranking."
    )


def _review_instruction(round_number: int, rounds: int) -> str:
    later = "" if round_number == rounds else " You will see the others' answers next round and may improve yours."
    if round_number == 1:
        return (
            "Give your best complete answer to the topic. The other members answer at the same time; after the "
            f"last round every member ranks the others' answers anonymously.{later}"
        )
    return (
        "Above are the other members' earlier answers. Give your improved, complete answer, taking the best of "
        f"theirs into account.{later} After this round the answers are ranked anonymously."
    )


def _is_turn(line: CouncilMessage, round_number: int) -> bool:
    """A member's turn in that round: `ai:r2:Name`, or `ai:r2:t1:Name` when the chair gave the floor (a council
    switched to review from conductor in its last round); not its replies to humans nor a synthesis."""
    key, name = line.turn_key, line.author_name
    return key == f"ai:r{round_number}:{name}" or (
        key.startswith(f"ai:r{round_number}:t") and key.endswith(f":{name}") and key.count(":") == 3
    )


async def _settle(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Members' calls made at once, once their round is over or cut short: those still running are stopped,
    and every one is awaited, so that no failure goes unseen ("Task exception was never retrieved"). The
    failure that cut the round short, if any, goes on up; the others are logged."""
    propagating = sys.exc_info()[1]
    for task in tasks:
        task.cancel()
    for outcome in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(outcome, Exception) and outcome is not propagating:
            log.warning("A member's call in a round ended with %s", type(outcome).__name__, exc_info=outcome)


def _active(seats: Sequence[Seat]) -> list[Seat]:
    return [seat for seat in seats if seat.active]


def _why_from(text: str) -> str | None:
    _, sep, why = text.partition("**: ")
    return why.strip() or None if sep else None
