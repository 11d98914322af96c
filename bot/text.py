"""Splitting long replies for Discord: under the limit, at natural boundaries, code fences intact."""

from __future__ import annotations

import re

DISCORD_MESSAGE_LIMIT = 2000
_FENCE = re.compile(r"^\s*```(\S*)")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


def split_message(text: str, limit: int = DISCORD_MESSAGE_LIMIT) -> list[str]:
    """Split `text` into chunks of at most `limit` characters.

    Boundaries are tried in order of preference: paragraph, line, sentence, word; a single word
    longer than the limit is the only thing ever cut. A chunk that ends inside a ``` block closes
    it and the next chunk reopens it with the same language, so every chunk renders on its own.
    """
    if limit < 40:
        raise ValueError("limit too small to keep code fences balanced")
    text = text.strip()
    if not text:
        return []
    chunks: list[str] = []
    current = ""
    fence_lang: str | None = None  # language of the ``` block open at the end of `current`
    for piece in _pieces(text, limit - 8):  # room for a closing fence
        opener = f"```{fence_lang}\n" if fence_lang is not None and not current else ""
        candidate = current + opener + piece
        closer = "\n```" if _fence_after(piece, fence_lang) is not None else ""
        if current and len(candidate.rstrip()) + len(closer) > limit:
            chunks.append(_close(current, fence_lang))
            current = f"```{fence_lang}\n" if fence_lang is not None else ""
            candidate = current + piece
        current = candidate
        fence_lang = _fence_after(piece, fence_lang)
    if current.strip():
        chunks.append(_close(current, fence_lang))
    return [chunk for chunk in chunks if chunk.strip()]


def split_head(text: str, limit: int = DISCORD_MESSAGE_LIMIT) -> tuple[str, int, str] | None:
    """Where a text still being written leaves its first message: None while it fits in one.

    Otherwise (head, used, reopen): `head` is exactly `split_message(text, limit)[0]`, the first
    `used` characters of `text` are in it, and the rest continues as `reopen + text[used:]`, where
    `reopen` opens again the code block the head had to close ("" when none is open). Text that
    arrives later never moves a boundary already chosen, because the piece that did not fit, and
    everything after it, stays in the rest.
    """
    if limit < 40:
        raise ValueError("limit too small to keep code fences balanced")
    stripped = text.strip()
    lead = len(text) - len(text.lstrip())
    current = ""
    fence_lang: str | None = None
    for piece in _pieces(stripped, limit - 8):  # the same walk as split_message's first chunk
        candidate = current + piece
        closer = "\n```" if _fence_after(piece, fence_lang) is not None else ""
        if current and len(candidate.rstrip()) + len(closer) > limit:
            reopen = f"```{fence_lang}\n" if fence_lang is not None else ""
            return _close(current, fence_lang), lead + len(current), reopen
        current = candidate
        fence_lang = _fence_after(piece, fence_lang)
    return None


def _close(chunk: str, fence_lang: str | None) -> str:
    chunk = chunk.rstrip()
    return chunk + "\n```" if fence_lang is not None else chunk


def _fence_after(piece: str, fence_lang: str | None) -> str | None:
    """The open fence's language after `piece`, or None when no block is open."""
    for line in piece.split("\n"):
        match = _FENCE.match(line)
        if match:
            fence_lang = None if fence_lang is not None else match.group(1)
    return fence_lang


def _pieces(text: str, size: int) -> list[str]:
    """Cut text into pieces no longer than `size` each, keeping their separators at the end."""
    pieces: list[str] = []
    for paragraph in _keep_separators(text, re.compile(r"\n{2,}")):
        if len(paragraph) <= size:
            pieces.append(paragraph)
            continue
        for line in _keep_separators(paragraph, re.compile(r"\n")):
            if len(line) <= size:
                pieces.append(line)
                continue
            for sentence in _keep_separators(line, _SENTENCE_END):
                if len(sentence) <= size:
                    pieces.append(sentence)
                    continue
                pieces.extend(_words(sentence, size))
    return pieces


def _keep_separators(text: str, pattern: re.Pattern[str]) -> list[str]:
    parts: list[str] = []
    start = 0
    for match in pattern.finditer(text):
        parts.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        parts.append(text[start:])
    return parts


def _words(sentence: str, size: int) -> list[str]:
    pieces: list[str] = []
    for word in _keep_separators(sentence, re.compile(r"\s+")):
        while len(word) > size:  # a single unbroken token longer than a message: no better place exists
            pieces.append(word[:size])
            word = word[size:]
        pieces.append(word)
    return pieces
