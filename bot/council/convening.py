"""Convening a council: a request checked (members, roles, rounds, mode, chair, limits), admitted (halts, how
many one person and one server may run), and stored as a council in state `starting`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.catalog import TOOL_PATTERN, Catalog, MemberSpec
from bot.council.deliberation import MODES
from bot.council.language import UnknownLanguage, named
from bot.council.seats import Seat
from bot.council.validation import (
    MAX_MEMBERS,
    MAX_ROUNDS,
    ConveneError,
    clean_text,
    has_control_characters,
    parse_roles,
)
from bot.governance.gate import GovernanceGate
from storage import repository as repo
from storage.database import Database
from storage.models import Council


@dataclass(frozen=True, slots=True)
class CouncilPlan:
    """A validated convene request."""

    topic: str
    seats: tuple[Seat, ...]
    rounds: int
    mode: str
    chair: str | None = None
    max_tokens: int | None = None
    max_cost: float | None = None
    template_id: int | None = None  # templates: convened from this permanent council (bot/council/templates.py)
    language: str | None = None  # an ISO 639 code the convener chose (bot/council/language.py)
    # The tools the convener allows, narrowing each member's own list: None allows them all, () none.
    tools: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ConveneLimits:
    """How much one person and one server may run at once, so nobody runs up the provider bill alone."""

    running_per_user: int = 2
    running_per_server: int = 10
    convenes_per_user_per_hour: int = 6


class Convening:
    def __init__(
        self, db: Database, catalog: Catalog, gate: GovernanceGate | None, limits: ConveneLimits | None = None
    ) -> None:
        self.db = db
        self.catalog = catalog
        self.gate = gate
        self.limits = limits or ConveneLimits()

    def plan(
        self,
        *,
        topic: str,
        member_names: str,
        roles: str | None,
        rounds: int,
        mode: str,
        chair: str | None = None,
        max_tokens: int | None = None,
        max_cost: float | None = None,
        language: str | None = None,
        tools: str | None = None,
    ) -> CouncilPlan:
        """Validate a convene request; raise ConveneError with a message for the user."""
        if has_control_characters(topic):
            raise ConveneError("The topic contains control characters; please type it as plain text.")
        topic = clean_text(topic)
        if not 3 <= len(topic) <= 1000:
            raise ConveneError("The topic must be between 3 and 1,000 characters.")
        if mode not in MODES:
            raise ConveneError(f"Mode must be one of: {', '.join(MODES)}.")
        if not 1 <= rounds <= MAX_ROUNDS:
            raise ConveneError(f"Rounds must be between 1 and {MAX_ROUNDS}.")
        names = [name.strip() for name in member_names.replace(";", ",").split(",") if name.strip()]
        if not names:
            raise ConveneError("Name at least one member, e.g. `Claude, DeepSeek, Llama`.")
        specs: list[MemberSpec] = []
        for name in names:
            spec = self.catalog.get(name)
            if spec is None:
                known = ", ".join(m.name for m in self.catalog)
                raise ConveneError(f"There is no member called {name!r}. Available: {known}.")
            if spec in specs:
                raise ConveneError(f"{spec.name} is named twice.")
            specs.append(spec)
        if len(specs) > MAX_MEMBERS:
            raise ConveneError(f"A council seats at most {MAX_MEMBERS} members.")
        missing = [spec for spec in specs if not spec.is_available()]
        if missing:
            details = "; ".join(f"{spec.name} needs {spec.key_names}" for spec in missing)
            raise ConveneError(
                f"Not available: {details}. The bot's operator sets these keys in the bot's environment "
                "(see `/council members`)."
            )
        assigned = parse_roles(roles or "", specs)
        seats = tuple(Seat(spec, assigned.get(spec.name, spec.role)) for spec in specs)
        chair_name: str | None = None
        if chair is not None and chair.strip():
            chair_seat = next((s for s in seats if s.name.casefold() == chair.strip().casefold()), None)
            if chair_seat is None:
                raise ConveneError(f"The chair must be one of the council's members; {chair.strip()!r} is not.")
            chair_name = chair_seat.name
        if max_tokens is not None and max_tokens < 1000:
            raise ConveneError("A token limit below 1,000 would end the council before it starts.")
        if max_cost is not None and not 0 < max_cost <= 1000:
            raise ConveneError("A cost limit must be more than $0 and at most $1,000.")
        chosen: str | None = None
        if language is not None and language.strip():
            try:
                chosen = named(language).code
            except UnknownLanguage:
                raise ConveneError(
                    f"I do not know the language {clean_text(language)[:40]!r}. Give its English name (`Russian`), "
                    "its code (`ru`) or its own name (`русский`), or leave it out to follow the topic's language."
                ) from None
        return CouncilPlan(
            tools=narrowed_tools(tools),
            topic=topic,
            seats=seats,
            rounds=rounds,
            mode=mode,
            chair=chair_name,
            max_tokens=max_tokens,
            max_cost=max_cost,
            language=chosen,
        )

    async def admit(self, *, guild_id: int, user_id: int) -> None:
        """Refuse a convene the server's halt or the running limits do not allow."""
        if self.gate is not None and (await self.gate.policy(guild_id)).halted:
            raise ConveneError("Councils in this server are halted by its moderators (`/governance resume-all`).")
        limits = self.limits
        if await repo.count_active_councils(self.db, guild_id, convener_id=user_id) >= limits.running_per_user:
            raise ConveneError(
                f"You already have {limits.running_per_user} council(s) running; conclude one before convening another."
            )
        if await repo.count_active_councils(self.db, guild_id) >= limits.running_per_server:
            raise ConveneError(f"This server already runs {limits.running_per_server} councils; try again later.")
        since = datetime.now(UTC) - timedelta(hours=1)
        if await repo.count_convenes_since(self.db, guild_id, user_id, since) >= limits.convenes_per_user_per_hour:
            raise ConveneError(
                f"You convened {limits.convenes_per_user_per_hour} councils in the last hour; please wait a while."
            )

    async def create(
        self, plan: CouncilPlan, *, guild_id: int, channel_id: int, convener_id: int, convener_name: str
    ) -> Council:
        return await repo.create_council(
            self.db,
            guild_id=guild_id,
            channel_id=channel_id,
            topic=plan.topic,
            mode=plan.mode,
            rounds=plan.rounds,
            convener_id=convener_id,
            convener_name=convener_name,
            members=[(seat.name, seat.role) for seat in plan.seats],
            chair=plan.chair,
            max_tokens=plan.max_tokens,
            max_cost=plan.max_cost,
            template_id=plan.template_id,
            language=plan.language,
            tools=",".join(plan.tools) if plan.tools is not None else None,
        )


def narrowed_tools(text: str | None) -> tuple[str, ...] | None:
    """The convener's `tools:` option: nothing (each member keeps its own tools), `none`, or a list of
    `server.tool` / `server.*` that members' own lists are narrowed to."""
    if text is None or not text.strip():
        return None
    if text.strip().casefold() == "none":
        return ()
    patterns = tuple(dict.fromkeys(part.strip() for part in text.replace(";", ",").split(",") if part.strip()))
    wrong = [pattern for pattern in patterns if not TOOL_PATTERN.fullmatch(pattern)]
    if wrong or not patterns:
        raise ConveneError(
            f"Tools are `none`, or tools like `councils.*, search.find` (a server, a dot, a tool or *), "
            f"not {clean_text(wrong[0] if wrong else text)[:60]!r}."
        )
    return patterns
