"""The offline echo member: no model, no network. It lets a newcomer see a council's mechanics
on a fresh machine, and says in every reply that it is not an AI.

It answers the requests that expect a form the way they ask, so every mode runs its course: a chair's
choice of the next speaker (whoever has waited longest), a review ranking (the order it was shown, which
the engine shuffled), peer ratings (the middle score, said to be no judgement) and a debate's stance
line (it always holds). Everything else is echoed: the gist of the last thing said.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import AsyncIterator

from bot.providers.base import ChatRequest, Completion, StreamDelta

LABEL = "*(offline echo, not an AI)*"
STREAM_WORDS = 3  # words per streamed chunk
STREAM_SECONDS = 0.6  # the most one streamed reply takes: slow enough to watch, bounded however long it is
CHUNK_DELAY = 0.04  # seconds between chunks of a short reply

_CLOSING = re.compile(r"^Round \d+ of \d+\. It is your turn", re.MULTILINE)
# A line of the discussion as the engine frames it (bot/council/framing.py): a block the bot wrote.
_SAID = re.compile(
    r'<(?P<tag>human|member) name="(?P<name>[^"]*)"(?: role="(?P<role>[^"]*)")?[^>]*>\n?(?P<words>[^<]*?)\n?</(?P=tag)>'
)
_FLOOR = re.compile(
    r"Members who may speak next: (?P<names>.+?)\.(?: Do not choose (?P<previous>.+?), who just spoke\.)?$"
)
_RANKING = re.compile(r"^FINAL RANKING: (?P<order>.+)$", re.MULTILINE)
_RATE = re.compile(r"Now rate (?P<names>.+?): one line each")
_RATING_FORMAT = "Name | clarity | insight | self-awareness | reason"
_STANCE = "`STANCE: holds`"


class EchoClient:
    def __init__(self, name: str) -> None:
        self.name = name

    def _reply(self, request: ChatRequest) -> str:
        ask = request.turns[-1].content if request.turns else ""
        if '{"next": "<member name>"' in ask:
            return self._floor(ask)
        if (ranking := _RANKING.search(ask)) is not None:
            return f"{LABEL} An echo cannot judge; it keeps the order it was shown.\nFINAL RANKING: {ranking['order']}"
        if _RATING_FORMAT in ask and (rate := _RATE.search(ask)) is not None:
            return "\n".join(
                f"{name} | 3 | 3 | 3 | An offline echo, not an AI: 3 is the middle of the scale, not a judgement."
                for name in rate["names"].split(", ")
            )
        text = f"{LABEL} I am {self.name}, and I heard {self._heard(request)}"
        return f"{text}\nSTANCE: holds" if _STANCE in ask else text

    def _heard(self, request: ChatRequest) -> str:
        """The gist of the last thing said, so the flow of a council is visible."""
        said = [
            match
            for turn in request.turns
            if turn.role == "user"
            for match in _SAID.finditer(_CLOSING.split(turn.content, maxsplit=1)[0])
        ]
        if said:
            last = said[-1]
            speaker = html.unescape(last["name"])
            if last["role"]:
                speaker += f" ({html.unescape(last['role'])})"
            elif last["tag"] == "human":
                speaker += " (human)"
            return f"{speaker} say: “{_gist(html.unescape(last['words']))}”"
        opening = request.turns[0].content.splitlines()[0]
        return f"the topic: “{_gist(opening.split('Topic: ', 1)[-1])}”"

    def _floor(self, ask: str) -> str:
        """As chair: the member who may speak and has waited longest (never spoken counts longest)."""
        match = next((m for line in ask.splitlines() if (m := _FLOOR.match(line))), None)
        if match is None:
            return f"{LABEL} I cannot tell who may speak."
        candidates = match["names"].split(", ")

        def last_spoke(label: str) -> int:
            name = html.unescape(label).split(" (", 1)[0]
            spoke = [
                m.start() for m in _SAID.finditer(ask) if m["tag"] == "member" and html.unescape(m["name"]) == name
            ]
            return max(spoke, default=-1)

        chosen = min(candidates, key=last_spoke)  # min() keeps the first of equals: seat order
        why = f"(offline echo, not an AI) {chosen} has waited longest to speak."
        return json.dumps({"next": chosen, "why": why}, ensure_ascii=False)

    async def complete(self, request: ChatRequest, *, timeout: float) -> Completion:
        text = self._reply(request)
        return Completion(text, _tokens(request), len(text.split()), "echo", "end_turn")

    async def stream(self, request: ChatRequest, *, timeout: float) -> AsyncIterator[StreamDelta | Completion]:
        text = self._reply(request)
        pieces = re.split(r"(?<=\s)(?=\S)", text)  # words with their trailing space: they join back exactly
        chunks = ["".join(pieces[i : i + STREAM_WORDS]) for i in range(0, len(pieces), STREAM_WORDS)]
        delay = min(CHUNK_DELAY, STREAM_SECONDS / len(chunks), timeout / (2 * len(chunks)))
        for index, chunk in enumerate(chunks):
            if index:
                await asyncio.sleep(delay)
            yield StreamDelta(chunk)
        yield Completion(text, _tokens(request), len(text.split()), "echo", "end_turn")


def _gist(text: str) -> str:
    words = text.replace(LABEL, "").split()
    return " ".join(words[:12]) + (" …" if len(words) > 12 else "")


def _tokens(request: ChatRequest) -> int:
    return (len(request.system) + sum(len(turn.content) for turn in request.turns)) // 4 + 1
