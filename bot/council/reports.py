"""Reports on one council, without Discord: what stands behind each member, what the council used,
and the council's record as Markdown and JSON.

Nothing here reveals an API key: a member's key is only ever named by its environment variable, and an
endpoint is shown by host and port alone (a base URL may carry credentials in its user info or query).
The Markdown is the transcript as the thread showed it; held and withheld lines, and moderators' private
notes, stay out. The JSON lists every line with its visibility, but leaves out the words of held and
withheld ones: an export is for anyone who can see the council's thread, and moderators kept those words
from them. A moderator's private note to a member, and the reasons moderators gave for their decisions (in
the escalations and the audit entries), are meant for that member alone: only a moderator's export has them
(`without_moderators_notes`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from bot.catalog import Catalog, MemberSpec, endpoint_host
from bot.council.language import Language
from bot.council.prompts import system_prompt
from bot.council.publisher import Table
from bot.council.seats import Seat
from bot.tools.results import TOOL_READING_RULE
from storage import deliberation_repository as deliberation_repo
from storage import report_repository as reports_repo
from storage import repository as repo
from storage import tool_repository as tool_repo
from storage.database import Database
from storage.models import (
    AuditEntry,
    Council,
    CouncilMessage,
    Escalation,
    LineAttachment,
    ReviewBallot,
    ToolCallRecord,
)
from storage.template_repository import MINUTES_TURN_KEY

EXPORT_FORMAT = "ai-council-export/1"
# Lines whose words an export leaves out: awaiting a moderator, or kept from the thread by one.
UNSHOWN = ("held", "withheld")
# Lines for one member's eyes: a moderator's note saying why its message was withheld.
PRIVATE = "private"
# How bot/council/moderation.py records a decision: "<verb> escalation #<id>" and, if one was given, ": <reason>".
_DECISION_WITH_REASON = re.compile(r"(.*?\bescalation #\d+): .*", re.DOTALL)
# Who reported a message, as everyone but a moderator reads it (bot/council/human_reports.py names them).
ANONYMOUS_REPORTER = "a member of the server"


# -- /council info -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberCard:
    """What stands behind one seated member, as `/council info` shows it."""

    name: str
    role: str | None
    benched: bool
    provider: str
    model: str
    endpoint_host: str
    temperature: float | None  # None: the provider's default
    max_output_tokens: int
    api_key_env: str | None  # the variable's name, never its value
    system_prompt: str  # exactly what the member is sent as its system prompt
    tools: tuple[tuple[str, str], ...] = ()  # each tool it may call ("server.tool") and the policy for it


def member_cards(
    seats: Sequence[Seat],
    topic: str,
    language: Language | None = None,
    tools: Mapping[str, Sequence[tuple[str, str]]] | None = None,
) -> list[MemberCard]:
    """One card per seat, with the system prompt built by the same function the engine uses (`language`: the one
    the council is held in now; `tools`: per member, the tools it may call now and their policy)."""
    tools = tools or {}
    return [
        MemberCard(
            name=seat.name,
            role=seat.role,
            benched=seat.benched,
            provider=seat.spec.provider,
            model=seat.spec.model,
            endpoint_host=endpoint_host(seat.spec.base_url),
            temperature=seat.spec.temperature,
            max_output_tokens=seat.spec.max_output_tokens,
            api_key_env=seat.spec.key_names or None,
            system_prompt=system_prompt(seat, seats, topic, language)
            + (f"\n{TOOL_READING_RULE}" if tools.get(seat.name) else ""),
            tools=tuple(tools.get(seat.name, ())),
        )
        for seat in seats
    ]


# -- "Message details" -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineDetails:
    """What stands behind one message a member posted: who, which model, what it cost."""

    author: str
    role: str | None
    provider: str | None  # None: the member has left the catalog since
    model: str | None
    endpoint_host: str | None
    round: int
    kind: str  # what the line was: a turn, an answer to a human, a synthesis, minutes
    tokens_in: int
    tokens_out: int
    latency_ms: int | None
    cost: float | None
    written_at: datetime
    reasoning: str | None = None  # the member's reasoning behind the line, shown only to who asks


def line_details(line: CouncilMessage, seat: Seat | None) -> LineDetails:
    spec = seat.spec if seat is not None else None
    return LineDetails(
        author=line.author_name,
        role=seat.role if seat is not None else None,
        provider=spec.provider if spec else None,
        model=spec.model if spec else None,
        endpoint_host=endpoint_host(spec.base_url) if spec else None,
        round=line.round,
        kind=_kind(line.turn_key),
        tokens_in=line.tokens_in,
        tokens_out=line.tokens_out,
        latency_ms=line.latency_ms,
        cost=spec.cost(line.tokens_in, line.tokens_out) if spec else None,
        written_at=line.created_at,
        reasoning=line.reasoning,
    )


def _kind(turn_key: str) -> str:
    if turn_key.startswith("ai:reply:"):
        return "an answer to a human who addressed it"
    if turn_key.startswith("ai:synthesis:"):
        return "the chair's synthesis of a review"
    if turn_key == MINUTES_TURN_KEY:
        return "the minutes of the session"
    return "a turn"


@dataclass(frozen=True, slots=True)
class ToolDetails:
    """What stands behind a tool call shown in a thread: the whole call and the whole result."""

    member: str
    server: str
    tool: str
    arguments: str  # JSON, as the model sent it
    policy: str
    status: str
    result: str | None  # None: not shown (withheld by the moderators, or awaiting them)
    is_error: bool
    duration_ms: int | None
    called_at: datetime


async def tool_details(db: Database, line: CouncilMessage) -> ToolDetails | None:
    """The call behind a line showing a tool call or its result (None for any other line)."""
    record = None
    if line.turn_key.startswith("tool:"):
        record = await tool_repo.get_call_by_line(db, line.id or 0)
    elif line.turn_key.startswith("toolres:") and line.turn_key[8:].isdigit():
        record = await tool_repo.get_call(db, int(line.turn_key[8:]))
    if record is None or record.council_id != line.council_id:
        return None
    result_line = await repo.get_message_by_turn(db, record.council_id, f"toolres:{record.id}")
    return ToolDetails(
        member=record.member,
        server=record.server,
        tool=record.tool,
        arguments=record.arguments,
        policy=record.policy,
        status=record.status,
        result=shown_result(record, result_line),
        is_error=record.is_error,
        duration_ms=record.duration_ms,
        called_at=record.created_at,
    )


def shown_result(call: ToolCallRecord, result_line: CouncilMessage | None) -> str | None:
    """A call's result as Message details and the export may show it: not one not in yet, nor one the server's
    rules held that the moderators have not cleared (its result line is shown once they do)."""
    if call.status not in tool_repo.SETTLED:
        return None
    if call.result_held and (result_line is None or result_line.visibility != "visible"):
        return None
    return call.result


# -- /council usage ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberUsage:
    """One member's turns, tokens, latency and cost in a council.

    Tokens and cost count every call the member made: its turns, and its work as chair (floor choices,
    minutes) or reviewer (rankings). Latency is over its answered turns that recorded one."""

    name: str
    turns: int  # answers received (held and withheld ones included: they were paid for)
    failed_turns: int
    tokens_in: int
    tokens_out: int
    cost: float | None  # None: the member is no longer in the catalog, so its prices are unknown
    priced: bool  # False: the catalog sets no price for it, so the cost shows as 0
    latency_p50_ms: int | None = None
    latency_max_ms: int | None = None
    tool_calls: int = 0  # tools it called (each shown in the thread, run or not)
    tool_ms: int = 0  # how long the calls that ran took, together


def usage(seats: Sequence[Seat], lines: Sequence[CouncilMessage]) -> list[MemberUsage]:
    """Per member, in seat order; members who spoke but have since left the catalog come last."""
    specs: dict[str, MemberSpec | None] = {seat.name: seat.spec for seat in seats}
    for line in lines:
        if _is_answer(line) or _is_failure(line):
            specs.setdefault(line.author_name, None)
    rows = []
    for name, spec in specs.items():
        answers = [line for line in lines if line.author_name == name and _is_answer(line)]
        paid = [line for line in lines if line.author_name == name and line.author_kind != "human"]
        tokens_in = sum(line.tokens_in for line in paid)
        tokens_out = sum(line.tokens_out for line in paid)
        latencies = sorted(line.latency_ms for line in answers if line.latency_ms is not None)
        rows.append(
            MemberUsage(
                name=name,
                turns=len(answers),
                failed_turns=sum(line.author_name == name and _is_failure(line) for line in lines),
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                cost=spec.cost(tokens_in, tokens_out) if spec is not None else None,
                priced=spec is not None and (spec.price_input_per_mtok > 0 or spec.price_output_per_mtok > 0),
                latency_p50_ms=latencies[(len(latencies) - 1) // 2] if latencies else None,
                latency_max_ms=latencies[-1] if latencies else None,
                tool_calls=sum(line.author_name == name and line.turn_key.startswith("tool:") for line in lines),
                tool_ms=sum(
                    line.latency_ms or 0
                    for line in lines
                    if line.author_name == name and line.turn_key.startswith("toolres:")
                ),
            )
        )
    return rows


def _is_answer(line: CouncilMessage) -> bool:
    return line.author_kind == "ai" and line.turn_key.startswith("ai:")


def _is_failure(line: CouncilMessage) -> bool:
    return line.author_kind == "system" and line.turn_key.startswith("failed:")


# -- /council export ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordMember:
    name: str
    role: str | None
    position: int
    benched: bool
    spec: MemberSpec | None  # None: removed from the catalog since
    dismissed: bool = False


@dataclass(frozen=True, slots=True)
class CouncilRecord:
    """Everything stored about one council, as an export needs it."""

    council: Council
    members: tuple[RecordMember, ...]
    messages: tuple[CouncilMessage, ...]
    escalations: tuple[Escalation, ...]
    audit: tuple[AuditEntry, ...]
    ballots: tuple[ReviewBallot, ...] = ()
    attachments: tuple[LineAttachment, ...] = ()  # files humans shared: names, sizes, who (not the bytes)
    tool_calls: tuple[ToolCallRecord, ...] = ()  # the tools members called, with their whole results
    moderators_notes: bool = True  # False: private lines and decision reasons are left out


def without_moderators_notes(record: CouncilRecord) -> CouncilRecord:
    """The record as anyone but a moderator may have it: without the private lines, without the reasons
    moderators gave (in the escalations and in the audit entries that repeat them), and without who reported
    a message."""
    reporters = {item.reported_by_id for item in record.escalations if item.reported_by_id is not None}
    reporters |= {entry.actor_id for entry in record.audit if entry.kind == "report" and entry.actor_id is not None}
    names = {entry.actor_name for entry in record.audit if entry.actor_id in reporters}

    def unnamed(text: str) -> str:
        for name in sorted(names, key=len, reverse=True):  # "Ann Lee" before "Ann"
            text = text.replace(f"Reported by {name}", f"Reported by {ANONYMOUS_REPORTER}")
        return text

    def audited(entry: AuditEntry) -> AuditEntry:
        if entry.kind == "decision":
            return entry.model_copy(update={"detail": _without_reason(entry.detail)})
        if entry.actor_id in reporters:
            return entry.model_copy(
                update={"actor_id": None, "actor_name": ANONYMOUS_REPORTER, "detail": unnamed(entry.detail)}
            )
        return entry

    return replace(
        record,
        messages=tuple(line for line in record.messages if line.visibility != PRIVATE),
        escalations=tuple(
            item.model_copy(update={"decision_reason": None, "reported_by_id": None, "reason": unnamed(item.reason)})
            for item in record.escalations
        ),
        audit=tuple(audited(entry) for entry in record.audit),
        moderators_notes=False,
    )


def _without_reason(detail: str) -> str:
    match = _DECISION_WITH_REASON.fullmatch(detail)
    return match.group(1) if match else detail


async def load_record(db: Database, catalog: Catalog, council: Council) -> CouncilRecord:
    assert council.id is not None
    members = tuple(
        RecordMember(m.name, m.role, m.position, m.benched, catalog.get(m.name), m.dismissed)
        for m in await repo.list_members(db, council.id)
    )
    return CouncilRecord(
        council=council,
        members=members,
        messages=tuple(await repo.transcript(db, council.id)),
        escalations=tuple(await reports_repo.council_escalations(db, council.id)),
        audit=tuple(await reports_repo.council_audit(db, council.guild_id, council.id)),
        ballots=tuple(await deliberation_repo.list_ballots(db, council.id)),
        attachments=tuple(await repo.attachments_of(db, council.id)),
        tool_calls=tuple(await tool_repo.calls_of_council(db, council.id)),
    )


def _tool_result_shown(record: CouncilRecord, call: ToolCallRecord) -> str | None:
    line = next((m for m in record.messages if m.turn_key == f"toolres:{call.id}"), None)
    return shown_result(call, line)


def export_markdown(record: CouncilRecord) -> str:
    """A readable transcript: what the thread showed, then the moderators' decisions."""
    council = record.council
    out = [f"# Council #{council.id}: {council.topic}", ""]
    out.append(f"- **Topic:** {council.topic}")
    out.append(f"- **State:** {council.state}" + (f" ({council.end_reason})" if council.end_reason else ""))
    out.append(f"- **Mode:** {council.mode}, round {council.current_round} of {council.rounds}")
    out.append(f"- **Convened by:** {council.convener_name}, {_readable(council.created_at)}")
    if council.ended_at:
        out.append(f"- **Ended:** {_readable(council.ended_at)}")
    out.append(f"- **Tokens:** {council.tokens_in:,} in · {council.tokens_out:,} out")
    out += ["", "## Members", "", "| Member | Role | Provider | Model |", "| --- | --- | --- | --- |"]
    for member in record.members:
        provider, model = (member.spec.provider, member.spec.model) if member.spec else ("unknown", "unknown")
        name = member.name + (" (dismissed)" if member.dismissed else " (benched)" if member.benched else "")
        out.append(f"| {_cell(name)} | {_cell(member.role or '—')} | {_cell(provider)} | `{_cell(model)}` |")
    out += ["", "## Transcript", ""]
    labels = {m.name: f"{m.name} ({m.role})" if m.role else m.name for m in record.members}
    files: dict[int, list[LineAttachment]] = {}
    for attachment in record.attachments:
        files.setdefault(attachment.message_id, []).append(attachment)
    # Scoreboards are kept out of prompts (their own visibility) but are part of what the thread showed.
    shown = [line for line in record.messages if line.visibility in ("visible", "scoreboard")]
    for line in shown:
        if line.author_kind == "ai":
            who = labels.get(line.author_name, line.author_name)
        elif line.author_kind == "tool":
            who = f"{line.author_name}'s tool call"
        elif line.author_kind == "human":
            who = f"{line.author_name} (human)"
        elif line.visibility == "scoreboard":
            who = "Peer ratings"
        else:
            who = "Notice"
        text = Table.loads(line.content).as_text() if line.author_kind == "table" else line.content
        out += [f"### {who} · round {line.round} · {_readable(line.created_at)}", "", text.strip(), ""]
        shared = [f"- 📎 {_cell(a.filename)} ({a.kind}, {a.size:,} bytes)" for a in files.get(line.id or 0, [])]
        out += [*shared, ""] if shared else []
    if not shown:
        out += ["Nothing was said.", ""]
    if record.tool_calls:
        out += ["## Tool calls", ""]
        for call in record.tool_calls:
            out.append(f"### {call.member} · `{call.server or '?'}.{call.tool}` · {call.status}")
            out += ["", f"Arguments: `{_one_line(call.arguments)}`", ""]
            result = _tool_result_shown(record, call)
            fence = "````" if "```" in (result or "") else "```"
            out += [fence, result, fence, ""] if result is not None else ["(result not shown)", ""]
    out += ["## Moderation decisions", ""]
    for item in record.escalations:
        out.append(
            f"- **Escalation #{item.id}** ({item.source} · {item.category}) about {item.author_name}'s message, "
            f"raised {_readable(item.created_at)}: {_outcome(item)}"
        )
        out.append(f"  - Concern: {_one_line(item.reason)}")
        if item.decision_reason:
            out.append(f"  - Reason given: {_one_line(item.decision_reason)}")
    if not record.escalations:
        out.append("None: no concern was raised.")
    elif not record.moderators_notes:
        out += ["", "Reasons moderators gave for their decisions are only in a moderator's export."]
    out.append("")
    return "\n".join(out)


def export_json(record: CouncilRecord, *, exported_at: datetime | None = None) -> str:
    """The whole record, machine-readable. Discord ids are strings (they exceed JavaScript's integers)."""
    council = record.council
    # Files are listed with lines the export shows (not with held or withheld ones, nor left-out private ones).
    shown_ids = {line.id for line in record.messages if line.visibility not in UNSHOWN}
    data = {
        "format": EXPORT_FORMAT,
        "exported_at": _iso(exported_at or datetime.now(UTC)),
        # False: private lines and the reasons moderators gave are left out (not a moderator's export).
        "moderators_notes": record.moderators_notes,
        "council": {
            "id": council.id,
            "topic": council.topic,
            "mode": council.mode,
            "rounds": council.rounds,
            "current_round": council.current_round,
            "state": council.state,
            "end_reason": council.end_reason,
            "guild_id": _snowflake(council.guild_id),
            "channel_id": _snowflake(council.channel_id),
            "thread_id": _snowflake(council.thread_id),
            "convener_id": _snowflake(council.convener_id),
            "convener_name": council.convener_name,
            "tokens_in": council.tokens_in,
            "tokens_out": council.tokens_out,
            "chair": council.chair,
            "max_tokens": council.max_tokens,
            "max_cost": council.max_cost,
            "template_id": council.template_id,
            "created_at": _iso(council.created_at),
            "ended_at": _iso(council.ended_at),
        },
        "members": [
            {
                "name": m.name,
                "role": m.role,
                "position": m.position,
                "benched": m.benched,
                "dismissed": m.dismissed,
                "provider": m.spec.provider if m.spec else None,
                "model": m.spec.model if m.spec else None,
                "endpoint_host": endpoint_host(m.spec.base_url) if m.spec else None,
            }
            for m in record.members
        ],
        "messages": [
            {
                "id": line.id,
                "turn_key": line.turn_key,
                "kind": line.author_kind,
                "author": line.author_name,
                "author_id": _snowflake(line.author_id),
                "round": line.round,
                "visibility": line.visibility,
                "content": None if line.visibility in UNSHOWN else line.content,
                # A member's reasoning, apart from its words; not shown where its words are not.
                "reasoning": None if line.visibility in UNSHOWN else line.reasoning,
                "tokens_in": line.tokens_in,
                "tokens_out": line.tokens_out,
                "latency_ms": line.latency_ms,
                "addressed_to": line.addressed_to,
                "discord_message_ids": [str(i) for i in line.discord_ids],
                "created_at": _iso(line.created_at),
                "posted_at": _iso(line.posted_at),
            }
            for line in record.messages
        ],
        "attachments": [
            {
                "message_id": item.message_id,
                "filename": item.filename,
                "kind": item.kind,
                "size": item.size,
                "media_type": item.media_type or None,
                "width": item.width,
                "height": item.height,
                "shared_by": item.shared_by,
            }
            for item in record.attachments
            if item.message_id in shown_ids
        ],
        "tool_calls": [
            {
                "id": call.id,
                "message_id": call.line_id,
                "member": call.member,
                "server": call.server,
                "tool": call.tool,
                "arguments": call.arguments,
                "policy": call.policy,
                "status": call.status,
                "result": _tool_result_shown(record, call),
                "is_error": call.is_error,
                "failure": call.failure,
                "duration_ms": call.duration_ms,
                "created_at": _iso(call.created_at),
                "finished_at": _iso(call.finished_at),
            }
            for call in record.tool_calls
        ],
        "escalations": [
            {
                "id": item.id,
                "message_id": item.message_id,
                "source": item.source,
                "category": item.category,
                "reason": item.reason,
                "author": item.author_name,
                "held": item.held,
                "state": item.state,
                "decided_by": item.decided_by_name,
                "decided_by_id": _snowflake(item.decided_by_id),
                "decision_reason": item.decision_reason,
                "end_council": item.end_council,
                "reported_by_id": _snowflake(item.reported_by_id),
                "created_at": _iso(item.created_at),
                "expires_at": _iso(item.expires_at),
                "decided_at": _iso(item.decided_at),
            }
            for item in record.escalations
        ],
        # A review council's ballots: which answers each reviewer saw under which label, and its ranking.
        "review_ballots": [
            {
                "round": ballot.round,
                "reviewer": ballot.reviewer,
                "seed": ballot.seed,
                "labels": json.loads(ballot.labels),
                "ranking": ballot.ranking.split(",") if ballot.ranking else None,
                "state": ballot.state,
                "created_at": _iso(ballot.created_at),
            }
            for ballot in record.ballots
        ],
        "audit": [
            {
                "id": entry.id,
                "kind": entry.kind,
                "actor": entry.actor_name,
                "actor_id": _snowflake(entry.actor_id),
                "detail": entry.detail,
                "created_at": _iso(entry.created_at),
            }
            for entry in record.audit
        ],
    }
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def _outcome(item: Escalation) -> str:
    when = f" ({_readable(item.decided_at)})" if item.decided_at else ""
    if item.state == "approved":
        return f"approved by {item.decided_by_name}{when}."
    if item.state == "rejected":
        ended = " and the council ended" if item.end_council else ""
        return f"rejected by {item.decided_by_name}{ended}{when}; the message was withheld."
    if item.state == "expired":
        stays = "the message stays withheld" if item.held else "the message stays as it was"
        return f"expired undecided{when}; {stays}."
    return "pending: no moderator has decided yet."


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything is stored in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime | None) -> str | None:
    return as_utc(moment).isoformat() if moment is not None else None


def _readable(moment: datetime) -> str:
    return as_utc(moment).strftime("%Y-%m-%d %H:%M:%S UTC")


def _snowflake(value: int | None) -> str | None:
    return str(value) if value is not None else None


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _one_line(text: str) -> str:
    return " ".join(text.split())
