"""How members are asked: the provider client of each member, and the bounds every ask shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.catalog import MemberSpec
from bot.providers.base import ProviderClient

ClientFactory = Callable[[MemberSpec], ProviderClient]


@dataclass(frozen=True, slots=True)
class MemberCalls:
    """`clients(spec)` gives a member's provider client; `timeout` bounds one call (seconds, waits included);
    `context_budget` bounds the tokens of a prompt (None: no bound)."""

    clients: ClientFactory
    timeout: float
    context_budget: int | None

    def client(self, spec: MemberSpec) -> ProviderClient:
        return self.clients(spec)
