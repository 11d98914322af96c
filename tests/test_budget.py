"""Discord's rate budget (cogs/council/_budget.py): no request beyond a bucket, priorities, turns by council,
learning from headers, the global share and the brake before the ban line. Windows are short here, so the
tests take well under a second each; they assert order and counts, never durations."""

from __future__ import annotations

import asyncio

import pytest

from cogs.council._budget import (
    INVALID_BRAKE,
    PACE_SHARE,
    PACE_TOLERANCE,
    STARTS_WITHIN,
    DiscordBudget,
    Priority,
    counts_globally,
)

WEBHOOK = ("webhook", 1)


def budget(limit: int = 2, per: float = 0.2, *, global_per_second: int = 1000) -> DiscordBudget:
    return DiscordBudget(known={"webhook": (limit, per), "create": (limit, per)}, global_per_second=global_per_second)


async def test_no_more_requests_go_out_in_a_window_than_the_bucket_allows() -> None:
    loop = asyncio.get_running_loop()
    meter = budget(limit=3, per=0.2)
    sent: list[float] = []

    async def one() -> None:
        await meter.spend(WEBHOOK)
        sent.append(loop.time())

    await asyncio.gather(*(one() for _ in range(7)))
    assert len(sent) == 7
    for index in range(3, 7):  # any four in a row span more than one window
        assert sent[index] - sent[index - 3] >= 0.2 * 0.95
    assert meter.stats.sent == 7 and meter.stats.waited >= 4


async def test_waiting_requests_go_by_priority_then_in_turn_by_council() -> None:
    meter = budget(limit=1, per=0.05)
    await meter.spend(WEBHOOK)  # the bucket is spent: everything below waits
    order: list[str] = []

    async def one(name: str, priority: Priority, council: int) -> None:
        await meter.spend(WEBHOOK, priority, owner=council)
        order.append(name)

    await asyncio.gather(
        one("a1 progress", Priority.PROGRESS, 1),
        one("a2 words", Priority.WORDS, 1),
        one("a3 words", Priority.WORDS, 1),
        one("b1 words", Priority.WORDS, 2),
        one("notice", Priority.NOTICE, 3),
        one("b2 status", Priority.STATUS, 2),
    )
    # Council 1 already has a request queued (a1), so council 2's first words go before council 1's next.
    assert order == ["notice", "b1 words", "a2 words", "a3 words", "b2 status", "a1 progress"]


async def test_an_optional_request_is_skipped_when_its_bucket_has_no_room() -> None:
    meter = budget(limit=2, per=0.1)
    assert meter.available(WEBHOOK, Priority.PROGRESS)
    await meter.spend(WEBHOOK)
    await meter.spend(WEBHOOK)
    assert not meter.available(WEBHOOK, Priority.PROGRESS)
    await asyncio.sleep(0.11)
    assert meter.available(WEBHOOK, Priority.PROGRESS)


async def test_a_queue_before_it_makes_an_optional_request_unavailable() -> None:
    meter = budget(limit=1, per=0.05)
    await meter.spend(WEBHOOK)
    waiting = asyncio.create_task(meter.spend(WEBHOOK, Priority.WORDS))
    await asyncio.sleep(0)
    assert not meter.available(WEBHOOK)  # the final words come first
    await waiting


async def test_discords_headers_teach_the_real_bucket() -> None:
    meter = budget(limit=5, per=2.0)
    await meter.spend(WEBHOOK)
    meter.learn(WEBHOOK, limit=2, remaining=0, reset_after=0.1)  # Discord's bucket is smaller than assumed
    assert not meter.available(WEBHOOK)
    await asyncio.sleep(0.11)
    assert meter.available(WEBHOOK)


async def test_a_429_empties_the_bucket_for_its_retry_after_and_counts_as_invalid() -> None:
    meter = budget(limit=5, per=0.05)
    meter.limited(WEBHOOK, 0.1, is_global=False)
    assert not meter.available(WEBHOOK)
    assert meter.stats.limited == 1
    await asyncio.sleep(0.11)
    assert meter.available(WEBHOOK)


async def test_a_global_429_pauses_every_bucket() -> None:
    meter = budget()
    meter.limited(None, 0.1, is_global=True)
    assert not meter.available(("create", 9), Priority.NOTICE)
    await asyncio.sleep(0.11)
    assert meter.available(("create", 9), Priority.NOTICE)


async def test_lower_priorities_get_a_smaller_share_of_the_global_budget() -> None:
    meter = budget(limit=1000, global_per_second=10)
    for channel in range(6):  # six requests in this second, each in a bucket of its own
        await meter.spend(("create", channel), Priority.WORDS)
    await asyncio.sleep(1.0 / (10 * PACE_SHARE))  # the even pace has room for the next one
    assert not meter.available(("create", 100), Priority.PROGRESS)  # 60 % of 10 is spent
    assert meter.available(("create", 101), Priority.WORDS)  # words may use up to 90 %


async def test_invalid_requests_brake_long_before_the_ban_line() -> None:
    meter = budget()
    assert meter.available(WEBHOOK, Priority.PROGRESS)
    for _ in range(INVALID_BRAKE):
        meter.invalid()
    assert not meter.available(WEBHOOK, Priority.PROGRESS)  # optional traffic stops
    assert meter.available(WEBHOOK, Priority.WORDS)
    assert meter.stats.braking and meter.stats.invalid_recent == INVALID_BRAKE


@pytest.mark.parametrize("cancel_first", [True, False])
async def test_a_cancelled_waiter_does_not_block_the_ones_behind_it(cancel_first: bool) -> None:
    meter = budget(limit=1, per=0.05)
    await meter.spend(WEBHOOK)
    first = asyncio.create_task(meter.spend(WEBHOOK))
    second = asyncio.create_task(meter.spend(WEBHOOK))
    await asyncio.sleep(0)
    (first if cancel_first else second).cancel()
    survivor = second if cancel_first else first
    async with asyncio.timeout(2):
        await survivor
    assert meter.stats.sent == 2


async def test_requests_go_out_evenly_paced_after_a_short_burst() -> None:
    """A burst that fills a second would repeat every second after, and reach Discord unevenly."""
    loop = asyncio.get_running_loop()
    meter = budget(limit=1000, global_per_second=100)
    interval = 1.0 / (100 * PACE_SHARE)
    sent: list[float] = []

    async def one(channel: int) -> None:
        await meter.spend(("create", channel), Priority.WORDS)
        sent.append(loop.time())

    await asyncio.gather(*(one(channel) for channel in range(30)))
    burst = 1 + int(PACE_TOLERANCE[Priority.WORDS] / interval)
    assert meter.stats.sent - meter.stats.waited <= burst + 1
    for index in range(burst + 10, 30):  # past the burst, ten requests take ten intervals at least
        assert sent[index] - sent[index - 10] >= 10 * interval * 0.9


async def test_higher_priorities_may_catch_up_on_the_pace_first() -> None:
    now = [100.0]
    meter = DiscordBudget(clock=lambda: now[0], known={"create": (1000, 1.0)}, global_per_second=100)
    for channel in range(4):  # four at once: the pace is behind by four intervals
        await meter.spend(("create", channel), Priority.NOTICE)
    assert not meter.available(("create", 10), Priority.PROGRESS)
    assert meter.available(("create", 11), Priority.NOTICE)


async def test_requests_the_budget_never_released_count_against_the_global_budget() -> None:
    """discord.py retries a 429 on its own, and other code may call Discord: Discord counts them all."""
    now = [100.0]
    meter = DiscordBudget(clock=lambda: now[0], known={"create": (1000, 1.0)}, global_per_second=10)
    for _ in range(6):
        meter.started(("create", 1))
        now[0] += 0.2 / 6
    assert meter.stats.unbudgeted == 6 and meter.stats.sent == 0
    assert not meter.available(("create", 2), Priority.PROGRESS)  # 60 % of 10 is spent
    now[0] += 1.0
    assert meter.available(("create", 2), Priority.PROGRESS)


async def test_a_released_request_is_counted_once_when_it_starts_promptly_and_again_when_late() -> None:
    now = [100.0]
    meter = DiscordBudget(clock=lambda: now[0], known={"create": (1000, 1.0)}, global_per_second=1000)
    await meter.spend(("create", 1))
    meter.started(("create", 1))
    assert (meter.stats.unbudgeted, meter.stats.late) == (0, 0)
    await meter.spend(("create", 1))
    now[0] += 0.5  # held back inside discord.py: it reaches Discord in another second than it was counted in
    meter.started(("create", 1))
    assert (meter.stats.unbudgeted, meter.stats.late) == (0, 1)
    await meter.spend(("create", 1))
    now[0] += STARTS_WITHIN + 1  # that one never started: a later request is not taken for it
    meter.started(("create", 1))
    assert (meter.stats.unbudgeted, meter.stats.late) == (1, 1)


@pytest.mark.parametrize(
    ("path", "counts"),
    [
        ("/api/v10/channels/1/messages", True),
        ("/api/v10/webhooks/7/token", True),  # a channel's webhook: counted (against the IP's budget)
        ("/api/v10/webhooks/42/interaction-token/messages/@original", False),  # the application's own: a followup
        ("/api/v10/interactions/5/interaction-token/callback", False),
        ("/", False),  # the gateway's websocket handshake
        ("/avatars/1/abc.png", False),  # the CDN
    ],
)
def test_which_requests_count_against_the_global_limit(path: str, counts: bool) -> None:
    assert counts_globally(path, application_id=42) is counts
