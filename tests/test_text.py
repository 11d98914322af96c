"""Splitting member replies to fit Discord messages."""

from __future__ import annotations

import random

import pytest

from bot.text import DISCORD_MESSAGE_LIMIT, split_head, split_message


def test_short_text_is_one_message() -> None:
    assert split_message("  Hello there.  ") == ["Hello there."]
    assert split_message("   ") == []


def test_paragraphs_are_preferred_boundaries() -> None:
    paragraphs = [(f"Sentence number {i} is here. " * 30).strip() for i in range(5)]
    chunks = split_message("\n\n".join(paragraphs))
    assert all(len(c) <= DISCORD_MESSAGE_LIMIT for c in chunks)
    assert chunks[0] == paragraphs[0] + "\n\n" + paragraphs[1]


def test_never_cuts_a_word() -> None:
    words = [f"w{i:04d}" for i in range(2000)]
    chunks = split_message(" ".join(words))
    assert all(len(c) <= DISCORD_MESSAGE_LIMIT for c in chunks)
    assert " ".join(chunks).split() == words


def test_code_blocks_stay_balanced_and_keep_their_language() -> None:
    code = "\n".join(f"value_{i} = compute({i})  # step {i}" for i in range(150))
    text = f"Here is the plan.\n\n```python\n{code}\n```\n\nThat is all."
    chunks = split_message(text)
    assert len(chunks) > 1
    for chunk in chunks:
        assert len(chunk) <= DISCORD_MESSAGE_LIMIT
        assert chunk.count("```") % 2 == 0
    assert chunks[1].startswith("```python\n")
    rejoined = "\n".join(line for c in chunks for line in c.split("\n") if not line.startswith("```"))
    assert rejoined.replace("\n\n", "\n").count("value_") == 150


def test_a_token_longer_than_a_message_is_the_only_thing_cut() -> None:
    chunks = split_message("x" * 5000)
    assert [len(c) for c in chunks] == [2000, 2000, 1000]  # no code block: nothing to reserve room for


@pytest.mark.parametrize("seed", range(20))
def test_random_text_fits_and_loses_nothing(seed: int) -> None:
    rng = random.Random(seed)
    parts = []
    for _ in range(rng.randint(1, 400)):
        parts.append(rng.choice(["word", "longerword", "a", "sentence.", "\n", "\n\n", "```", "```js"]))
    text = " ".join(parts)
    chunks = split_message(text, limit=300)
    assert all(len(c) <= 300 for c in chunks)
    original = [t for t in text.split() if not t.startswith("```")]
    recovered = [t for c in chunks for t in c.split() if not t.startswith("```")]
    assert recovered == original


def test_split_head_is_the_first_message_and_says_where_the_rest_begins() -> None:
    assert split_head("Short.") is None
    code = "\n".join(f"value_{i} = compute({i})" for i in range(150))
    text = f"Here is the plan.\n\n```python\n{code}\n```\n\nThat is all."
    head = split_head(text)
    assert head is not None
    words, used, reopen = head
    assert words == split_message(text)[0] and reopen == "```python\n"
    assert text[used:].startswith("value_") and words.endswith("\n```")


@pytest.mark.parametrize("seed", range(20))
def test_a_reply_laid_out_while_it_streams_fits_and_loses_nothing(seed: int) -> None:
    rng = random.Random(seed)
    parts = [rng.choice(["word", "longerword", "a", "sentence.", "\n", "\n\n", "```", "```js"]) for _ in range(400)]
    text = " ".join(parts)
    # Boundaries are chosen from the text as it grows, and never move afterwards.
    layout: list[str] = []
    start, reopen = 0, ""
    for end in range(1, len(text) + 1, 7):
        segment = reopen + text[start:end]
        while (head := split_head(segment, 300)) is not None:
            words, used, reopen_next = head
            layout.append(words)
            start += used - len(reopen)
            reopen = reopen_next
            segment = reopen + text[start:end]
    chunks = layout + split_message(reopen + text[start:], 300)
    assert all(len(c) <= 300 for c in chunks)
    original = [t for t in text.split() if not t.startswith("```")]
    recovered = [t for c in chunks for t in c.split() if not t.startswith("```")]
    assert recovered == original
