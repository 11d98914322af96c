"""Each running council's transcript, kept in memory between its turns.

A round-robin turn needs everything said so far, and reading it all from the database every turn costs
time that grows with the council. The runner's view holds the lines instead: the lines this engine
writes are added as it writes them, and the view is checked against the transcript's mark (line count
and newest id), which the runner reads with the council row before every turn anyway. Lines written by
anyone else (a human, a moderator's notice, another process) change the mark, and the view is read again.
Lines are never deleted; the few changes to stored lines (moderation's visibility, streamed text) are made
in this process, which drops the view (`forget`).

Memory is bounded: a view is kept only while its council has at most KEEP_LINES lines (about a megabyte of
replies); a longer council's transcript is read from the database at each turn instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.council.attachments import kept_image
from bot.council.language import Language, of_transcript
from bot.council.prompts import TranscriptLine
from storage import repository as repo
from storage.database import Database
from storage.models import Council, CouncilMessage
from storage.repository import TranscriptMark

KEEP_LINES = 500


class TranscriptViews:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._lines: dict[int, list[CouncilMessage]] = {}
        self._marks: dict[int, TranscriptMark] = {}  # as read with the council before its turn

    def marked(self, council_id: int, mark: TranscriptMark) -> None:
        """The transcript's mark as just read from the database."""
        self._marks[council_id] = mark

    async def lines(self, council_id: int, *, keep: bool) -> list[CouncilMessage]:
        """The council's lines in the order they were written. The view answers when the last mark read
        matches it; otherwise the lines are read, and kept when `keep` (the council has a runner here)."""
        cached = self._lines.get(council_id)
        mark = self._marks.pop(council_id, None)
        if cached is not None and mark is not None and mark == _mark_of(cached):
            return cached
        lines = await repo.transcript(self.db, council_id)
        if keep and len(lines) <= KEEP_LINES:
            self._lines[council_id] = lines
        else:
            self._lines.pop(council_id, None)
        return lines

    async def language(self, council: Council, *, keep: bool) -> Language | None:
        """The language the council is held in now (bot/council/language.py), from its transcript."""
        return of_transcript(council.language, council.topic, await self.lines(council.id or 0, keep=keep))

    def wrote(self, message: CouncilMessage) -> None:
        """This engine stored `message` (a new line): the view takes it in. Should another line have been
        stored meanwhile, the next mark tells, and the view is read again."""
        cached = self._lines.get(message.council_id)
        if cached is not None and (not cached or cached[-1].id < message.id):  # type: ignore[operator]
            cached.append(message)
            if len(cached) > KEEP_LINES:
                self.forget(message.council_id)

    def forget(self, council_id: int) -> None:
        """A stored line of the council changed (or the council stopped here): read it again next time."""
        self._lines.pop(council_id, None)
        self._marks.pop(council_id, None)


def _mark_of(lines: list[CouncilMessage]) -> TranscriptMark:
    return TranscriptMark(len(lines), (lines[-1].id or 0) if lines else 0)


async def prompt_lines(db: Database, council_id: int, lines: Sequence[CouncilMessage]) -> list[TranscriptLine]:
    """The lines as prompts read them, with the images humans shared (read only when a line has any)."""
    with_files = [line.id for line in lines if line.attachment_count and line.id is not None]
    images = await repo.images_of(db, council_id, with_files) if with_files else {}
    return [
        TranscriptLine(
            line.author_kind,
            line.author_name,
            line.content,
            line.visibility,
            tuple(kept_image(row) for row in images.get(line.id or 0, ())),
        )
        for line in lines
    ]
