"""A publisher that records what the engine would show, for engine tests without Discord."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.council.publisher import NoHistory, PostProgress, StreamTrace, Table, cut_text
from bot.council.scoreboard import Scoreboard, scoreboard_text
from bot.council.seats import Seat
from bot.governance.gate import Policy
from storage.models import Council, Escalation


@dataclass
class Post:
    kind: str  # "member", "notice" or "scoreboard"
    council_id: int
    author: str
    content: str
    ids: list[int]
    updates: list[str] = field(default_factory=list)  # a streamed reply: the text of every update shown
    finished: bool = True  # False while a streamed reply is being written
    cut_note: str | None = None


@dataclass
class RecordingStream:
    """A MemberStream that wants every `show_every`-th text it is offered (the first at once) and records
    every update."""

    publisher: RecordingPublisher
    council: Council
    seat: Seat
    post: Post | None = None
    show_every: int = 1
    closed: bool = False
    _seen: int = 0

    def wants(self, text: str) -> bool:
        self._seen += 1
        return bool(text.strip()) and (self.post is None or (self._seen - 1) % self.show_every == 0)

    async def update(self, text: str) -> list[int] | None:
        if self.post is None:
            self.post = self.publisher._new("member", self.council, self.seat.name, text.strip(), finished=False)
        self.post.content = text.strip()
        self.post.updates.append(text)
        return list(self.post.ids)

    async def finish(self, text: str, *, cut_note: str | None = None) -> list[int]:
        content = (cut_text(text, cut_note) if cut_note else text).strip()
        if self.post is None:
            self.post = self.publisher._new("member", self.council, self.seat.name, content)
        self.post.content, self.post.finished, self.post.cut_note = content, True, cut_note
        self.closed = True
        return list(self.post.ids)

    async def close(self) -> None:
        self.closed = True


@dataclass
class RecordingPublisher(NoHistory):
    posts: list[Post] = field(default_factory=list)
    finished: list[Council] = field(default_factory=list)
    post_delay: float = 0.0
    show_every: int = 1  # streams show every n-th update
    streams: list[RecordingStream] = field(default_factory=list)
    scoreboards: list[Scoreboard] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)
    progress_calls: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1000))
    _done: dict[int, asyncio.Event] = field(default_factory=dict)

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
        await asyncio.sleep(self.post_delay)
        return self._post("member", council, seat.name, content, recovering)

    async def post_notice(
        self,
        council: Council,
        text: str,
        *,
        recovering: bool = False,
        shown: Sequence[int] = (),
        progress: PostProgress | None = None,
    ) -> list[int]:
        return self._post("notice", council, "system", text, recovering)

    async def post_table(self, council: Council, table: Table, *, recovering: bool = False) -> list[int]:
        return self._post("table", council, "system", table.as_text(), recovering)

    async def open_stream(self, council: Council, seat: Seat, *, resume: StreamTrace | None = None) -> RecordingStream:
        stream = RecordingStream(self, council, seat, show_every=self.show_every)
        if resume is not None:  # like the thread's history: the recorded post, else the member's unfinished one
            stream.post = next(
                (p for p in self.posts if p.ids and p.ids[0] in resume.message_ids),
                next((p for p in reversed(self.posts) if p.author == seat.name and not p.finished), None),
            )
        self.streams.append(stream)
        return stream

    def _new(self, kind: str, council: Council, author: str, content: str, *, finished: bool = True) -> Post:
        post = Post(kind, council.id, author, content, [next(self._ids)], finished=finished)
        self.posts.append(post)
        return post

    def _post(self, kind: str, council: Council, author: str, content: str, recovering: bool) -> list[int]:
        if recovering:  # like looking at the thread's history: it is already there
            for post in self.posts:
                if (post.kind, post.council_id, post.author, post.content) == (kind, council.id, author, content):
                    return post.ids
        return list(self._new(kind, council, author, content).ids)

    async def post_scoreboard(self, council: Council, board: Scoreboard, *, recovering: bool = False) -> list[int]:
        self.scoreboards.append(board)
        return self._post("scoreboard", council, "system", scoreboard_text(board), recovering)

    # Moderation: no moderators' channel here; deletions are recorded.
    def progress(self, council: Council, speaking: tuple[str, ...]) -> None:
        self.progress_calls.append((council.id, speaking))

    async def post_escalation(self, council: Council, escalation: Escalation, policy: Policy) -> tuple[int, int] | None:
        return None

    async def escalation_changed(self, council: Council, escalation: Escalation) -> None:
        return None

    async def delete_messages(self, council: Council, message_ids: list[int]) -> None:
        self.deleted.extend(message_ids)

    async def council_finished(self, council: Council) -> None:
        self.finished.append(council)
        self._done.setdefault(council.id, asyncio.Event()).set()

    async def wait_finished(self, council_id: int, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._done.setdefault(council_id, asyncio.Event()).wait(), timeout)

    def transcript(self, council_id: int) -> list[tuple[str, str]]:
        return [(p.author, p.content) for p in self.posts if p.council_id == council_id]
