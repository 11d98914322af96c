"""Reasoning kept apart from the answer: Claude's extended thinking (adaptive or with a budget), DeepSeek's and vLLM's
`reasoning_content`, OpenRouter's and Groq's `reasoning`, and <think> tags before the answer. The clients call the
fake provider over loopback HTTP, in each wire format, streaming and not; the council shows only the answers, the
other members never read the reasoning, and anyone who may read the council can ask for it privately."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.catalog import Catalog, CatalogError
from bot.providers.anthropic import AnthropicClient
from bot.providers.base import ChatRequest, ChatTurn, Completion, ProviderError, StreamDelta
from bot.providers.openai_compat import OpenAICompatClient
from bot.providers.reasoning import InlineThinking, split
from storage.database import Database
from tests.conftest import catalog_with
from tests.council_helpers import convene, member_posts, start_harness
from tests.fakes.provider_server import FakeProviderServer
from tests.test_engine import prompt_text

THOUGHT = "First, weigh the cost of parking against the value of green space. Then answer briefly."
ANSWER = "Turn a third of the lots into parks, starting with the emptiest."
KEY = "sk-reasoning-test"


def ask(thinking: str | int | None = None, max_tokens: int = 4000) -> ChatRequest:
    return ChatRequest(
        model="m1",
        system="Be brief.",
        turns=(ChatTurn("user", "Parks?"),),
        max_output_tokens=max_tokens,
        thinking=thinking,
    )


async def answer(client: AnthropicClient | OpenAICompatClient, request: ChatRequest, *, stream: bool) -> Completion:
    if not stream:
        return await client.complete(request, timeout=5)
    items = [item async for item in client.stream(request, timeout=5)]
    *deltas, final = items
    assert isinstance(final, Completion)
    shown = "".join(delta.text for delta in deltas if isinstance(delta, StreamDelta))
    assert shown == final.text  # what streamed is the answer, nothing of the reasoning
    return final


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("thinking", "sent"), [("adaptive", {"type": "adaptive"}), (2048, {"type": "enabled", "budget_tokens": 2048})]
)
async def test_claudes_thinking_is_asked_for_and_kept_apart(
    provider_server: FakeProviderServer,
    http_session: aiohttp.ClientSession,
    stream: bool,
    thinking: str | int,
    sent: dict[str, object],
) -> None:
    provider_server.script("m1", ANSWER, reasoning=THOUGHT)
    client = AnthropicClient(http_session, base_url=provider_server.base_url, api_key=KEY)
    completion = await answer(client, ask(thinking), stream=stream)
    assert provider_server.requests[-1].json["thinking"] == sent
    assert completion.text == ANSWER and completion.reasoning == THOUGHT
    assert completion.output_tokens == len(ANSWER.split()) + len(THOUGHT.split())  # thinking is paid for


@pytest.mark.parametrize("stream", [False, True])
async def test_claude_without_thinking_neither_asks_nor_reasons(
    provider_server: FakeProviderServer, http_session: aiohttp.ClientSession, stream: bool
) -> None:
    provider_server.script("m1", ANSWER, reasoning=THOUGHT)
    completion = await answer(
        AnthropicClient(http_session, base_url=provider_server.base_url, api_key=KEY), ask(), stream=stream
    )
    assert "thinking" not in provider_server.requests[-1].json
    assert completion.text == ANSWER and completion.reasoning == ""


async def test_the_fake_refuses_a_thinking_budget_the_real_api_refuses(
    provider_server: FakeProviderServer, http_session: aiohttp.ClientSession
) -> None:
    client = AnthropicClient(http_session, base_url=provider_server.base_url, api_key=KEY)
    for request in (ask(2048, max_tokens=1024), ask(512)):
        with pytest.raises(ProviderError) as caught:
            await client.complete(request, timeout=5)
        assert caught.value.kind == "http" and caught.value.status == 400


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("field", ["reasoning_content", "reasoning", "think_tags"])
async def test_openai_compatible_reasoning_is_kept_apart_in_every_shape(
    provider_server: FakeProviderServer, http_session: aiohttp.ClientSession, field: str, stream: bool
) -> None:
    provider_server.script("m1", ANSWER, reasoning=THOUGHT, reasoning_field=field)
    client = OpenAICompatClient(http_session, base_url=f"{provider_server.base_url}/v1", api_key=KEY)
    completion = await answer(client, ask(), stream=stream)
    assert completion.text == ANSWER and completion.reasoning == THOUGHT
    assert "thinking" not in provider_server.requests[-1].json


def test_the_catalog_turns_thinking_on_for_claude_only_and_within_its_limit() -> None:
    base = {"name": "Opus", "provider": "anthropic", "model": "claude-opus-4-7", "base_url": "https://x.org"}
    entry = {**base, "persona": "p", "max_output_tokens": 8000}
    assert Catalog.from_mapping({"member": [{**entry, "thinking": "adaptive"}]}).members[0].thinking == "adaptive"
    assert Catalog.from_mapping({"member": [{**entry, "thinking": 4096}]}).members[0].thinking == 4096
    for wrong in (512, 8000, True, "deep"):
        with pytest.raises(CatalogError, match="thinking must be"):
            Catalog.from_mapping({"member": [{**entry, "thinking": wrong}]})
    other = {**entry, "provider": "openai", "model": "deepseek-reasoner", "thinking": "adaptive"}
    with pytest.raises(CatalogError, match="thinking is for anthropic members"):
        Catalog.from_mapping({"member": [other]})


def streamed(splitter: InlineThinking, content: str, cuts: list[int]) -> str:
    """What `splitter` shows of `content` arriving in pieces of the sizes in `cuts` (then the rest)."""
    shown, position = [], 0
    for size in cuts:
        shown.append(splitter.feed(content[position : position + size]))
        position += size
    return "".join([*shown, splitter.feed(content[position:]), splitter.finish()])


@settings(max_examples=300, deadline=None)
@given(st.text(), st.text().filter(lambda r: "</think>" not in r), st.lists(st.integers(1, 9), max_size=40))
def test_think_tags_are_split_from_the_answer_however_the_stream_is_cut(
    answer: str, thought: str, cuts: list[int]
) -> None:
    splitter = InlineThinking()
    assert streamed(splitter, f"<think>{thought}</think>{answer}", cuts) == answer.lstrip()
    assert splitter.reasoning == thought.strip()


@settings(max_examples=300, deadline=None)
@given(st.text(), st.lists(st.integers(1, 9), max_size=40))
def test_an_answer_without_think_tags_is_shown_exactly(content: str, cuts: list[int]) -> None:
    if content.lstrip().startswith("<think>"):
        return
    splitter = InlineThinking()
    assert streamed(splitter, content, cuts) == content and splitter.reasoning == ""
    assert split(content) == (content, "")


# -- in a council -----------------------------------------------------------------------------------------------


async def test_a_council_shows_answers_only_and_reasoning_on_request(
    monkeypatch: pytest.MonkeyPatch,
    sqlite_db: Database,
    provider_server: FakeProviderServer,
    provider_keys: dict[str, str],
    tmp_path: Path,
) -> None:
    catalog = catalog_with(provider_server.base_url, "Claude", thinking="adaptive")
    harness = await start_harness(monkeypatch, sqlite_db, catalog, tmp_path)
    try:
        long_thought = " ".join(f"Step {n}: consider the buses." for n in range(900))
        provider_server.script("claude-test", "Claude: parks, carefully.", reasoning=THOUGHT)
        provider_server.script("deepseek-test", "DeepSeek: parks, for the children.", reasoning=long_thought)
        await convene(harness, members="Claude, DeepSeek", rounds=2)
        [thread] = harness.threads

        shown = member_posts(harness, thread.id)
        assert [text for _, text in shown] == ["Claude: parks, carefully.", "DeepSeek: parks, for the children."] * 2
        every = "\n".join(post.content or "" for post in harness.posts_in(thread.id))
        assert "weigh the cost" not in every and "consider the buses" not in every
        # The other members never read a reasoning; Claude's request asked for thinking, DeepSeek's did not.
        for request in provider_server.requests:
            assert "weigh the cost" not in prompt_text(request.json) and "consider the buses" not in prompt_text(
                request.json
            )
        assert all(
            r.json.get("thinking") == {"type": "adaptive"} for r in provider_server.requests if r.model == "claude-test"
        )

        user = harness.members["user"]
        claude_post, deepseek_post = harness.posts_in(thread.id, kinds=("webhook",))[:2]
        details = await harness.context_menu(user, "Message details", claude_post)
        assert details.ephemeral
        reasoning = next(embed for embed in details.embeds if embed["title"] == "Claude's reasoning")
        assert reasoning["description"] == THOUGHT
        long = await harness.context_menu(user, "Message details", deepseek_post)
        assert long.ephemeral and long.response is not None
        [name] = long.response.attachments
        assert name.startswith("reasoning-") and long.response.files[name].decode("utf-8") == long_thought

        exported = await harness.slash(user, "council", "export", channel=thread)
        record = json.loads(exported.response.files["council-1.json"])  # type: ignore[union-attr]
        by_author = {line["author"]: line["reasoning"] for line in record["messages"] if line["kind"] == "ai"}
        assert by_author == {"Claude": THOUGHT, "DeepSeek": long_thought}
    finally:
        await harness.close()
