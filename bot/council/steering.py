"""Changing a council between turns: roles, who sits at it, how it deliberates. Every change is stored as a
line of the transcript and announced in the thread."""

from __future__ import annotations

from bot.catalog import Catalog
from bot.council.deliberation import MODE_HELP, MODES
from bot.council.posting import LinePosting
from bot.council.seats import Seat, SeatTable
from bot.council.validation import MAX_MEMBERS, ConveneError, clean_text, has_control_characters
from storage import deliberation_repository as deliberation_repo
from storage import repository as repo
from storage.database import Database
from storage.models import Council
from storage.repository import ACTIVE_STATES


class CouncilSteering:
    def __init__(self, db: Database, catalog: Catalog, seats: SeatTable, posting: LinePosting) -> None:
        self.db = db
        self.catalog = catalog
        self.seats = seats
        self.posting = posting

    async def assign(self, council_id: int, member_name: str, role: str) -> Seat:
        """Give a seated member a new role from its next turn on."""

        await self._active_council(council_id, "Roles can only change while the council is running or paused.")
        if has_control_characters(role):
            raise ConveneError("A role may not contain control characters.")
        role = clean_text(role)
        if not 1 <= len(role) <= 100:
            raise ConveneError("A role must be 1 to 100 visible characters.")
        seat = await self._seated(council_id, member_name)
        await repo.set_member_role(self.db, council_id, seat.name, role)
        self.seats.forget(council_id)
        return Seat(seat.spec, role)

    async def switch_mode(self, council_id: int, mode: str, *, by: str, key: str) -> str:
        """Deliberate in `mode` from the next round on; the announcement, as stored and shown."""

        council = await self._active_council(
            council_id, "The mode can only change while the council is active (running, paused or held)."
        )
        if mode not in MODES:
            raise ConveneError(f"Mode must be one of: {', '.join(MODES)}.")
        if mode == council.mode:
            raise ConveneError(f"The council already deliberates in {mode} mode.")
        await deliberation_repo.set_mode(self.db, council_id, mode)
        when = "from the next round" if council.current_round < council.rounds else "for what remains"
        if mode == "review" and council.current_round >= council.rounds:
            when = "once this round is done: the answers are then ranked and the chair sums up"
        return await self._announce(
            council, key, f"🔀 {by} switched the council to **{mode}** ({MODE_HELP[mode]}), {when}."
        )

    async def invite(self, council_id: int, member_name: str, *, by: str, key: str) -> Seat:
        """Seat a member from the catalog; it speaks from the next round on."""

        council = await self._active_council(council_id, "Members can only join a running or paused council.")
        spec = self.catalog.get(member_name.strip())
        if spec is None:
            known = ", ".join(m.name for m in self.catalog)
            raise ConveneError(f"There is no member called {member_name.strip()!r}. Available: {known}.")
        if not spec.is_available():
            raise ConveneError(
                f"{spec.name} needs {spec.key_names}, which the bot's operator has not set (see `/council members`)."
            )
        seats = await self.seats.of(council_id)
        if any(seat.name == spec.name and seat.active for seat in seats):
            raise ConveneError(f"{spec.name} is already a member of this council.")
        if sum(seat.active for seat in seats) >= MAX_MEMBERS:
            raise ConveneError(f"A council seats at most {MAX_MEMBERS} members.")
        if not await deliberation_repo.seat_member(self.db, council_id, spec.name, spec.role):
            raise ConveneError(f"{spec.name} is already a member of this council.")
        self.seats.forget(council_id)
        seat = next(s for s in await self.seats.of(council_id) if s.name == spec.name)
        when = "from the next round" if council.current_round < council.rounds else "if the council goes on"
        if council.mode == "review" and council.current_round >= council.rounds:
            when = "in the review that ends this council"
        await self._announce(council, key, f"🪑 {by} invited **{seat.label}**, who speaks {when}.")
        return seat

    async def dismiss(self, council_id: int, member_name: str, *, by: str, key: str) -> Seat:
        """Send a member away from its next turn on; its words stay in the transcript."""

        council = await self._active_council(council_id, "Members can only be dismissed while the council is active.")
        seat = await self._seated(council_id, member_name)
        if sum(s.active for s in await self.seats.of(council_id)) <= 1:
            raise ConveneError(f"{seat.name} is the last member taking turns; conclude the council instead.")
        if not await deliberation_repo.dismiss_member(self.db, council_id, seat.name):
            raise ConveneError(f"{seat.name} has already been dismissed.")
        self.seats.forget(council_id)
        await self._announce(council, key, f"👋 {by} dismissed **{seat.label}**; it takes no more turns.")
        return seat

    async def _active_council(self, council_id: int, refusal: str) -> Council:

        council = await repo.get_council(self.db, council_id)
        if council is None or council.state not in ACTIVE_STATES:
            raise ConveneError(refusal)
        return council

    async def _seated(self, council_id: int, member_name: str) -> Seat:

        wanted = member_name.strip().casefold()
        seat = next(
            (s for s in await self.seats.of(council_id) if s.name.casefold() == wanted and not s.dismissed), None
        )
        if seat is None:
            raise ConveneError(f"{member_name.strip()!r} is not a member of this council.")
        return seat

    async def _announce(self, council: Council, key: str, text: str) -> str:
        line, _ = await repo.add_message(
            self.db,
            council_id=council.id,
            round_number=council.current_round,
            author_kind="system",
            author_name="council",
            turn_key=key,
            content=text,
        )
        await self.posting.show(council, line)
        return text
