"""What real providers say, heard by the real bot driven as Discord would: a reply cut at the member's output
limit shows as cut in the thread, and the first-token limit of the settings reaches the providers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bot.catalog import Catalog
from storage.database import Database
from tests.council_helpers import convene, member_posts, start_harness
from tests.fakes.provider_server import FakeProviderServer

LONG = "Parks cool the streets and they cost money every year to keep"


async def test_a_reply_cut_at_the_limit_shows_as_cut_in_the_thread(
    monkeypatch: pytest.MonkeyPatch,
    sqlite_db: Database,
    catalog: Catalog,
    tmp_path: Path,
    provider_server: FakeProviderServer,
) -> None:
    members = Catalog(tuple(replace(m, max_output_tokens=4) if m.name == "DeepSeek" else m for m in catalog))
    provider_server.script("deepseek-test", LONG)
    harness = await start_harness(monkeypatch, sqlite_db, members, tmp_path)
    try:
        await convene(harness, members="DeepSeek, Llama", rounds=1)
        [thread] = harness.threads
        assert member_posts(harness, thread.id) == [
            ("DeepSeek", "Parks cool the streets\n-# ✂️ cut at DeepSeek's output limit (4 tokens)"),
            ("Llama", "llama-test reply #1"),
        ]
    finally:
        await harness.close()


async def test_the_first_token_limit_of_the_settings_reaches_the_providers(
    monkeypatch: pytest.MonkeyPatch,
    sqlite_db: Database,
    catalog: Catalog,
    tmp_path: Path,
    provider_server: FakeProviderServer,
) -> None:
    provider_server.script("deepseek-test", LONG, delay=5)  # nothing at all, not even the headers
    harness = await start_harness(
        monkeypatch,
        sqlite_db,
        catalog,
        tmp_path,
        provider_first_token_timeout=0.3,  # type: ignore[arg-type]
        provider_idle_timeout=0.3,  # type: ignore[arg-type]
    )
    try:
        await convene(harness, members="DeepSeek, Llama", rounds=1)
        [thread] = harness.threads
        notices = [p.content for p in harness.posts_in(thread.id) if "could not answer" in (p.content or "")]
        assert len(notices) == 1
        # Asked for whole (the server's default policy screens a reply before it is shown): no reply at all.
        assert "DeepSeek: no reply within 0.3 s (after 3 attempts)" in notices[0]
        assert member_posts(harness, thread.id) == [("Llama", "llama-test reply #1")]
    finally:
        await harness.close()
