"""Splitting long replies for Discord: under the limit, at natural boundaries, code blocks intact.

How a text is cut (split_message, and split_head for a text still being written):
- Boundaries are tried in order of preference: paragraph, line, sentence, word. A sentence ends at a
  terminator of any script (Unicode Sentence_Break STerm and ATerm: . ! ? 。 ！ ？ । ॥ ؟ ۔ ። and the
  like, and …) with the closing quotes and brackets after it; a full-width terminator (CJK) needs no
  space after it, as CJK text has none.
- Every boundary falls between two extended grapheme clusters (Unicode UAX #29, the `regex` module's
  \\X), so an emoji sequence, a flag, a letter and its accents or a Hangul syllable stay in one message.
  A run with no boundary at all is cut between two clusters. The one exception: a single cluster longer
  than a whole message (a letter followed by thousands of combining marks) is cut between code points,
  since nothing else would make it fit.
- Code blocks: as in Discord, a ``` anywhere opens or closes a block (~~~ is no fence there). A message
  that ends inside a block closes it, and the next one opens it again with the same language (a
  language tag longer than 20 characters is not repeated). No boundary leaves a message with an empty
  block or opens one only to close it, where another boundary avoids it.
- Whitespace at a boundary is dropped, except the indentation of a code line that starts a message.
  No message is blank or longer than the limit.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

import regex

DISCORD_MESSAGE_LIMIT = 2000
_CLOSER = "\n```"
_RESERVE = 8  # pieces are cut to leave room for a reopened and a closing fence
_WS = r"[\s\x1c-\x1f]"  # what str.isspace() calls whitespace, which is what strip() drops
_CLUSTER = regex.compile(r"\X")
_LANG = regex.compile(r"[A-Za-z0-9_+\-.#]{1,20}(?=\r?\n)")  # the language tags Discord reads, short ones
_TAG_ONLY = regex.compile(r"[A-Za-z0-9_+\-.#]{0,20}")  # an opening fence line with no code after it yet
_PARAGRAPH = regex.compile(rf"\n(?:(?!\n){_WS})*\n(?:(?:(?!\n){_WS})*\n)*")
_LINE = regex.compile(r"\n")
_SENTENCE = regex.compile(
    rf"[\p{{SB=STerm}}\p{{SB=ATerm}}…]\p{{SB=Close}}*{_WS}+"
    rf"|[[\p{{SB=STerm}}\p{{SB=ATerm}}]&&[\p{{ea=W}}\p{{ea=F}}\p{{ea=H}}]]\p{{SB=Close}}*{_WS}*",
    regex.V1,
)
_WORD = regex.compile(rf"{_WS}+")
_LEVELS = (_PARAGRAPH, _LINE, _SENTENCE, _WORD)


def split_message(text: str, limit: int = DISCORD_MESSAGE_LIMIT) -> list[str]:
    """Split `text` into messages of at most `limit` characters (see the module's docstring for where).

    Pieces of the text are taken whole while they fit: paragraphs, or the lines of a paragraph too long
    for a message, its sentences, its words. A chunk that ends inside a ``` block closes it and the next
    chunk reopens it with the same language, so every chunk renders on its own.
    """
    layout = _Layout(text, limit)
    chunks: list[str] = []
    start = layout.first_start()
    while start < layout.end:
        chunk, cut = layout.chunk_at(start)
        chunks.append(chunk)
        start = layout.next_start(cut)
    return chunks


def split_head(text: str, limit: int = DISCORD_MESSAGE_LIMIT) -> tuple[str, int, str] | None:
    """Where a text still being written leaves its first message: None while it fits in one.

    Otherwise (head, used, reopen): `head` is exactly `split_message(text, limit)[0]`, the first
    `used` characters of `text` are in it (whitespace at the boundary dropped), and the rest continues
    as `reopen + text[used:]`, where `reopen` opens again the code block the head had to close ("" when
    none is open). A caller that keeps the head once chosen is never moved by text that arrives later:
    the piece that did not fit, and everything after it, stays in the rest.
    """
    layout = _Layout(text, limit)
    start = layout.first_start()
    if start >= layout.end:
        return None
    head, cut = layout.chunk_at(start)
    used = layout.next_start(cut)
    if used >= layout.end:
        return None
    return head, used, layout.reopen(used)


@dataclass(frozen=True, slots=True)
class StreamLayout:
    """How a reply shown while it is written sits in its messages.

    `finished`: the messages that are full, whose words never change while the reply grows; the last
    message shows `reopen + source[start:]`, `reopen` being a code block the previous message had to
    close. `source` is the reply as last laid out, which `finished` and `start` were cut from.
    """

    finished: tuple[str, ...] = ()
    start: int = 0
    reopen: str = ""
    source: str = ""
    limit: int = DISCORD_MESSAGE_LIMIT

    def grow(self, text: str) -> tuple[list[str], StreamLayout]:
        """What every message shows for the reply so far, and the layout to grow from next time."""
        finished, start, reopen = list(self.finished), self.start, self.reopen
        segment = reopen + text[start:]
        while (head := split_head(segment, self.limit)) is not None:
            words, used, reopen_next = head
            if used <= len(reopen):  # split_head always moves past the fence it was given: never loop
                raise RuntimeError(f"split_head made no progress at {start} of a {len(text)}-character reply")
            finished.append(words)
            start += used - len(reopen)
            reopen = reopen_next
            segment = reopen + text[start:]
        current = split_message(segment, self.limit)  # one message at most; none right after a split
        return [*finished, *current], StreamLayout(tuple(finished), start, reopen, text, self.limit)

    def final(self, text: str) -> list[str]:
        """The messages that show the finished reply `text`: the full ones stay as they are when the
        final words extend what they were cut from, else the whole reply is laid out again. Equal words up to
        the cut are not enough: what follows may join them in one grapheme cluster or one ``` fence."""
        if text[: self.start] == self.source[: self.start] and _Layout(text, self.limit).allowed[self.start]:
            return [*self.finished, *split_message(self.reopen + text[self.start :], self.limit)]
        return split_message(text, self.limit)


class _Layout:
    """One text, read once: where it may be cut, and where its code blocks open and close."""

    def __init__(self, text: str, limit: int) -> None:
        if limit < 40:
            raise ValueError("limit too small to keep code fences balanced")
        self.text, self.limit, self.end = text, limit, len(text)
        self.fence_starts: list[int] = []
        found = text.find("```")
        while found != -1:  # leftmost and without overlap, as str.count and Discord read them
            self.fence_starts.append(found)
            found = text.find("```", found + 3)
        self.fence_ends = [start + 3 for start in self.fence_starts]
        allowed = bytearray(self.end + 1)  # 1 where a cut is allowed: between clusters, outside a fence
        for match in _CLUSTER.finditer(text):
            allowed[match.start()] = 1
        allowed[self.end] = 1
        for start in self.fence_starts:
            allowed[start + 1] = allowed[start + 2] = 0
        self.allowed = allowed
        ends: list[int] = []
        _piece_ends(text, 0, self.end, limit - _RESERVE, 0, ends)
        # A piece ends after its separator; the message it closes ends after its last words.
        cuts: list[int] = []
        previous_end = previous_cut = 0
        for end in ends:
            if not allowed[end]:
                continue
            cut = self._content_end(end, previous_end)
            if cut == previous_end:  # only whitespace since the previous piece (walk each run once)
                cut = previous_cut
            if cut > (cuts[-1] if cuts else 0):
                cuts.append(cut)
            previous_end, previous_cut = end, cut
        self.cuts = cuts

    def first_start(self) -> int:
        return self.next_start(0)

    def is_open(self, position: int) -> bool:
        """Whether a code block is open at `position` (never inside a fence)."""
        return bisect_right(self.fence_ends, position) % 2 == 1

    def reopen(self, position: int) -> str:
        """The fence a message starting at `position` opens again: "" outside a block."""
        if not self.is_open(position):
            return ""
        opener_end = self.fence_ends[bisect_right(self.fence_ends, position) - 1]
        lang = _LANG.match(self.text, opener_end)
        return f"```{lang.group() if lang else ''}\n"

    def next_start(self, cut: int) -> int:
        """Where the message after one ending at `cut` starts: past the whitespace, keeping a code line's
        indentation (when it leaves room for code), never inside a cluster (unless `cut` was inside one)."""
        text, after = self.text, self._blank_end(cut)
        if after >= self.end:
            return self.end
        start = after
        if self.is_open(cut):
            newline = text.rfind("\n", cut, after)
            if newline != -1 and after - newline - 1 <= self.limit // 4:
                start = newline + 1
        while start > cut and not self.allowed[start]:
            start -= 1
        return start

    def chunk_at(self, start: int) -> tuple[str, int]:
        """The message starting at `start` (at words, not blank), and where its words end in the text."""
        reopen = self.reopen(start)
        best: int | None = None
        failed = self.end + 1
        for cut in self.cuts[bisect_right(self.cuts, start) :]:
            if self._length(start, cut, reopen) > self.limit:
                failed = cut
                break
            if self._acceptable(start, cut):
                best = cut
        if best is None:  # not even the first piece fits: cut it finer
            best = self._cut_within(start, failed, reopen)
        words_end = self._content_end(best, start)
        closer = _CLOSER if self.is_open(words_end) else ""
        return reopen + self.text[start:words_end] + closer, best

    def _cut_within(self, start: int, failed: int, reopen: str) -> int:
        """The best cut before `failed`: the last line end that fits and leaves no empty block, else the
        last sentence end, word end, cluster; else any cut that fits and shows more than a fence; else
        a cut inside what follows (a cluster, or blank lines, longer than a message)."""
        text, allowed = self.text, self.allowed
        last = min(failed - 1, start + self.limit, self.end)
        sentence_ends = {
            self._content_end(match.end(), start) for match in _SENTENCE.finditer(text, start, min(self.end, last + 1))
        }
        # A message that would hold nothing but the fence it starts with: never, so that a text which
        # begins with a reopened fence (`reopen + text[used:]`) always moves on.
        bare_fence = text.startswith("```", start) and not reopen
        best: list[int | None] = [None, None, None, None]  # line, sentence, word, cluster
        fitting: int | None = None
        previous = start
        for position in range(start + 1, last + 1):
            if not allowed[position]:
                continue
            cluster, previous = text[previous:position], position
            if cluster.isspace() or self._length(start, position, reopen) > self.limit:
                continue
            if not (bare_fence and _TAG_ONLY.fullmatch(text, start + 3, position)):
                fitting = position
            if not self._acceptable(start, position):
                continue
            after = self._blank_end(position)
            if "\n" in text[position:after]:
                best[0] = position
            elif position in sentence_ends:
                best[1] = position
            elif after > position or position == self.end:
                best[2] = position
            else:
                best[3] = position
        for found in (*best, fitting):
            if found is not None:
                return found
        # A single cluster longer than a message: the one place cut between code points. (Or a blank
        # run longer than a message, dropped as whitespace at a boundary.)
        cut = min(self.end, start + self.limit - len(reopen))
        fence = bisect_right(self.fence_starts, cut - 1) - 1
        if fence >= 0 and self.fence_starts[fence] < cut < self.fence_ends[fence]:  # never inside a fence
            cut = self.fence_starts[fence] if self.fence_starts[fence] > start else self.fence_ends[fence]
        if self._length(start, cut, reopen) > self.limit:
            cut -= len(_CLOSER)  # room for the fence that closes the block
        return cut

    def _length(self, start: int, cut: int, reopen: str) -> int:
        return len(reopen) + cut - start + (len(_CLOSER) if self.is_open(cut) else 0)

    def _acceptable(self, start: int, cut: int) -> bool:
        """Whether a message may end at `cut` without an empty code block here or in the next message."""
        after = self._blank_end(cut)
        if after >= self.end or not self.is_open(cut):
            return True  # the end of the text: nothing could fill a block left empty
        opener = self.fence_starts[bisect_right(self.fence_ends, cut) - 1]
        if opener >= start and _TAG_ONLY.fullmatch(self.text, opener + 3, cut):
            return False  # the block opened in this message and holds no code yet
        return not self.text.startswith("```", after)  # the next message would reopen it only to close it

    def _blank_end(self, position: int) -> int:
        text, end = self.text, self.end
        while position < end and text[position].isspace():
            position += 1
        return position

    def _content_end(self, position: int, floor: int) -> int:
        """`position` moved back over trailing whitespace (not before `floor`), to the end of the last
        cluster not blank."""
        text, cut = self.text, position
        while cut > floor and text[cut - 1].isspace():
            cut -= 1
        while cut < position and not self.allowed[cut]:
            cut += 1
        return cut


def _piece_ends(text: str, start: int, end: int, size: int, level: int, ends: list[int]) -> None:
    """The ends of the pieces of text[start:end]: whole if it fits in `size`, else cut at the next level's
    separators (paragraph, line, sentence, word); a word too long for a message stays one piece."""
    if end - start <= size or level == len(_LEVELS):
        ends.append(end)
        return
    piece = start
    for match in _LEVELS[level].finditer(text, start, end):
        if match.end() > piece:
            _piece_ends(text, piece, match.end(), size, level + 1, ends)
            piece = match.end()
    if piece < end:
        _piece_ends(text, piece, end, size, level + 1, ends)
