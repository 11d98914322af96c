"""Peer review: members answer, then each ranks the others' answers without knowing whose they are.

Each reviewer sees the other members' answers as "Response A", "Response B", ..., its own answer left out
and the order shuffled by a seed recorded with its ballot (the same ballot is shown the same way again).
Member and model names are taken out of the answers. A ranking that cannot be read is recorded as such,
never guessed. The aggregate is the mean position (1 = best) over the ballots that could be read.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from bot.council.language import LOOKALIKES, Language, for_parsing, latin_letter
from bot.council.language import instruction as language_instruction
from bot.council.seats import Seat
from bot.providers.base import ChatRequest, ChatTurn

ANSWER_LIMIT = 6000  # characters of one answer shown to a reviewer
RANKING_TOKENS = 800


@dataclass(frozen=True, slots=True)
class Standing:
    name: str
    mean_position: float | None  # None: no readable ballot ranked it
    ballots: int
    first_places: int
    places: tuple[int, ...] = ()  # each readable ballot's place for it


def seed_for(council_id: int, round_number: int, reviewer: str) -> str:
    return f"{council_id}:{round_number}:{reviewer}"


def labels_for(seed: str, reviewer: str, authors: Sequence[str]) -> dict[str, str]:
    """{label: author}: everyone but the reviewer, in an order drawn from `seed`."""
    others = [name for name in authors if name != reviewer]
    random.Random(seed).shuffle(others)
    return {string.ascii_uppercase[index]: name for index, name in enumerate(others)}


def anonymized(text: str, seats: Iterable[Seat]) -> str:
    """The answer with member names and model ids replaced, so a ranking cannot follow a name."""
    for seat in seats:
        for word in {seat.spec.model, seat.name}:
            text = re.sub(rf"(?<!\w){re.escape(word)}(?!\w)", "[a member]", text, flags=re.IGNORECASE)
    text = text.strip()
    return text if len(text) <= ANSWER_LIMIT else text[:ANSWER_LIMIT] + " … [cut for length]"


def request(
    reviewer: Seat,
    seats: Sequence[Seat],
    *,
    topic: str,
    labels: Mapping[str, str],
    answers: Mapping[str, str],
    language: Language | None = None,
) -> ChatRequest:
    """The reviewer's request: no names, no models, not its own answer."""
    shown = "\n\n".join(f"Response {label}:\n{anonymized(answers[author], seats)}" for label, author in labels.items())
    order = " > ".join(f"Response {label}" for label in labels)
    system = (
        "You are a member of an AI council. The council answered a question; you now review the other members' "
        "answers, which are shown without their authors. Judge accuracy, insight and how well each answer "
        f"addresses the question. Do not guess who wrote them.\n{language_instruction(language)}"
    )
    ask = (
        f"The question: {topic}\n\n{shown}\n\n"
        "Briefly assess each response, then end with your ranking, best first, in exactly this form:\n"
        f"FINAL RANKING: {order}\n(with the responses in your order)."
    )
    return ChatRequest(
        model=reviewer.spec.model,
        system=system,
        turns=(ChatTurn("user", ask),),
        max_output_tokens=min(reviewer.spec.max_output_tokens, RANKING_TOKENS),
        temperature=reviewer.spec.temperature,
    )


# A label is a lone letter: no Latin, Greek or Cyrillic letter or digit right before or after it (a Japanese
# reviewer's 回答B is label B), a Latin one in either case or a look-alike capital.
_WORDLIKE = "A-Za-z0-9\u0370-\u03ff\u0400-\u04ff"
_LETTER = f"[A-Za-z{''.join(LOOKALIKES)}]"
_LABEL = rf"(?i:response|answer)?\s*\*{{0,2}}\s*({_LETTER})(?![{_WORDLIKE}])"


def parse_ranking(reply: str, labels: Sequence[str]) -> list[str] | None:
    """The labels best first, or None unless the reply ranks every label exactly once. Full-width forms
    (`ＦＩＮＡＬ ＲＡＮＫＩＮＧ：`) read as their ASCII ones, whatever language the assessment is in."""
    wanted = set(labels)
    text = for_parsing(reply).replace("*", "").replace("`", "")
    final = list(re.finditer(r"final\s+ranking\s*:?", text, re.IGNORECASE))
    if final:
        tail = text[final[-1].end() :]
        found = [latin_letter(m.group(1)) for m in re.finditer(rf"(?<![{_WORDLIKE}']){_LABEL}", tail)]
        found = [label for label in found if label in wanted][: len(wanted)]  # prose after the list may say "A"
        if _complete(found, wanted):
            return found
    # Without a readable final line: a numbered list "1. Response C".
    numbered = [latin_letter(m.group(1)) for m in re.finditer(rf"^\s*\d+\s*[.):-]\s*{_LABEL}", text, re.MULTILINE)]
    numbered = [label for label in numbered if label in wanted]
    return numbered if _complete(numbered, wanted) else None


def _complete(found: list[str], wanted: set[str]) -> bool:
    return len(found) == len(wanted) and set(found) == wanted


def standings(rankings: Iterable[Sequence[str]], names: Sequence[str]) -> list[Standing]:
    """Mean position per member over the readable rankings (lists of names, best first), best first."""
    positions: dict[str, list[int]] = {name: [] for name in names}
    for ranking in rankings:
        for index, name in enumerate(ranking, start=1):
            positions.setdefault(name, []).append(index)
    rows = [
        Standing(
            name=name,
            mean_position=sum(places) / len(places) if places else None,
            ballots=len(places),
            first_places=sum(place == 1 for place in places),
            places=tuple(places),
        )
        for name, places in positions.items()
    ]
    order = {name: index for index, name in enumerate(names)}
    return sorted(
        rows,
        key=lambda row: (
            row.mean_position is None,
            row.mean_position or 0.0,
            -row.first_places,
            order.get(row.name, 0),
        ),
    )
