"""What each model accepts, as data: the rules table, the catalog's overrides, and the fake API that refuses
what the real one refuses (so a request shape production would reject fails here first)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.catalog import Catalog, CatalogError
from bot.providers import ChatRequest, ChatTurn, Completion, ModelRule, OpenAICompatClient, ProviderError
from bot.providers.model_rules import RULES, rule_for
from bot.providers.pool import ProviderPool
from tests.fakes.provider_server import FakeProviderServer

KEY = "sk-test-RULES-0123456789abcdef"


@pytest.fixture
async def server() -> AsyncIterator[FakeProviderServer]:
    async with FakeProviderServer(api_key=KEY) as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def request(model: str, temperature: float | None = 0.7) -> ChatRequest:
    return ChatRequest(
        model=model,
        system="Be brief.",
        turns=(ChatTurn("user", "Hello"),),
        max_output_tokens=300,
        temperature=temperature,
    )


@pytest.mark.parametrize(
    ("model", "param", "temperature"),
    [
        ("gpt-5", "max_completion_tokens", False),
        ("gpt-5-mini", "max_completion_tokens", False),
        ("gpt-5.1", "max_completion_tokens", False),
        ("gpt-5-nano-2025-08-07", "max_completion_tokens", False),
        ("o1", "max_completion_tokens", False),
        ("o3-mini", "max_completion_tokens", False),
        ("o4-mini", "max_completion_tokens", False),
        ("openai/gpt-5", "max_completion_tokens", False),  # behind a router
        ("GPT-5", "max_completion_tokens", False),
        ("gpt-5-chat-latest", "max_completion_tokens", True),
        ("gpt-5.1-chat-latest", "max_completion_tokens", True),
        ("gpt-4.1", "max_tokens", True),
        ("gpt-4o-mini", "max_tokens", True),
        ("deepseek-v4-flash", "max_tokens", True),
        ("gemini-2.5-flash", "max_tokens", True),
        ("llama-3.3-70b-versatile", "max_tokens", True),
        ("llama3.2", "max_tokens", True),
        ("olmo2", "max_tokens", True),  # an "o" and a digit, but not OpenAI's o-series
        ("gpt-50", "max_tokens", True),
    ],
)
def test_the_table_knows_openais_reasoning_models(model: str, param: str, temperature: bool) -> None:
    rule = rule_for("openai", model)
    assert (rule.token_limit_param, rule.accepts_temperature) == (param, temperature)


def test_anthropic_models_take_no_temperature_and_the_table_is_data() -> None:
    assert rule_for("anthropic", "claude-sonnet-4-6").accepts_temperature is False
    assert rule_for("anthropic", "gpt-5").token_limit_param == "max_tokens"  # rules are per wire format
    assert all(isinstance(rule, ModelRule) and (rule.accepts_temperature or rule.why) for rule in RULES)


# --- the fake refuses what OpenAI refuses ---------------------------------------------------------------


async def raw_post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with session.post(url, json=body, headers={"authorization": f"Bearer {KEY}"}) as resp:
        return resp.status, await resp.json()


@pytest.mark.parametrize("model", ["gpt-5", "gpt-5-mini", "o3-mini", "o1", "o4-mini", "gpt-5.1"])
async def test_the_fake_refuses_max_tokens_and_temperature_for_reasoning_models(
    model: str, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    url = server.base_url + "/v1/chat/completions"
    base = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    status, body = await raw_post(session, url, {**base, "max_tokens": 10})
    assert status == 400 and body["error"]["code"] == "unsupported_parameter" and body["error"]["param"] == "max_tokens"
    assert "Use 'max_completion_tokens' instead" in body["error"]["message"]
    status, body = await raw_post(session, url, {**base, "max_completion_tokens": 10, "temperature": 0.7})
    assert status == 400 and body["error"]["code"] == "unsupported_value"
    assert "Only the default (1) value is supported" in body["error"]["message"]
    assert (await raw_post(session, url, {**base, "max_completion_tokens": 10, "temperature": 1}))[0] == 200
    assert (await raw_post(session, url, {**base, "reasoning_effort": "low"}))[0] == 200
    # Other models keep taking both.
    assert (await raw_post(session, url, {**base, "model": "gpt-4.1", "max_tokens": 10, "temperature": 0.3}))[0] == 200


# --- the client follows the rule -------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", ["gpt-5-mini", "o3-mini"])
async def test_reasoning_models_get_max_completion_tokens_and_no_temperature(
    model: str, stream: bool, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    client = OpenAICompatClient(session, base_url=f"{server.base_url}/v1", api_key=KEY, name="GPT")
    if stream:
        items = [item async for item in client.stream(request(model), timeout=5)]
        result = items[-1]
    else:
        result = await client.complete(request(model), timeout=5)
    assert isinstance(result, Completion) and result.text == f"{model} reply #1"
    body = server.requests[0].json
    assert body["max_completion_tokens"] == 300
    assert "max_tokens" not in body and "temperature" not in body


async def test_without_the_rule_the_real_api_would_refuse_the_request(
    server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    plain = ModelRule("openai", "")  # what the client sent before it knew the rule
    client = OpenAICompatClient(session, base_url=f"{server.base_url}/v1", api_key=KEY, name="GPT", rule=plain)
    with pytest.raises(ProviderError) as caught:
        await client.complete(request("gpt-5"), timeout=5)
    assert (caught.value.kind, caught.value.status) == ("http", 400)
    assert "Unsupported parameter: 'max_tokens'" in str(caught.value)


async def test_other_models_keep_max_tokens_and_their_temperature(
    server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    client = OpenAICompatClient(session, base_url=f"{server.base_url}/v1", api_key=KEY, name="DeepSeek")
    await client.complete(request("deepseek-v4-flash", temperature=0.8), timeout=5)
    body = server.requests[0].json
    assert body["max_tokens"] == 300 and body["temperature"] == 0.8 and "max_completion_tokens" not in body


# --- the catalog checks members against the rules and may override them ----------------------------------


def member(**fields: Any) -> dict[str, Any]:
    entry = {
        "name": "GPT",
        "provider": "openai",
        "model": "gpt-5-mini",
        "base_url": "https://api.openai.com/v1",
        "api_key_env": "RULES_KEY",
        "persona": "p",
    }
    return {**entry, **fields}


def load(**fields: Any) -> Catalog:
    return Catalog.from_mapping({"member": [member(**fields)]})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"temperature": 0.7}, "reasoning models"),
        ({"model": "o3-mini", "temperature": 0.2}, "set `accepts_temperature = true`"),
        ({"provider": "anthropic", "model": "claude-x", "temperature": 0.5}, "rejects `temperature`"),
        ({"provider": "anthropic", "model": "claude-x", "accepts_temperature": True}, "for openai members only"),
        ({"provider": "anthropic", "model": "claude-x", "token_limit_param": "max_tokens"}, "for openai members only"),
        ({"token_limit_param": "max_output_tokens"}, "token_limit_param must be one of"),
        ({"accepts_temperature": "yes"}, "accepts_temperature must be true or false"),
    ],
)
def test_the_catalog_refuses_what_the_model_refuses(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(CatalogError, match="member 'GPT'") as caught:
        load(**fields)
    assert message in str(caught.value)


def test_the_catalog_keeps_the_rule_with_the_members_overrides() -> None:
    plain = load().get("GPT")
    assert plain is not None and plain.model_rule.token_limit_param == "max_completion_tokens"
    assert plain.model_rule.accepts_temperature is False
    tuned = load(model="gpt-5.1", accepts_temperature=True, temperature=0.4).get("GPT")
    assert tuned is not None and tuned.model_rule.accepts_temperature is True and tuned.temperature == 0.4
    proxied = load(model="my-proxy-model", token_limit_param="max_completion_tokens").get("GPT")
    assert proxied is not None and proxied.model_rule.token_limit_param == "max_completion_tokens"


async def test_the_pool_sends_what_the_members_rule_says(
    server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    catalog = Catalog.from_mapping(
        {
            "member": [
                member(base_url=f"{server.base_url}/v1"),
                member(name="Tuned", model="gpt-5.1", base_url=f"{server.base_url}/v1", accepts_temperature=True),
                member(
                    name="Proxy",
                    model="m1",
                    base_url=f"{server.base_url}/v1",
                    token_limit_param="max_completion_tokens",
                ),
            ]
        }
    )
    pool = ProviderPool(session, {"RULES_KEY": KEY})
    for name, model in (("GPT", "gpt-5-mini"), ("Proxy", "m1")):
        spec = catalog.get(name)
        assert spec is not None
        assert (await pool(spec).complete(request(model), timeout=5)).text.startswith(model)
    gpt, proxy = (r.json for r in server.requests)
    assert "max_tokens" not in gpt and "temperature" not in gpt and gpt["max_completion_tokens"] == 300
    assert "max_tokens" not in proxy and proxy["max_completion_tokens"] == 300 and proxy["temperature"] == 0.7

    tuned = catalog.get("Tuned")
    assert tuned is not None
    # The operator said this model takes a temperature; the fake (like OpenAI for gpt-5.1 reasoning) refuses it.
    with pytest.raises(ProviderError, match="Unsupported value: 'temperature'"):
        await pool(tuned).complete(request("gpt-5.1"), timeout=5)
    assert server.requests[-1].json["temperature"] == 0.7
