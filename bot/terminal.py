"""A council shown on a terminal (`python -m bot rehearse`): members' words as they stream, notices, the
review ranking table and the peer-ratings scoreboard, as plain text. Message "ids" are line numbers of the run.

A streamed reply prints only the words that are new at each update, so the finished transcript reads the same
whether stdout is a terminal or a file: the member's header, then its reply. When the reply as stored differs
from what was printed while it streamed (the engine's checks removed a line, say), the stored text follows
under a note, because a terminal cannot edit what it already printed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from bot.council.publisher import NoHistory, PostProgress, StreamTrace, Table, cut_text
from bot.council.scoreboard import Scoreboard, score_text, when_text
from bot.council.seats import Seat
from storage.models import Council

PRINT_INTERVAL = 0.05  # seconds between two prints of one reply: live to the eye, and few database saves
CORRECTION = "↻ The reply as kept differs from what streamed above; it reads:"


class TextWriter(Protocol):
    """What the terminal publisher writes to: `sys.stdout`, a file, or a test's capturing stream."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


class TerminalPublisher(NoHistory):
    """Shows councils on a text stream (a terminal, or a file when stdout is redirected)."""

    def __init__(self, out: TextWriter, *, interval: float = PRINT_INTERVAL) -> None:
        self.out = out
        self.interval = interval
        self.count = 0

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def _print(self, text: str) -> list[int]:
        self.count += 1
        self.write(f"{text}\n")
        return [self.count]

    def next_id(self) -> int:
        self.count += 1
        return self.count

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
        return self._print(f"\n{member_header(seat)}\n{content}")

    async def open_stream(
        self, council: Council, seat: Seat, *, resume: StreamTrace | None = None
    ) -> TerminalMemberStream:
        # A resumed reply was never printed in this run: finish() prints it whole.
        return TerminalMemberStream(self, seat, interval=self.interval)

    async def post_notice(
        self,
        council: Council,
        text: str,
        *,
        recovering: bool = False,
        shown: Sequence[int] = (),
        progress: PostProgress | None = None,
    ) -> list[int]:
        return self._print(f"\n{_plain(text)}")

    async def post_table(self, council: Council, table: Table, *, recovering: bool = False) -> list[int]:
        return self._print(f"\n{table_text(table)}")

    async def post_scoreboard(self, council: Council, board: Scoreboard, *, recovering: bool = False) -> list[int]:
        return self._print(f"\n{scoreboard_table(board)}")

    async def council_finished(self, council: Council) -> None:
        self._print(f"\n■ Council #{council.id} {council.state}: {council.end_reason}")

    # No moderators and no thread to delete from in a terminal (rehearsals run without the governance gate).
    def progress(self, council: Council, speaking: tuple[str, ...]) -> None:
        return None  # each member's words show as they come; there is no status line to keep

    async def post_escalation(self, council: Council, escalation: object, policy: object) -> None:
        return None

    async def escalation_changed(self, council: Council, escalation: object) -> None:
        return None

    async def delete_messages(self, council: Council, message_ids: list[int]) -> None:
        return None


class TerminalMemberStream:
    """The MemberStream of the terminal: the header at the first words, then each update's new suffix."""

    def __init__(
        self,
        publisher: TerminalPublisher,
        seat: Seat,
        *,
        interval: float = PRINT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.publisher = publisher
        self.seat = seat
        self.interval = interval
        self.clock = clock
        self.printed = ""  # the reply's visible words printed so far (stripped like the final reply)
        self.line: int | None = None
        self.diverged = False  # an update did not extend what was printed: finish() prints the reply anew
        self._last = 0.0

    def wants(self, text: str) -> bool:
        body = text.strip()
        if not body or body == self.printed:
            return False
        return self.line is None or self.clock() - self._last >= self.interval

    async def update(self, text: str) -> list[int] | None:
        if not self.wants(text):
            return None
        body = text.strip()
        if self.line is None:
            self.line = self.publisher.next_id()
            self.publisher.write(f"\n{member_header(self.seat)}\n")
        if body.startswith(self.printed):
            self.publisher.write(body[len(self.printed) :])
            self.printed = body
        else:  # the provider took words back: nothing more can be printed honestly until the end
            self.diverged = True
        self._last = self.clock()
        return [self.line]

    async def finish(self, text: str, *, cut_note: str | None = None) -> list[int]:
        final = (cut_text(text, cut_note) if cut_note else text).strip()
        if self.line is None:
            self.line = self.publisher.next_id()
            self.publisher.write(f"\n{member_header(self.seat)}\n{final}\n")
        elif not self.diverged and final.startswith(self.printed):
            self.publisher.write(f"{final[len(self.printed) :]}\n")
        else:
            self.publisher.write(f"\n\n{CORRECTION}\n{final}\n")
        self.printed = final
        return [self.line]

    async def close(self) -> None:
        return None  # no typing indicator in a terminal


def member_header(seat: Seat) -> str:
    return f"── {seat.label} ──"


def table_text(table: Table) -> str:
    """A Table as plain text: the title underlined, one indented row per line, the note last."""
    title = _plain(table.title)
    lines = [title, "─" * len(title), *(f"  {_plain(row)}" for row in table.rows)]
    return "\n".join([*lines, f"  ({_plain(table.note)})"] if table.note else lines)


def scoreboard_table(board: Scoreboard) -> str:
    """A peer-ratings scoreboard as a plain-text table (members × criteria), then each rater's reasons."""
    header = ("member", "clarity", "insight", "self-awareness", "overall", "ratings")
    rows = [
        (m.name, *(score_text(v) for v in (m.clarity, m.insight, m.self_awareness, m.overall)), str(m.ratings))
        for m in board.members
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))])

    title = f"📊 Peer ratings #{board.number} of council #{board.council_id}, {when_text(board)}"
    lines = [title, line(header), "  ".join("─" * width for width in widths), *(line(row) for row in rows)]
    if board.reasons:
        lines.append("Reasons (clarity/insight/self-awareness):")
    for r in board.reasons:
        said = "(reason left out: flagged by the server's moderation)" if r.withheld else (r.reason or "(no reason)")
        lines.append(f"- {r.rater} on {r.ratee} ({'/'.join(map(str, r.scores))}): {said}")
    lines += [f"⚠️ {problem}" for problem in board.problems]
    lines.append("Scores are 1 (poor) to 5 (excellent), given by the members to each other: models rating models.")
    return "\n".join(lines)


def _plain(text: str) -> str:
    """Discord's bold markers, which a terminal would print as asterisks."""
    return text.replace("**", "")
