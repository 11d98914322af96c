"""Several API keys per member (bot/providers/keys.py, bot/catalog.py): calls spread over the keys, a refused key is
set aside, a spent one rests, the member fails only when every key is out, and no key ever shows. The members call
the fake provider over loopback HTTP, which refuses and runs out of keys in each API's own wire format."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.catalog import Catalog, CatalogError, MemberSpec
from bot.providers.base import ChatRequest, ChatTurn, Completion, ProviderError, StreamDelta
from bot.providers.keys import QUOTA_REST
from bot.providers.pool import ProviderPool
from storage.database import Database
from tests.conftest import make_catalog
from tests.council_helpers import convene, member_posts, start_harness
from tests.fakes.provider_server import FakeProviderServer

KEYS = ("sk-first-0123456789", "sk-second-0123456789", "sk-third-0123456789")
ENV = {"RING_KEY_A": KEYS[0], "RING_KEY_B": f"{KEYS[1]}, {KEYS[2]}\n"}


def member(base_url: str, provider: str = "openai", **fields: Any) -> MemberSpec:
    entry = {
        "name": "Ring",
        "provider": provider,
        "model": "ring-test",
        "base_url": f"{base_url}/v1" if provider == "openai" else base_url,
        "api_key_env": ["RING_KEY_A", "RING_KEY_B"],
        "persona": "A member with several keys.",
        **fields,
    }
    if provider == "anthropic":
        entry.pop("temperature", None)
    return Catalog.from_mapping({"member": [entry]}).members[0]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def request() -> ChatRequest:
    return ChatRequest(model="ring-test", system="Be brief.", turns=(ChatTurn("user", "Parks?"),), max_output_tokens=50)


def keys_used(provider_server: FakeProviderServer) -> list[str]:
    used = []
    for recorded in provider_server.requests:
        headers = {name.lower(): value for name, value in recorded.headers.items()}
        used.append(headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer "))
    return used


async def answer(client: Any, *, stream: bool) -> Completion:
    if not stream:
        return await client.complete(request(), timeout=5)
    items = [item async for item in client.stream(request(), timeout=5)]
    *deltas, final = items
    assert all(isinstance(delta, StreamDelta) for delta in deltas) and isinstance(final, Completion)
    return final


def test_a_member_names_several_variables_and_a_variable_holds_several_keys() -> None:
    spec = member("http://127.0.0.1:1")
    assert spec.key_envs == ("RING_KEY_A", "RING_KEY_B") and spec.key_names == "RING_KEY_A, RING_KEY_B"
    assert spec.api_keys(ENV) == KEYS
    assert spec.api_keys({"RING_KEY_A": KEYS[0], "RING_KEY_B": KEYS[0]}) == (KEYS[0],)  # each key once
    assert spec.is_available({"RING_KEY_B": KEYS[1]}) and not spec.is_available({})
    assert spec.api_key(ENV) == KEYS[0]


@pytest.mark.parametrize("value", [[], ["lower"], ["A_KEY", "A_KEY"], ["A_KEY", 3], "has space"])
def test_a_wrong_list_of_variables_is_refused(value: object) -> None:
    entry = {"name": "X", "provider": "openai", "model": "m", "base_url": "https://x.org/v1", "persona": "p"}
    with pytest.raises(CatalogError, match="api_key_env must be"):
        Catalog.from_mapping({"member": [{**entry, "api_key_env": value}]})


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_calls_spread_over_the_keys_and_outlast_a_refused_and_a_spent_one(
    provider_server: FakeProviderServer,
    http_session: aiohttp.ClientSession,
    provider: str,
    stream: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    pool = ProviderPool(http_session, ENV, clock=clock)
    spec = member(provider_server.base_url, provider)
    client = pool(spec)

    for _ in range(6):
        await answer(client, stream=stream)
    assert Counter(keys_used(provider_server)) == {key: 2 for key in KEYS}  # in turn

    provider_server.revoked_keys.add(KEYS[0])
    provider_server.spent_keys.add(KEYS[1])
    provider_server.requests.clear()
    with caplog.at_level(logging.WARNING, logger="bot.providers.keys"):
        for _ in range(4):
            await answer(client, stream=stream)
    used = keys_used(provider_server)
    assert used.count(KEYS[0]) == 1 and used.count(KEYS[1]) == 1  # each failed once, then was left alone
    assert used[2:] == [KEYS[2]] * (len(used) - 2)
    logged = caplog.text
    assert "key 1 of 3 set aside" in logged and "key 2 of 3 rests" in logged
    assert not any(key in logged for key in KEYS)
    assert pool.key_status(spec).keys == 3 and pool.key_status(spec).usable == 1
    assert pool.stats.key_failures[("Ring", 1, "auth")] == 1 and pool.stats.key_failures[("Ring", 2, "quota")] == 1
    assert pool.stats.key_calls[("Ring", 3)] >= 4

    # The spent key comes back after its rest; the refused one stays aside until a restart.
    provider_server.spent_keys.clear()
    clock.now += QUOTA_REST + 1
    assert pool.key_status(spec).usable == 2


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_the_member_fails_only_when_every_key_is_out_and_says_so_without_a_key(
    provider_server: FakeProviderServer, http_session: aiohttp.ClientSession, provider: str
) -> None:
    pool = ProviderPool(http_session, ENV, clock=Clock())
    client = pool(member(provider_server.base_url, provider))
    provider_server.revoked_keys.update(KEYS[:2])
    provider_server.spent_keys.add(KEYS[2])
    with pytest.raises(ProviderError) as caught:
        await client.complete(request(), timeout=5)
    error = caught.value
    assert error.kind == "quota"
    assert "none of its 3 keys can answer now" in error.message and "2 refused" in error.message
    assert not any(key in str(error) for key in KEYS)
    requests = len(provider_server.requests)
    with pytest.raises(ProviderError) as again:  # nothing usable: no request is made at all
        await client.complete(request(), timeout=5)
    assert again.value.kind == "quota" and len(provider_server.requests) == requests


async def test_a_member_with_one_key_is_called_as_before(
    provider_server: FakeProviderServer, http_session: aiohttp.ClientSession
) -> None:
    pool = ProviderPool(http_session, {"RING_KEY_A": KEYS[0]})
    spec = member(provider_server.base_url)
    await pool(spec).complete(request(), timeout=5)
    assert keys_used(provider_server) == [KEYS[0]] and pool.key_status(spec).keys == 1
    assert not pool.stats.key_calls


async def test_a_council_outlasts_a_refused_key_and_shows_the_keys_by_count_only(
    monkeypatch: pytest.MonkeyPatch,
    sqlite_db: Database,
    provider_server: FakeProviderServer,
    provider_keys: dict[str, str],
    tmp_path: Path,
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    entries = [
        {
            "name": "Ring",
            "provider": "openai",
            "model": "ring-test",
            "base_url": f"{provider_server.base_url}/v1",
            "api_key_env": ["RING_KEY_A", "RING_KEY_B"],
            "persona": "A member with several keys.",
        }
    ]
    catalog = Catalog((*make_catalog(provider_server.base_url).members, *Catalog.from_mapping({"member": entries})))
    harness = await start_harness(monkeypatch, sqlite_db, catalog, tmp_path)
    try:
        port = await harness.bot.start_health(0)  # type: ignore[attr-defined]
        provider_server.revoked_keys.add(KEYS[0])
        await convene(harness, members="Ring", rounds=2)
        [thread] = harness.threads
        assert [who for who, _ in member_posts(harness, thread.id)] == ["Ring", "Ring"]

        listed = await harness.slash(harness.members["user"], "council", "members")
        fields = {field["name"]: field["value"] for field in listed.embeds[0]["fields"]}
        ring = next(value for name, value in fields.items() if "Ring" in name)
        assert "3 keys, 2 usable now (RING_KEY_A, RING_KEY_B)" in ring
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as response:
            metrics = set((await response.text()).splitlines())
        assert 'ai_council_provider_key_failures_total{member="Ring",key="1",kind="auth"} 1' in metrics
        assert 'ai_council_provider_key_calls_total{member="Ring",key="1"} 1' in metrics
        shown = str(listed.embeds) + "\n".join(metrics)
        assert not any(key in shown for key in KEYS)
    finally:
        await harness.close()
