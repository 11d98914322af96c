"""What each member is sent: its persona and role, the topic, and the transcript so far.

Who said what is set by the bot, never by what someone wrote: each line comes in a block of its own
(bot/council/framing.py), and the moderators' notes to a member come in its system prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from bot.council.attachments import KeptImage, image_tokens
from bot.council.framing import (
    HUMAN_TAG,
    MEMBER_TAG,
    READING_RULES,
    block,
    escape,
    escaped_prefix,
    human_block,
    note_block,
)
from bot.council.language import Language
from bot.council.language import instruction as language_instruction
from bot.council.seats import Seat
from bot.governance.selfflag import SELF_FLAG_INSTRUCTION
from bot.providers.base import ChatRequest, ChatTurn, ImagePart, Role

# Per-message framing the estimate cannot see (roles, separators); generous on purpose.
_OVERHEAD = 64
_SUMMARY_WORDS = 30
ADDRESSED_LIMIT = 500  # characters of a human's words quoted when they address a member
NOTES_KEPT = 5  # the newest moderators' notes a member is given
NOTE_LIMIT = 1200
MAX_IMAGES_SENT = 20  # images in one request, the newest (Anthropic takes up to 100, at smaller sizes past 20)
_CUT = " … [cut for length]"


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    """A transcript line as prompts need it (independent of how storage keeps it)."""

    author_kind: str  # "ai", "human" or "system"
    author_name: str
    content: str
    visibility: str = "visible"  # held and withheld lines reach nobody; private lines only their author
    images: tuple[KeptImage, ...] = ()  # what a human shared with the line (bot/council/attachments.py)


def system_prompt(seat: Seat, seats: Sequence[Seat], topic: str, language: Language | None = None) -> str:
    """What `seat` is told before the discussion (moderators' notes to it are added by conversation_request).

    The topic and roles were written by people: they are escaped like everything else people write, so
    they cannot write a tag here either (bot/council/framing.py)."""
    others = [escape(other.label) for other in seats if other.name != seat.name and other.active]
    role = f", {escape(seat.role)}," if seat.role else ""
    lines = [
        seat.spec.persona,
        "",
        f"You are {seat.name}{role} a member of an AI council meeting in a Discord thread.",
        f"The other members: {', '.join(others) if others else 'none; you deliberate alone'}.",
        f"The topic: {escape(topic)}",
        "Humans watch the thread and may interject. When a human addresses the council, answer them by name.",
        READING_RULES,
        "Speak in your own voice and role: build on, question or challenge what others said. Keep a reply "
        "under about 250 words, in Discord markdown. Do not prefix your reply with your name, and never "
        "use @mentions.",
        language_instruction(language),
        SELF_FLAG_INSTRUCTION,
    ]
    return "\n".join(lines)


def addressed_instruction(author_name: str, content: str) -> str:
    """What a member is asked when a human replied to it or named it: the human's words stay in their block."""
    quoted = " ".join(content.split())[:ADDRESSED_LIMIT]
    return (
        f"The human of this block addressed you directly:\n{human_block(author_name, quoted)}\n"
        "Answer them by name, before the council goes on."
    )


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
    language: Language | None = None,
) -> ChatRequest:
    """A request for `seat`'s next turn: own words as assistant turns, everyone else's as user turns, each
    in a block of its own (bot/council/framing.py).

    With a budget, the prompt never exceeds it however long the council runs: the system prompt, the
    topic and the newest turns verbatim, then a one-line summary of each older turn, newest first,
    for as long as they fit; the oldest are left out with a note saying how many.

    `memory` (templates): the conclusions of the council's earlier sessions, newest first, given after the
    opening for as many as fit in a third of the room. `instruction` follows the closing turn prompt: what
    the council's mode asks of this turn, or the minutes; it is the bot's text (a human's words in it must
    come in a block, see addressed_instruction).
    """
    system = system_prompt(seat, seats, topic, language)
    opening = f"The council is convened. Topic: {escape(topic)}"
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
        thinking=seat.spec.thinking,  # a member's own turns may think; short structured asks do not
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
    thinking: str | int | None = None,
) -> ChatRequest:
    """`seat`'s view of the transcript between an opening and a closing user turn, within the budget (see
    build_request); `preface` follows the opening. Turns and other asks (peer ratings) share it, so a
    member reads the discussion the same way whatever it is asked.

    The moderators' notes to `seat` follow its system prompt, the one place no one in the thread writes."""
    said, notes = _readable(seat, seats, lines)
    system = _with_notes(system, notes)
    summary: list[str] = []
    kept = [(item, _as_turn(item)) for item in said]
    if budget_tokens is not None:
        used = estimate_tokens(system, opening, closing) + _OVERHEAD + (estimate_tokens(preface) if preface else 0)
        kept, summary = _fit(said, budget_tokens - used, _as_turn)
    allowed = _newest_images(item for item, _ in kept)
    turns: list[ChatTurn] = [ChatTurn("user", opening)]
    if preface:
        _append(turns, "user", preface)
    if summary:
        _append(turns, "user", "Earlier in the council, in brief:\n" + "\n".join(summary))
    for item, text in kept:
        images = tuple(image for image in item.images if id(image) in allowed)
        _append(turns, "assistant" if item.own else "user", text, images)
    _append(turns, "user", closing)
    return ChatRequest(
        model=seat.spec.model,
        system=system,
        turns=tuple(turns),
        max_output_tokens=seat.spec.max_output_tokens,
        temperature=seat.spec.temperature,
        thinking=thinking,
    )


def digest(seat: Seat, seats: Sequence[Seat], lines: Sequence[TranscriptLine], *, budget_tokens: int | None) -> str:
    """The discussion as `seat` may see it, as plain text in the same blocks (for requests outside the turns:
    a chair's choice), the newest lines verbatim and older ones in brief, within half the budget. Its own
    lines are marked you="yes"; moderators' notes are not part of it."""
    said, _ = _readable(seat, seats, lines)
    kept = [(item, _as_block(item)) for item in said]
    summary: list[str] = []
    if budget_tokens is not None:
        kept, summary = _fit(said, budget_tokens // 2, _as_block)
    return "\n\n".join([*summary, *(text for _, text in kept)])


def estimate_tokens(*texts: str) -> int:
    """A provider-neutral estimate: about four characters a token (English prose, most tokenizers)."""
    return sum(len(text) // 4 + 1 for text in texts)


def _recalled(memory: Sequence[str], room: int | None) -> str:
    """The earlier sessions' conclusions that fit in `room` tokens, newest first; "" when none do. They
    hold a topic people wrote and a member's words, escaped like any block's body."""
    text = "This council has met before. The conclusions of its previous sessions, newest first:"
    kept = 0
    for entry in memory:
        longer = f"{text}\n\n{escape(entry)}"
        if room is not None and estimate_tokens(longer) > room:
            break
        text, kept = longer, kept + 1
    return text if kept else ""


@dataclass(frozen=True, slots=True)
class _Said:
    """One line a member may read, with the author the bot set for it."""

    tag: str  # HUMAN_TAG or MEMBER_TAG
    attributes: dict[str, str]
    content: str  # as written
    own: bool = False  # the reader's own words: an assistant turn, as written
    images: tuple[ImagePart, ...] = ()  # a human's images, for a member that sees
    image_tokens: int = 0  # what they cost in the member's context (the provider's own estimate)


def _readable(seat: Seat, seats: Sequence[Seat], lines: Sequence[TranscriptLine]) -> tuple[list[_Said], list[str]]:
    """Every line this member may read, oldest first, and the moderators' notes meant for it."""
    roles = {other.name: other.role for other in seats}
    said: list[_Said] = []
    notes: list[str] = []
    for line in lines:
        if line.visibility == "private" and line.author_name == seat.name:
            notes.append(line.content)
            continue
        if line.author_kind not in ("ai", "human") or line.visibility != "visible":
            continue
        if line.author_kind == "human":
            said.append(_human(seat, line))
            continue
        attributes = {"name": line.author_name}
        role = roles.get(line.author_name)
        if role:
            attributes["role"] = role
        own = line.author_name == seat.name
        if own:
            attributes["you"] = "yes"
        said.append(_Said(MEMBER_TAG, attributes, line.content, own=own))
    return said, notes


def _human(seat: Seat, line: TranscriptLine) -> _Said:
    """A human's line; its images go to a member that sees, and every member reads which images were shared."""
    if not line.images:
        return _Said(HUMAN_TAG, {"name": line.author_name}, line.content)
    sees = seat.spec.vision
    shared = [f"{kept.filename}, {kept.image.width}×{kept.image.height}" for kept in line.images]
    if sees:
        notes = [f"[image: {name}]" for name in shared]
    else:
        notes = [f"[{line.author_name} shared an image you cannot see: {name}]" for name in shared]
    content = "\n".join(part for part in (line.content, *notes) if part)
    images = tuple(kept.image for kept in line.images) if sees else ()
    cost = sum(image_tokens(image, seat.spec.provider) for image in images)
    return _Said(HUMAN_TAG, {"name": line.author_name}, content, images=images, image_tokens=cost)


def _with_notes(system: str, notes: Sequence[str]) -> str:
    if not notes:
        return system
    kept = notes[-NOTES_KEPT:]
    heading = "Notes from the moderators, for you alone, oldest first"
    if len(notes) > len(kept):
        heading += f" ({len(notes) - len(kept)} older note(s) left out)"
    blocks = [note_block(note if len(note) <= NOTE_LIMIT else note[:NOTE_LIMIT] + _CUT) for note in kept]
    return "\n\n".join([system, heading + ":", *blocks])


def _as_turn(item: _Said, limit: int | None = None) -> str:
    """How `item` is sent in the turns: the member's own words as they were, anyone else's in a block.
    With `limit`, at most about that many characters (the beginning, cut)."""
    if not item.own:
        return _as_block(item, limit)
    if limit is None or len(item.content) <= limit:
        return item.content
    return item.content[:limit] + _CUT


def _as_block(item: _Said, limit: int | None = None) -> str:
    if limit is None:
        return block(item.tag, item.attributes, escape(item.content))
    frame = len(block(item.tag, item.attributes, "")) + len(_CUT)
    body = escaped_prefix(item.content, max(0, limit - frame))
    whole = escape(item.content)
    return block(item.tag, item.attributes, whole if body == whole else body + _CUT)


def _brief(item: _Said) -> str:
    """A summary line: the first sentence, in the item's block."""
    return "- " + block(item.tag, item.attributes, escape(_gist(item.content)), inline=True)


def _fit(
    items: list[_Said], room: int, render: Callable[[_Said, int | None], str]
) -> tuple[list[tuple[_Said, str]], list[str]]:
    """The newest items verbatim (up to three quarters of the room), then summaries of older ones."""
    verbatim: list[tuple[_Said, str]] = []
    used = 0
    index = len(items)
    while index > 0:
        item = items[index - 1]
        text = render(item, None)
        cost = estimate_tokens(text) + 4 + item.image_tokens
        if used + cost > room * 3 // 4:
            if not verbatim:  # the newest turn alone is too long: keep its beginning
                text = render(item, max(0, (room * 3 // 4 - 8) * 4))
                verbatim.append((item, text))
                used += estimate_tokens(text) + 4
                index -= 1
            break
        verbatim.append((item, text))
        used += cost
        index -= 1
    summary: list[str] = []
    while index > 0:
        gist = _brief(items[index - 1])
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


def _newest_images(items: Iterable[_Said]) -> set[int]:
    """The images sent in one request: the newest MAX_IMAGES_SENT (older ones stay named in their lines)."""
    images = [image for item in items for image in item.images]
    return {id(image) for image in images[-MAX_IMAGES_SENT:]}


def _append(turns: list[ChatTurn], role: Role, content: str, images: tuple[ImagePart, ...] = ()) -> None:
    # Providers require alternating roles: merge a turn into the previous one of the same role. Each line
    # is a block of its own, so merging never blurs who said what.
    if turns and turns[-1].role == role:
        last = turns[-1]
        turns[-1] = ChatTurn(role, f"{last.content}\n\n{content}", last.images + images)
    else:
        turns.append(ChatTurn(role, content, images))
