"""The fake Discord's rate-limit model, on a clock the tests drive: buckets and their headers, 429 answers,
major parameters, the global limit, and invalid requests against the ban line."""

from __future__ import annotations

import math

import pytest

from tests.harness.rate_limits import (
    BANNED,
    INTERACTION,
    MESSAGE_CREATE,
    WEBHOOK_MESSAGES,
    WEBHOOK_ROUTES_ONLY,
    Bucket,
    RateLimits,
    Verdict,
    major_parameter,
)

EXECUTE = ("POST", "/webhooks/{webhook_id}/{webhook_token}")
EDIT = ("PATCH", "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}")
SEND = ("POST", "/channels/{channel_id}/messages")
TYPING = ("POST", "/channels/{channel_id}/typing")
CALLBACK = ("POST", "/interactions/{webhook_id}/{webhook_token}/callback")
BOT = "Bot harness"
EPOCH = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limits(clock: Clock) -> RateLimits:
    return RateLimits(clock=clock, epoch=lambda: EPOCH + clock.now)


def hook(webhook_id: str = "7", token: str = "tok") -> dict[str, str]:
    return {"webhook_id": webhook_id, "webhook_token": token}


def execute(limits: RateLimits, webhook_id: str = "7", token: str = "tok") -> Verdict:
    return limits.check(*EXECUTE, hook(webhook_id, token), authorization=None)


def send(limits: RateLimits, channel_id: str = "1", authorization: str | None = BOT) -> Verdict:
    return limits.check(*SEND, {"channel_id": channel_id}, authorization=authorization)


def test_a_webhook_takes_five_requests_per_two_seconds_with_discords_headers(limits: RateLimits, clock: Clock) -> None:
    first = execute(limits)
    assert first.allowed and first.body is None
    assert first.headers == {
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "4",
        "X-RateLimit-Reset": f"{EPOCH + clock.now + 2.0:.3f}",
        "X-RateLimit-Reset-After": "2.000",
        "X-RateLimit-Bucket": WEBHOOK_MESSAGES.hash,
    }
    clock.now += 0.5
    answers = [execute(limits).headers for _ in range(4)]
    assert [h["X-RateLimit-Remaining"] for h in answers] == ["3", "2", "1", "0"]
    assert answers[-1]["X-RateLimit-Reset-After"] == "1.500"  # the window opened with the first request
    clock.now += 1.25
    refused = execute(limits)
    assert not refused.allowed and refused.scope == "user"
    assert refused.retry_after == 0.25
    clock.now += 0.25  # the window has reset: a fresh one opens with this request
    again = execute(limits)
    assert again.allowed and again.headers["X-RateLimit-Remaining"] == "4"
    assert again.headers["X-RateLimit-Reset-After"] == "2.000"


def test_a_refused_request_gets_discords_429_body_and_headers(limits: RateLimits, clock: Clock) -> None:
    for _ in range(5):
        send(limits)
    clock.now += 1.2345
    refused = send(limits)
    retry_after = 5.0 - 1.2345
    assert refused.body == {
        "message": "You are being rate limited.",
        "retry_after": pytest.approx(retry_after, abs=0.001),
        "global": False,
        "code": 0,
    }
    assert refused.body["retry_after"] >= retry_after  # rounded up: waiting exactly that long is never early
    assert refused.headers == {
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": f"{EPOCH + clock.now + refused.retry_after:.3f}",
        "X-RateLimit-Reset-After": f"{refused.retry_after:.3f}",
        "X-RateLimit-Bucket": MESSAGE_CREATE.hash,
        "Retry-After": str(math.ceil(retry_after)),
        "X-RateLimit-Scope": "user",
    }
    assert not refused.banned


def test_buckets_count_per_major_parameter_and_routes_can_share_one(limits: RateLimits) -> None:
    for _ in range(5):
        assert send(limits, "1").allowed
    assert not send(limits, "1").allowed
    assert send(limits, "2").allowed  # another channel (a thread is one too): its own count
    # Executing a webhook and editing its messages spend the same bucket, per webhook id + token.
    for _ in range(3):
        assert execute(limits).allowed
    edits = [limits.check(*EDIT, {**hook(), "message_id": "9"}, authorization=None) for _ in range(3)]
    assert [v.allowed for v in edits] == [True, True, False]
    assert edits[0].headers["X-RateLimit-Bucket"] == execute(limits, "8").headers["X-RateLimit-Bucket"]
    assert execute(limits, "8").allowed and execute(limits, "7", "other token").allowed
    # Another route has another bucket hash, and a route nobody listed gets a bucket of its own.
    typing = limits.check(*TYPING, {"channel_id": "1"}, authorization=BOT)
    assert typing.allowed and typing.headers["X-RateLimit-Bucket"] not in (MESSAGE_CREATE.hash, WEBHOOK_MESSAGES.hash)
    history = limits.check("GET", "/channels/{channel_id}/messages", {"channel_id": "1"}, authorization=BOT)
    assert history.headers["X-RateLimit-Limit"] == "5" and history.headers["X-RateLimit-Reset-After"] == "1.000"


def test_major_parameters_are_the_channel_the_guild_or_the_webhook() -> None:
    assert major_parameter({"channel_id": "1", "message_id": "2"}) == "channel_id=1"
    assert major_parameter({"application_id": "3", "guild_id": "4"}) == "guild_id=4"
    assert major_parameter(hook("5", "t")) == "webhook_id=5+t"
    assert major_parameter({"webhook_id": "5"}) == "webhook_id=5"
    assert major_parameter({"user_id": "6"}) == ""


def test_the_global_limit_is_fifty_requests_a_second_per_token_across_buckets(limits: RateLimits, clock: Clock) -> None:
    for channel in range(50):  # every channel its own bucket: only the global limit binds
        assert send(limits, str(channel)).allowed
    clock.now += 0.25
    refused = send(limits, "50")
    assert refused.scope == "global" and refused.retry_after == pytest.approx(0.75)
    assert refused.headers == {"Retry-After": "1", "X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"}
    assert refused.body == {
        "message": "You are being rate limited.",
        "retry_after": pytest.approx(0.75),
        "global": True,
        "code": 0,
    }
    # Requests without a token (webhook executes) count against the IP's own 50; interaction endpoints
    # against none.
    assert execute(limits).allowed
    assert limits.check(*CALLBACK, hook("11", "interaction token"), authorization=None, interaction=True).allowed
    assert send(limits, "51", authorization="Bot another bot").allowed  # another token: its own 50
    clock.now += 0.75
    assert send(limits, "52").allowed  # a new second
    assert limits.count_429s("global") == 1


def test_interaction_endpoints_share_a_bucket_per_token_outside_the_global_limit(limits: RateLimits) -> None:
    for channel in range(50):
        send(limits, str(channel))
    followup = ("POST", "/webhooks/{webhook_id}/{webhook_token}")
    answers = [
        limits.check(*CALLBACK, hook("11", "itok"), authorization=None, interaction=True),
        *(limits.check(*followup, hook("99", "itok"), authorization=BOT, interaction=True) for _ in range(5)),
    ]
    assert [a.allowed for a in answers] == [True, True, True, True, True, False]
    assert answers[0].headers["X-RateLimit-Bucket"] == INTERACTION.hash
    assert answers[-1].scope == "user"  # the interaction's bucket, not the global limit
    assert {seen.global_key for seen in limits.requests[-6:]} == {None}


def test_invalid_requests_past_ten_thousand_in_ten_minutes_ban_the_ip(limits: RateLimits, clock: Clock) -> None:
    for _ in range(5):
        send(limits)
    send(limits)  # a 429: invalid
    for _ in range(9_998):
        limits.answered(403)
    limits.answered(404)  # not an invalid request
    limits.answered(429, scope="shared")  # not held against the bot
    assert limits.invalid_requests == 9_999 and limits.bans == 0
    limits.answered(401)  # the 10,000th
    assert limits.bans == 1
    clock.now += 30
    for verdict in (send(limits, "9"), execute(limits), limits.check(*CALLBACK, hook(), authorization=None)):
        # Discord's edge answers everything, interactions included, with a static 429.
        assert not verdict.allowed and verdict.banned
        assert verdict.body == {"code": 0, "message": BANNED}
        assert verdict.headers == {}  # no rate-limit headers, no Retry-After (and the server adds no Via)
    assert limits.banned_answers == 3 and limits.count_429s("ban") == 3
    assert all(seen.is_global for seen in limits.rate_limited if seen.scope == "ban")
    clock.now += 3600  # the ban lasts an hour
    assert send(limits, "9").allowed and limits.invalid_requests == 0


def test_invalid_requests_are_counted_in_a_sliding_ten_minute_window(limits: RateLimits, clock: Clock) -> None:
    for _ in range(6_000):
        limits.answered(403)
    clock.now += 300
    for _ in range(3_999):
        limits.answered(403)
    assert limits.invalid_requests == 9_999
    clock.now += 300.001  # the first 6,000 are more than ten minutes old
    assert limits.invalid_requests == 3_999
    for _ in range(6_000):
        limits.answered(403)
    assert limits.bans == 0 and limits.invalid_requests == 9_999


def test_a_shared_limit_is_the_resources_and_not_held_against_the_bot(clock: Clock) -> None:
    shared = Bucket("channel webhooks", 2, 60.0, scope="shared")
    limits = RateLimits(clock=clock, routes={EXECUTE: shared})
    assert [execute(limits).allowed for _ in range(3)] == [True, True, False]
    assert execute(limits, "8").allowed  # counted per webhook, like any bucket
    limited = execute(limits)
    assert limited.scope == "shared" and limited.headers["X-RateLimit-Scope"] == "shared"
    assert limited.body is not None and limited.body["message"] == "The resource is being rate limited."
    assert limits.invalid_requests == 0 and limits.count_429s("shared") == 2


def test_every_request_is_recorded_for_tests_and_the_benchmark(limits: RateLimits, clock: Clock) -> None:
    for _ in range(6):
        execute(limits)
        clock.now += 0.1
    send(limits, "3")
    [refused] = limits.rate_limited
    assert (refused.method, refused.route, refused.bucket) == ("POST", EXECUTE[1], "webhook messages")
    assert (refused.major, refused.scope, refused.is_global, refused.global_key) == (
        "webhook_id=7+tok",
        "user",
        False,
        "ip",
    )
    assert refused.at == pytest.approx(100.5)
    assert limits.count_429s() == 1 and limits.count_429s("global") == 0
    assert limits.usage() == {"webhook messages": 5, "message create": 1}
    assert limits.requests_per_second() == pytest.approx(6 / 0.6)  # the served ones, first to last
    assert limits.requests_per_second(100.0, 101.0, global_key="ip") == 5.0  # the webhook's, in one second


def test_time_scale_runs_discord_faster_and_narrower_tables_limit_less(clock: Clock) -> None:
    fast = RateLimits(clock=clock, time_scale=0.1)
    for _ in range(5):
        execute(fast)
    refused = execute(fast)
    assert refused.retry_after == pytest.approx(0.2)
    clock.now += 0.2
    assert execute(fast).allowed
    only_webhooks = RateLimits(clock=clock, routes=WEBHOOK_ROUTES_ONLY, default=None, global_limit=None)
    answers = [send(only_webhooks, "1") for _ in range(100)]
    assert all(a.allowed and a.headers == {} for a in answers)  # unlimited, and no headers
    assert [execute(only_webhooks).allowed for _ in range(6)][-1] is False
