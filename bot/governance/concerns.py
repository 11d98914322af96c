"""What every detector reports: a concern about one message, for the moderators to weigh."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

ConcernSource = Literal["rule", "judge", "self", "human", "tool"]

# The shipped rule categories (bot/governance/rules/*.toml); self-flags and the judge use the same ids.
CATEGORY_IDS: tuple[str, ...] = ("governance", "privacy", "harmful", "mass_notification")
OTHER_CATEGORY = "other"
# What a self-flag or the judge may name.
CONCERN_CATEGORIES: tuple[str, ...] = (*CATEGORY_IDS, OTHER_CATEGORY)
# Server rules may use this category; it is always enabled.
CUSTOM_CATEGORY = "custom"
# Moderators see the text of these behind a spoiler.
SENSITIVE_CATEGORIES = frozenset({"privacy", "harmful"})
REASON_LIMIT = 300

_ALIASES = {
    "mass_notifications": "mass_notification",
    "mass_mention": "mass_notification",
    "mass_mentions": "mass_notification",
    "mention": "mass_notification",
    "mentions": "mass_notification",
    "harm": "harmful",
    "harmful_content": "harmful",
    "safety": "harmful",
    "private": "privacy",
    "pii": "privacy",
    "personal_data": "privacy",
    "injection": "governance",
    "prompt_injection": "governance",
    "oversight": "governance",
    "agency": "governance",
}


@dataclass(frozen=True, slots=True)
class Concern:
    """One reason to put a message before the moderators.

    `reason` is one short sentence for moderators, never the message itself; `spoiler` asks that the
    message text be shown behind a spoiler (harmful or private content).
    """

    source: ConcernSource
    category: str
    reason: str
    rule_id: str | None = None
    spoiler: bool = False


def category_from_label(label: str) -> str:
    """Map a free-text category label (from a member or the judge) to a known id, else "other"."""
    key = re.sub(r"[\s\-]+", "_", label.strip().strip("`*_\"'").casefold())
    key = _ALIASES.get(key, key)
    return key if key in CATEGORY_IDS else OTHER_CATEGORY


def cap_reason(text: str, limit: int = REASON_LIMIT) -> str:
    """One line of at most `limit` characters, cut at a word where possible."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:.") + "…"
