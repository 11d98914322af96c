"""Several processes, each serving a range of shards on one database: who runs which council."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.app import CouncilBot, ShardedCouncilBot, bot_class
from bot.catalog import Catalog
from bot.council.engine import CouncilEngine
from bot.providers.pool import ProviderPool
from bot.settings import Settings, SettingsError
from storage import repository as repo
from storage.database import Database
from tests.engine_doubles import RecordingPublisher
from tests.fakes.provider_server import FakeProviderServer

SHARD_0_GUILD = 4 << 22  # (id >> 22) % 2 == 0
SHARD_1_GUILD = 5 << 22  # (id >> 22) % 2 == 1


def settings(**env: str) -> Settings:
    return Settings.from_env({"DISCORD_TOKEN": "t", **env})


def test_shard_settings() -> None:
    assert (settings().shard_count, settings().shard_ids) == (None, None)
    assert (settings(SHARD_COUNT="4").shard_count, settings(SHARD_COUNT="4").shard_ids) == (4, None)
    split = settings(SHARD_COUNT="4", SHARD_IDS="3, 1")
    assert (split.shard_count, split.shard_ids) == (4, (1, 3))
    for bad, message in [
        ({"SHARD_IDS": "0"}, "SHARD_IDS needs SHARD_COUNT"),
        ({"SHARD_COUNT": "0"}, "at least 1"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "2"}, "from 0 to 1"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "one"}, "separated by commas"),
    ]:
        with pytest.raises(SettingsError, match=message):
            settings(**bad)


def test_each_process_owns_the_guilds_of_its_shards(tmp_path: Path, catalog: Catalog) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    first = bot_class(settings(SHARD_COUNT="2", SHARD_IDS="0"))(settings(SHARD_COUNT="2", SHARD_IDS="0"), catalog, db)
    second = bot_class(settings(SHARD_COUNT="2", SHARD_IDS="1"))(settings(SHARD_COUNT="2", SHARD_IDS="1"), catalog, db)
    alone = bot_class(settings())(settings(), catalog, db)
    assert isinstance(first, ShardedCouncilBot) and not isinstance(alone, ShardedCouncilBot)
    assert isinstance(alone, CouncilBot)
    assert (first.shard_count, first.shard_ids) == (2, [0])
    assert first.owns_guild(SHARD_0_GUILD) and not first.owns_guild(SHARD_1_GUILD)
    assert second.owns_guild(SHARD_1_GUILD) and not second.owns_guild(SHARD_0_GUILD)
    assert alone.owns_guild(SHARD_0_GUILD) and alone.owns_guild(SHARD_1_GUILD)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


async def test_a_restarted_process_resumes_only_its_own_shards_councils(
    db: Database, catalog: Catalog, session: aiohttp.ClientSession, provider_server: FakeProviderServer
) -> None:
    setup = CouncilEngine(db, catalog, ProviderPool(session), RecordingPublisher())
    plan = setup.plan(topic="Sharded", member_names="Llama", roles=None, rounds=1, mode="round-robin")
    ids = {}
    for guild in (SHARD_0_GUILD, SHARD_1_GUILD):
        council = await setup.create(plan, guild_id=guild, channel_id=1, convener_id=1, convener_name="Ada")
        await repo.set_council_thread(db, council.id, 1000 + council.id)
        await repo.transition_council(db, council.id, from_states=("starting",), to_state="running")
        ids[guild] = council.id

    publisher = RecordingPublisher()
    shard_1 = CouncilEngine(db, catalog, ProviderPool(session), publisher)
    resumed = await shard_1.resume_all(owns=lambda guild_id: (guild_id >> 22) % 2 == 1)
    assert resumed == [ids[SHARD_1_GUILD]]
    await publisher.wait_finished(ids[SHARD_1_GUILD])
    other = await repo.get_council(db, ids[SHARD_0_GUILD])
    assert other is not None and other.state == "running"  # left to the process of shard 0
    await shard_1.shutdown()
