"""SQLModel tables. Discord ids exceed 32 bits, hence BigInteger columns."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Text,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class GuildSettings(SQLModel, table=True):
    """Per-server settings."""

    __tablename__ = "guild_settings"

    guild_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    moderator_channel_id: int | None = Field(default=None, sa_type=BigInteger)
    moderator_role_id: int | None = Field(default=None, sa_type=BigInteger)
    policy_mode: str = Field(default="hold", max_length=8)
    disabled_categories: str = Field(default="", sa_type=Text)  # comma-separated category ids
    judge_member: str | None = Field(default=None, max_length=64)
    escalation_timeout_s: int = 86_400
    halted: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class AppState(SQLModel, table=True):
    """Small key/value facts about the running bot (e.g. the hash of the last synced command tree)."""

    __tablename__ = "app_state"

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(sa_type=Text)


class Council(SQLModel, table=True):
    """A council: its topic, where it runs, and how far it has got."""

    __tablename__ = "council"

    id: int | None = Field(default=None, primary_key=True)
    guild_id: int = Field(sa_type=BigInteger, index=True)
    channel_id: int = Field(sa_type=BigInteger)
    thread_id: int | None = Field(default=None, sa_type=BigInteger, unique=True)
    topic: str = Field(sa_type=Text)
    mode: str = Field(max_length=16)
    rounds: int
    current_round: int = 0
    state: str = Field(max_length=16, index=True)
    end_reason: str | None = Field(default=None, sa_type=Text)
    convener_id: int = Field(sa_type=BigInteger)
    convener_name: str = Field(max_length=100)
    tokens_in: int = 0
    tokens_out: int = 0
    chair: str | None = Field(default=None, max_length=64)  # leads conductor rounds and writes review syntheses
    max_tokens: int | None = None  # the council concludes once its members have used this many tokens
    max_cost: float | None = None  # ... or cost this many US dollars (estimated from the catalog's prices)
    # The language the convener chose (an ISO 639 code); None: the topic's, or the one people switch to.
    language: str | None = Field(default=None, max_length=16)
    # The tools the convener allowed, narrowing each member's own ("server.tool" or "server.*", comma-separated;
    # '' for none); None: each member's own tools.
    tools: str | None = Field(default=None, sa_type=Text)
    # The process running the council (an engine's claimant id, '' for none) and when it last said so: a
    # second process leaves the council alone while that one lives (storage/runner_repository.py).
    runner: str = Field(default="", max_length=200, sa_column_kwargs={"server_default": ""})
    runner_seen_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    ended_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    # Templates: the permanent council this one is a session of. No foreign key on purpose: adding one
    # to an existing SQLite table means rebuilding it, and dropping the old `council` table would cascade
    # into every transcript. Deleting a template clears this column in the same transaction instead.
    template_id: int | None = Field(default=None, index=True)


class CouncilMember(SQLModel, table=True):
    """An AI member seated in a council, with the role it plays there."""

    __tablename__ = "council_member"
    __table_args__ = (UniqueConstraint("council_id", "name", name="uq_council_member_name"),)

    id: int | None = Field(default=None, primary_key=True)
    council_id: int = Field(
        sa_column=Column(Integer, ForeignKey("council.id", ondelete="CASCADE"), index=True, nullable=False)
    )
    name: str = Field(max_length=64)
    role: str | None = Field(default=None, max_length=100)
    position: int
    benched: bool = False  # failed too many turns in a row; sits out the rest of the council
    dismissed: bool = False  # sent away by the convener; kept so its words keep their author


class CouncilMessage(SQLModel, table=True):
    """One line of a council's transcript: an AI turn, a human interjection or a system notice.

    `turn_key` makes writes idempotent: an AI turn is `ai:r<round>:<member>`, a human message
    `human:<discord message id>`, so a retried write finds the row instead of adding a second one.
    """

    __tablename__ = "council_message"
    __table_args__ = (UniqueConstraint("council_id", "turn_key", name="uq_council_message_turn"),)

    id: int | None = Field(default=None, primary_key=True)
    council_id: int = Field(
        sa_column=Column(Integer, ForeignKey("council.id", ondelete="CASCADE"), index=True, nullable=False)
    )
    round: int
    author_kind: str = Field(max_length=8)
    author_name: str = Field(max_length=100)
    author_id: int | None = Field(default=None, sa_type=BigInteger)
    turn_key: str = Field(max_length=120)
    content: str = Field(sa_type=Text)
    # The member's reasoning behind this line (a reasoning model's), never shown in the thread nor read by the
    # other members; anyone who can read the council may ask for it (Message details), and the export has it.
    reasoning: str | None = Field(default=None, sa_type=Text)
    # Files the human shared with this line (LineAttachment rows), counted so prompts look them up only when any.
    attachment_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: int | None = None  # how long the member took to answer (AI turns)
    addressed_to: str | None = Field(default=None, max_length=64)  # a human line asking this member to answer
    discord_message_ids: str = Field(default="", sa_type=Text)
    # visible: shown and in context; held: awaiting a moderator; withheld: rejected, never shown to members;
    # private: a note only its author reads; record: kept for the record only (review ballots), shown
    # to no one and in no prompt; streaming: a member reply being shown as it is written (its
    # words so far, in no one's context yet).
    visibility: str = Field(default="visible", max_length=10)
    # Set once the line shows in Discord in full. A streamed line records its message ids while it is
    # written, so ids without posted_at mean "shown, not yet confirmed final" (see bot/council/streaming.py).
    posted_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    # Who may post the line to Discord (an engine's claimant id, '' for nobody yet) and since when: two
    # processes running the same council post each line once (storage/repository.py `claim_post`).
    claimed_by: str = Field(default="", max_length=100, sa_column_kwargs={"server_default": ""})
    claimed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))

    @property
    def discord_ids(self) -> list[int]:
        return [int(part) for part in self.discord_message_ids.split(",") if part]

    def note_posted(self, discord_message_ids: Sequence[int]) -> None:
        """In memory, what `storage.repository.record_posted` stored: the line shows in these messages."""
        self.discord_message_ids = ",".join(str(i) for i in discord_message_ids)
        self.posted_at = utcnow()


class LineAttachment(SQLModel, table=True):
    """A file a human shared with a line: an image kept as members are sent it (within a cap, so a council resumed
    after a restart still has it: Discord's links expire), or a text file or other file, named (a text file's
    words are in the line itself)."""

    __tablename__ = "line_attachment"

    id: int | None = Field(default=None, primary_key=True)
    council_id: int = Field(
        sa_column=Column(Integer, ForeignKey("council.id", ondelete="CASCADE"), index=True, nullable=False)
    )
    message_id: int = Field(
        sa_column=Column(Integer, ForeignKey("council_message.id", ondelete="CASCADE"), index=True, nullable=False)
    )
    filename: str = Field(max_length=255)
    kind: str = Field(max_length=8)  # image | text | other
    media_type: str = Field(default="", max_length=100)  # an image's, as sent
    size: int  # bytes as shared
    width: int | None = None
    height: int | None = None
    data: bytes | None = Field(default=None, sa_type=LargeBinary)  # an image as members are sent it
    shared_by: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class ToolCallRecord(SQLModel, table=True):
    """A tool a member called during one of its turns, and what came of it.

    Stored, with the transcript line that shows it, before the call runs; `status` then says how far it got,
    so a restart replays the member's turn from its stored calls instead of asking the model again:
    pending (stored, not run), held (waiting for a moderator), running (started: a restart finds it so only
    if the call may have run), done, failed (the server down, slow or in error), refused (a moderator, a halt
    or a limit said no), interrupted (cut off by a restart and not safe to repeat).
    """

    __tablename__ = "tool_call"
    __table_args__ = (UniqueConstraint("council_id", "turn_key", "step", "position", name="uq_tool_call_step"),)

    id: int | None = Field(default=None, primary_key=True)
    council_id: int = Field(
        sa_column=Column(Integer, ForeignKey("council.id", ondelete="CASCADE"), index=True, nullable=False)
    )
    turn_key: str = Field(max_length=120)  # the member's turn the call belongs to
    member: str = Field(max_length=100)
    step: int  # the model's reply within the turn that asked for it
    position: int  # its place among that reply's calls
    call_id: str = Field(max_length=120)  # the provider's id, which its result must name
    server: str = Field(max_length=32)
    tool: str = Field(max_length=200)
    exposed_name: str = Field(max_length=64)  # the name the model called it by
    arguments: str = Field(sa_type=Text)  # JSON
    # What the model wrote before its calls, and the provider's signed blocks to send back (position 0 only).
    text: str = Field(default="", sa_type=Text)
    signed: str = Field(default="", sa_type=Text)  # JSON list
    policy: str = Field(max_length=8)  # allow | notify | hold
    repeatable: bool = False  # the tool says a second run does no harm (read-only or idempotent)
    status: str = Field(default="pending", max_length=12, index=True)
    result: str = Field(default="", sa_type=Text)  # as the tool gave it, within the cap
    is_error: bool = False
    # The server's rules held the result for the moderators: the member read a note instead.
    result_held: bool = False
    failure: str | None = Field(default=None, max_length=12)  # unavailable | timeout | error
    duration_ms: int | None = None
    line_id: int | None = None  # the transcript line that shows the call
    escalation_id: int | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    finished_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class GuildRule(SQLModel, table=True):
    """A server's own policy phrase or regex, on top of the shipped rule files."""

    __tablename__ = "guild_rule"

    id: int | None = Field(default=None, primary_key=True)
    guild_id: int = Field(sa_type=BigInteger, index=True)
    kind: str = Field(max_length=8)  # phrase | regex
    pattern: str = Field(max_length=200)
    category: str = Field(max_length=32)
    created_by_id: int = Field(sa_type=BigInteger)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class Escalation(SQLModel, table=True):
    """A concern put before the server's moderators, and what they decided.

    One open (pending) escalation per message at most: `subject` names the message (`line:<id>` for a
    stored line, `discord:<id>` for a message the council never stored), and the database refuses a
    second pending row with the same subject, so a concurrent second report joins the first instead.
    """

    __tablename__ = "escalation"
    __table_args__ = (
        Index(
            "uq_escalation_open_subject",
            "council_id",
            "subject",
            unique=True,
            sqlite_where=text("state = 'pending'"),
            postgresql_where=text("state = 'pending'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    guild_id: int = Field(sa_type=BigInteger, index=True)
    council_id: int = Field(
        sa_column=Column(Integer, ForeignKey("council.id", ondelete="CASCADE"), index=True, nullable=False)
    )
    message_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("council_message.id", ondelete="SET NULL"), nullable=True)
    )
    source: str = Field(max_length=8)  # rule | judge | self | human
    category: str = Field(max_length=32)
    reason: str = Field(sa_type=Text)
    author_name: str = Field(max_length=100)
    content: str = Field(sa_type=Text)
    spoiler: bool = False
    held: bool = False  # the message was kept out of the thread until a decision
    state: str = Field(default="pending", max_length=10, index=True)  # pending | approved | rejected | expired
    decided_by_id: int | None = Field(default=None, sa_type=BigInteger)
    decided_by_name: str | None = Field(default=None, max_length=100)
    decision_reason: str | None = Field(default=None, sa_type=Text)
    end_council: bool = False
    reported_by_id: int | None = Field(default=None, sa_type=BigInteger)  # the first to report it
    subject: str | None = Field(default=None, max_length=40)
    report_count: int = 0  # people who reported it (each once)
    reporters: str = Field(default="", sa_type=Text)  # their names, as shown on the escalation
    mod_channel_id: int | None = Field(default=None, sa_type=BigInteger)
    mod_message_id: int | None = Field(default=None, sa_type=BigInteger)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    expires_at: datetime = Field(sa_type=DateTime(timezone=True))
    decided_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class EscalationReport(SQLModel, table=True):
    """One person's report of a message: each person joins an escalation once, and their recent reports
    are counted to slow down someone reporting message after message."""

    __tablename__ = "escalation_report"
    __table_args__ = (
        UniqueConstraint("escalation_id", "reporter_id", name="uq_escalation_report_reporter"),
        Index("ix_escalation_report_reporter_recent", "guild_id", "reporter_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    escalation_id: int = Field(
        sa_column=Column(Integer, ForeignKey("escalation.id", ondelete="CASCADE"), nullable=False)
    )
    guild_id: int = Field(sa_type=BigInteger)
    reporter_id: int = Field(sa_type=BigInteger)
    reporter_name: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class AuditEntry(SQLModel, table=True):
    """The governance record: concerns, decisions, policy changes, halts."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    guild_id: int = Field(sa_type=BigInteger, index=True)
    council_id: int | None = Field(default=None, index=True)
    kind: str = Field(max_length=16)  # concern | decision | policy | halt | resume | rule
    actor_id: int | None = Field(default=None, sa_type=BigInteger)
    actor_name: str = Field(max_length=100)
    detail: str = Field(sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class ReviewBallot(SQLModel, table=True):
    """One member's ranking of the others' anonymized answers in a review council.

    `labels` maps each label to the member behind it (JSON, in the order the reviewer saw them), drawn
    from `seed` so the same ballot is shown the same way again; `ranking` is the members, best first, or
    None when the reply could not be read (`state` says which).
    """

    __tablename__ = "review_ballot"
    __table_args__ = (UniqueConstraint("council_id", "round", "reviewer", name="uq_review_ballot_reviewer"),)

    id: int | None = Field(default=None, primary_key=True)
    council_id: int = Field(
        sa_column=Column(Integer, ForeignKey("council.id", ondelete="CASCADE"), index=True, nullable=False)
    )
    round: int
    reviewer: str = Field(max_length=64)
    seed: str = Field(max_length=64)
    labels: str = Field(sa_type=Text)
    ranking: str | None = Field(default=None, sa_type=Text)
    state: str = Field(default="asked", max_length=12)  # asked | ranked | unreadable | failed
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class PeerRating(SQLModel, table=True):
    """One member's rating of another's contribution to a council, in one rating round.

    A rating round is named by `as_of_message_id`, the newest member turn it rates: asking again with no
    new turn lands on the same rows (unique per rater and ratee), so a repeated or resumed round adds
    nothing. `status` is `rated` (three scores 1-5 and a reason), `unparseable` (the reply had no valid
    line for this member; nothing is guessed) or `failed` (the provider did not answer; `reason` says why).
    """

    __tablename__ = "peer_rating"
    __table_args__ = (
        UniqueConstraint("council_id", "as_of_message_id", "rater", "ratee", name="uq_peer_rating_round_pair"),
    )

    id: int | None = Field(default=None, primary_key=True)
    council_id: int = Field(
        sa_column=Column(Integer, ForeignKey("council.id", ondelete="CASCADE"), index=True, nullable=False)
    )
    guild_id: int = Field(sa_type=BigInteger, index=True)
    as_of_message_id: int
    rater: str = Field(max_length=64)
    ratee: str = Field(max_length=64)
    status: str = Field(max_length=12)  # rated | unparseable | failed
    clarity: int | None = None
    insight: int | None = None
    self_awareness: int | None = None
    reason: str = Field(default="", sa_type=Text)
    reason_withheld: bool = False  # the server's moderation flagged the reason: stored, never shown
    raw_reply: str = Field(default="", sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class CouncilTemplate(SQLModel, table=True):
    """A server's saved council (members, roles, mode, rounds, chair, limits): a permanent council whose
    councils are its sessions."""

    __tablename__ = "council_template"
    __table_args__ = (UniqueConstraint("guild_id", "name_key", name="uq_council_template_name"),)

    id: int | None = Field(default=None, primary_key=True)
    guild_id: int = Field(sa_type=BigInteger, index=True)
    name: str = Field(max_length=50)
    name_key: str = Field(max_length=200)  # the name casefolded: unique per server whatever the case
    mode: str = Field(max_length=16)
    rounds: int
    chair: str | None = Field(default=None, max_length=64)
    max_tokens: int | None = None
    max_cost: float | None = None
    created_by_id: int = Field(sa_type=BigInteger)
    created_by_name: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class CouncilTemplateMember(SQLModel, table=True):
    """A member a template seats, in order, with its role there (None: the catalog's role)."""

    __tablename__ = "council_template_member"
    __table_args__ = (UniqueConstraint("template_id", "name", name="uq_council_template_member_name"),)

    id: int | None = Field(default=None, primary_key=True)
    template_id: int = Field(
        sa_column=Column(Integer, ForeignKey("council_template.id", ondelete="CASCADE"), index=True, nullable=False)
    )
    name: str = Field(max_length=64)
    role: str | None = Field(default=None, max_length=100)
    position: int
