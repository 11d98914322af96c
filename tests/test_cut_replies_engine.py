"""A reply cut at the member's output limit, through the engine: the thread, the stored line (so the export)
and the other members' prompts all say it was cut; a member the catalog lets continue finishes its reply."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest

from bot.catalog import Catalog
from bot.council.engine import CouncilEngine
from bot.council.publisher import cut_at_limit
from bot.council.reports import export_json, export_markdown, load_record
from bot.providers.pool import ProviderPool
from storage import repository as repo
from storage.database import Database
from tests.engine_doubles import RecordingPublisher
from tests.fakes.provider_server import FakeProviderServer
from tests.test_engine import convene, prompt_text

LONG = "Parks cool the streets and they cost money every year to keep"
NOTE = "-# ✂️ cut at DeepSeek's output limit (4 tokens)"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def limited(catalog: Catalog, **fields: object) -> Catalog:
    """The test catalog with DeepSeek allowed four tokens a reply."""
    return Catalog(
        tuple(replace(m, max_output_tokens=4, **fields) if m.name == "DeepSeek" else m for m in catalog)  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("stream", [False, True])
async def test_a_cut_reply_says_so_where_everyone_reads_it(
    stream: bool,
    db: Database,
    catalog: Catalog,
    session: aiohttp.ClientSession,
    provider_server: FakeProviderServer,
) -> None:
    provider_server.script("deepseek-test", LONG)
    publisher = RecordingPublisher()
    engine = CouncilEngine(
        db, limited(catalog), ProviderPool(session), publisher, provider_timeout=5, stream_replies=stream
    )
    try:
        council_id = await convene(engine, "DeepSeek, Llama", rounds=1)
        await publisher.wait_finished(council_id)
    finally:
        await engine.shutdown()

    shown = f"Parks cool the streets\n{NOTE}"
    assert publisher.transcript(council_id)[:2] == [("DeepSeek", shown), ("Llama", "llama-test reply #1")]
    [line, _] = await repo.transcript(db, council_id)
    assert line.content == shown and line.visibility == "visible" and line.tokens_out == 4
    # Llama reads DeepSeek's words as cut, not as a finished thought.
    llama = next(r.json for r in provider_server.requests if r.model == "llama-test")
    assert NOTE in prompt_text(llama)
    council = await repo.get_council(db, council_id)
    assert council is not None
    record = await load_record(db, limited(catalog), council)
    assert NOTE in export_markdown(record) and "cut at DeepSeek" in export_json(record)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_member_allowed_to_continue_finishes_its_reply(
    stream: bool,
    db: Database,
    catalog: Catalog,
    session: aiohttp.ClientSession,
    provider_server: FakeProviderServer,
) -> None:
    def model(body: dict) -> str:
        messages = body["messages"]
        said = messages[-2]["content"] if messages[-2]["role"] == "assistant" and len(messages) > 2 else ""
        return LONG[len(said) :] if messages[-1]["content"].startswith("Your reply was cut off") else LONG

    provider_server.script("deepseek-test", model)
    publisher = RecordingPublisher()
    members = limited(catalog, max_continuations=3)
    engine = CouncilEngine(db, members, ProviderPool(session), publisher, provider_timeout=5, stream_replies=stream)
    try:
        council_id = await convene(engine, "DeepSeek, Llama", rounds=1)
        await publisher.wait_finished(council_id)
    finally:
        await engine.shutdown()

    assert publisher.transcript(council_id)[0] == ("DeepSeek", LONG)
    assert len([r for r in provider_server.requests if r.model == "deepseek-test"]) == 3  # 4 + 4 + 4 words
    [line, _] = await repo.transcript(db, council_id)
    assert line.content == LONG and line.tokens_out == 12


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("half a wor", "half a wor\n-# ✂️ cut at Ada's output limit (9 tokens)"),
        ("trailing space   \n", "trailing space\n-# ✂️ cut at Ada's output limit (9 tokens)"),
        # A cut inside a code block: the block is closed, so the note is not shown as code.
        ("Look:\n```python\nx = 1", "Look:\n```python\nx = 1\n```\n-# ✂️ cut at Ada's output limit (9 tokens)"),
        ("```a```\nthen", "```a```\nthen\n-# ✂️ cut at Ada's output limit (9 tokens)"),
    ],
)
def test_the_note_is_a_line_of_its_own_outside_any_code_block(text: str, expected: str) -> None:
    assert cut_at_limit(text, "Ada", 9) == expected
