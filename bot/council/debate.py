"""Debate (Du et al. 2023, "Improving Factuality and Reasoning in Language Models through Multiagent Debate"):
everyone answers on their own first, then each round every member reads the others and revises or defends.

A member ends each later reply with a stance line; the line is replaced by a small visible marker, which is
also what is stored, so a restarted council reads the stances back from its transcript.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bot.council.language import for_parsing

HOLDS = "holds"
REVISED = "revised"
_MARKERS = {HOLDS: "-# 🛡️ holds its position", REVISED: "-# 🔄 revised its position"}
_STANCE_LINE = re.compile(
    r"^[\s*_>`#-]*stance\s*[:=\-–]\s*[*_`]*\s*(holds?|revised?)\b.*$", re.IGNORECASE | re.MULTILINE
)


def instruction(round_number: int) -> str:
    if round_number == 1:
        return (
            "This council debates. Round 1: give your own complete answer to the topic. The other members answer "
            "at the same time, without seeing each other, and you will read their answers next round."
        )
    return (
        "This council debates. Above are the other members' answers from the earlier rounds. Read them closely, "
        "then revise your answer where they convinced you or defend it where they did not, saying which points "
        "you accept or reject and why. End your reply with a last line that is exactly `STANCE: holds` if your "
        "position is unchanged, or `STANCE: revised` if you changed it."
    )


def mark_stance(text: str) -> str:
    """Replace the member's last stance line with a visible marker; text without one is left as it is."""
    lines = text.split("\n")
    # Read with full-width forms folded (`ＳＴＡＮＣＥ：holds`), whatever language the reply is in.
    found = [(index, match) for index, line in enumerate(lines) if (match := _STANCE_LINE.match(for_parsing(line)))]
    if not found:
        return text
    index, last = found[-1]
    stance = HOLDS if last.group(1).lower().startswith("hold") else REVISED
    lines[index] = ""
    body = "\n".join(lines).rstrip()
    return f"{body}\n{_MARKERS[stance]}" if body else _MARKERS[stance]


def stance_of(stored: str) -> str | None:
    """The stance a stored reply ends with, or None when it states none."""
    tail = stored.rstrip().rsplit("\n", 1)[-1]
    return next((stance for stance, marker in _MARKERS.items() if tail == marker), None)


def everyone_holds(stances: Iterable[str | None]) -> bool:
    stances = list(stances)
    return bool(stances) and all(stance == HOLDS for stance in stances)
