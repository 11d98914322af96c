"""What a convene request (and a change to a council) may contain; errors are shown to the user as they are."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from bot.catalog import MemberSpec

MAX_ROUNDS = 10
MAX_MEMBERS = 8


class ConveneError(ValueError):
    """A convene request that cannot be honoured; the message is shown to the user as is."""


def has_control_characters(text: str) -> bool:
    """Control characters other than line breaks and tabs have no place in a topic or role."""
    return any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in text)


def clean_text(text: str) -> str:
    """Collapse whitespace and drop invisible format characters (zero-width spaces and the like),
    so that a name or topic that looks empty is empty."""
    visible = "".join(ch for ch in text if unicodedata.category(ch) != "Cf" or ch == "\u200d")
    return " ".join(visible.split())


def parse_roles(text: str, specs: Sequence[MemberSpec]) -> dict[str, str]:
    """Parse `"DeepSeek=Philosopher, Llama=the Realist"` into {member name: role}."""
    roles: dict[str, str] = {}
    by_name = {spec.name.casefold(): spec.name for spec in specs}
    for part in text.replace(";", ",").split(","):
        if not part.strip():
            continue
        name, sep, role = part.partition("=")
        if not sep or not name.strip() or not role.strip():
            raise ConveneError(f"Write roles as `Member=Role, Member=Role`; {part.strip()!r} is not of that form.")
        member = by_name.get(name.strip().casefold())
        if member is None:
            raise ConveneError(f"{name.strip()!r} is given a role but is not a member of this council.")
        if has_control_characters(role):
            raise ConveneError("A role may not contain control characters.")
        role = clean_text(role)
        if not role:
            raise ConveneError(f"The role for {member} is empty.")
        if len(role) > 100:
            raise ConveneError("A role may be at most 100 characters.")
        roles[member] = role
    return roles
