"""A seat at a council: a catalog member and the role it plays in this council."""

from __future__ import annotations

from dataclasses import dataclass

from bot.catalog import MemberSpec


@dataclass(frozen=True, slots=True)
class Seat:
    spec: MemberSpec
    role: str | None
    benched: bool = False  # failed too many turns in a row
    dismissed: bool = False  # sent away by the convener

    @property
    def active(self) -> bool:
        """Whether the member still takes turns."""
        return not (self.benched or self.dismissed)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def label(self) -> str:
        """How other members and humans see this member, e.g. "DeepSeek (the Philosopher)"."""
        return f"{self.spec.name} ({self.role})" if self.role else self.spec.name
