"""Figures as JSON lines, and the exit status they add up to."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Comparison = Literal["<=", ">=", "=="]


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured number and the target it is held to (`target=None`: reported, not judged)."""

    name: str
    value: float | None
    unit: str
    target: float | None = None
    cmp: Comparison = "<="
    extra: dict[str, Any] = field(default_factory=dict)
    valid: bool = True  # False: a condition beside the target failed (e.g. a streamed reply did not end exact)

    @property
    def ok(self) -> bool:
        if not self.valid or self.value is None or (isinstance(self.value, float) and math.isnan(self.value)):
            return False
        if self.target is None:
            return True
        if self.cmp == "<=":
            return self.value <= self.target
        if self.cmp == ">=":
            return self.value >= self.target
        return self.value == self.target

    def line(self) -> str:
        """The figure as one JSON line: name, value, unit, target, ok, then any extra keys."""
        record: dict[str, Any] = {
            "name": self.name,
            "value": _rounded(self.value),
            "unit": self.unit,
            "target": _rounded(self.target),
            "ok": self.ok,
        }
        if self.target is not None:
            record["cmp"] = self.cmp
        record.update({key: _rounded(value) for key, value in self.extra.items()})
        return json.dumps(record, ensure_ascii=False)


def failed(name: str, error: BaseException) -> Figure:
    """A figure whose measurement itself broke: it counts as missed, with the reason in `detail`."""
    return Figure(name, None, "", extra={"detail": f"measurement failed: {type(error).__name__}: {error}"})


def exit_status(figures: Iterable[Figure]) -> int:
    """0 when every figure met its target, else 1."""
    return 0 if all(figure.ok for figure in figures) else 1


def percentile(samples: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) with linear interpolation between the closest ranks."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(item) for item in value]
    return value
