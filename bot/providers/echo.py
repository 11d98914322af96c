"""The offline echo member: no model, no network. It lets a newcomer see a council's mechanics
on a fresh machine, and says in every reply that it is not an AI."""

from __future__ import annotations

from collections.abc import AsyncIterator

from bot.providers.base import ChatRequest, Completion, StreamDelta

LABEL = "*(offline echo, not an AI)*"


class EchoClient:
    def __init__(self, name: str) -> None:
        self.name = name

    def _reply(self, request: ChatRequest) -> str:
        """Repeat the gist of the last thing said, so the flow of a council is visible."""
        said = [
            line
            for turn in request.turns
            if turn.role == "user"
            for line in turn.content.splitlines()
            if ": " in line and not line.startswith(("Round ", "The council is convened"))
        ]
        if said:
            speaker, words = said[-1].split(": ", 1)
            heard = f"{speaker} say: “{_gist(words)}”"
        else:
            opening = request.turns[0].content.splitlines()[0]
            heard = f"the topic: “{_gist(opening.split('Topic: ', 1)[-1])}”"
        return f"{LABEL} I am {self.name}, and I heard {heard}"

    async def complete(self, request: ChatRequest, *, timeout: float) -> Completion:
        text = self._reply(request)
        return Completion(text, _tokens(request), len(text.split()), "echo", "end_turn")

    async def stream(self, request: ChatRequest, *, timeout: float) -> AsyncIterator[StreamDelta | Completion]:
        text = self._reply(request)
        for word in text.split(" "):
            yield StreamDelta(word + " ")
        yield Completion(text, _tokens(request), len(text.split()), "echo", "end_turn")


def _gist(text: str) -> str:
    words = text.replace(LABEL, "").split()
    return " ".join(words[:12]) + (" …" if len(words) > 12 else "")


def _tokens(request: ChatRequest) -> int:
    return (len(request.system) + sum(len(turn.content) for turn in request.turns)) // 4 + 1
