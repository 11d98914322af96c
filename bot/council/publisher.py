"""What the engine needs from the place councils are shown (Discord, or a test double)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bot.council.attachments import SharedFile
from bot.council.seats import Seat
from bot.governance.gate import Policy
from storage.models import Council, Escalation

if TYPE_CHECKING:
    from bot.council.scoreboard import Scoreboard


class PlaceGone(Exception):
    """The council's thread is gone or closed to the bot: nothing more can be shown there."""


class PostRefused(Exception):
    """The place refused one post for a reason asking again will not change (Discord: a 4xx other than
    429, such as 400 Invalid Form Body). The council goes on without that post."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PermissionMissing(Exception):
    """The bot lacks a permission it needs where the council is shown; it goes on once someone grants it.
    `permissions`: their names as a server's settings show them (e.g. "Manage Webhooks")."""

    def __init__(self, permissions: Sequence[str], detail: str = "") -> None:
        self.permissions = tuple(permissions)
        named = ", ".join(self.permissions) or "a permission Discord did not name"
        super().__init__(f"missing {named}" + (f" ({detail})" if detail else ""))

    def names(self) -> str:
        return ", ".join(f"**{name}**" for name in self.permissions) or "a permission Discord did not name"


class PlaceUnavailable(Exception):
    """The place did not answer (Discord: 5xx, 429 after its own retries, a dropped connection) and a post
    may or may not have gone out. It passes: the runner waits and tries again, looking before it reposts."""


@dataclass(frozen=True, slots=True)
class HeardMessage:
    """A human's message in a council's thread, as the engine stores it (live, or found in the thread's
    history after the process missed it)."""

    message_id: int
    author_id: int
    author_name: str
    content: str
    replied_to: str | None = None  # the member whose message this one answers, if any
    files: tuple[SharedFile, ...] = ()  # what the human attached (bot/council/attachments.py)


# Called after each message of a line is posted, with every id so far: a crash or a refusal mid-line
# never posts the messages already out again.
PostProgress = Callable[[list[int]], Awaitable[None]]


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
    # A ranking's places, ballot by ballot, per member (best first): what its chart draws.
    places: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def dumps(self) -> str:
        data: dict[str, object] = {"title": self.title, "rows": list(self.rows), "note": self.note}
        if self.places:
            data["places"] = [[name, list(places)] for name, places in self.places]
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def loads(cls, text: str) -> Table:
        data = json.loads(text)
        places = tuple((str(name), tuple(int(p) for p in places)) for name, places in data.get("places") or ())
        return cls(title=data["title"], rows=tuple(data["rows"]), note=data.get("note"), places=places)

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
        self,
        council: Council,
        seat: Seat,
        content: str,
        *,
        recovering: bool = False,
        shown: Sequence[int] = (),
        progress: PostProgress | None = None,
    ) -> list[int]:
        """Show a member's words under its own name; return the ids of all the messages that hold them.

        `shown`: the ids of the leading messages already posted for these words (recorded through
        `progress`); only the rest is posted. With `recovering`, more may be there (the process died
        between posting and recording): look in the thread's recent history first and post only what is
        missing. Raises PostRefused, PermissionMissing, PlaceGone or PlaceUnavailable.
        """
        ...

    async def open_stream(self, council: Council, seat: Seat, *, resume: StreamTrace | None = None) -> MemberStream:
        """Start showing a member's reply as it is written; the member is shown as typing until its first
        words. With `resume`, the stream finishes a reply an earlier process had started showing."""
        ...

    async def post_notice(
        self,
        council: Council,
        text: str,
        *,
        recovering: bool = False,
        shown: Sequence[int] = (),
        progress: PostProgress | None = None,
    ) -> list[int]:
        """Show a short system notice in the council's thread; return the message ids (as post_member_message)."""
        ...

    async def warn(self, council: Council, text: str) -> None:
        """Tell the people of a council something the transcript does not keep (the bot lost a permission, the
        database is away): in its thread if possible, else privately to its convener. Never raises."""
        ...

    async def tell_convener(self, council: Council, text: str) -> None:
        """Tell the council's convener privately (Discord: a direct message). Never raises."""
        ...

    async def settle_starter(self, council: Council) -> int | None:
        """A council a stop caught while it was being convened, with no thread recorded: the id of the thread
        its starter message got after all, else None, having deleted the starter if there is one."""
        ...

    def waiting(self, council_id: int, why: str | None) -> None:
        """The council waits out an outage (`why`: what for), or no longer (None). Must return at once."""
        ...

    async def missed_messages(self, council: Council, after: int | None) -> list[HeardMessage]:
        """Humans' messages in the council's thread newer than the message `after` (all, without it), oldest
        first, bounded: what was written while this process was not listening."""
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

    async def escalation_changed(self, council: Council, escalation: Escalation) -> None:
        """Show the escalation as it is now: more reports joined it, or it was decided."""
        ...

    async def delete_messages(self, council: Council, message_ids: list[int]) -> None:
        """Remove messages (a withheld member reply) from the thread."""
        ...


class NoHistory:
    """The parts of CouncilPublisher a place without thread history, private messages or a status line has
    nothing to do for (the terminal, in-process publishers): warnings go out as notices."""

    async def post_notice(self, council: Council, text: str, *, recovering: bool = False) -> list[int]:
        raise NotImplementedError

    async def warn(self, council: Council, text: str) -> None:
        await self.post_notice(council, text)

    async def tell_convener(self, council: Council, text: str) -> None:
        return None

    async def settle_starter(self, council: Council) -> int | None:
        return None

    def waiting(self, council_id: int, why: str | None) -> None:
        return None

    async def missed_messages(self, council: Council, after: int | None) -> list[HeardMessage]:
        return []
