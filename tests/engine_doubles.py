"""A publisher that records what the engine would show, for engine tests without Discord."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

from bot.council.seats import Seat
from storage.models import Council


@dataclass
class Post:
    kind: str  # "member" or "notice"
    council_id: int
    author: str
    content: str
    ids: list[int]


@dataclass
class RecordingPublisher:
    posts: list[Post] = field(default_factory=list)
    finished: list[Council] = field(default_factory=list)
    post_delay: float = 0.0
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1000))
    _done: dict[int, asyncio.Event] = field(default_factory=dict)

    async def post_member_message(
        self, council: Council, seat: Seat, content: str, *, recovering: bool = False
    ) -> list[int]:
        await asyncio.sleep(self.post_delay)
        return self._post("member", council, seat.name, content, recovering)

    async def post_notice(self, council: Council, text: str, *, recovering: bool = False) -> list[int]:
        return self._post("notice", council, "system", text, recovering)

    def _post(self, kind: str, council: Council, author: str, content: str, recovering: bool) -> list[int]:
        if recovering:  # like looking at the thread's history: it is already there
            for post in self.posts:
                if (post.kind, post.council_id, post.author, post.content) == (kind, council.id, author, content):
                    return post.ids
        ids = [next(self._ids)]
        self.posts.append(Post(kind, council.id, author, content, ids))
        return ids

    async def council_finished(self, council: Council) -> None:
        self.finished.append(council)
        self._done.setdefault(council.id, asyncio.Event()).set()

    async def wait_finished(self, council_id: int, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._done.setdefault(council_id, asyncio.Event()).wait(), timeout)

    def transcript(self, council_id: int) -> list[tuple[str, str]]:
        return [(p.author, p.content) for p in self.posts if p.council_id == council_id]
