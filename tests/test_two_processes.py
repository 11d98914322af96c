"""Two real processes on one PostgreSQL database, both started on the same councils (two copies of the
bot with the same SHARD_IDS): every line reaches a thread exactly once, through one process or the other."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from pathlib import Path

import pytest

from storage import governance_repository as gov
from storage import repository as repo
from storage.scratch import scratch_database
from tests.fakes.provider_server import FakeProviderServer

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL")
COUNCILS = 4

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="TEST_POSTGRES_URL is not set")


async def start_process(
    directory: Path, schema: str, server: FakeProviderServer, keys: dict[str, str], *, stream: bool, stale: bool
) -> asyncio.subprocess.Process:
    env = {**os.environ, **keys, "FAKE_PROVIDER_URL": server.base_url, "PYTHONPATH": str(ROOT)}
    args = ["-m", "tests.crash.child", "--db", str(POSTGRES_URL), "--schema", schema, "--dir", str(directory)]
    args += ["--action", "race", "--go", str(directory.parent / "go")] + (["--stream"] if stream else [])
    args += ["--stale-leases"] if stale else []
    return await asyncio.create_subprocess_exec(sys.executable, *args, env=env, cwd=ROOT)


def records(directory: Path) -> list[dict[str, object]]:
    path = directory / "posts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


@pytest.mark.parametrize("stale", [False, True], ids=["leased", "both-run"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_two_processes_on_the_same_councils_post_every_line_once(
    tmp_path: Path, provider_server: FakeProviderServer, provider_keys: dict[str, str], stream: bool, stale: bool
) -> None:
    for model in ("claude-test", "deepseek-test", "llama-test"):
        provider_server.script(model, delay=0.02, chunk_delay=0.005)
    async with scratch_database(POSTGRES_URL, tmp_path) as db:
        assert db.schema is not None
        await gov.update_guild_settings(db, 1, policy_mode="notify" if stream else "hold")
        council_ids = []
        for n in range(COUNCILS):
            council = await repo.create_council(
                db,
                guild_id=1,
                channel_id=2,
                topic=f"Race number {n}",
                mode="round-robin",
                rounds=2,
                convener_id=3,
                convener_name="Ada",
                members=[("Claude", None), ("DeepSeek", None), ("Llama", None)],
            )
            await repo.set_council_thread(db, council.id, 500 + n)
            await repo.transition_council(db, council.id, from_states=("starting",), to_state="running")
            council_ids.append(council.id)

        directories = [tmp_path / "first", tmp_path / "second"]
        for directory in directories:
            directory.mkdir()
        processes = [
            await start_process(directory, db.schema, provider_server, provider_keys, stream=stream, stale=stale)
            for directory in directories
        ]
        try:
            async with asyncio.timeout(20):  # both are ready: start them together
                while not all((directory / "ready").exists() for directory in directories):
                    assert all(process.returncode is None for process in processes)
                    await asyncio.sleep(0.01)
            (tmp_path / "go").touch()
            codes = await asyncio.wait_for(asyncio.gather(*(process.wait() for process in processes)), 30)
        finally:
            for process in processes:
                if process.returncode is None:
                    process.kill()
        assert codes == [0, 0]

        # What each process put in its "thread", a streamed message's edits applied.
        shown: dict[tuple[int, int], dict[str, object]] = {}
        finished = []
        for index, directory in enumerate(directories):
            for record in records(directory):
                if record["kind"] in ("member", "notice"):
                    shown[(index, int(record["id"]))] = record  # type: ignore[call-overload]
                elif record["kind"] == "edit":
                    shown[(index, int(record["target"]))]["content"] = record["content"]  # type: ignore[call-overload]
                elif record["kind"] == "finished":
                    finished.append(record["council"])
        posts = Counter((r["council"], r["author"], r["content"]) for r in shown.values())
        assert [post for post, times in posts.items() if times > 1] == []
        expected = []
        for council_id in council_ids:
            lines = [line for line in await repo.transcript(db, council_id) if line.visibility == "visible"]
            assert [line.author_name for line in lines] == ["Claude", "DeepSeek", "Llama"] * 2
            assert all(line.discord_ids and line.posted_at is not None for line in lines)
            expected += [(council_id, line.author_name, line.content) for line in lines]
        assert sorted(posts) == sorted(expected)  # type: ignore[type-var]
        assert sorted(finished) == council_ids  # each council finished once, by one of them
        if stale:
            # Both may ask for the same turn (they race); whether they did in a given run is up to timing.
            assert len(provider_server.requests) >= len(expected)
        else:
            assert len(provider_server.requests) == len(expected)  # one process ran each council
