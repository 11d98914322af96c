"""A member whose reply was cut at its output limit is asked to go on, when the catalog says so.

The continuation is a proper follow-up, as the providers document it: the partial reply as the assistant's
turn, then a user turn asking to continue exactly where it stopped. (An assistant prefill, the older way,
is refused with a 400 by Claude 4.6 and later models.) The caller sees one reply: the texts joined, the
tokens summed (each continuation sends the whole prompt again, and is billed for it), streamed deltas
included, and `truncated` still set if the last part was cut too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import replace

from bot.providers.base import ChatRequest, ChatTurn, Completion, ProviderClient, ProviderError, StreamDelta

log = logging.getLogger(__name__)

CONTINUE_PROMPT = (
    "Your reply was cut off at your output limit. Continue it exactly where it stopped, even in the middle "
    "of a word: do not repeat anything, do not add a preamble, and do not mention the cut."
)
# A continuation started with less than this left of the caller's budget could only time out.
MIN_CONTINUATION_TIME = 1.0


class ContinuingClient:
    """A ProviderClient that asks again, up to `max_continuations` times, while the reply is cut at the limit.

    A continuation that fails before any of its words arrived leaves the reply as it was (still marked
    truncated); one that fails midway raises, like any reply cut mid-stream.
    """

    def __init__(self, inner: ProviderClient, max_continuations: int) -> None:
        if max_continuations < 1:
            raise ValueError("ContinuingClient needs at least one continuation")
        self.name = inner.name
        self.inner = inner
        self.max_continuations = max_continuations

    def __repr__(self) -> str:
        return f"ContinuingClient({self.inner!r}, max_continuations={self.max_continuations})"

    async def complete(self, request: ChatRequest, *, timeout: float) -> Completion:
        deadline = _now() + timeout
        parts = [await self.inner.complete(request, timeout=timeout)]
        for number in range(1, self.max_continuations + 1):
            follow_up = self._follow_up(request, parts, deadline)
            if follow_up is None:
                break
            self._log(number)
            try:
                parts.append(await self.inner.complete(follow_up, timeout=deadline - _now()))
            except ProviderError as error:
                self._log_failure(number, error)
                break
        return _joined(parts)

    async def stream(self, request: ChatRequest, *, timeout: float) -> AsyncIterator[StreamDelta | Completion]:
        deadline = _now() + timeout
        parts: list[Completion] = []
        current: ChatRequest | None = request
        while current is not None:
            number, started = len(parts), False
            part: Completion | None = None
            try:
                async with aclosing(self.inner.stream(current, timeout=max(deadline - _now(), 0.001))) as items:
                    async for item in items:
                        if isinstance(item, Completion):
                            part = item
                        else:
                            started = True
                            yield item
            except ProviderError as error:
                if not parts or started:
                    raise  # the first reply's own failure, or words already shown and then cut: as any stream
                self._log_failure(number, error)
                break
            if part is None:
                break  # an inner client that ends without its final item: nothing to join
            parts.append(part)
            if len(parts) > self.max_continuations:
                break
            current = self._follow_up(request, parts, deadline)
            if current is not None:
                self._log(len(parts))
        if parts:
            yield _joined(parts)

    def _follow_up(self, request: ChatRequest, parts: list[Completion], deadline: float) -> ChatRequest | None:
        """The request that asks for the rest, or None when there is nothing to ask (or no time, or no way)."""
        if not parts[-1].truncated or deadline - _now() < MIN_CONTINUATION_TIME:
            return None
        if parts[-1].tool_calls:
            return None  # the reply waits for its tools' results: asking it to go on would lose the calls
        if request.turns and request.turns[-1].role != "user":
            return None  # the turns must alternate; a request ending with the assistant has no place for this
        so_far = "".join(part.text for part in parts)
        turns = (*request.turns, ChatTurn("assistant", so_far), ChatTurn("user", CONTINUE_PROMPT))
        return replace(request, turns=turns)

    def _log(self, number: int) -> None:
        log.info("provider continuation provider=%s number=%d/%d", self.name, number, self.max_continuations)

    def _log_failure(self, number: int, error: ProviderError) -> None:
        # Kind only: the message may quote the provider. The reply so far stands, marked as cut.
        log.warning("provider continuation failed provider=%s number=%d kind=%s", self.name, number, error.kind)


def _joined(parts: list[Completion]) -> Completion:
    # The last part's own fields (its calls and their signed blocks included) stand; the rest is summed.
    return replace(
        parts[-1],
        text="".join(part.text for part in parts),
        input_tokens=sum(part.input_tokens for part in parts),
        output_tokens=sum(part.output_tokens for part in parts),
        reasoning="\n\n".join(part.reasoning for part in parts if part.reasoning),
    )


def _now() -> float:
    return asyncio.get_running_loop().time()
