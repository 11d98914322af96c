"""Shared fixtures: a migrated database (SQLite, and PostgreSQL when TEST_POSTGRES_URL is set),
the loopback fake provider server, and a members catalog pointing at it. Also the Hypothesis profile
of the property tests."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator, Generator
from dataclasses import replace
from pathlib import Path

import aiohttp
import hypothesis
import pytest

from bot.catalog import Catalog
from storage.database import Database
from storage.scratch import scratch_database
from tests.council_helpers import start_harness
from tests.fakes.provider_server import FakeProviderServer
from tests.harness import DiscordHarness

# Property tests: a bounded number of examples each, no deadline (the machine is shared, timings vary),
# a fresh seed every run, printed in the header and under any failing property test, so that
# `pytest --hypothesis-seed=N` replays the run; print_blob also prints a failure's exact example.
hypothesis.settings.register_profile(
    "council", max_examples=200, deadline=None, print_blob=True, derandomize=False, database=None
)
hypothesis.settings.load_profile("council")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--hypothesis-seed") is None:  # chosen here, before Hypothesis's plugin reads it
        config.option.hypothesis_seed = str(random.randrange(2**32))


def pytest_report_header(config: pytest.Config) -> str:
    return f"hypothesis seed: {config.getoption('--hypothesis-seed')} (replay with --hypothesis-seed=<seed>)"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and hasattr(getattr(item, "obj", None), "hypothesis"):
        seed = item.config.getoption("--hypothesis-seed")
        report.sections.append(("Hypothesis seed", f"replay with: pytest {item.nodeid} --hypothesis-seed={seed}"))
    return report


# Shaped like real keys, so the privacy rules recognise them, and easy to spot in any output.
TEST_KEYS = {"TEST_ANTHROPIC_KEY": "sk-ant-api03-" + "Zq9" * 20, "TEST_OPENAI_KEY": "sk-proj-" + "Tk7" * 16}


def _backends() -> list[str]:
    return ["sqlite", "postgresql"]


@pytest.fixture(params=_backends())
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A freshly migrated database; on PostgreSQL each test gets a schema of its own."""
    url = None
    if request.param == "postgresql":
        url = os.environ.get("TEST_POSTGRES_URL")
        if not url:
            pytest.skip("TEST_POSTGRES_URL is not set")
    async with scratch_database(url, tmp_path) as database:
        yield database


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'council.db'}")
    await database.migrate()
    yield database
    await database.close()


@pytest.fixture
async def provider_server() -> AsyncIterator[FakeProviderServer]:
    async with FakeProviderServer() as server:
        yield server


@pytest.fixture
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp session for provider clients called directly (the bot makes its own)."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def provider_keys(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in TEST_KEYS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TEST_MISSING_KEY", raising=False)
    return TEST_KEYS


def catalog_with(base_url: str, name: str, **changes: object) -> Catalog:
    """The test catalog with one member's entry changed (e.g. Claude with `vision=True`)."""
    return Catalog(tuple(replace(m, **changes) if m.name == name else m for m in make_catalog(base_url)))  # type: ignore[arg-type]


def make_catalog(base_url: str) -> Catalog:
    """Claude over the Anthropic format, DeepSeek and Llama over the OpenAI format, all on the fake server;
    Gemini needs a key nobody set."""
    return Catalog.from_mapping(
        {
            "member": [
                {
                    "name": "Claude",
                    "role": "the Coordinator",
                    "coordinator": True,
                    "provider": "anthropic",
                    "model": "claude-test",
                    "base_url": base_url,
                    "api_key_env": "TEST_ANTHROPIC_KEY",
                    "avatar_url": "https://example.org/claude.png",
                    "persona": "You are Claude.",
                    "price_input_per_mtok": 3.0,
                    "price_output_per_mtok": 15.0,
                },
                {
                    "name": "DeepSeek",
                    "role": "the Philosopher",
                    "provider": "openai",
                    "model": "deepseek-test",
                    "base_url": f"{base_url}/v1",
                    "api_key_env": "TEST_OPENAI_KEY",
                    "avatar_url": "https://example.org/deepseek.png",
                    "temperature": 0.8,
                    "persona": "You are DeepSeek.",
                },
                {
                    "name": "Llama",
                    "role": "the Realist",
                    "provider": "openai",
                    "model": "llama-test",
                    "base_url": f"{base_url}/v1",
                    "persona": "You are Llama.",
                },
                {
                    "name": "Gemini",
                    "role": "the Optimist",
                    "provider": "openai",
                    "model": "gemini-test",
                    "base_url": f"{base_url}/v1",
                    "api_key_env": "TEST_MISSING_KEY",
                    "persona": "You are Gemini.",
                },
            ]
        },
        source="test catalog",
    )


@pytest.fixture
def discord_transport() -> str:
    """How the harness serves the bot: "in-process" (the default), or "http" over loopback, through
    discord.py's own request code. Tests run in both with `@both_transports`."""
    return "in-process"


@pytest.fixture
async def harness(
    monkeypatch: pytest.MonkeyPatch, sqlite_db: Database, catalog: Catalog, tmp_path: Path, discord_transport: str
) -> AsyncIterator[DiscordHarness]:
    """The real bot, on SQLite, driven through the Discord harness."""
    started = await start_harness(monkeypatch, sqlite_db, catalog, tmp_path, http=discord_transport == "http")
    yield started
    await started.close()


@pytest.fixture
async def rating_harness(
    monkeypatch: pytest.MonkeyPatch, sqlite_db: Database, catalog: Catalog, tmp_path: Path
) -> AsyncIterator[DiscordHarness]:
    """The real bot with automatic peer ratings on, as the product ships."""
    started = await start_harness(monkeypatch, sqlite_db, catalog, tmp_path, peer_ratings=True)
    yield started
    await started.close()


@pytest.fixture
def catalog(provider_server: FakeProviderServer, provider_keys: dict[str, str]) -> Catalog:
    return make_catalog(provider_server.base_url)
