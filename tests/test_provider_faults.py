"""Provider faults over real loopback HTTP: what is retried, what is not, deadlines, and the circuit breaker.

Every call goes through the real clients and the fake server; request counts on the server are the proof of
how often a call was tried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.catalog import MemberSpec
from bot.providers import (
    AnthropicClient,
    BreakerPolicy,
    ChatRequest,
    ChatTurn,
    CircuitBreaker,
    Completion,
    OpenAICompatClient,
    ProviderClient,
    ProviderError,
    ResilientClient,
    RetryPolicy,
    StreamDelta,
    is_retriable,
)
from bot.providers.errors import http_error, status_error
from bot.providers.pool import ProviderPool
from tests.fakes.provider_server import FakeProviderServer, closed_port_url

KEY = "sk-test-FAULTS-9876543210fedcba"
PROMPT = "Tell me about the quarterly numbers"  # must never reach a log line
KINDS = ["anthropic", "openai"]
NAMES = {"anthropic": "Claude", "openai": "DeepSeek"}
FAST = RetryPolicy(attempts=3, base_delay=0.005, max_delay=0.05, max_retry_after=1.0, min_attempt_time=0.05)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def server() -> AsyncIterator[FakeProviderServer]:
    async with FakeProviderServer(api_key=KEY) as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def inner_client(kind: str, session: aiohttp.ClientSession, base_url: str) -> ProviderClient:
    if kind == "anthropic":
        return AnthropicClient(session, base_url=base_url, api_key=KEY, name=NAMES[kind])
    return OpenAICompatClient(session, base_url=f"{base_url}/v1", api_key=KEY, name=NAMES[kind])


def resilient(
    kind: str,
    session: aiohttp.ClientSession,
    base_url: str,
    policy: RetryPolicy = FAST,
    breaker: CircuitBreaker | None = None,
) -> ResilientClient:
    return ResilientClient(inner_client(kind, session, base_url), policy=policy, breaker=breaker, rand=lambda: 1.0)


def request(model: str = "m1") -> ChatRequest:
    return ChatRequest(model=model, system="Be brief.", turns=(ChatTurn("user", PROMPT),), max_output_tokens=100)


async def call(c: ProviderClient, *, stream: bool, timeout: float = 5, model: str = "m1") -> Completion:
    """The completion, by either path; for streams, also checks that the deltas add up to it."""
    if not stream:
        return await c.complete(request(model), timeout=timeout)
    items = [item async for item in c.stream(request(model), timeout=timeout)]
    *deltas, final = items
    assert isinstance(final, Completion)
    assert "".join(d.text for d in deltas if isinstance(d, StreamDelta)) == final.text
    return final


async def failure(c: ProviderClient, *, stream: bool, timeout: float = 5, model: str = "m1") -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await call(c, stream=stream, timeout=timeout, model=model)
    err = caught.value
    assert KEY not in str(err) and KEY not in repr(err)
    assert str(err).startswith(f"{c.name}: ")
    return err


# --- transient faults are retried ------------------------------------------------------------------------

# (id, how the server fails once, and whether to check streaming too): the status-only cases share one code path.
TRANSIENT: list[tuple[str, dict[str, Any], tuple[bool, ...]]] = [
    ("disconnect", {"disconnect": True}, (False, True)),
    ("429", {"status": 429}, (False, True)),
    ("408", {"status": 408}, (False,)),
    ("409", {"status": 409}, (False,)),
    ("500", {"status": 500}, (False, True)),
    ("502", {"status": 502}, (False,)),
    ("503", {"status": 503}, (False,)),
    ("529", {"status": 529}, (False, True)),
    ("empty", {"reply": ""}, (False, True)),
]


@pytest.mark.parametrize(
    ("fault", "stream"),
    [(fault, stream) for _, fault, streams in TRANSIENT for stream in streams],
    ids=[f"{name}-{'stream' if stream else 'complete'}" for name, _, streams in TRANSIENT for stream in streams],
)
@pytest.mark.parametrize("kind", KINDS)
async def test_fault_once_then_success(
    kind: str, stream: bool, fault: dict[str, Any], server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", once=True, **fault)
    result = await call(resilient(kind, session, server.base_url), stream=stream)
    assert result.text == "m1 reply #2"
    assert len(server.requests) == 2


@pytest.mark.parametrize(("stream", "raw"), [(False, "<html>502 Bad Gateway</html>"), (True, "data: {not json\n\n")])
@pytest.mark.parametrize("kind", KINDS)
async def test_malformed_once_then_success(
    kind: str, stream: bool, raw: str, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", raw=raw, once=True)
    assert (await call(resilient(kind, session, server.base_url), stream=stream)).text == "m1 reply #2"
    assert len(server.requests) == 2


@pytest.mark.parametrize("kind", KINDS)
async def test_stream_failing_before_first_delta_is_retried(
    kind: str, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", "one two three", cut_after=0, once=True)  # headers out, then the connection drops
    server.script("m1", "one two three", cut_after=0, cut_mode="eof", once=True)
    error_type = "overloaded_error" if kind == "anthropic" else "server_error"
    server.script("m1", "one two three", stream_error=error_type, cut_after=0, once=True)
    policy = RetryPolicy(attempts=4, base_delay=0.01, min_attempt_time=0.05)
    result = await call(resilient(kind, session, server.base_url, policy), stream=True)
    assert result.text == "m1 reply #4"
    assert len(server.requests) == 4


@pytest.mark.parametrize("kind", KINDS)
async def test_stream_cut_after_text_is_not_retried(
    kind: str, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", "one two three four", cut_after=2)
    seen: list[str] = []
    with pytest.raises(ProviderError) as caught:
        async for item in resilient(kind, session, server.base_url).stream(request(), timeout=5):
            assert isinstance(item, StreamDelta)
            seen.append(item.text)
    assert caught.value.kind == "cut" and str(caught.value) == f"{NAMES[kind]}: reply cut off before the end"
    assert seen == ["one ", "two "]
    assert len(server.requests) == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_stream_error_event_after_text_is_not_retried(
    kind: str, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    error_type = "overloaded_error" if kind == "anthropic" else "server_error"
    server.script("m1", "one two three", stream_error=error_type, cut_after=1, message="Overloaded")
    seen: list[str] = []
    with pytest.raises(ProviderError) as caught:
        async for item in resilient(kind, session, server.base_url).stream(request(), timeout=5):
            assert isinstance(item, StreamDelta)
            seen.append(item.text)
    status = 529 if kind == "anthropic" else 500
    assert (caught.value.kind, caught.value.status) == ("http", status)
    assert seen == ["one "]
    assert len(server.requests) == 1


async def test_a_stream_consumer_that_stops_early_closes_cleanly(
    server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    breaker = CircuitBreaker("fake", BreakerPolicy(failure_threshold=1))
    c = resilient("openai", session, server.base_url, breaker=breaker)
    server.script("m1", "one two three four")
    async with asyncio.timeout(2):
        stream = c.stream(request(), timeout=5)
        first = await anext(stream)
        await stream.aclose()  # type: ignore[attr-defined]
    assert first == StreamDelta("one ")
    assert breaker.state == "closed" and breaker.consecutive_failures == 0


# --- persistent faults give up ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "expected_kind", "tries"),
    [
        ({"status": 500}, "http", 3),
        ({"status": 429}, "rate_limited", 3),
        ({"status": 529}, "http", 3),
        ({"disconnect": True}, "connection", 3),
        # A 200 with an unreadable or empty body was billed: asked for once more, not twice.
        ({"raw": "[1, 2]"}, "malformed", 2),
        ({"reply": ""}, "empty", 2),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
async def test_persistent_fault_gives_up_after_the_attempts(
    kind: str,
    stream: bool,
    fault: dict[str, Any],
    expected_kind: str,
    tries: int,
    server: FakeProviderServer,
    session: aiohttp.ClientSession,
) -> None:
    if stream and "raw" in fault:
        fault = {"raw": "data: [1, 2]\n\n"}
    server.script("m1", **fault)
    err = await failure(resilient(kind, session, server.base_url), stream=stream)
    assert err.kind == expected_kind
    assert str(err).endswith(f"(after {tries} attempts)")
    assert len(server.requests) == tries


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
async def test_an_unreadable_reply_after_a_server_error_still_gets_its_one_retry(
    kind: str, stream: bool, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", status=503, once=True)
    server.script("m1", "", once=True)
    server.script("m1", "", once=True)  # the second empty reply is not asked for again
    policy = RetryPolicy(attempts=5, base_delay=0.005, max_delay=0.05, min_attempt_time=0.05)
    err = await failure(resilient(kind, session, server.base_url, policy), stream=stream)
    assert err.kind == "empty" and str(err).endswith("(after 3 attempts)")
    assert len(server.requests) == 3


# --- the provider's own word: x-should-retry ----------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
async def test_x_should_retry_false_forbids_a_retry(
    kind: str, stream: bool, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", status=503, should_retry=False)
    err = await failure(resilient(kind, session, server.base_url), stream=stream)
    assert (err.kind, err.status, err.should_retry) == ("http", 503, False)
    assert "attempts" not in str(err)
    assert len(server.requests) == 1


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
async def test_x_should_retry_true_forces_a_retry(
    kind: str, stream: bool, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", status=400, message="try again shortly", should_retry=True, once=True)
    assert (await call(resilient(kind, session, server.base_url), stream=stream)).text == "m1 reply #2"
    assert len(server.requests) == 2


async def test_an_unsaid_or_odd_x_should_retry_leaves_the_status_to_decide(
    server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", status=400)  # no header: a 400 is not retried
    assert (await failure(resilient("openai", session, server.base_url), stream=False)).should_retry is None
    assert len(server.requests) == 1
    headers = {"x-should-retry": "maybe"}
    assert http_error("X", 503, "{}", headers, None).should_retry is None
    assert is_retriable(http_error("X", 503, "{}", headers, None))
    assert not is_retriable(http_error("X", 503, "{}", {"x-should-retry": "FALSE"}, None))


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
async def test_refused_connection_is_retried_then_reported(
    kind: str, stream: bool, session: aiohttp.ClientSession
) -> None:
    err = await failure(resilient(kind, session, closed_port_url()), stream=stream)
    assert err.kind == "connection" and str(err).endswith("(after 3 attempts)")


# --- what cannot succeed is not retried ------------------------------------------------------------------

QUOTA_TEXT = "You exceeded your current quota, please check your plan and billing details."
NOT_RETRIED: list[tuple[str, dict[str, Any], str, tuple[bool, ...]]] = [
    ("400", {"status": 400, "message": "max_tokens: too large"}, "http", (False,)),
    ("401", {"status": 401}, "auth", (False, True)),
    ("403", {"status": 403}, "auth", (False,)),
    ("404", {"status": 404, "message": "model 'm1' not found, try pulling it first"}, "not_found", (False, True)),
    ("413", {"status": 413, "message": "request too large"}, "http", (False,)),
    ("quota-429", {"status": 429, "message": QUOTA_TEXT, "code": "insufficient_quota"}, "quota", (False, True)),
    ("quota-text", {"status": 429, "message": QUOTA_TEXT}, "quota", (False,)),
    ("credit-400", {"status": 400, "message": "Your credit balance is too low to access the API."}, "quota", (False,)),
    ("balance-402", {"status": 402, "message": "Insufficient Balance"}, "quota", (False,)),
]


@pytest.mark.parametrize(
    ("fault", "expected_kind", "stream"),
    [(fault, kind, stream) for _, fault, kind, streams in NOT_RETRIED for stream in streams],
    ids=[f"{name}-{'stream' if stream else 'complete'}" for name, *_, streams in NOT_RETRIED for stream in streams],
)
@pytest.mark.parametrize("kind", KINDS)
async def test_hopeless_failures_are_not_retried(
    kind: str,
    stream: bool,
    fault: dict[str, Any],
    expected_kind: str,
    server: FakeProviderServer,
    session: aiohttp.ClientSession,
) -> None:
    server.script("m1", **fault)
    err = await failure(resilient(kind, session, server.base_url), stream=stream)
    assert (err.kind, err.status) == (expected_kind, fault["status"])
    assert "attempts" not in str(err)
    assert len(server.requests) == 1


async def test_quota_message_reads_as_such(server: FakeProviderServer, session: aiohttp.ClientSession) -> None:
    server.script("m1", status=429, message=QUOTA_TEXT, code="insufficient_quota")
    err = await failure(resilient("openai", session, server.base_url), stream=False)
    assert str(err) == f"DeepSeek: quota or credit exhausted (HTTP 429): {QUOTA_TEXT}"


async def test_quota_in_the_middle_of_a_stream_is_not_retried(
    server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", "a b", stream_error="insufficient_quota", code="insufficient_quota", message=QUOTA_TEXT)
    err = await failure(resilient("openai", session, server.base_url), stream=True)
    assert err.kind == "quota"
    assert len(server.requests) == 1


async def test_a_rate_limit_that_links_to_billing_is_still_a_rate_limit(
    server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    message = "Rate limit reached. Add a payment method at https://platform.example/account/billing to raise it."
    server.script("m1", status=429, message=message, code="rate_limit_exceeded", once=True)
    assert (await call(resilient("openai", session, server.base_url), stream=False)).text == "m1 reply #2"
    assert status_error("X", 429, message, None).kind == "rate_limited"


@pytest.mark.parametrize("reply", ["", "Here is how to build"])
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
async def test_refusals_are_their_own_kind_and_not_retried(
    kind: str, stream: bool, reply: str, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    if kind == "anthropic":
        server.script("m1", reply, stop_reason="refusal")
    else:
        server.script("m1", reply, finish_reason="content_filter")
    c = resilient(kind, session, server.base_url)
    with pytest.raises(ProviderError) as caught:
        if stream:
            async for _ in c.stream(request(), timeout=5):
                pass
        else:
            await c.complete(request(), timeout=5)
    why = "safety refusal" if kind == "anthropic" else "content filter"
    assert caught.value.kind == "refused"
    assert str(caught.value) == f"{NAMES[kind]}: the provider refused to answer ({why})"
    assert len(server.requests) == 1


# --- retry-after and the deadline --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("kind", KINDS)
async def test_retry_after_is_honoured(
    kind: str, status: int, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", status=status, retry_after=0.08, once=True)
    policy = RetryPolicy(attempts=2, base_delay=0.0, min_attempt_time=0.05)  # backoff alone would not wait
    started = time.monotonic()
    assert (await call(resilient(kind, session, server.base_url, policy), stream=False)).text == "m1 reply #2"
    first, second = server.requests
    assert second.started - first.started >= 0.08
    assert time.monotonic() - started >= 0.08


@pytest.mark.parametrize(("retry_after", "timeout"), [(30, 2.0), (5, 10.0)])  # past the deadline; past max_retry_after
@pytest.mark.parametrize("kind", KINDS)
async def test_a_long_retry_after_fails_fast(
    kind: str, retry_after: float, timeout: float, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", status=429, retry_after=retry_after)
    started = time.monotonic()
    err = await failure(resilient(kind, session, server.base_url), stream=False, timeout=timeout)
    assert time.monotonic() - started < 0.5
    assert (err.kind, err.retry_after) == ("rate_limited", retry_after)
    assert len(server.requests) == 1


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
async def test_the_timeout_is_the_budget_for_the_whole_call(
    kind: str, stream: bool, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", delay=5)
    started = time.monotonic()
    err = await failure(resilient(kind, session, server.base_url), stream=stream, timeout=0.15)
    assert time.monotonic() - started < 0.3
    assert err.kind == "timeout" and str(err) == f"{NAMES[kind]}: not finished within 0.15 s"
    assert len(server.requests) == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_attempt_timeout_retries_a_hung_call_within_the_budget(
    kind: str, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    policy = RetryPolicy(attempts=3, base_delay=0.01, attempt_timeout=0.05, min_attempt_time=0.02)
    server.script("m1", delay=1, once=True)
    assert (await call(resilient(kind, session, server.base_url, policy), stream=False)).text == "m1 reply #2"

    server.script("m1", delay=1)
    started = time.monotonic()
    err = await failure(resilient(kind, session, server.base_url, policy), stream=True, timeout=0.15)
    assert time.monotonic() - started < 0.3
    assert err.kind == "timeout"
    assert 2 <= len(server.requests) - 2 <= 3


async def test_backoff_never_sleeps_past_the_deadline(
    server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", status=503)
    slow = RetryPolicy(attempts=5, base_delay=2.0, max_delay=8.0, min_attempt_time=0.05)
    started = time.monotonic()
    err = await failure(resilient("openai", session, server.base_url, slow), stream=False, timeout=1.0)
    assert time.monotonic() - started < 0.3
    assert (err.kind, err.status) == ("http", 503)
    assert len(server.requests) == 1


# --- the circuit breaker ---------------------------------------------------------------------------------


def member(name: str, provider: str, base_url: str, model: str) -> MemberSpec:
    return MemberSpec(
        name=name, provider=provider, model=model, base_url=base_url, api_key_env="FAULT_KEY", persona="p"
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pool(session: aiohttp.ClientSession, clock: Clock) -> ProviderPool:
    return ProviderPool(
        session,
        {"FAULT_KEY": KEY},
        retry=RetryPolicy(attempts=2, base_delay=0.01, min_attempt_time=0.05),
        breaker=BreakerPolicy(failure_threshold=3, cool_down=30),
        clock=clock,
        rand=lambda: 0.5,
    )


async def test_circuit_opens_fails_fast_half_opens_and_closes(
    server: FakeProviderServer, pool: ProviderPool, clock: Clock
) -> None:
    deepseek = pool(member("DeepSeek", "openai", f"{server.base_url}/v1", "m1"))
    twin = pool(member("Twin", "openai", f"{server.base_url}/v1/", "m1"))  # same endpoint, same model
    llama = pool(member("Llama", "openai", f"{server.base_url}/v1", "m2"))  # same endpoint, other model
    server.script("m1", status=503)

    for _ in range(3):
        assert (await failure(deepseek, stream=False)).kind == "http"
    assert len(server.requests) == 6  # three calls of two attempts each

    err = await failure(deepseek, stream=False)
    assert (err.kind, str(err)) == (
        "circuit_open",
        "DeepSeek: model m1 unavailable, paused for 30 s after repeated failures",
    )
    clock.advance(2)
    err = await failure(twin, stream=True)
    assert str(err) == "Twin: model m1 unavailable, paused for 28 s after repeated failures"
    assert len(server.requests) == 6  # nothing reached the server
    # The host answers, and the other model on it is not paused.
    assert (await call(llama, stream=True, model="m2")).text == "m2 reply #1"
    assert pool.breaker_for(f"{server.base_url}/v1").state == "closed"

    clock.advance(28)
    server.script("m1")  # the model is back
    assert pool.breaker_for(f"{server.base_url}/v1", "m1").state == "half_open"
    assert (await deepseek.complete(request(), timeout=5)).text.startswith("m1 reply")
    assert pool.breaker_for(f"{server.base_url}/v1", "m1").state == "closed"
    assert (await call(twin, stream=True)).text.startswith("m1 reply")


@pytest.mark.parametrize("fault", [{"status": 500}, {"status": 529}, {"delay": 5}, {"raw": "<html>oops</html>"}])
async def test_one_model_failing_on_a_shared_host_does_not_pause_another(
    fault: dict[str, Any], server: FakeProviderServer, pool: ProviderPool
) -> None:
    model_a = pool(member("A", "openai", f"{server.base_url}/v1", "model-a"))
    model_b = pool(member("B", "openai", f"{server.base_url}/v1", "model-b"))
    server.script("model-a", **fault)
    for _ in range(5):
        await failure(model_a, stream=False, model="model-a", timeout=0.3)
    assert (await failure(model_a, stream=False, model="model-a")).kind == "circuit_open"
    assert (await model_b.complete(request("model-b"), timeout=5)).text == "model-b reply #1"
    assert (await call(model_b, stream=True, model="model-b")).text == "model-b reply #2"
    assert pool.breaker_for(f"{server.base_url}/v1").state == "closed"


@pytest.mark.parametrize("stream", [False, True])
async def test_a_host_refusing_connections_pauses_every_model_on_it(stream: bool, pool: ProviderPool) -> None:
    down = closed_port_url()
    model_a = pool(member("A", "openai", f"{down}/v1", "model-a"))
    model_b = pool(member("B", "openai", f"{down}/v1", "model-b"))
    for _ in range(3):
        err = await failure(model_a, stream=stream, model="model-a")
        assert (err.kind, err.unreachable) == ("connection", True)
    err = await failure(model_b, stream=stream, model="model-b")
    assert (err.kind, str(err)) == ("circuit_open", "B: provider unavailable, paused for 30 s after repeated failures")
    assert pool.breaker_for(f"{down}/v1").state == "open"
    assert pool.breaker_for(f"{down}/v1", "model-a").state == "closed"  # the host's failure, not the model's


async def test_a_failed_trial_reopens_the_circuit(server: FakeProviderServer, pool: ProviderPool, clock: Clock) -> None:
    deepseek = pool(member("DeepSeek", "openai", f"{server.base_url}/v1", "m1"))
    server.script("m1", disconnect=True)
    for _ in range(3):
        await failure(deepseek, stream=False)
    clock.advance(30)
    assert (await failure(deepseek, stream=False)).kind == "connection"  # the trial, retried once, fails
    assert len(server.requests) == 8
    err = await failure(deepseek, stream=False)
    assert err.kind == "circuit_open" and "paused for 30 s" in str(err)
    assert len(server.requests) == 8


async def test_only_one_trial_at_a_time_and_a_cancelled_trial_frees_the_slot(
    server: FakeProviderServer, pool: ProviderPool, clock: Clock
) -> None:
    deepseek = pool(member("DeepSeek", "openai", f"{server.base_url}/v1", "m1"))
    server.script("m1", status=500)
    for _ in range(3):
        await failure(deepseek, stream=False)
    clock.advance(31)
    server.script("m1", delay=5)
    trial = asyncio.create_task(deepseek.complete(request(), timeout=10))
    await asyncio.sleep(0.05)
    err = await failure(deepseek, stream=False)
    assert err.kind == "circuit_open" and "trial call" in str(err)
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    server.script("m1")
    assert (await deepseek.complete(request(), timeout=5)).text.startswith("m1 reply")
    assert pool.breaker_for(f"{server.base_url}/v1", "m1").state == "closed"


async def test_hopeless_failures_and_successes_keep_the_circuit_closed(
    server: FakeProviderServer, pool: ProviderPool
) -> None:
    deepseek = pool(member("DeepSeek", "openai", f"{server.base_url}/v1", "m1"))
    breaker = pool.breaker_for(f"{server.base_url}/v1", "m1")
    for status in (401, 404, 400, 401, 404):
        server.script("m1", status=status, once=True)
        await failure(deepseek, stream=False)
    server.script("m1", "", finish_reason="content_filter", once=True)
    assert (await failure(deepseek, stream=False)).kind == "refused"
    assert breaker.state == "closed" and breaker.consecutive_failures == 0

    server.script("m1", status=500)
    for _ in range(2):
        await failure(deepseek, stream=False)
    server.script("m1")
    await deepseek.complete(request(), timeout=5)
    assert breaker.consecutive_failures == 0
    server.script("m1", status=500)
    for _ in range(2):
        await failure(deepseek, stream=False)
    assert breaker.state == "closed" and breaker.consecutive_failures == 2


# --- logs and keys ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_retries_are_logged_without_key_or_prompt(
    kind: str, server: FakeProviderServer, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    server.script("m1", status=500, message=f"upstream choked on key {KEY} and prompt {PROMPT}")
    breaker = CircuitBreaker("fake-endpoint", BreakerPolicy(failure_threshold=1))
    with caplog.at_level(logging.DEBUG, logger="bot.providers"):
        policy = RetryPolicy(base_delay=0.01, min_attempt_time=0.05)
        err = await failure(resilient(kind, session, server.base_url, policy, breaker), stream=False)
    name = NAMES[kind]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"provider retry provider={name} attempt=1/3 kind=http status=500 delay=0.01s",
        f"provider retry provider={name} attempt=2/3 kind=http status=500 delay=0.02s",
        "provider circuit open endpoint=fake-endpoint failures=1 cool_down=30s",
    ]
    assert KEY not in caplog.text and PROMPT not in caplog.text
    assert "[redacted]" in str(err)


# --- policy and classification ---------------------------------------------------------------------------


def test_defaults_match_the_official_sdks_or_better() -> None:
    policy = RetryPolicy()
    assert (policy.attempts, policy.base_delay, policy.max_delay, policy.max_retry_after) == (3, 0.5, 8.0, 60.0)
    assert policy.attempt_timeout is None and policy.min_attempt_time == 1.0
    assert policy.unreadable_retries == 1  # the SDKs never retry a 200; one more try cures a glitch
    assert (BreakerPolicy().failure_threshold, BreakerPolicy().cool_down) == (5, 30.0)
    # Full jitter: anywhere from no wait to the exponential ceiling, which stops at max_delay.
    assert [policy.backoff(n, lambda: 1.0) for n in (1, 2, 3, 4, 5, 6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert policy.backoff(3, lambda: 0.0) == 0.0
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


@pytest.mark.parametrize(
    ("kind", "status", "expected"),
    [
        ("timeout", None, True),
        ("connection", None, True),
        ("rate_limited", 429, True),
        ("malformed", None, True),
        ("empty", None, True),
        ("cut", None, True),
        ("http", 408, True),
        ("http", 409, True),
        ("http", 500, True),
        ("http", 503, True),
        ("http", 529, True),
        ("http", 400, False),
        ("http", 413, False),
        ("auth", 401, False),
        ("not_found", 404, False),
        ("quota", 429, False),
        ("refused", None, False),
        ("circuit_open", None, False),
    ],
)
def test_what_is_worth_retrying(kind: str, status: int | None, expected: bool) -> None:
    assert is_retriable(ProviderError(kind, "x", status=status)) is expected  # type: ignore[arg-type]


async def test_pool_wraps_every_member_and_shares_breakers_per_endpoint_and_model(
    session: aiohttp.ClientSession,
) -> None:
    pool = ProviderPool(session, {"FAULT_KEY": KEY})
    # The pool's client counts calls around the retry layer (CountedClient → ResilientClient → limits).
    a = pool(member("A", "openai", "https://api.example.com/v1", "x")).inner  # type: ignore[attr-defined]
    b = pool(member("B", "openai", "https://API.example.com/v1/", "y")).inner  # type: ignore[attr-defined]
    a2 = pool(member("A2", "openai", "https://api.example.com/v1", "x")).inner  # type: ignore[attr-defined]
    c = pool(member("C", "anthropic", "https://api.example.com", "x")).inner  # type: ignore[attr-defined]
    assert all(isinstance(client, ResilientClient) for client in (a, b, a2, c))
    assert a.host_breaker is b.host_breaker is pool.breaker_for("https://api.example.com/v1")
    assert a.breaker is a2.breaker is pool.breaker_for("https://api.example.com/v1", "x")
    assert b.breaker is not a.breaker and c.breaker is not a.breaker and c.host_breaker is not a.host_breaker
    assert a.policy == RetryPolicy() and a.breaker is not None and a.breaker.policy == BreakerPolicy()
    assert pool(member("A", "openai", "https://api.example.com/v1", "x")).inner is a  # type: ignore[attr-defined]
    assert KEY not in repr(a)
