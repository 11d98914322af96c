"""A member's turn with tools: the model answers or calls tools, the calls run under the server's policy and their
results go back, until it answers (bot/council/turns.py then checks, stores and shows that answer as any other).

Every call is stored, with the line that shows it, before it runs (storage/tool_repository.py): a restart replays
the turn from its stored calls instead of asking the model again, and runs a call cut off mid-way again only
when its tool says that is harmless. A call the policy holds waits for a moderator's decision; a halted server
runs none. Tool results are untrusted: they reach the member framed (bot/tools/results.py) and the server's rules
screen them like replies.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from bot.council.calls import MemberCalls
from bot.council.claims import PostClaims
from bot.council.moderation import CouncilModeration, Screened
from bot.council.patience import Patience
from bot.council.posting import LinePosting
from bot.council.seats import Seat, SeatTable
from bot.council.tool_lines import arguments_text, call_line, result_line
from bot.governance.concerns import Concern
from bot.governance.gate import Policy
from bot.providers.base import ChatRequest, ChatTurn, Completion, ProviderError, ToolCall, ToolResult
from bot.tools.hub import ToolHub, ToolInfo
from bot.tools.results import TOOL_READING_RULE, frame_result
from storage import governance_repository as gov
from storage import repository as repo
from storage import tool_repository as tool_repo
from storage.database import Database
from storage.models import Council, CouncilMessage, ToolCallRecord
from storage.tool_repository import SETTLED, NewCall

MAX_CALLS_PER_TURN = 8  # then the member is asked to answer with what it has
TOOL_SECONDS_PER_TURN = 180.0  # the tools' share of one turn (a moderator's decision is waited for apart)
EXTRA_STEPS = 2  # replies still calling tools past the limit, each answered with refusals, before the turn fails
DECISION_POLL = 5.0  # seconds between looks at a held call's escalation (another process may decide it)
COUNCIL_META = "ai-council/council"  # the request _meta key telling the project's own tools which council asks
HALTED = "Not run: this server's councils are halted by its moderators."
PENDING = "pending"
DEFERRED = (
    "This call waits for a moderator's approval and has not run. Answer without it; if they approve it, it runs "
    "and its result shows in the thread."
)
HELD_RESULT = "The result is withheld until the moderators have reviewed it; answer without it."


@dataclass(frozen=True, slots=True)
class _Ending:
    """How a call ends, before it is stored."""

    status: str  # done | failed | refused | interrupted
    result: str
    is_error: bool = False
    failure: str | None = None
    duration_ms: int | None = None
    result_held: bool = False


class ToolTurns:
    def __init__(
        self,
        db: Database,
        hub: ToolHub,
        calls: MemberCalls,
        posting: LinePosting,
        claims: PostClaims,
        patience: Patience,
        seats: SeatTable,
        moderation: CouncilModeration | None,
    ) -> None:
        self.db = db
        self.hub = hub
        self.calls = calls
        self.posting = posting
        self.claims = claims
        self.patience = patience
        self.seats = seats
        self.moderation = moderation
        self._decided: dict[int, asyncio.Event] = {}
        self._background: set[asyncio.Task[None]] = set()  # deferred calls run after their decision
        if moderation is not None:
            moderation.tool_decided = self.decided

    async def tools_for(self, council: Council, seat: Seat) -> list[ToolInfo]:
        """The tools `seat` may call now in `council`: its own, narrowed by the convener (a server that is down
        offers none)."""
        if not seat.spec.tools or council.tools == "":
            return []
        infos = await self.hub.available(seat.spec.tools)
        if council.tools is None:
            return infos
        allowed = council.tools.split(",")
        return [info for info in infos if f"{info.server}.*" in allowed or f"{info.server}.{info.name}" in allowed]

    async def offered(self, council: Council, seat: Seat, round_number: int) -> list[ToolInfo]:
        """The tools offered to `seat` for this turn; a server of its list that is down is said in the thread
        (once a round), and the member answers without it."""
        infos = await self.tools_for(council, seat)
        wanted = {pattern.split(".", 1)[0] for pattern in seat.spec.tools} if council.tools != "" else set()
        status = self.hub.status()
        for server in sorted(wanted - {info.server for info in infos}):
            state = status.get(server, "")
            if state.startswith("unavailable"):
                await self._server_down(council, seat, round_number, server)
        return infos

    async def _server_down(self, council: Council, seat: Seat, round_number: int, server: str) -> None:
        await self._notice(
            council,
            seat,
            round_number,
            f"tooldown:{server}:r{round_number}",
            f"🔌 The tool server `{server}` does not answer now: members answer without its tools this round.",
        )

    async def _notice(self, council: Council, seat: Seat, round_number: int, key: str, text: str) -> None:
        """A notice about a member's tools, stored once under `key` and shown (showing it twice shows it once)."""
        line, _ = await self.patience.call(
            lambda: repo.add_message(
                self.db,
                council_id=council.id,
                round_number=round_number,
                author_kind="system",
                author_name=seat.name,
                turn_key=key[:120],
                content=text,
                claimed_by=self.claims.claimant,
            ),
            council_id=council.id,
        )
        await self.posting.post(council, await self.seats.of(council.id), line)

    def decided(self, escalation_id: int) -> None:
        """A moderator decided a held call in this process: its turn goes on at once, or, for a call its member
        did not wait for, the call runs (or is refused) now and its result shows in the thread."""
        if (event := self._decided.get(escalation_id)) is not None:
            event.set()
            return
        task = asyncio.create_task(self._finish_deferred(escalation_id), name=f"tool-call-decided-{escalation_id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _finish_deferred(self, escalation_id: int) -> None:
        record = await tool_repo.get_call_by_escalation(self.db, escalation_id)
        if record is None or record.status != "held":
            return  # not a call, or one its turn waits for (in another process) or already settled
        council = await repo.get_council(self.db, record.council_id)
        line = await _line_of(self.db, record)
        if council is None or line is None:
            return
        refusal = await self._verdict(escalation_id)
        if refusal is None and await self._halted(council):
            refusal = HALTED
        if refusal is not None:
            ending = _Ending("refused", refusal)
        else:
            infos = await self.hub.available([f"{record.server}.{record.tool}"])
            info = next((i for i in infos if i.name == record.tool), None)
            if info is None:
                ending = _Ending("failed", f"The tool server {record.server!r} is not available.", True, "unavailable")
            elif not await tool_repo.move_call(self.db, record.id or 0, ("held",), "running"):
                return
            else:
                ending = await self._call(council, record, info)
        await self._store_ending(council, record.member, line.round, record, ending)

    async def answer(
        self,
        council: Council,
        seat: Seat,
        round_number: int,
        request: ChatRequest,
        tools: Sequence[ToolInfo],
        *,
        turn_key: str,
    ) -> Completion:
        """The member's final answer after the calls it makes within the limits; ProviderError when the model
        cannot be asked, or will not stop calling tools."""
        by_name = {info.exposed_name: info for info in tools}
        asking = replace(
            request, system=f"{request.system}\n{TOOL_READING_RULE}", tools=tuple(info.spec() for info in tools)
        )
        turns = list(request.turns)
        stored = await tool_repo.calls_of_turn(self.db, council.id, turn_key)
        deadline = time.monotonic() + TOOL_SECONDS_PER_TURN
        used = step = 0
        while True:
            over = used >= MAX_CALLS_PER_TURN or time.monotonic() > deadline
            records = [record for record in stored if record.step == step]
            if not records:
                if over:
                    turns[-1] = replace(turns[-1], content=f"{turns[-1].content}\n\n{_answer_now(used)}".strip())
                    await self._limit_reached(council, seat, round_number, turn_key, used)
                completion = await self.calls.client(seat.spec).complete(
                    replace(asking, turns=tuple(turns)), timeout=self.calls.timeout
                )
                if not completion.tool_calls:
                    return completion
                if step >= MAX_CALLS_PER_TURN + EXTRA_STEPS:
                    raise ProviderError("malformed", f"{seat.name} kept calling tools past its limit")
                records = await self._record(council, seat, round_number, turn_key, step, completion, by_name)
            signed = tuple(json.loads(records[0].signed)) if records[0].signed else ()
            calls = tuple(ToolCall(r.call_id, r.exposed_name, json.loads(r.arguments)) for r in records)
            turns.append(ChatTurn("assistant", records[0].text, tool_calls=calls, signed=signed))
            results = await asyncio.gather(
                *(
                    self._settle(council, seat, round_number, record, by_name.get(record.exposed_name), over)
                    for record in records
                )
            )
            turns.append(ChatTurn("user", "", tool_results=tuple(results)))
            used += len(records)
            step += 1

    async def _limit_reached(self, council: Council, seat: Seat, round_number: int, turn_key: str, used: int) -> None:
        """The thread is told, once per turn, that the member must answer without more tools."""
        why = f"{used} tool calls" if used >= MAX_CALLS_PER_TURN else f"{TOOL_SECONDS_PER_TURN:.0f} seconds of tools"
        text = f"⏱️ {seat.name} reached this turn's limit of {why} and answers with what it has."
        await self._notice(council, seat, round_number, f"toollimit:{turn_key}", text)

    async def _record(
        self,
        council: Council,
        seat: Seat,
        round_number: int,
        turn_key: str,
        step: int,
        completion: Completion,
        by_name: dict[str, ToolInfo],
    ) -> list[ToolCallRecord]:
        """Store the reply's calls with their lines, then show the lines, before any call runs."""
        new = []
        flagged: dict[int, Screened] = {}
        for position, call in enumerate(completion.tool_calls):
            info = by_name.get(call.name)
            server, tool, policy = (info.server, info.name, info.policy) if info else ("", call.name, "allow")
            # The arguments are the member's words, shown in the thread: screened as its replies are. A call whose
            # arguments trip a rule is held for the moderators whatever the tool's policy.
            screened = await self._screen(council, seat, arguments_text(call.arguments)) if info else None
            if screened is not None and screened.concerns:
                flagged[position] = screened
                if screened.hold:
                    policy = "hold"
            new.append(
                NewCall(
                    call_id=call.id[:120],
                    server=server,
                    tool=tool[:200],
                    exposed_name=call.name[:64],
                    arguments=json.dumps(dict(call.arguments), ensure_ascii=False),
                    policy=policy,
                    repeatable=bool(info and (info.read_only or info.idempotent)),
                    shown=call_line(seat.name, server or "?", tool, call.arguments, policy=policy),
                    held=position in flagged and flagged[position].hold,
                )
            )
        pairs = await self.patience.call(
            lambda: tool_repo.record_step(
                self.db,
                council_id=council.id,
                round_number=round_number,
                member=seat.name,
                turn_key=turn_key,
                step=step,
                text=completion.text,
                signed=json.dumps(list(completion.signed)) if completion.signed else "",
                calls=new,
                tokens_in=completion.input_tokens,
                tokens_out=completion.output_tokens,
                claimed_by=self.claims.claimant,
            ),
            council_id=council.id,
        )
        for position, screened in flagged.items():
            record, line = pairs[position]
            await self._escalate_flagged(council, seat, record, line, screened)
        seats = await self.seats.of(council.id)
        for _, line in pairs:
            await self.posting.post(council, seats, line)
        return [record for record, _ in pairs]

    async def _screen(self, council: Council, seat: Seat, text: str) -> Screened | None:
        return await self.moderation.screen_ai(council, seat.name, text) if self.moderation is not None else None

    async def _escalate_flagged(
        self, council: Council, seat: Seat, record: ToolCallRecord, line: CouncilMessage, screened: Screened
    ) -> None:
        """A call whose arguments the rules flagged goes before the moderators with what they found; held, it runs
        only once they approve it."""
        if screened.hold:
            await self._hold(council, seat.name, record, screened.concerns, screened.policy, line)
        else:
            await self._escalate(council, seat.name, record, screened.concerns, held=False, policy=screened.policy)

    async def _settle(
        self, council: Council, seat: Seat, round_number: int, record: ToolCallRecord, info: ToolInfo | None, over: bool
    ) -> ToolResult:
        """Run one stored call as its policy says, or learn how it ended before a restart; what the member reads."""
        if record.status in SETTLED:
            return _as_result(record)
        deferrable = info is not None and record.policy == "hold" and info.while_held == "go_on" and not over
        if deferrable and await self._defer(council, seat, record):
            return _deferred(record)
        ending = await self._run_or_refuse(council, seat, record, info, over)
        if ending is None:  # another process runs it: its ending is stored there
            return _as_result(await self._wait_settled(record))
        return _as_result(await self._store_ending(council, seat.name, round_number, record, ending))

    async def _defer(self, council: Council, seat: Seat, record: ToolCallRecord) -> bool:
        """Put a held call before the moderators without waiting: the member answers without it, and the call runs
        once they approve it (`decided`). False when it cannot wait (no moderation, a halt)."""
        assert record.id is not None
        if self.moderation is None or await self._halted(council):
            return False
        return record.escalation_id is not None or await self._hold(council, seat.name, record) is not None

    async def _run_or_refuse(
        self, council: Council, seat: Seat, record: ToolCallRecord, info: ToolInfo | None, over: bool
    ) -> _Ending | None:
        assert record.id is not None
        if info is None:
            return _Ending("refused", f"There is no tool named {record.exposed_name!r} for {seat.name}.")
        if over and record.status == "pending":
            return _Ending("refused", f"Not run: the limit of {MAX_CALLS_PER_TURN} tool calls in one turn is reached.")
        if await self._halted(council):
            return _Ending("refused", HALTED)
        if record.status == "running" and not record.repeatable:  # started before a restart: it may have run
            return _Ending(
                "interrupted",
                "The call was cut off by a restart. It is not run again: the tool does not say that is harmless.",
            )
        if record.status != "running":
            if record.policy == "hold":
                refusal = await self._decision(council, seat, record)
                if refusal is not None:
                    return _Ending("refused", refusal)
                if await self._halted(council):  # halted while the call waited for its approval
                    return _Ending("refused", HALTED)
            if not await tool_repo.move_call(self.db, record.id, ("pending", "held"), "running"):
                return None
        return await self._call(council, record, info)

    async def _call(self, council: Council, record: ToolCallRecord, info: ToolInfo) -> _Ending:
        outcome = await self.hub.call(info, json.loads(record.arguments), meta={COUNCIL_META: council.id})
        if outcome.failed:
            return _Ending("failed", outcome.text, True, outcome.failed, outcome.duration_ms)
        return _Ending("done", outcome.text, outcome.is_error, None, outcome.duration_ms)

    async def _store_ending(
        self, council: Council, member: str, round_number: int, record: ToolCallRecord, ending: _Ending
    ) -> ToolCallRecord:
        assert record.id is not None
        call_id = record.id
        screened = None
        if self.moderation is not None and ending.status == "done":
            screened = await self.moderation.screen_ai(council, f"{record.server}.{record.tool}", ending.result)
            if screened.concerns and screened.hold:
                ending = replace(ending, result_held=True)
        seconds = ending.duration_ms / 1000 if ending.duration_ms is not None else None
        settled, line = await self.patience.call(
            lambda: tool_repo.settle_call(
                self.db,
                call_id,
                status=ending.status,
                result=ending.result,
                is_error=ending.is_error,
                failure=ending.failure,
                duration_ms=ending.duration_ms,
                shown=result_line(member, record.tool, status=ending.status, result=ending.result, seconds=seconds),
                round_number=round_number,
                claimed_by=self.claims.claimant,
                result_held=ending.result_held,
            ),
            council_id=council.id,
        )
        if line is not None:
            if self.moderation is not None and screened is not None and screened.concerns:
                await self.moderation.escalate(
                    council,
                    line,
                    screened.concerns,
                    screened.policy,
                    held=ending.result_held,
                    author_name=f"{member} via {record.server}.{record.tool}",
                    content=ending.result,
                )
            await self.posting.post(council, await self.seats.of(council.id), line)
            if record.policy == "notify" and ending.status in ("done", "failed"):
                concern = _concern(member, "called", settled)
                await self._escalate(council, member, settled, [concern], held=False, result=settled.result)
        return settled

    async def _halted(self, council: Council) -> bool:
        return self.moderation is not None and (await self.moderation.gate.policy(council.guild_id)).halted

    async def _decision(self, council: Council, seat: Seat, record: ToolCallRecord) -> str | None:
        """Wait for the moderators on a held call: None once approved, else why it is not run."""
        assert record.id is not None
        if self.moderation is None:
            return "Not run: this tool needs a moderator's approval, and this bot has no moderation."
        escalation_id = record.escalation_id or await self._hold(council, seat.name, record)
        if escalation_id is None:
            return "Not run: the moderators could not be asked."
        event = self._decided.setdefault(escalation_id, asyncio.Event())
        try:
            while True:
                verdict = await self._verdict(escalation_id)
                if verdict != PENDING:
                    return verdict
                try:
                    async with asyncio.timeout(DECISION_POLL):
                        await event.wait()
                except TimeoutError:
                    pass
                event.clear()
        finally:
            self._decided.pop(escalation_id, None)

    async def _hold(
        self,
        council: Council,
        member: str,
        record: ToolCallRecord,
        concerns: list[Concern] | None = None,
        policy: Policy | None = None,
        line: CouncilMessage | None = None,
    ) -> int | None:
        """Put a call before the moderators to wait for their decision (by default: its tool's policy holds it);
        the escalation's id, or None when they could not be asked."""
        assert record.id is not None
        concerns = concerns or [_concern(member, "wants to call", record)]
        escalation_id = await self._escalate(council, member, record, concerns, held=True, policy=policy, line=line)
        if escalation_id is not None:
            await tool_repo.move_call(self.db, record.id, ("pending",), "held", escalation_id=escalation_id)
            record.status, record.escalation_id = "held", escalation_id
        return escalation_id

    async def _escalate(
        self,
        council: Council,
        member: str,
        record: ToolCallRecord,
        concerns: list[Concern],
        *,
        held: bool,
        policy: Policy | None = None,
        line: CouncilMessage | None = None,
        result: str = "",
    ) -> int | None:
        """Put a call before the moderators (an open escalation about it is joined instead)."""
        assert self.moderation is not None and record.id is not None
        subject = f"tool:{record.id}"
        call = f"{record.server}.{record.tool}({record.arguments})"
        escalation = await self.moderation.escalate(
            council,
            line or await _line_of(self.db, record),
            concerns,
            policy or await self.moderation.gate.policy(council.guild_id),
            held=held,
            author_name=member,
            content=f"{call}\n\n{result}".strip(),
            subject=subject,
        )
        if escalation is None:
            escalation = await gov.open_escalation(self.db, council.id, subject)
        return escalation.id if escalation is not None else None

    async def _verdict(self, escalation_id: int) -> str | None:
        """None once the moderators approved the call, PENDING while they have not decided, else why it is not run."""
        escalation = await gov.get_escalation(self.db, escalation_id)
        if escalation is None:
            return "Not run: the moderators' decision was lost."
        if escalation.state == "approved":
            return None
        if escalation.state == "pending":
            return PENDING
        if escalation.state == "expired":
            return "Not run: no moderator decided in time."
        why = (escalation.decision_reason or "no reason given").strip().rstrip(".")
        return f"A moderator refused this call: {why}."

    async def _wait_settled(self, record: ToolCallRecord) -> ToolCallRecord:
        assert record.id is not None
        while True:
            current = await tool_repo.get_call(self.db, record.id)
            if current is None or current.status in SETTLED:
                return current or record
            await asyncio.sleep(0.5)


def _deferred(record: ToolCallRecord) -> ToolResult:
    return ToolResult(record.call_id, frame_result(record.server or "?", record.tool, DEFERRED, True), True)


def _concern(member: str, why: str, record: ToolCallRecord) -> Concern:
    return Concern(source="tool", category="tool_call", reason=f"{member} {why} {record.server}.{record.tool}")


def _as_result(record: ToolCallRecord) -> ToolResult:
    """A settled call as the member reads it: framed, and never a result the moderators have not cleared."""
    failed = record.is_error or record.status != "done"
    text = HELD_RESULT if record.result_held else record.result
    return ToolResult(record.call_id, frame_result(record.server or "?", record.tool, text, failed), failed)


async def _line_of(db: Database, record: ToolCallRecord) -> CouncilMessage | None:
    return await repo.get_message(db, record.line_id) if record.line_id is not None else None


def _answer_now(used: int) -> str:
    return (
        f"You have made {used} tool calls in this turn, the most one turn allows. Answer now with what you "
        "have, without calling tools."
    )
