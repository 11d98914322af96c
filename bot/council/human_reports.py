"""Human reports ("Report to moderators"): one open escalation per message, which later reports join.

The first report of a message opens an escalation and pings the moderators' role. Anyone reporting it
while it is open joins that escalation instead: their report is recorded (once per person) and counted
on it, and nobody is pinged again. The database decides who was first (a unique index on the open
escalation's subject), so two reports at once, in one process or two, still make one escalation.

Someone who reports message after message is slowed down: past REPORTS_PER_WINDOW reports in
REPORT_WINDOW they are refused with a private message, and nothing is recorded.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.council.moderation import CouncilModeration, DecisionError, subject_of
from bot.governance.concerns import Concern
from storage import governance_repository as gov
from storage import repository as repo
from storage.models import Council, Escalation

log = logging.getLogger(__name__)

REPORTS_PER_WINDOW = 5  # reports one person may make in a server within REPORT_WINDOW
REPORT_WINDOW = timedelta(minutes=10)
_ATTEMPTS = 3  # open or join: a report racing another (or a decision) tries again, a bounded number of times


class ReportRefused(DecisionError):
    """A report that is not taken (too many too quickly); the message is shown to the reporter as is."""


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    escalation: Escalation
    joined: bool  # it was open already: the report was added to it, and nobody was pinged
    already: bool = False  # this person had reported it already: nothing changed


class HumanReports:
    def __init__(self, moderation: CouncilModeration) -> None:
        self.moderation = moderation
        self.db = moderation.db

    async def report(
        self,
        *,
        thread_id: int,
        discord_message_id: int,
        author_name: str,
        content: str,
        reporter_id: int,
        reporter_name: str,
        reason: str | None = None,
        now: datetime | None = None,
    ) -> ReportOutcome:
        """A human reports a message in a council thread; it goes to the moderators, shown as it is."""
        council = await repo.get_council_by_thread(self.db, thread_id)
        if council is None:
            raise DecisionError("Only messages in a council's thread can be reported here.")
        message = await repo.find_message_by_discord_id(self.db, council.id, discord_message_id)
        # A member's reply split over several Discord messages is one line: reporting any part joins.
        subject = subject_of(message.id) if message is not None and message.id else f"discord:{discord_message_id}"
        moment = now or datetime.now(UTC)
        for _ in range(_ATTEMPTS):
            current = await gov.open_escalation(self.db, council.id, subject)
            if current is not None and await gov.has_reported(self.db, current.id or 0, reporter_id):
                return ReportOutcome(current, joined=True, already=True)
            await self._check_pace(council.guild_id, reporter_id, moment)
            if current is not None:
                joined = await gov.join_escalation(
                    self.db,
                    current.id or 0,
                    guild_id=council.guild_id,
                    reporter_id=reporter_id,
                    reporter_name=reporter_name,
                )
                if joined is not None:
                    await self._record_join(council, joined, reporter_id, reporter_name)
                    return ReportOutcome(joined, joined=True)
                continue  # decided meanwhile, or the same person reporting twice at once: look again
            why = f"Reported by {reporter_name}" + (f": {reason}" if reason else ".")
            opened = await self.moderation.escalate(
                council,
                message,
                [Concern("human", "report", why)],
                await self.moderation.gate.policy(council.guild_id),
                held=False,
                author_name=message.author_name if message else author_name,
                content=message.content if message else content,
                reported_by=(reporter_id, reporter_name),
                subject=subject,
            )
            if opened is not None:
                return ReportOutcome(opened, joined=False)
            # Someone else's report opened it a moment ago: join theirs.
        raise DecisionError("The report could not be recorded just now; please try again.")

    async def _check_pace(self, guild_id: int, reporter_id: int, now: datetime) -> None:
        count, oldest = await gov.recent_reports(self.db, guild_id, reporter_id, now - REPORT_WINDOW)
        if count < REPORTS_PER_WINDOW:
            return
        oldest = oldest if oldest is None or oldest.tzinfo is not None else oldest.replace(tzinfo=UTC)
        wait = (oldest + REPORT_WINDOW - now) if oldest is not None else REPORT_WINDOW
        minutes = max(1, math.ceil(wait.total_seconds() / 60))
        raise ReportRefused(
            f"You have reported {count} messages in the last {REPORT_WINDOW.seconds // 60} minutes, the most "
            f"this server takes from one person. Please wait about {minutes} minute(s) before reporting "
            "another; the moderators have your earlier reports. This report was not recorded."
        )

    async def _record_join(
        self, council: Council, escalation: Escalation, reporter_id: int, reporter_name: str
    ) -> None:
        await gov.add_audit(
            self.db,
            guild_id=council.guild_id,
            council_id=council.id,
            kind="report",
            actor_id=reporter_id,
            actor_name=reporter_name,
            detail=f"also reported the message of escalation #{escalation.id} "
            f"({escalation.report_count} report(s) now); nobody was pinged again",
        )
        log.info("Council %s: a report joined escalation %s", council.id, escalation.id)
