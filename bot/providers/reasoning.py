"""A reasoning model's thoughts kept apart from its answer when a server puts them in the answer itself.

Some OpenAI-compatible servers (Ollama, vLLM without a reasoning parser) send a reasoning model's thoughts at the
start of the content, between <think> and </think>. Those are the model's reasoning, not its answer: they are
routed to `reasoning` and never shown, even while the reply streams (the text is held back until it is clear
whether it opens with the tag, and while the tag is open).
"""

from __future__ import annotations

OPEN = "<think>"
CLOSE = "</think>"


class InlineThinking:
    """Feed the content as it arrives; `feed` and `finish` return the answer's text, `reasoning` the rest."""

    def __init__(self) -> None:
        # start: not known yet; thinking: inside the tag; after: past it, before the answer; answer: the answer
        self._state = "start"
        self._buffer = ""
        self._reasoning: list[str] = []

    @property
    def reasoning(self) -> str:
        return "".join(self._reasoning).strip()

    def feed(self, text: str) -> str:
        if self._state == "answer":
            return text
        if self._state == "after":  # the answer begins after the tag's closing and the blank lines after it
            text = text.lstrip()
            if text:
                self._state = "answer"
            return text
        self._buffer += text
        if self._state == "start":
            opening = self._buffer.lstrip()
            if len(opening) < len(OPEN) and OPEN.startswith(opening):
                return ""  # nothing yet, or what may still become the tag
            if not opening.startswith(OPEN):
                self._state = "answer"
                shown, self._buffer = self._buffer, ""
                return shown
            self._state = "thinking"
            self._buffer = opening[len(OPEN) :]
        end = self._buffer.find(CLOSE)
        if end < 0:
            return ""
        self._reasoning.append(self._buffer[:end])
        self._state = "after"
        rest, self._buffer = self._buffer[end + len(CLOSE) :], ""
        return self.feed(rest)

    def finish(self) -> str:
        """The end of the content: an unclosed tag is all reasoning; text that only might have been the tag is
        the answer after all."""
        rest, self._buffer = self._buffer, ""
        if self._state == "thinking":
            self._reasoning.append(rest)
            return ""
        self._state = "answer"
        return rest


def split(content: str) -> tuple[str, str]:
    """(answer, reasoning) of a whole content."""
    splitter = InlineThinking()
    answer = splitter.feed(content) + splitter.finish()
    return answer, splitter.reasoning
