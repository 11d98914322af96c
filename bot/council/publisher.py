"""What the engine needs from the place councils are shown (Discord, or a test double)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bot.council.seats import Seat
from bot.governance.gate import Policy
from storage.models import Council, Escalation

if TYPE_CHECKING:
    from bot.council.ratings import Scoreboard


class PlaceGone(Exception):
    """The council's thread is gone or closed to the bot: nothing more can be shown there."""


def cut_text(text: str, reason: str) -> str:
    """A reply that stopped before its end, as it is shown and stored: its words, then why it stopped."""
    return f"{text.rstrip()}\n\n✂️ cut off: {reason}"


def cut_at_limit(text: str, name: str, max_output_tokens: int) -> str:
    """A reply the member's output limit stopped, as it is shown, stored and read by the others: its words,
    then a small line saying so (outside any code block the cut left open)."""
    text = text.rstrip()
    if text.count("```") % 2:
        text += "\n```"
    return f"{text}\n-# ✂️ cut at {name}'s output limit ({max_output_tokens} tokens)"


@dataclass(frozen=True, slots=True)
class StreamTrace:
    """Where a reply whose stream was interrupted (the process stopped) may already show.

    `message_ids`: the messages recorded for it, in order. `after_id`: the newest message recorded for
    the council before it; the member's messages after that one that nobody recorded belong to it too.
    """

    message_ids: tuple[int, ...]
    after_id: int | None


@dataclass(frozen=True, slots=True)
class Table:
    """A small report shown as one block (Discord: an embed), e.g. a review council's ranking.

    Stored as JSON in a transcript line (author kind "table") before it is shown, like every line.
    """

    title: str
    rows: tuple[str, ...]
    note: str | None = None

    def dumps(self) -> str:
        return json.dumps({"title": self.title, "rows": list(self.rows), "note": self.note}, ensure_ascii=False)

    @classmethod
    def loads(cls, text: str) -> Table:
        data = json.loads(text)
        return cls(title=data["title"], rows=tuple(data["rows"]), note=data.get("note"))

    def as_text(self) -> str:
        lines = [f"**{self.title}**", *self.rows]
        return "\n".join([*lines, self.note] if self.note else lines)


class MemberStream(Protocol):
    """One member reply shown while it is written. Only the engine's runner calls it, one call at a time."""

    def wants(self, text: str) -> bool:
        """Whether `update(text)` would show it now: the first words at once, later ones at the
        publisher's own pace (about once a second), and only when they change what is shown."""
        ...

    async def update(self, text: str) -> list[int] | None:
        """Show the reply so far if `wants(text)`; the ids of every message holding it when this call
        showed it, None when it showed nothing."""
        ...

    async def finish(self, text: str, *, cut_note: str | None = None) -> list[int]:
        """Show exactly `text` (with `cut_note` after it, as `cut_text` renders it), removing any
        message it no longer needs; the ids of all messages that hold it."""
        ...

    async def close(self) -> None:
        """Stop showing the member as typing (the reply ended, or the turn was abandoned). Safe to call
        more than once; `finish` may still follow."""
        ...


class CouncilPublisher(Protocol):
    async def post_member_message(
        self, council: Council, seat: Seat, content: str, *, recovering: bool = False
    ) -> list[int]:
        """Show a member's words under its own name; return the ids of the messages created.

        With `recovering`, the words may already be there (the process died between posting and
        recording): look in the thread's recent history first and post only what is missing.
        """
        ...

    async def open_stream(self, council: Council, seat: Seat, *, resume: StreamTrace | None = None) -> MemberStream:
        """Start showing a member's reply as it is written; the member is shown as typing until its first
        words. With `resume`, the stream finishes a reply an earlier process had started showing."""
        ...

    async def post_notice(self, council: Council, text: str, *, recovering: bool = False) -> list[int]:
        """Show a short system notice in the council's thread; return the message ids."""
        ...

    async def post_table(self, council: Council, table: Table, *, recovering: bool = False) -> list[int]:
        """Show a table in the council's thread; return the message ids."""

    async def post_scoreboard(self, council: Council, board: Scoreboard, *, recovering: bool = False) -> list[int]:
        """Show a peer-ratings scoreboard (bot/council/ratings.py) in the council's thread; return the message
        ids. With `recovering`, it may be there already: look in the thread's recent history first."""
        ...

    def progress(self, council: Council, speaking: tuple[str, ...]) -> None:
        """Who is answering now (none between turns). Called at every turn's start and end, so it must
        return at once; a publisher shows it at its own pace (Discord: the thread's starter embed)."""
        ...

    async def council_finished(self, council: Council) -> None:
        """The council reached `concluded` or `failed`; `council.end_reason` says why."""
        ...

    async def post_escalation(self, council: Council, escalation: Escalation, policy: Policy) -> tuple[int, int] | None:
        """Put an escalation before the moderators; (channel id, message id), or None without a channel."""
        ...

    async def escalation_decided(self, council: Council, escalation: Escalation) -> None:
        """Show the outcome on the escalation."""
        ...

    async def delete_messages(self, council: Council, message_ids: list[int]) -> None:
        """Remove messages (a withheld member reply) from the thread."""
        ...
