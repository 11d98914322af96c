"""Council moderation: applies a server's policy to council lines and carries out moderators' decisions.

Under `hold` a flagged member reply is stored but not shown, and the council waits (state `held`)
until a moderator decides; under `notify` it is shown with a notice and the council goes on. Either
way an escalation goes to the moderators' channel. Decisions are claimed in the database, so a
second click, or a second process, changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.council.claims import PostClaims
from bot.council.lifecycle import CouncilLifecycle
from bot.council.posting import LinePosting
from bot.council.publisher import CouncilPublisher
from bot.council.requests import PendingRequests
from bot.council.transcript_view import TranscriptViews
from bot.governance.concerns import Concern
from bot.governance.gate import GovernanceGate, Policy
from bot.governance.selfflag import parse_self_flag
from storage import governance_repository as gov
from storage import repository as repo
from storage.database import Database
from storage.models import Council, CouncilMessage, Escalation

log = logging.getLogger(__name__)

REASON_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class Screened:
    text: str
    concerns: list[Concern]
    policy: Policy

    @property
    def hold(self) -> bool:
        return bool(self.concerns) and self.policy.holds


@dataclass(frozen=True, slots=True)
class Decision:
    escalation: Escalation
    changed: bool  # False: it had already been decided (by someone else, or by the timeout)


class DecisionError(ValueError):
    """A decision that cannot be made; the message is shown to the moderator as is."""


def subject_of(line_id: int) -> str:
    """How an escalation names the stored line it is about (one open escalation per subject)."""
    return f"line:{line_id}"


class CouncilModeration:
    def __init__(
        self,
        db: Database,
        gate: GovernanceGate,
        publisher: CouncilPublisher,
        posting: LinePosting,
        transcripts: TranscriptViews,
        claims: PostClaims,
        requests: PendingRequests,
        lifecycle: CouncilLifecycle,
    ) -> None:
        self.db = db
        self.gate = gate
        self.publisher = publisher
        self.posting = posting
        self.transcripts = transcripts
        self.claims = claims
        self.requests = requests
        self.lifecycle = lifecycle
        # Wakes the turn waiting on a held tool call (bot/council/tool_turns.py) when it is decided here.
        self.tool_decided: Callable[[int], None] | None = None

    # -- screening ---------------------------------------------------------------------------------

    async def screen_ai(self, council: Council, author_name: str, reply: str) -> Screened:
        text, flag = parse_self_flag(reply)
        policy = await self.gate.policy(council.guild_id)
        concerns = await self.gate.review(
            policy,
            topic=council.topic,
            author_kind="ai",
            author_name=author_name,
            text=text,
            language=lambda: self._language_name(council),
        )
        if flag is not None:
            concerns.append(flag)
        return Screened(text or reply, concerns, policy)

    async def screen_human(self, council: Council, author_name: str, text: str) -> Screened:
        policy = await self.gate.policy(council.guild_id)
        concerns = await self.gate.review(
            policy,
            topic=council.topic,
            author_kind="human",
            author_name=author_name,
            text=text,
            language=lambda: self._language_name(council),
        )
        return Screened(text, concerns, policy)

    async def _language_name(self, council: Council) -> str | None:
        spoken = await self.transcripts.language(council, keep=self.lifecycle.is_running(council.id))
        return spoken.name if spoken is not None else None

    async def raise_concerns(
        self, council: Council, message: CouncilMessage, screened: Screened, *, author_name: str, content: str
    ) -> None:
        """Put what screening found in a line just stored before the moderators (nothing if it found nothing)."""
        if not screened.concerns:
            return
        escalation = await self.escalate(
            council,
            message,
            screened.concerns,
            screened.policy,
            held=screened.hold,
            author_name=author_name,
            content=content,
        )
        if escalation is None:
            # Someone reported the line while it streamed: that escalation stands for this concern too,
            # and a held reply still keeps the council waiting for it.
            log.info("Council %s: line %s already has an open escalation", council.id, message.id)
            if screened.hold and message.author_kind == "ai":
                await self._hold(council, message)

    async def escalate(
        self,
        council: Council,
        message: CouncilMessage | None,
        concerns: list[Concern],
        policy: Policy,
        *,
        held: bool,
        author_name: str,
        content: str,
        reported_by: tuple[int, str] | None = None,
        subject: str | None = None,
    ) -> Escalation | None:
        """Record the concern, tell the thread, and put it before the moderators (pinging them).

        `subject` names the message (by default its stored line): None is returned, and nothing is done,
        when an escalation about it is open already; the caller joins that one instead."""
        reasons = list(dict.fromkeys(c.reason for c in concerns))
        first = concerns[0]
        escalation = await gov.create_escalation(
            self.db,
            guild_id=council.guild_id,
            council_id=council.id,
            message_id=message.id if message else None,
            source=first.source,
            category=first.category,
            reason="; ".join(reasons)[:REASON_LIMIT],
            author_name=author_name,
            content=content,
            spoiler=any(c.spoiler for c in concerns),
            held=held,
            subject=subject or (subject_of(message.id) if message else None),
            reporter=reported_by,
            expires_at=datetime.now(UTC) + timedelta(seconds=policy.timeout_s),
        )
        if escalation is None:
            return None
        categories = ", ".join(dict.fromkeys(f"{c.source}:{c.category}" for c in concerns))
        await gov.add_audit(
            self.db,
            guild_id=council.guild_id,
            council_id=council.id,
            kind="concern",
            actor_id=reported_by[0] if reported_by else None,
            actor_name=reported_by[1] if reported_by else "moderation",
            detail=f"Escalation #{escalation.id} about {author_name}'s message ({categories}); "
            f"{'held' if held else 'shown'}: {escalation.reason}",
        )
        log.info("Council %s: escalation %s (%s, held=%s)", council.id, escalation.id, categories, held)
        if message is not None and message.author_kind == "ai":
            if held:
                await self._hold(council, message)
            else:
                # Stored now, shown right after the message it is about.
                await self._store_notice(
                    council, f"flagged:{message.id}", f"🛡️ Moderators were notified about {author_name}'s message."
                )
                self.posting.follow_with(council.id, message.turn_key, f"flagged:{message.id}")
        where = await self.publisher.post_escalation(council, escalation, policy)
        if where is not None:
            await gov.set_escalation_post(self.db, escalation.id, *where)
            escalation.mod_channel_id, escalation.mod_message_id = where
            # Reports that joined while it was being posted could not edit it yet: it shows them now.
            current = await gov.get_escalation(self.db, escalation.id)
            if current is not None and current.report_count != escalation.report_count:
                await self.publisher.escalation_changed(council, current)
        elif held:
            await self.notice(
                council,
                f"no-moderators:{escalation.id}",
                "🛡️ This server has no moderators' channel yet: a moderator can set one with `/governance setup`.",
            )
        return escalation

    async def restore(self, council: Council) -> None:
        """Finish what an escalation had started when the process stopped: hold the council, tell the
        thread, put it before the moderators."""
        for escalation in await gov.list_pending_escalations(self.db, council.guild_id):
            if escalation.council_id != council.id:
                continue
            message = await repo.get_message(self.db, escalation.message_id) if escalation.message_id else None
            if escalation.held and message is not None and message.author_kind == "ai":
                await self._hold(council, message)
            if escalation.mod_message_id is None:
                where = await self.publisher.post_escalation(
                    council, escalation, await self.gate.policy(council.guild_id)
                )
                if where is not None:
                    await gov.set_escalation_post(self.db, escalation.id, *where)

    async def _hold(self, council: Council, message: CouncilMessage) -> None:
        """The council waits for the moderators, and its thread says so (once: the notice has a key)."""
        await repo.transition_council(self.db, council.id, from_states=("running",), to_state="held")
        current = await repo.get_council(self.db, council.id)
        # A council that has ended (its closing minutes were held) does not wait: the message may still come.
        then = (
            "The council waits for their decision."
            if current is not None and current.state == "held"
            else "It appears here if they approve it."
        )
        await self.notice(
            council, f"held:{message.id}", f"🛡️ A message from {message.author_name} awaits moderator review. {then}"
        )

    # -- decisions ---------------------------------------------------------------------------------

    async def decide(
        self,
        escalation_id: int,
        *,
        approve: bool,
        moderator_id: int,
        moderator_name: str,
        reason: str | None = None,
        end_council: bool = False,
    ) -> Decision:
        claimed = await gov.claim_escalation(
            self.db,
            escalation_id,
            state="approved" if approve else "rejected",
            decided_by_id=moderator_id,
            decided_by_name=moderator_name,
            reason=reason,
            end_council=end_council,
        )
        if claimed is None:
            existing = await gov.get_escalation(self.db, escalation_id)
            if existing is None:
                raise DecisionError(f"There is no escalation #{escalation_id}.")
            return Decision(existing, changed=False)
        verb = "approved" if approve else ("rejected and ended the council" if end_council else "rejected")
        await gov.add_audit(
            self.db,
            guild_id=claimed.guild_id,
            council_id=claimed.council_id,
            kind="decision",
            actor_id=moderator_id,
            actor_name=moderator_name,
            detail=f"{verb} escalation #{claimed.id}" + (f": {reason}" if reason else ""),
        )
        await self._apply(claimed)
        return Decision(claimed, changed=True)

    async def expire_overdue(
        self, now: datetime | None = None, owns: Callable[[int], bool] = lambda _guild_id: True
    ) -> list[Escalation]:
        """Decide overdue escalations the safe way: a held message stays withheld. Only the servers
        this process `owns` (its shards): the decision posts in their channels."""
        expired = []
        for overdue in await gov.list_overdue_escalations(self.db, now or datetime.now(UTC)):
            if not owns(overdue.guild_id):
                continue
            claimed = await gov.claim_escalation(
                self.db,
                overdue.id,
                state="expired",
                decided_by_id=None,
                decided_by_name="timeout",
                reason="No moderator decided in time.",
            )
            if claimed is None:
                continue
            outcome = "the held message stays withheld" if claimed.held else "the message stays as it was"
            await gov.add_audit(
                self.db,
                guild_id=claimed.guild_id,
                council_id=claimed.council_id,
                kind="decision",
                actor_name="timeout",
                detail=f"escalation #{claimed.id} expired undecided; {outcome}",
            )
            await self._apply(claimed)
            expired.append(claimed)
        return expired

    async def _apply(self, escalation: Escalation) -> None:
        council = await repo.get_council(self.db, escalation.council_id)
        if council is None:
            return
        message = await repo.get_message(self.db, escalation.message_id) if escalation.message_id else None
        withhold = escalation.state == "rejected" or (escalation.state == "expired" and escalation.held)
        if message is not None and message.author_kind == "tool":
            await self._apply_to_tool_line(council, message, escalation, withhold)
        elif message is not None:
            if escalation.state == "approved" and message.visibility == "held":
                await repo.set_message_visibility(self.db, message.id, "visible")
                self.transcripts.forget(council.id)
                message.visibility = "visible"
                if message.author_kind == "ai":
                    await self.posting.show(council, message)
                elif message.addressed_to is not None:  # the member it asks answers it now it may be read
                    self.requests.expect(council.id)
            elif withhold:
                await self._withhold(council, message, escalation)
        await self.publisher.escalation_changed(council, escalation)
        if escalation.end_council:
            await self.lifecycle.conclude(
                council.id, f"Ended by moderator {escalation.decided_by_name} after rejecting a message.", rate=False
            )
        elif council.state == "held" and not await self._still_held(council.id):
            policy = await self.gate.policy(council.guild_id)
            target = "halted" if policy.halted else "running"
            moved = await repo.transition_council(self.db, council.id, from_states=("held",), to_state=target)
            if moved and target == "running":
                self.lifecycle.continue_council(council.id)

    async def _apply_to_tool_line(
        self, council: Council, message: CouncilMessage, escalation: Escalation, withhold: bool
    ) -> None:
        """A call waiting for approval goes on (run or refused) in its turn; a result held by the rules is shown
        once approved, and stays unshown otherwise. The line showing a call stays: the thread says it was asked."""
        if message.visibility == "held":
            if escalation.state == "approved":
                await repo.set_message_visibility(self.db, message.id, "visible")
                message.visibility = "visible"
                await self.posting.show(council, message)
            elif withhold:
                await repo.set_message_visibility(self.db, message.id, "withheld")
        if self.tool_decided is not None:
            self.tool_decided(escalation.id)

    async def _withhold(self, council: Council, message: CouncilMessage, escalation: Escalation) -> None:
        await repo.set_message_visibility(self.db, message.id, "withheld")
        self.transcripts.forget(council.id)
        if message.author_kind != "ai":
            return  # a human's words stay theirs in Discord; they just never reach the members
        if message.discord_ids:
            await self.publisher.delete_messages(council, message.discord_ids)
        why = escalation.decision_reason or escalation.reason
        # Only the member itself is told why, in its next prompt.
        await repo.add_message(
            self.db,
            council_id=council.id,
            round_number=message.round,
            author_kind="system",
            author_name=message.author_name,
            turn_key=f"withheld-note:{message.id}",
            content=f"The moderators withheld your message from round {message.round}. Reason: {why}",
            visibility="private",
        )
        await self.notice(
            council, f"withheld:{message.id}", f"🛡️ A message from {message.author_name} was withheld by the moderators."
        )

    async def _still_held(self, council_id: int) -> bool:
        pending = await gov.list_pending_escalations(self.db)
        return any(e.council_id == council_id and e.held for e in pending)

    async def _store_notice(self, council: Council, key: str, text: str) -> CouncilMessage:
        # The round now, not when `council` was loaded (a runner holds its Council for the whole run).
        current = await repo.get_council(self.db, council.id)
        message, _ = await repo.add_message(
            self.db,
            council_id=council.id,
            round_number=(current or council).current_round,
            author_kind="system",
            author_name="moderation",
            turn_key=key,
            content=text,
            claimed_by=self.claims.claimant,
        )
        return message

    async def notice(self, council: Council, key: str, text: str) -> None:
        await self.posting.show(council, await self._store_notice(council, key, text))


class GuildControl:
    """Server-wide moderation: the kill switch, and its undo. (Human reports: bot/council/human_reports.py.)"""

    def __init__(self, moderation: CouncilModeration) -> None:
        self.moderation = moderation
        self.db = moderation.db

    async def halt(self, guild_id: int, *, actor_id: int, actor_name: str) -> list[int]:
        """The kill switch: every running council in the server stops before its next turn."""
        await gov.update_guild_settings(self.db, guild_id, halted=True)
        self.moderation.gate.forget(guild_id)
        halted = []
        for council in await repo.list_guild_councils(self.db, guild_id, ("running",)):
            if await repo.transition_council(self.db, council.id, from_states=("running",), to_state="halted"):
                halted.append(council.id)
                await self.moderation.notice(
                    council,
                    f"halt:{council.id}:{datetime.now(UTC).timestamp():.0f}",
                    f"⛔ {actor_name} halted every council in this server. A moderator can undo it with "
                    "`/governance resume-all`.",
                )
        await gov.add_audit(
            self.db,
            guild_id=guild_id,
            kind="halt",
            actor_id=actor_id,
            actor_name=actor_name,
            detail=f"halted {len(halted)} running council(s): {', '.join(f'#{i}' for i in halted) or 'none'}",
        )
        return halted

    async def resume_all(self, guild_id: int, *, actor_id: int, actor_name: str) -> list[int]:
        await gov.update_guild_settings(self.db, guild_id, halted=False)
        self.moderation.gate.forget(guild_id)
        resumed = []
        for council in await repo.list_guild_councils(self.db, guild_id, ("halted",)):
            if await repo.transition_council(self.db, council.id, from_states=("halted",), to_state="running"):
                resumed.append(council.id)
                await self.moderation.notice(
                    council,
                    f"resume:{council.id}:{datetime.now(UTC).timestamp():.0f}",
                    f"▶️ {actor_name} lifted the halt; the council continues.",
                )
                self.moderation.lifecycle.continue_council(council.id)
        await gov.add_audit(
            self.db,
            guild_id=guild_id,
            kind="resume",
            actor_id=actor_id,
            actor_name=actor_name,
            detail=f"lifted the halt; resumed {len(resumed)} council(s): {', '.join(f'#{i}' for i in resumed) or 'none'}",
        )
        return resumed
