"""Properties of splitting text for Discord (bot/text.py), over text an adversary or another script sends:
arbitrary Unicode mixed with code fences, long lines, long words, grapheme clusters of every kind.

The invariant every split must keep, for chunks c_1..c_k of a text T and a limit L:
- every c_i is at most L characters, not blank, and holds an even number of ``` (its blocks balanced);
- there are positions a_1 <= b_1 <= a_2 <= ... <= b_k in T such that T[:a_1], every T[b_i:a_(i+1)] and
  T[b_k:] are whitespace only, and c_i == R_i + T[a_i:b_i] + C_i, where R_i is a fence the splitter
  added, "```" + tag + "\\n", exactly when a block is open at a_i (an odd number of ``` before it), and
  C_i is "\\n```" exactly when a block is open at b_i. The tag is "" or the block's own language;
- every a_i and b_i is a grapheme cluster boundary of T (UAX #29) and not inside a ```, except a cut
  inside a single cluster too long to fit in a message (the documented exception).
So the chunks joined give back T apart from the fences the splitter added and whitespace at boundaries.
"""

from __future__ import annotations

import re
from bisect import bisect_right

import regex
from hypothesis import example, given, note
from hypothesis import strategies as st

from bot.council.publisher import cut_text
from bot.text import StreamLayout, split_head, split_message

REOPEN = re.compile(r"```([A-Za-z0-9_+\-.#]{0,20})\n")
CLOSER = "\n```"

# -- what a reply is made of --------------------------------------------------------------------------

clusters = st.sampled_from(
    ["👩‍👩‍👧‍👦", "🇫🇷", "🏳️‍🌈", "👍🏽", "e\u0301", "\u1100\u1161\u11a8", "한", "ก\u0e34", "\r\n", "\u0600 ", " \u0301"]
)
sentence_ends = st.sampled_from([". ", "! ", "? ", "。", "！", "？", "। ", "؟ ", "۔ ", "… ", '." ', "。」", "?) "])
separators = st.sampled_from([" ", "  ", "\n", "\n\n", "\r\n", "\r\n\r\n", "\t", " \n \n", "\u3000", "\n    "])
tags = st.one_of(
    st.sampled_from(["", "python", "js", "c++", "objective-c"]), st.text(alphabet="abcxyz+#-._ ", max_size=40)
)
fences = st.one_of(
    st.builds(lambda tag: f"```{tag}\n", tags),
    st.sampled_from(["```", "\n```\n", "```\n", "``", "````", "~~~", "~~~python\n", "`inline`"]),
)
words = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12)
runs = st.builds(lambda unit, count: unit * count, st.one_of(words, clusters, fences), st.integers(1, 120))
pathological = st.builds(
    lambda base, count: base + "\u0301" * count, st.sampled_from(["a", "`", " "]), st.integers(30, 700)
)
parts = st.one_of(words, words, words, clusters, sentence_ends, separators, separators, fences, runs, pathological)
replies = st.lists(parts, max_size=80).map("".join)
limits = st.one_of(st.integers(40, 160), st.just(2000))


# -- the invariant ------------------------------------------------------------------------------------


def fence_spans(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer("```", text)]  # leftmost, as str.count reads them


def assert_sendable(chunks: list[str], limit: int) -> None:
    for chunk in chunks:
        assert 0 < len(chunk) <= limit, (len(chunk), chunk[:60])
        assert chunk.strip(), repr(chunk)
        assert chunk.count("```") % 2 == 0, repr(chunk)


def assert_shows(text: str, chunks: list[str], limit: int) -> list[tuple[int, int]]:
    """The invariant of the module docstring; the spans (a_i, b_i) found."""
    assert_sendable(chunks, limit)
    fences = fence_spans(text)
    fence_ends = [end for _, end in fences]
    boundaries = {m.start() for m in regex.finditer(r"\X", text)} | {len(text)}
    cluster_at = {m.start(): m.end() for m in regex.finditer(r"\X", text)}

    def is_open(position: int) -> bool:
        return bisect_right(fence_ends, position) % 2 == 1

    def check_cut(position: int) -> None:
        assert not any(start < position < end for start, end in fences), f"cut inside a fence at {position}"
        if position not in boundaries:  # only inside a cluster that cannot fit in a message
            start = max(b for b in boundaries if b < position)
            assert cluster_at[start] - start > limit - 28, f"cluster cut at {position}: {text[start:position]!r}"

    spans: list[tuple[int, int]] = []
    cursor = 0
    for chunk in chunks:
        found = None
        for start in range(cursor, len(text) + 1):  # the body starts after whitespace only
            if start > cursor and not text[start - 1].isspace():
                break
            reopen = REOPEN.match(chunk) if is_open(start) else None
            if is_open(start) and reopen is None:
                continue
            body = chunk[reopen.end() :] if reopen else chunk
            if text.startswith(body, start) and not is_open(start + len(body)):
                found = start, start + len(body)
            elif (
                body.endswith(CLOSER)
                and text.startswith(body[: -len(CLOSER)], start)
                and is_open(start + len(body) - len(CLOSER))
            ):
                found = start, start + len(body) - len(CLOSER)
            if found:
                if reopen and reopen.group(1):  # the tag repeated is the block's own
                    opener = fence_ends[bisect_right(fence_ends, start) - 1]
                    assert re.match(re.escape(reopen.group(1)) + r"\r?\n", text[opener:])
                break
        assert found, f"chunk {len(spans)} not found in the text after {cursor}: {chunk[:60]!r}"
        check_cut(found[0])
        check_cut(found[1])
        spans.append(found)
        cursor = found[1]
    assert not text[cursor:].strip(), f"text left unshown: {text[cursor:][:60]!r}"
    return spans


# -- the properties -----------------------------------------------------------------------------------


@given(replies, limits)
def test_split_message_shows_the_text_in_sendable_messages(text: str, limit: int) -> None:
    chunks = split_message(text, limit)
    note(f"chunks: {chunks!r}")
    assert_shows(text, chunks, limit)


@given(replies, limits)
def test_split_head_is_the_first_message_and_the_rest_continues_it(text: str, limit: int) -> None:
    chunks = split_message(text, limit)
    head = split_head(text, limit)
    if len(chunks) <= 1:
        assert head is None
        return
    assert head is not None
    words, used, reopen = head
    assert words == chunks[0]
    assert reopen == "" or REOPEN.fullmatch(reopen)
    # The rest, laid out on its own from `reopen + text[used:]`, continues the head exactly.
    spans = assert_shows(text, [words, *split_message(reopen + text[used:], limit)], limit)
    assert spans[0][1] <= used and not text[spans[0][1] : used].strip()
    assert (reopen != "") == (text[:used].count("```") % 2 == 1)


@given(replies, st.lists(st.integers(0, 4000), max_size=30), limits, st.sampled_from(["same", "cut", "edited"]))
# Found by the property: the edited reply keeps the words up to the first message's cut, but the accents after
# them now belong to the same grapheme cluster, so that cut is no longer one.
@example("a" + "\u0301" * 30 + "a" + "\u0301" * 56, [], 87, "edited")
# Found by the property: a cluster longer than a message is cut inside, in another place while streaming.
@example("0```0a" + "\u0301" * 33, [38], 40, "same")
def test_a_streamed_reply_ends_as_the_final_text_in_sendable_messages(
    text: str, arrivals: list[int], limit: int, ending: str
) -> None:
    layout = StreamLayout(limit=limit)
    contents: list[str] = []
    for end in sorted({min(point, len(text)) for point in arrivals} | {len(text)}):
        contents, grown = layout.grow(text[:end])
        assert_sendable(contents, limit)  # every edit while it streams is a message Discord accepts
        assert list(grown.finished) == contents[: len(grown.finished)]
        assert grown.finished[: len(layout.finished)] == layout.finished  # full messages never change
        layout = grown
    if ending == "same":
        final_text = text
    elif ending == "cut":
        final_text = cut_text(text, "the provider stopped")
    else:  # the checked reply lost a self-flag line in the middle
        final_text = text[: len(text) // 3] + text[2 * len(text) // 3 :]
    final = layout.final(final_text)
    assert_shows(final_text, final, limit)  # the final messages show exactly the final text
    cut = layout.start
    still_a_cut = cut in {m.start() for m in regex.finditer(r"\X", final_text)} | {len(final_text)} and not any(
        start < cut < end for start, end in fence_spans(final_text)
    )
    if final_text[:cut] == text[:cut] and still_a_cut:
        # The existing finish(): the full messages stay, the rest is laid out after them.
        assert final == [*layout.finished, *split_message(layout.reopen + final_text[layout.start :], limit)]
    # A grapheme cluster longer than a message must be cut inside; while it streams the cut may fall elsewhere than
    # in the final layout, which then lays it out again (showing exactly the final text, as checked above).
    oversized = any(len(m.group()) > limit // 2 for m in regex.finditer(r"\X", final_text))
    if ending == "same" and not oversized:
        assert final == contents  # nothing to edit once the last words were shown
