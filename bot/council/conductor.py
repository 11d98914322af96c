"""Conductor: after every turn the chair says who speaks next, and why.

The chair is asked with a short request of its own (not a turn in the transcript) and answers with one JSON
object. A missing, unreadable or invalid choice falls back to seat order, and the thread says so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.council.framing import READING_RULES, escape
from bot.council.language import Language, for_parsing
from bot.council.language import instruction as language_instruction
from bot.council.seats import Seat
from bot.providers.base import ChatRequest, ChatTurn

WHY_LIMIT = 200
CHOICE_TOKENS = 300


@dataclass(frozen=True, slots=True)
class FloorChoice:
    seat: Seat
    why: str | None  # the chair's reason; None when it fell back to seat order
    problem: str | None = None  # why the chair's answer was not used


def request(
    chair: Seat,
    candidates: Sequence[Seat],
    *,
    topic: str,
    transcript: str,
    previous: Seat | None,
    language: Language | None = None,
) -> ChatRequest:
    names = ", ".join(escape(seat.label) for seat in candidates)
    rule = f" Do not choose {previous.name}, who just spoke." if previous is not None and len(candidates) > 1 else ""
    system = (
        f"{chair.spec.persona}\n\nYou chair an AI council meeting in a Discord thread. The topic: {escape(topic)}\n"
        "As chair you decide who speaks next, to move the discussion forward: whose view is missing, who should "
        f"answer a challenge, who can resolve a disagreement.\n{READING_RULES}\n{language_instruction(language)}"
    )
    ask = (
        f"The discussion so far:\n{transcript or '(nobody has spoken yet)'}\n\n"
        f"Members who may speak next: {names}.{rule}\n"
        'Reply with only a JSON object: {"next": "<member name>", "why": "<one short sentence>"}'
    )
    return ChatRequest(
        model=chair.spec.model,
        system=system,
        turns=(ChatTurn("user", ask),),
        max_output_tokens=min(chair.spec.max_output_tokens, CHOICE_TOKENS),
        temperature=chair.spec.temperature,
    )


def parse(reply: str, candidates: Sequence[Seat], previous: Seat | None) -> tuple[Seat | None, str | None, str]:
    """(the chosen seat, the reason, what was wrong) from the chair's reply; the seat is None if invalid."""
    name, why = _read(reply)
    if not name:
        return None, None, "its answer named no member"
    wanted = _normalize(name)
    seat = next(
        (s for s in candidates if wanted in (_normalize(s.name), _normalize(s.label))),
        None,
    )
    if seat is None:
        return None, None, f"{name[:60]!r} is not a member who may speak"
    if previous is not None and seat.name == previous.name and len(candidates) > 1:
        return None, None, f"{seat.name} has just spoken"
    return seat, _clip(why) if why else None, ""


def fallback(candidates: Sequence[Seat], previous: Seat | None, order: Sequence[str]) -> Seat:
    """The next member in seat order after the one who spoke last."""
    if previous is None or previous.name not in order:
        return candidates[0]
    start = order.index(previous.name)
    for offset in range(1, len(order) + 1):
        name = order[(start + offset) % len(order)]
        seat = next((s for s in candidates if s.name == name), None)
        if seat is not None and (seat.name != previous.name or len(candidates) == 1):
            return seat
    return candidates[0]


def _read(reply: str) -> tuple[str | None, str | None]:
    text = for_parsing(reply).strip()  # full-width braces, quotes and colons as ASCII
    for match in re.finditer(r"\{.*?\}", text, re.DOTALL):
        try:
            data = json.loads(match.group(0))
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("next"), str):
            why = data.get("why")
            return data["next"], why if isinstance(why, str) else None
    line = re.search(r"^\W*next\W*[:=]\s*(.+)$", text, re.IGNORECASE | re.MULTILINE)
    if line:
        name = re.split(r"\s+[-–—]\s+|[,;(]", line.group(1), maxsplit=1)[0]
        why_match = re.search(r"^\W*why\W*[:=]\s*(.+)$", text, re.IGNORECASE | re.MULTILINE)
        return name.strip(" *_`\"'."), why_match.group(1).strip() if why_match else None
    return None, None


def _normalize(name: str) -> str:
    return " ".join(name.strip(" *_`\"'.").casefold().split())


def _clip(text: str) -> str:
    text = " ".join(text.split()).replace("@", "@\u200b")
    return text if len(text) <= WHY_LIMIT else text[: WHY_LIMIT - 1].rsplit(" ", 1)[0] + "…"
