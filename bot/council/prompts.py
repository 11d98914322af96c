"""What each member is sent: its persona and role, the topic, and the transcript so far."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.council.seats import Seat
from bot.governance.selfflag import SELF_FLAG_INSTRUCTION
from bot.providers.base import ChatRequest, ChatTurn, Role


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    """A transcript line as prompts need it (independent of how storage keeps it)."""

    author_kind: str  # "ai", "human" or "system"
    author_name: str
    content: str
    visibility: str = "visible"  # held and withheld lines reach nobody; private lines only their author


def system_prompt(seat: Seat, seats: Sequence[Seat], topic: str) -> str:
    others = [other.label for other in seats if other.name != seat.name]
    role = f", {seat.role}," if seat.role else ""
    lines = [
        seat.spec.persona,
        "",
        f"You are {seat.name}{role} a member of an AI council meeting in a Discord thread.",
        f"The other members: {', '.join(others) if others else 'none; you deliberate alone'}.",
        f"The topic: {topic}",
        "Humans watch the thread and may interject; their words are marked '(human)'. When a human "
        "addresses the council, answer them by name.",
        "Speak in your own voice and role: build on, question or challenge what others said. Keep a reply "
        "under about 250 words, in Discord markdown. Do not prefix your reply with your name, and never "
        "use @mentions.",
        SELF_FLAG_INSTRUCTION,
    ]
    return "\n".join(lines)


def build_request(
    seat: Seat,
    seats: Sequence[Seat],
    *,
    topic: str,
    lines: Sequence[TranscriptLine],
    round_number: int,
    rounds: int,
) -> ChatRequest:
    """A request for `seat`'s next turn: own words as assistant turns, everyone else's as user turns."""
    labels = {other.name: other.label for other in seats}
    turns: list[tuple[Role, str]] = [("user", f"The council is convened. Topic: {topic}")]
    for line in lines:
        if line.visibility == "private" and line.author_name == seat.name:
            _append(turns, "user", f"(A note for you from the moderators: {line.content})")
            continue
        if line.author_kind == "system" or line.visibility != "visible":
            continue
        if line.author_kind == "ai" and line.author_name == seat.name:
            _append(turns, "assistant", line.content)
        elif line.author_kind == "human":
            _append(turns, "user", f"{line.author_name} (human): {line.content}")
        else:
            _append(turns, "user", f"{labels.get(line.author_name, line.author_name)}: {line.content}")
    _append(turns, "user", f"Round {round_number} of {rounds}. It is your turn, {seat.name}.")
    return ChatRequest(
        model=seat.spec.model,
        system=system_prompt(seat, seats, topic),
        turns=tuple(ChatTurn(role, content) for role, content in turns),
        max_output_tokens=seat.spec.max_output_tokens,
        temperature=seat.spec.temperature,
    )


def _append(turns: list[tuple[Role, str]], role: Role, content: str) -> None:
    # Providers require alternating roles: merge a turn into the previous one of the same role.
    if turns and turns[-1][0] == role:
        turns[-1] = (role, f"{turns[-1][1]}\n\n{content}")
    else:
        turns.append((role, content))
