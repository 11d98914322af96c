"""Tool calls: stored with the lines that show them before they run, settled once, replayed after a restart.

A member's reply that calls tools is recorded as one step: a `tool_call` row per call and, in the same
transaction, the transcript line that shows each call (and the tokens that reply cost). Running a call is a
conditional update from pending (or approved) to running, so two processes never both run it; its result
and the line that shows it are written together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from storage.database import Database
from storage.models import CouncilMessage, ToolCallRecord, utcnow
from storage.repository import _ADD_TOKENS

# What a finished call may be left as; `running` and `held` are on the way there.
SETTLED = ("done", "failed", "refused", "interrupted")


@dataclass(frozen=True, slots=True)
class NewCall:
    """A call the model asked for, as the tool layer resolved it."""

    call_id: str
    server: str
    tool: str
    exposed_name: str
    arguments: str  # JSON
    policy: str
    repeatable: bool
    shown: str  # the transcript line that shows it
    held: bool = False  # its arguments tripped the server's rules: its line waits for the moderators too


async def record_step(
    db: Database,
    *,
    council_id: int,
    round_number: int,
    member: str,
    turn_key: str,
    step: int,
    text: str,
    signed: str,
    calls: Sequence[NewCall],
    tokens_in: int,
    tokens_out: int,
    claimed_by: str,
) -> list[tuple[ToolCallRecord, CouncilMessage]]:
    """Store a reply's calls and their lines once; a second call for the same step returns what was stored."""
    try:
        async with db.session() as session:
            pairs: list[tuple[ToolCallRecord, CouncilMessage]] = []
            for position, call in enumerate(calls):
                record = ToolCallRecord(
                    council_id=council_id,
                    turn_key=turn_key,
                    member=member,
                    step=step,
                    position=position,
                    call_id=call.call_id,
                    server=call.server,
                    tool=call.tool,
                    exposed_name=call.exposed_name,
                    arguments=call.arguments,
                    text=text if position == 0 else "",
                    signed=signed if position == 0 else "",
                    policy=call.policy,
                    repeatable=call.repeatable,
                )
                session.add(record)
                await session.flush()
                line = CouncilMessage(
                    council_id=council_id,
                    round=round_number,
                    author_kind="tool",
                    author_name=member,
                    turn_key=f"tool:{record.id}",
                    content=call.shown,
                    visibility="held" if call.held else "visible",
                    # The reply that asked for the calls is paid for with the first of them.
                    tokens_in=tokens_in if position == 0 else 0,
                    tokens_out=tokens_out if position == 0 else 0,
                    claimed_by=claimed_by,
                    claimed_at=utcnow() if claimed_by else None,
                )
                session.add(line)
                await session.flush()
                record.line_id = line.id
                pairs.append((record, line))
            if tokens_in or tokens_out:
                await session.execute(
                    _ADD_TOKENS, {"council_id": council_id, "more_in": tokens_in, "more_out": tokens_out}
                )
        return pairs
    except IntegrityError:
        stored = [record for record in await calls_of_turn(db, council_id, turn_key) if record.step == step]
        if not stored:
            raise
        return [(record, await _line(db, record)) for record in stored]


async def _line(db: Database, record: ToolCallRecord) -> CouncilMessage:
    async with db.session() as session:
        line = await session.get(CouncilMessage, record.line_id)
    assert line is not None, "a call is stored with its line"
    return line


async def calls_of_turn(db: Database, council_id: int, turn_key: str) -> list[ToolCallRecord]:
    """A turn's calls in the order the model made them."""
    query = (
        select(ToolCallRecord)
        .where(ToolCallRecord.council_id == council_id, ToolCallRecord.turn_key == turn_key)
        .order_by(ToolCallRecord.step, ToolCallRecord.position)
    )
    async with db.session() as session:
        return list((await session.execute(query)).scalars())


async def calls_of_council(db: Database, council_id: int) -> list[ToolCallRecord]:
    query = select(ToolCallRecord).where(ToolCallRecord.council_id == council_id).order_by(ToolCallRecord.id)
    async with db.session() as session:
        return list((await session.execute(query)).scalars())


async def get_call(db: Database, call_id: int) -> ToolCallRecord | None:
    async with db.session() as session:
        return await session.get(ToolCallRecord, call_id)


async def get_call_by_line(db: Database, line_id: int) -> ToolCallRecord | None:
    async with db.session() as session:
        result = await session.execute(select(ToolCallRecord).where(ToolCallRecord.line_id == line_id))
        return result.scalars().first()


async def get_call_by_escalation(db: Database, escalation_id: int) -> ToolCallRecord | None:
    async with db.session() as session:
        result = await session.execute(select(ToolCallRecord).where(ToolCallRecord.escalation_id == escalation_id))
        return result.scalars().first()


async def move_call(db: Database, call_id: int, from_states: Sequence[str], to_state: str, **values: object) -> bool:
    """Move a call on only from one of `from_states`: of two processes trying, one wins."""
    query = (
        update(ToolCallRecord)
        .where(ToolCallRecord.id == call_id, ToolCallRecord.status.in_(list(from_states)))  # type: ignore[attr-defined]
        .values(status=to_state, **values)
    )
    async with db.session() as session:
        return (await session.execute(query)).rowcount == 1  # type: ignore[attr-defined]


async def settle_call(
    db: Database,
    call_id: int,
    *,
    status: str,
    result: str,
    is_error: bool,
    failure: str | None,
    duration_ms: int | None,
    shown: str,
    round_number: int,
    claimed_by: str,
    result_held: bool = False,
) -> tuple[ToolCallRecord, CouncilMessage | None]:
    """Record how a call ended and store the line that shows it, together; settling twice changes nothing."""
    async with db.session() as session:
        record = await session.get(ToolCallRecord, call_id, with_for_update=not db.is_sqlite)
        assert record is not None
        if record.status in SETTLED:
            existing = await session.execute(
                select(CouncilMessage).where(
                    CouncilMessage.council_id == record.council_id, CouncilMessage.turn_key == f"toolres:{call_id}"
                )
            )
            return record, existing.scalars().first()

        record.status, record.result, record.is_error = status, result, is_error
        record.failure, record.duration_ms, record.finished_at = failure, duration_ms, utcnow()
        record.result_held = result_held
        line = CouncilMessage(
            council_id=record.council_id,
            round=round_number,
            author_kind="tool",
            author_name=record.member,
            turn_key=f"toolres:{call_id}",
            content=shown,
            latency_ms=duration_ms,
            visibility="held" if result_held else "visible",
            claimed_by=claimed_by,
            claimed_at=utcnow() if claimed_by else None,
        )
        session.add(line)
    return record, line


async def tool_usage(db: Database, council_id: int) -> dict[str, tuple[int, int]]:
    """Per member: how many tools it called in this council and their total time (ms)."""
    query = select(ToolCallRecord.member, ToolCallRecord.duration_ms).where(ToolCallRecord.council_id == council_id)
    usage: dict[str, tuple[int, int]] = {}
    async with db.session() as session:
        for member, duration in await session.execute(query):
            calls, total = usage.get(member, (0, 0))
            usage[member] = (calls + 1, total + (duration or 0))
    return usage
