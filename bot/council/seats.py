"""A seat at a council: a catalog member and the role it plays in this council; and each council's seats."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.catalog import Catalog, MemberSpec
from storage import repository as repo
from storage.database import Database
from storage.models import Council


@dataclass(frozen=True, slots=True)
class Seat:
    spec: MemberSpec
    role: str | None
    benched: bool = False  # failed too many turns in a row
    dismissed: bool = False  # sent away by the convener

    @property
    def active(self) -> bool:
        """Whether the member still takes turns."""
        return not (self.benched or self.dismissed)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def label(self) -> str:
        """How other members and humans see this member, e.g. "DeepSeek (the Philosopher)"."""
        return f"{self.spec.name} ({self.role})" if self.role else self.spec.name


class SeatTable:
    """Each council's seats as stored, read once and kept while its runner needs them every turn. Only this
    process changes a running council's seats (assign, bench, invite, dismiss), and it says so (`forget`)."""

    def __init__(self, db: Database, catalog: Catalog) -> None:
        self.db = db
        self.catalog = catalog
        self._kept: dict[int, tuple[Seat, ...]] = {}
        self._keeping: set[int] = set()

    async def of(self, council_id: int) -> tuple[Seat, ...]:
        """The council's seats, in order; a member removed from the catalog since cannot speak any more."""
        cached = self._kept.get(council_id)
        if cached is not None:
            return cached
        seats = []
        for member in await repo.list_members(self.db, council_id):
            spec = self.catalog.get(member.name)
            if spec is not None:
                seats.append(Seat(spec, member.role, member.benched, member.dismissed))
        if council_id in self._keeping:
            self._kept[council_id] = tuple(seats)
        return tuple(seats)

    def keep(self, council_id: int) -> None:
        """A runner takes the council's turns here: keep its seats between them."""
        self._keeping.add(council_id)

    def release(self, council_id: int) -> None:
        """Its runner stopped: read the seats afresh when asked."""
        self._keeping.discard(council_id)
        self._kept.pop(council_id, None)

    def forget(self, council_id: int) -> None:
        """The council's seats changed: read them again before the next turn."""
        self._kept.pop(council_id, None)

    def chair(self, council: Council, seats: Sequence[Seat]) -> Seat | None:
        """The chair: the one chosen at convene, else the catalog's coordinator, else the first member;
        whoever of them still takes turns."""
        active = [seat for seat in seats if seat.active]
        coordinator = self.catalog.coordinator
        for name in (council.chair, coordinator.name if coordinator else None):
            seat = next((s for s in active if s.name == name), None)
            if seat is not None:
                return seat
        return active[0] if active else None
