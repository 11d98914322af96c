"""The one layer where provider faults are retried: backoff with jitter, a total deadline, and a circuit breaker.

The clients underneath never retry; the engine above never retries either. `ResilientClient` speaks the same
ProviderClient protocol, so callers keep calling `pool(spec).complete(...)` and only see the final outcome.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import urlsplit

from bot.providers.base import ChatRequest, Completion, ProviderClient, ProviderError, StreamDelta

log = logging.getLogger(__name__)

# Failures that can go away by themselves. Everything else (auth, not_found, quota, refused, a 400) would fail
# the same way again, and circuit_open means we chose not to try at all.
RETRIABLE_KINDS = frozenset({"timeout", "connection", "rate_limited", "malformed", "empty", "cut"})
# Statuses the official SDKs retry (408 timeout, 409 lock conflict, 429, 5xx) plus Anthropic's 529 "overloaded".
RETRIABLE_STATUSES = frozenset({408, 409, 429})
# A 200 whose body was empty or unreadable: the provider billed it, and asking again is billed again.
UNREADABLE_KINDS = frozenset({"malformed", "empty"})

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try one call. The defaults match the official SDKs (3 attempts, 0.5 s·2ⁿ up to 8 s).

    attempts: tries in total, the first included.
    base_delay, max_delay: the backoff before retry n is uniform in [0, min(max_delay, base_delay·2ⁿ⁻¹)]
        ("full jitter", so many members failing together do not come back together).
    max_retry_after: the longest Retry-After we wait for; a provider asking for more is given up on at once.
    attempt_timeout: a cap on one attempt, so a hung connection can be retried within the call's budget. None
        (the default) gives every attempt what is left of the budget: slow reasoning models must not be cut off.
    min_attempt_time: no retry is started with less than this left of the budget; it could only time out.
    unreadable_retries: how often a reply that came back empty or unreadable is asked for again. Each was
        billed; one more try cures a glitch, more only multiply the cost of a model that answers that way.
    """

    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    attempt_timeout: float | None = None
    min_attempt_time: float = 1.0
    unreadable_retries: int = 1

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0 or self.min_attempt_time < 0:
            raise ValueError("RetryPolicy delays must not be negative")
        if self.attempt_timeout is not None and self.attempt_timeout <= 0:
            raise ValueError("RetryPolicy.attempt_timeout must be positive")
        if self.unreadable_retries < 0:
            raise ValueError("RetryPolicy.unreadable_retries must not be negative")

    def backoff(self, retry: int, rand: Callable[[], float]) -> float:
        """The wait before retry number `retry` (1 for the first retry); `rand` returns a float in [0, 1)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (retry - 1))
        return ceiling * rand()


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When an endpoint is paused: after `failure_threshold` failed calls in a row, for `cool_down` seconds."""

    failure_threshold: int = 5
    cool_down: float = 30.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError("BreakerPolicy.failure_threshold must be at least 1")
        if self.cool_down < 0:
            raise ValueError("BreakerPolicy.cool_down must not be negative")


def is_retriable(error: ProviderError) -> bool:
    """Whether asking again could give a different answer: the provider's x-should-retry when it says so."""
    if error.should_retry is not None:
        return error.should_retry
    return is_transient(error)


def is_transient(error: ProviderError) -> bool:
    """Whether the failure is of a kind that goes away by itself (what the circuit breaker counts)."""
    if error.kind in RETRIABLE_KINDS:
        return True
    return (
        error.kind == "http"
        and error.status is not None
        and (error.status in RETRIABLE_STATUSES or error.status >= 500)
    )


def endpoint_of(base_url: str) -> str:
    """What a breaker is shared by: host, port and path, without scheme, credentials or query."""
    parts = urlsplit(base_url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{(parts.hostname or '').lower()}{port}{parts.path.rstrip('/')}"


class CircuitBreaker:
    """Stops calling what keeps failing (a host, or one model on it), so a council does not wait out every
    member's retries.

    closed: calls go through; each failed call (after its retries, and only for transient kinds) counts, a
    success resets the count. open: after `failure_threshold` failures in a row, calls fail at once with kind
    "circuit_open" for `cool_down` seconds. half_open: after the cool-down one trial call goes through (others
    still fail fast); its success closes the breaker, its failure opens it for another cool-down.
    `label` is what the fast failure calls unavailable ("provider", or "model m1").
    """

    def __init__(
        self,
        endpoint: str,
        policy: BreakerPolicy | None = None,
        *,
        clock: Clock = time.monotonic,
        label: str = "provider",
    ) -> None:
        self.endpoint = endpoint
        self.label = label
        self.policy = policy or BreakerPolicy()
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(endpoint={self.endpoint!r}, label={self.label!r}, state={self.state!r}, "
            f"failures={self._failures})"
        )

    @property
    def state(self) -> Literal["closed", "open", "half_open"]:
        if self._opened_at is None:
            return "closed"
        return "half_open" if self._clock() - self._opened_at >= self.policy.cool_down else "open"

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def acquire(self, provider: str) -> bool:
        """Let a call through or raise circuit_open; True when the call is the half-open trial."""
        state = self.state
        if state == "closed":
            return False
        if state == "half_open" and not self._trial_in_flight:
            self._trial_in_flight = True
            log.info("provider circuit half-open endpoint=%s %s: sending one trial call", self.endpoint, self.label)
            return True
        if state == "open" and self._opened_at is not None:
            left = max(1, math.ceil(self.policy.cool_down - (self._clock() - self._opened_at)))
            message = f"{provider}: {self.label} unavailable, paused for {left} s after repeated failures"
        else:
            message = f"{provider}: {self.label} unavailable after repeated failures, a trial call is under way"
        raise ProviderError("circuit_open", message, provider=provider)

    def record_success(self) -> None:
        if self._opened_at is not None:
            log.info("provider circuit closed endpoint=%s %s", self.endpoint, self.label)
        self._failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def record_failure(self) -> None:
        """A call failed for a retriable reason, after all its retries."""
        self._failures += 1
        reopen = self._opened_at is not None  # a failed trial, or a straggler that started before the opening
        if reopen or self._failures >= self.policy.failure_threshold:
            self._opened_at = self._clock()
            self._trial_in_flight = False
            log.warning(
                "provider circuit open endpoint=%s%s failures=%d cool_down=%gs",
                self.endpoint,
                "" if self.label == "provider" else f" {self.label}",
                self._failures,
                self.policy.cool_down,
            )

    def release(self, trial: bool) -> None:
        """A call ended without telling us whether the endpoint works (cancelled, or a non-retriable error)."""
        if trial:
            self._trial_in_flight = False


class _Call:
    """One call's tickets with its breakers; the first outcome reported is the one that counts.

    The host's breaker hears only whether the host could be reached; the model's breaker hears the model's
    own transient failures (5xx, overloaded, timeouts, unreadable replies). So one model failing on a shared
    host pauses that model alone, while a host that is down pauses every model on it. Without a host
    breaker, the model's breaker hears both.
    """

    def __init__(self, breaker: CircuitBreaker | None, host: CircuitBreaker | None, provider: str) -> None:
        self._breaker = breaker
        self._host = host
        # The host first: when it is down, that is the news, whatever the model's state.
        self._host_trial = host.acquire(provider) if host is not None else False
        try:
            self._trial = breaker.acquire(provider) if breaker is not None else False
        except ProviderError:
            if host is not None:
                host.release(self._host_trial)
            raise
        self._settled = False

    def succeeded(self) -> None:
        if self._settled:
            return
        self._settled = True
        for breaker in (self._host, self._breaker):
            if breaker is not None:
                breaker.record_success()

    def failed(self, error: ProviderError) -> None:
        if self._settled:
            return
        self._settled = True
        host_failure = error.unreachable and self._host is not None
        if self._host is not None:
            if error.unreachable:
                self._host.record_failure()
            elif error.kind in ("timeout", "connection"):
                self._host.release(self._host_trial)  # no answer: nothing learnt about the host
            else:
                self._host.record_success()  # it answered, even if with an error
        if self._breaker is not None:
            if is_transient(error) and not host_failure:
                self._breaker.record_failure()
            else:
                self._breaker.release(self._trial)

    def abandon(self) -> None:
        if self._settled:
            return
        self._settled = True
        if self._host is not None:
            self._host.release(self._host_trial)
        if self._breaker is not None:
            self._breaker.release(self._trial)


class ResilientClient:
    """A ProviderClient that retries its inner client's transient failures within the caller's timeout.

    The `timeout` a caller passes is the budget for the whole call, retries and waits included.
    """

    def __init__(
        self,
        inner: ProviderClient,
        *,
        policy: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        host_breaker: CircuitBreaker | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.name = inner.name
        self.inner = inner
        self.policy = policy or RetryPolicy()
        self.breaker = breaker  # the model's (see _Call)
        self.host_breaker = host_breaker
        self._rand = rand

    def __repr__(self) -> str:
        return f"ResilientClient({self.inner!r}, breaker={self.breaker!r}, host_breaker={self.host_breaker!r})"

    async def complete(self, request: ChatRequest, *, timeout: float) -> Completion:
        call = _Call(self.breaker, self.host_breaker, self.name)
        deadline = _now() + timeout
        attempt = unreadable = 0
        try:
            while True:
                attempt += 1
                limit, whole_budget = self._attempt_limit(deadline)
                try:
                    completion = await self.inner.complete(request, timeout=limit)
                except ProviderError as error:
                    unreadable += error.kind in UNREADABLE_KINDS
                    delay = self._retry_delay(error, attempt, deadline, unreadable)
                    if delay is None:
                        final = self._final_error(error, attempt, timeout, whole_budget)
                        call.failed(final)
                        if final is error:
                            raise
                        raise final from error
                    self._log_retry(error, attempt, delay)
                    await asyncio.sleep(delay)
                    continue
                call.succeeded()
                return completion
        finally:
            call.abandon()

    async def stream(self, request: ChatRequest, *, timeout: float) -> AsyncIterator[StreamDelta | Completion]:
        """Like the inner stream; a failure is retried only while nothing has been yielded yet.

        Once a delta is out, the caller holds part of a reply, so the error (typically "cut") is raised as is.
        """
        call = _Call(self.breaker, self.host_breaker, self.name)
        deadline = _now() + timeout
        attempt = unreadable = 0
        yielded = False
        try:
            while True:
                attempt += 1
                limit, whole_budget = self._attempt_limit(deadline)
                try:
                    async with aclosing(self.inner.stream(request, timeout=limit)) as items:
                        async for item in items:
                            if isinstance(item, Completion):
                                call.succeeded()  # before yielding: the consumer may stop reading at the last item
                            else:
                                yielded = True
                            yield item
                    return
                except ProviderError as error:
                    unreadable += error.kind in UNREADABLE_KINDS
                    delay = None if yielded else self._retry_delay(error, attempt, deadline, unreadable)
                    if delay is None:
                        final = self._final_error(error, attempt, timeout, whole_budget)
                        call.failed(final)
                        if final is error:
                            raise
                        raise final from error
                    self._log_retry(error, attempt, delay)
                    await asyncio.sleep(delay)
        finally:
            call.abandon()

    def _attempt_limit(self, deadline: float) -> tuple[float, bool]:
        """This attempt's timeout, and whether it is all that is left of the call's budget."""
        left = max(deadline - _now(), 0.001)
        cap = self.policy.attempt_timeout
        if cap is not None and cap < left:
            return cap, False
        return left, True

    def _retry_delay(self, error: ProviderError, attempt: int, deadline: float, unreadable: int) -> float | None:
        """How long to wait before trying again, or None to give up now (`unreadable`: billed empty or
        unreadable replies so far, this one included)."""
        policy = self.policy
        if not is_retriable(error) or attempt >= policy.attempts:
            return None
        if error.kind in UNREADABLE_KINDS and unreadable > policy.unreadable_retries:
            return None
        if error.retry_after is not None and error.retry_after > 0:
            if error.retry_after > policy.max_retry_after:
                return None  # retrying sooner than asked is futile, and later is beyond our patience
            delay = error.retry_after
        else:
            delay = policy.backoff(attempt, self._rand)
        # Sleeping into the deadline (or close to it) would only turn this error into a timeout.
        if deadline - _now() - delay < policy.min_attempt_time:
            return None
        return delay

    def _final_error(self, error: ProviderError, attempt: int, timeout: float, whole_budget: bool) -> ProviderError:
        """The error the caller sees: the last one, saying how long or how often we tried."""
        message = error.message
        if error.timer == "total" and whole_budget:
            # The last attempt only had what was left; the caller gave the call `timeout` seconds in all.
            message = f"{self.name}: not finished within {timeout:g} s"
        if attempt > 1:
            message = f"{message} (after {attempt} attempts)"
        return error if message == error.message else replace(error, message=message)

    def _log_retry(self, error: ProviderError, attempt: int, delay: float) -> None:
        # Kind and status only: the message may quote the provider, and prompts and keys never go to the log.
        log.warning(
            "provider retry provider=%s attempt=%d/%d kind=%s status=%s delay=%.2fs",
            self.name,
            attempt,
            self.policy.attempts,
            error.kind,
            error.status,
            delay,
        )


def _now() -> float:
    return asyncio.get_running_loop().time()
