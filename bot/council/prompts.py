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
    others = [other.label for other in seats if other.name != seat.name and other.active]
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
    budget_tokens: int | None = None,
    memory: Sequence[str] = (),
    instruction: str | None = None,
) -> ChatRequest:
    """A request for `seat`'s next turn: own words as assistant turns, everyone else's as user turns.

    With a budget, the prompt never exceeds it however long the council runs: the system prompt, the
    topic and the newest turns verbatim, then a one-line summary of each older turn, newest first,
    for as long as they fit; the oldest are left out with a note saying how many.

    `memory` (templates): the conclusions of the council's earlier sessions, newest first, given after the
    opening for as many as fit in a third of the room. `instruction` follows the closing turn prompt: what
    the council's mode asks of this turn, or the minutes.
    """
    system = system_prompt(seat, seats, topic)
    opening = f"The council is convened. Topic: {topic}"
    closing = f"Round {round_number} of {rounds}. It is your turn, {seat.name}."
    if instruction:
        closing = f"{closing}\n{instruction}"
    fixed = estimate_tokens(system, opening, closing) + _OVERHEAD
    recalled = _recalled(memory, None if budget_tokens is None else (budget_tokens - fixed) // 3)
    return conversation_request(
        seat,
        seats,
        lines,
        system=system,
        opening=opening,
        closing=closing,
        budget_tokens=budget_tokens,
        preface=recalled,
    )


def conversation_request(
    seat: Seat,
    seats: Sequence[Seat],
    lines: Sequence[TranscriptLine],
    *,
    system: str,
    opening: str,
    closing: str,
    budget_tokens: int | None,
    preface: str = "",
) -> ChatRequest:
    """`seat`'s view of the transcript between an opening and a closing user turn, within the budget (see
    build_request); `preface` follows the opening. Turns and other asks (peer ratings) share it, so a
    member reads the discussion the same way whatever it is asked."""
    items = _rendered(seat, seats, lines)
    summary: list[str] = []
    if budget_tokens is not None:
        used = estimate_tokens(system, opening, closing) + _OVERHEAD + (estimate_tokens(preface) if preface else 0)
        items, summary = _fit(items, budget_tokens - used)
    turns: list[tuple[Role, str]] = [("user", opening)]
    if preface:
        _append(turns, "user", preface)
    if summary:
        _append(turns, "user", "Earlier in the council, in brief:\n" + "\n".join(summary))
    for role, content, _ in items:
        _append(turns, role, content)
    _append(turns, "user", closing)
    return ChatRequest(
        model=seat.spec.model,
        system=system,
        turns=tuple(ChatTurn(role, content) for role, content in turns),
        max_output_tokens=seat.spec.max_output_tokens,
        temperature=seat.spec.temperature,
    )


# Per-message framing the estimate cannot see (roles, separators); generous on purpose.
_OVERHEAD = 64
_SUMMARY_WORDS = 30


def digest(seat: Seat, seats: Sequence[Seat], lines: Sequence[TranscriptLine], *, budget_tokens: int | None) -> str:
    """The discussion as `seat` may see it, as plain text (for requests outside the turns: a chair's choice),
    the newest lines verbatim and older ones in brief, within half the budget."""
    items = _rendered(seat, seats, lines)
    summary: list[str] = []
    if budget_tokens is not None:
        items, summary = _fit(items, budget_tokens // 2)
    own = f"{seat.label} (you)"
    text = [f"{own}: {content}" if role == "assistant" else content for role, content, _ in items]
    return "\n\n".join([*summary, *text])


def estimate_tokens(*texts: str) -> int:
    """A provider-neutral estimate: about four characters a token (English prose, most tokenizers)."""
    return sum(len(text) // 4 + 1 for text in texts)


def _recalled(memory: Sequence[str], room: int | None) -> str:
    """The earlier sessions' conclusions that fit in `room` tokens, newest first; "" when none do."""
    text = "This council has met before. The conclusions of its previous sessions, newest first:"
    kept = 0
    for entry in memory:
        longer = f"{text}\n\n{entry}"
        if room is not None and estimate_tokens(longer) > room:
            break
        text, kept = longer, kept + 1
    return text if kept else ""


def _rendered(seat: Seat, seats: Sequence[Seat], lines: Sequence[TranscriptLine]) -> list[tuple[Role, str, str]]:
    """(role, content, one-line summary) for every line this member may see, oldest first."""
    labels = {other.name: other.label for other in seats}
    items: list[tuple[Role, str, str]] = []
    for line in lines:
        if line.visibility == "private" and line.author_name == seat.name:
            note = f"(A note for you from the moderators: {line.content})"
            items.append(("user", note, note))
            continue
        if line.author_kind not in ("ai", "human") or line.visibility != "visible":
            continue
        if line.author_kind == "ai" and line.author_name == seat.name:
            items.append(("assistant", line.content, f"You: {_gist(line.content)}"))
        else:
            who = (
                f"{line.author_name} (human)"
                if line.author_kind == "human"
                else labels.get(line.author_name, line.author_name)
            )
            items.append(("user", f"{who}: {line.content}", f"{who}: {_gist(line.content)}"))
    return items


def _fit(items: list[tuple[Role, str, str]], room: int) -> tuple[list[tuple[Role, str, str]], list[str]]:
    """The newest items verbatim (up to three quarters of the room), then summaries of older ones."""
    verbatim: list[tuple[Role, str, str]] = []
    used = 0
    index = len(items)
    while index > 0:
        role, content, gist = items[index - 1]
        cost = estimate_tokens(content) + 4
        if used + cost > room * 3 // 4:
            if not verbatim:  # the newest turn alone is too long: keep its beginning
                keep = max(0, (room * 3 // 4 - 8) * 4)
                verbatim.append((role, content[:keep] + " … [cut for length]", gist))
                index -= 1
            break
        verbatim.append(items[index - 1])
        used += cost
        index -= 1
    summary: list[str] = []
    while index > 0:
        gist = "- " + items[index - 1][2]
        cost = estimate_tokens(gist) + 1
        if used + cost > room - 16:
            break
        summary.append(gist)
        used += cost
        index -= 1
    if index > 0:
        summary.append(f"- ({index} earlier turn(s) left out for length)")
    summary.reverse()
    verbatim.reverse()
    return verbatim, summary


def _gist(content: str) -> str:
    """The first sentence, at most a few dozen words."""
    first = content.strip().split("\n", 1)[0]
    for end in (". ", "! ", "? "):
        if end in first:
            first = first.split(end, 1)[0] + end.strip()
            break
    words = first.split()
    return " ".join(words[:_SUMMARY_WORDS]) + (" …" if len(words) > _SUMMARY_WORDS else "")


def _append(turns: list[tuple[Role, str]], role: Role, content: str) -> None:
    # Providers require alternating roles: merge a turn into the previous one of the same role.
    if turns and turns[-1][0] == role:
        turns[-1] = (role, f"{turns[-1][1]}\n\n{content}")
    else:
        turns.append((role, content))
