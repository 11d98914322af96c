"""Splitting text for Discord, the cases an adversary or another script sends (bot/text.py).

Every message must be one Discord accepts (at most 2,000 characters, not blank) and renders on its own
(code blocks balanced, none left empty), and no message boundary may fall inside a grapheme cluster.
"""

from __future__ import annotations

import re

import regex

from bot.text import DISCORD_MESSAGE_LIMIT, StreamLayout, split_head, split_message

EMPTY_BLOCK = re.compile(r"```[A-Za-z0-9_+\-.#]*\s*```")


def assert_sendable(chunks: list[str], limit: int = DISCORD_MESSAGE_LIMIT) -> None:
    assert chunks
    for chunk in chunks:
        assert 0 < len(chunk) <= limit and chunk.strip(), chunk[:80]
        assert chunk.count("```") % 2 == 0, chunk[:80]


def clusters(text: str) -> list[str]:
    return regex.findall(r"\X", text)


def assert_whole_clusters(text: str, chunks: list[str]) -> None:
    """The chunks are the text cut only between its grapheme clusters."""
    assert "".join(chunks) == text
    assert [cluster for chunk in chunks for cluster in clusters(chunk)] == clusters(text)


def test_a_reopened_code_block_counts_against_the_limit_and_no_message_is_an_empty_block() -> None:
    text = "```python\n" + "C" * 1995 + "\n```"
    chunks = split_message(text)
    assert_sendable(chunks)
    assert not any(EMPTY_BLOCK.search(chunk) for chunk in chunks)
    assert [len(chunk) for chunk in chunks] == [2000, 23]
    assert chunks[1] == "```python\n" + "C" * 9 + "\n```"
    head = split_head(text)
    assert head is not None and head[0] == chunks[0] and head[2] == "```python\n"
    assert head[1] == len("```python\n") + 1986


def test_a_message_does_not_end_on_an_opening_fence_with_no_code_after_it() -> None:
    text = "A" * 1980 + "\n```python\n" + "print(1)\n" * 10 + "```"
    chunks = split_message(text)
    assert_sendable(chunks)
    assert chunks == ["A" * 1980, "```python\n" + "print(1)\n" * 9 + "print(1)\n```"]


def test_a_message_does_not_reopen_a_block_only_to_close_it() -> None:
    code = "x = 1\n" * 331  # 1,986 characters: the code fits with the closing fence added, not with the real one
    text = "```python\n" + code + "```then the prose goes on for a while."
    chunks = split_message(text)
    assert_sendable(chunks)
    assert not any(re.match(r"```[a-z]*\n```", chunk) for chunk in chunks)
    assert chunks[-1].endswith("then the prose goes on for a while.")


def test_zwj_sequences_flags_accents_and_jamo_are_never_split() -> None:
    for unit in ["👩‍👩‍👧‍👦", "🇫🇷🇯🇵", "e\u0301\u0323", "\u1100\u1161\u11a8", "🏳️‍🌈", "👍🏽"]:
        text = unit * (5000 // len(unit) + 3)  # one run with no space, well over two messages
        chunks = split_message(text)
        assert_sendable(chunks)
        assert_whole_clusters(text, chunks)


def test_a_cluster_longer_than_a_message_is_the_one_thing_cut_inside() -> None:
    text = "a" + "\u0301" * 3000 + " end"
    chunks = split_message(text)
    assert_sendable(chunks)
    assert "".join(chunks) == text
    assert [len(chunk) for chunk in chunks] == [DISCORD_MESSAGE_LIMIT, len(text) - DISCORD_MESSAGE_LIMIT]


def test_sentences_of_other_scripts_end_where_their_terminators_are() -> None:
    sentences = {
        "chinese": ["这是第一个句子。", "第二句更长一些，对吧？", "第三句！", "「引用的句子。」"],
        "japanese": ["今日は晴れです。", "明日は雨でしょうか？", "散歩に行きましょう！"],
        "hindi": ["यह पहला वाक्य है। ", "क्या यह दूसरा है? ", "यह तीसरा है॥ "],
        "arabic": ["هذه جملة أولى. ", "هل هذه جملة ثانية؟ ", "وهذه ثالثة۔ "],
        "ellipsis": ["Wait for it… ", "Then it came. "],
        "quoted": ['He said "Stop." ', "She asked (why?) ", "«Fin.» "],
    }
    for script, parts in sentences.items():
        text = "".join(parts[i % len(parts)] for i in range(200)).strip()
        chunks = split_message(text, limit=100)
        assert_sendable(chunks, 100)
        ends = tuple(part.strip()[-2:] for part in parts)
        assert all(chunk.endswith(ends) for chunk in chunks), (script, [c[-4:] for c in chunks])
        assert regex.sub(r"\s", "", "".join(chunks)) == regex.sub(r"\s", "", text)


def test_a_long_language_tag_is_not_repeated_and_never_overflows() -> None:
    code = "\n".join(f"line_{i} = {i}" for i in range(400))
    for lang in ["python", "a" * 21, "x" * 3000]:
        text = f"```{lang}\n{code}\n```"
        chunks = split_message(text)
        assert_sendable(chunks)
        reopened = "```python\n" if lang == "python" else "```\n"
        assert all(chunk.startswith(reopened) for chunk in chunks[1:])


def test_a_run_of_backticks_stays_balanced() -> None:
    for text in ["```" * 1000, "`" * 5000, "````" * 700, "``` ``` " * 400]:
        chunks = split_message(text)
        assert_sendable(chunks)


def test_crlf_paragraphs_are_paragraphs() -> None:
    line = ("A line of about a hundred characters, give or take a few. " * 2).strip()
    paragraphs = ["\r\n".join(f"{i}.{j} {line}" for j in range(6)) for i in range(6)]
    chunks = split_message("\r\n\r\n".join(paragraphs))
    assert_sendable(chunks)
    # Two paragraphs fill most of a message; lines of the third would fit, but a paragraph end is preferred.
    assert chunks == ["\r\n\r\n".join(paragraphs[i : i + 2]) for i in (0, 2, 4)]


def test_crlf_code_keeps_its_language_when_reopened() -> None:
    code = "\r\n".join(f"value_{i} = compute({i})" for i in range(150))
    chunks = split_message(f"```python\r\n{code}\r\n```")
    assert_sendable(chunks)
    assert len(chunks) > 1 and all(chunk.startswith("```python\n") for chunk in chunks[1:])


def test_only_whitespace_or_fences() -> None:
    assert split_message(" \n\t\r\n ") == []
    assert split_head(" \n\t\r\n ") is None
    assert split_message("```\n```") == ["```\n```"]
    assert split_message("  ```  ") == ["```\n```"]
    assert_sendable(split_message("```python\n" + "\n" * 3000 + "```"))


def test_tildes_are_not_a_fence_in_discord() -> None:
    text = "~~~python\n" + "\n".join(f"value_{i} = compute({i})" for i in range(150)) + "\n~~~"
    chunks = split_message(text)
    assert len(chunks) > 1 and not any("```" in chunk for chunk in chunks)


def test_a_fence_inside_a_line_opens_a_block() -> None:
    code = "\n".join(f"value_{i} = compute({i})" for i in range(150))
    text = f"Run this: ```python\n{code}\n``` and see, or ```inline``` code."
    chunks = split_message(text)
    assert_sendable(chunks)
    assert len(chunks) > 1 and all(chunk.startswith("```python\nvalue_") for chunk in chunks[1:-1])
    assert chunks[-1].endswith("``` and see, or ```inline``` code.")


def test_whitespace_at_the_edges_goes_but_a_continued_code_line_keeps_its_indentation() -> None:
    assert split_message("\n\n   Hello.   \n\n") == ["Hello."]
    code = "def f():\n" + "    x = compute(1)  # a step\n" * 120
    chunks = split_message(f"```python\n{code}```")
    assert_sendable(chunks)
    assert all(chunk.startswith("```python\n    x = ") for chunk in chunks[1:])


def test_a_streamed_code_block_never_overflows_and_shows_closed_while_it_is_written() -> None:
    text = "```python\n" + "C" * 1995 + "\n```\n\nAfter the code."
    layout = StreamLayout()
    for end in range(1, len(text) + 1, 97):
        contents, layout = layout.grow(text[:end])
        assert_sendable(contents)
    contents, layout = layout.grow(text)
    assert_sendable(contents)
    assert layout.final(text) == contents
    partial, _ = StreamLayout().grow("Intro.\n```py\nx = 1")
    assert partial == ["Intro.\n```py\nx = 1\n```"]
