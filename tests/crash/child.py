"""The council engine as its own process, for crash tests: real storage and providers, a file for Discord.

    python -m tests.crash.child --db URL [--schema NAME] --dir DIR --action convene|resume|race|approve:ID [--crash POINT]

`race` runs every running council to its end, like `resume`, for two processes started on the same
councils at once (tests/test_two_processes.py): ready, it writes DIR/ready and starts when the file `--go`
exists. `--schema` picks a PostgreSQL schema (a test's scratch one).

The "thread" is DIR/posts.jsonl, appended to like Discord would be; `recovering` posts look there
first, as the Discord publisher looks at the thread's history. `--crash POINT` makes the process
stop dead at that point (it writes DIR/at-crash-point and waits for the test's SIGKILL):

- `persisted:N`: right after the Nth member reply is stored, before it is posted;
- `posted:N`: right after the Nth member post reached the thread, before its id is recorded;
- `round:N`: when round N is about to start;
- `escalated:N`: right after escalation N is stored;
- `streamed:N`: right after the Nth streamed update reached the thread (with `--stream`).

With `--stream`, the server's policy is `notify` and replies are streamed: a reply's message is
created on its first words and edited (an `edit` record) as more arrive.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bot.council import leases
from bot.council.engine import CouncilEngine
from bot.council.publisher import NoHistory, PostProgress, StreamTrace, cut_text
from bot.council.seats import Seat
from bot.governance.gate import GovernanceGate, Policy
from bot.governance.rules import RuleBook
from bot.providers.pool import ProviderPool
from bot.providers.resilience import RetryPolicy
from bot.text import split_message
from storage import governance_repository as gov
from storage import repository as repo
from storage.database import Database
from storage.models import Council, Escalation
from tests.conftest import make_catalog


class FileThread(NoHistory):
    """A CouncilPublisher whose thread is a JSON-lines file that survives the process."""

    def __init__(self, directory: Path, crash: tuple[str, int] | None) -> None:
        self.posts = directory / "posts.jsonl"
        self.directory = directory
        self.crash = crash
        self.member_posts = 0
        self.stream_updates = 0
        self.finished = asyncio.Event()

    def _lines(self) -> list[dict[str, Any]]:
        if not self.posts.exists():
            return []
        return [json.loads(line) for line in self.posts.read_text().splitlines() if line.strip()]

    def _append(self, record: dict[str, Any]) -> int:
        record["id"] = len(self._lines()) + 1
        with self.posts.open("a") as file:
            file.write(json.dumps(record) + "\n")
            file.flush()
            os.fsync(file.fileno())
        return record["id"]

    async def _post(self, council: Council, kind: str, author: str, content: str, recovering: bool) -> list[int]:
        chunks = split_message(content) or ["…"]
        ids: list[int] = []
        if recovering:
            for line in self._lines():
                if len(ids) == len(chunks):
                    break
                if (line["kind"], line["author"], line["content"]) == (kind, author, chunks[len(ids)]):
                    ids.append(line["id"])
                elif ids:
                    ids = []
        for chunk in chunks[len(ids) :]:
            ids.append(self._append({"council": council.id, "kind": kind, "author": author, "content": chunk}))
        if kind == "member":
            self.member_posts += 1
            await stop_here(self, "posted", self.member_posts)
        return ids

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
        return await self._post(council, "member", seat.name, content, recovering)

    def progress(self, council: Council, speaking: tuple[str, ...]) -> None:
        return None

    async def post_notice(
        self,
        council: Council,
        text: str,
        *,
        recovering: bool = False,
        shown: Sequence[int] = (),
        progress: PostProgress | None = None,
    ) -> list[int]:
        return await self._post(council, "notice", "system", text, recovering)

    async def council_finished(self, council: Council) -> None:
        self._append({"council": council.id, "kind": "finished", "author": "system", "content": council.state})
        self.finished.set()

    async def open_stream(self, council: Council, seat: Seat, *, resume: StreamTrace | None = None) -> FileStream:
        message_id = None
        if resume is not None:
            recorded = list(resume.message_ids)
            unrecorded = [
                line["id"]
                for line in self._lines()
                if line["kind"] == "member" and line["author"] == seat.name and line["id"] > (resume.after_id or 0)
            ]
            message_id = (recorded or unrecorded or [None])[0]
        return FileStream(self, council, seat, message_id)

    async def post_escalation(self, council: Council, escalation: Escalation, policy: Policy) -> tuple[int, int]:
        return 1, self._append(
            {"council": council.id, "kind": "escalation", "author": "moderation", "content": str(escalation.id)}
        )

    async def escalation_changed(self, council: Council, escalation: Escalation) -> None:
        self._append({"council": council.id, "kind": "decided", "author": "moderation", "content": escalation.state})

    async def delete_messages(self, council: Council, message_ids: list[int]) -> None:
        self._append(
            {"council": council.id, "kind": "deleted", "author": "moderation", "content": json.dumps(message_ids)}
        )


class FileStream:
    """A MemberStream on the file: the message is created on the first words, then edited."""

    def __init__(self, thread: FileThread, council: Council, seat: Seat, message_id: int | None) -> None:
        self.thread, self.council, self.seat, self.message_id = thread, council, seat, message_id
        self.updates = 0

    def wants(self, text: str) -> bool:
        return bool(text.strip())

    def _show(self, content: str) -> list[int]:
        if self.message_id is None:
            record = {"council": self.council.id, "kind": "member", "author": self.seat.name, "content": content}
            self.message_id = self.thread._append(record)
        else:
            self.thread._append(
                {
                    "council": self.council.id,
                    "kind": "edit",
                    "author": self.seat.name,
                    "target": self.message_id,
                    "content": content,
                }
            )
        return [self.message_id]

    async def update(self, text: str) -> list[int] | None:
        ids = self._show(text.strip())
        self.thread.stream_updates += 1
        await stop_here(self.thread, "streamed", self.thread.stream_updates)
        return ids

    async def finish(self, text: str, *, cut_note: str | None = None) -> list[int]:
        return self._show((cut_text(text, cut_note) if cut_note else text).strip())

    async def close(self) -> None:
        return None


async def stop_here(thread: FileThread, point: str, count: int) -> None:
    if thread.crash == (point, count):
        (thread.directory / "at-crash-point").write_text(f"{point}:{count}")
        await asyncio.Event().wait()  # the test kills the process here


def install_crash_points(thread: FileThread) -> None:
    """Wrap the repository functions the engine calls, so the process can stop between two steps."""
    counts = {"persisted": 0, "escalated": 0}
    add_message, set_round, create_escalation = repo.add_message, repo.set_current_round, gov.create_escalation

    async def add_message_then_maybe_stop(db: Database, **fields: Any) -> Any:
        message, created = await add_message(db, **fields)
        if created and fields["author_kind"] == "ai":
            counts["persisted"] += 1
            await stop_here(thread, "persisted", counts["persisted"])
        return message, created

    async def set_round_then_maybe_stop(db: Database, council_id: int, round_number: int) -> None:
        await stop_here(thread, "round", round_number)
        await set_round(db, council_id, round_number)

    async def create_escalation_then_maybe_stop(db: Database, **fields: Any) -> Any:
        escalation = await create_escalation(db, **fields)
        counts["escalated"] += 1
        await stop_here(thread, "escalated", counts["escalated"])
        return escalation

    repo.add_message = add_message_then_maybe_stop  # type: ignore[assignment]
    repo.set_current_round = set_round_then_maybe_stop  # type: ignore[assignment]
    gov.create_escalation = create_escalation_then_maybe_stop  # type: ignore[assignment]


def started(go_file: str) -> bool:
    return Path(go_file).exists()


async def main(args: argparse.Namespace) -> int:
    if args.stale_leases:
        leases.RUNNER_LEASE = timedelta(0)
    directory = Path(args.dir)
    crash = (args.crash.split(":")[0], int(args.crash.split(":")[1])) if args.crash else None
    thread = FileThread(directory, crash)
    install_crash_points(thread)
    db = Database(args.db, connect_args={"server_settings": {"search_path": args.schema}} if args.schema else None)
    await db.migrate()
    catalog = make_catalog(os.environ["FAKE_PROVIDER_URL"])
    async with aiohttp.ClientSession() as session:
        pool = ProviderPool(session, retry=RetryPolicy(base_delay=0.01))
        engine = CouncilEngine(
            db,
            catalog,
            pool,
            thread,
            gate=GovernanceGate(db, RuleBook.load(), catalog, pool),
            stream_replies=args.stream,
        )
        assert engine.moderation is not None
        if args.action == "convene":
            await gov.update_guild_settings(
                db, 1, moderator_channel_id=1, policy_mode="notify" if args.stream else "hold"
            )
            plan = engine.plan(
                topic="Crash-proof councils",
                member_names="Claude, DeepSeek, Llama",
                roles=None,
                rounds=3,
                mode="round-robin",
            )
            council = await engine.create(plan, guild_id=1, channel_id=2, convener_id=3, convener_name="Ada")
            await engine.open(council.id, thread_id=99)
        elif args.action in ("resume", "race"):
            if args.go:
                (directory / "ready").touch()
                while not started(args.go):
                    await asyncio.sleep(0.01)
            await engine.resume_all()
        elif args.action.startswith("approve:"):
            await engine.moderation.decide(
                int(args.action.split(":")[1]), approve=True, moderator_id=7, moderator_name="Mod"
            )
        # Done when the council finished, or when it waits for a person (held for review).
        while args.action == "race" or not thread.finished.is_set():
            tasks = list(engine._tasks.values())
            if not tasks or all(engine.is_waiting(task) for task in tasks):
                break
            await asyncio.sleep(0.02)
        await engine.shutdown()
    await db.close()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--schema")
    parser.add_argument("--go")
    parser.add_argument("--dir", required=True)
    parser.add_argument("--action", required=True)
    parser.add_argument("--crash")
    parser.add_argument("--stream", action="store_true")
    # A runner lease that is always stale: both processes run the same councils, and only the post
    # claims keep each post single (as when one takes a council over from another still running it).
    parser.add_argument("--stale-leases", action="store_true")
    sys.exit(asyncio.run(main(parser.parse_args())))
