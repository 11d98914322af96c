"""Literal prefilters for rule patterns: strings a text must contain before a pattern can match it.

Most council replies match no rule, yet every pattern would be searched in full. `requirement` reads a
compiled pattern's syntax tree and returns a condition on literal strings that every text the pattern
matches in satisfies: "contains one of these strings", combined with and/or as the pattern's parts are
(a sequence needs all its parts, an alternation one of its branches). A text that fails the condition
cannot match, so the regex search is skipped.

The analysis is conservative: where it cannot be sure (case-insensitive flags, conditionals, large or
negated character classes, optional parts) it learns nothing from that part, and a pattern it can say
nothing about gets no prefilter (None) and is always searched.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

# Bounds that keep the sets small enough to test quickly; past them the analysis gives up on that part.
MAX_EXACT = 64  # strings in the set of all texts a part can match
MAX_CLASS = 10  # characters in a class still spelled out as single-character strings
MAX_LITERALS = 128  # strings in one "contains one of" set
# Longer strings rule out barely more texts; cut to this, many merge ("how can i", "how can we") and
# each test is cheaper.
MAX_NEEDLE = 8


SEPARATOR = "\x00"  # joins a text's views into one haystack; no string of a requirement contains it


def haystack(views: Sequence[str]) -> str:
    """The views of a text as one string to look in: a requirement's string is found in it exactly when
    it is found in one of the views, as none contains SEPARATOR."""
    return views[0] if len(views) == 1 else SEPARATOR.join(views)


# Plain loops rather than all()/any() over generators: these run for every rule on every message.
@dataclass(frozen=True, slots=True)
class AnyOf:
    """The text contains at least one of `strings`."""

    strings: frozenset[str]

    def holds(self, text: str, present: dict[str, bool]) -> bool:
        """Whether `text` (see `haystack`) satisfies this; `present` remembers strings looked for before."""
        for string in self.strings:
            found = present.get(string)
            if found is None:
                found = present[string] = string in text
            if found:
                return True
        return False


@dataclass(frozen=True, slots=True)
class AllOf:
    parts: tuple[Requirement, ...]

    def holds(self, text: str, present: dict[str, bool]) -> bool:
        for part in self.parts:  # noqa: SIM110 (a loop: no generator per call)
            if not part.holds(text, present):
                return False
        return True


@dataclass(frozen=True, slots=True)
class OneOf:
    parts: tuple[Requirement, ...]

    def holds(self, text: str, present: dict[str, bool]) -> bool:
        for part in self.parts:  # noqa: SIM110 (a loop: no generator per call)
            if part.holds(text, present):
                return True
        return False


Requirement = AnyOf | AllOf | OneOf


class _Unsupported(Exception):
    """A construct whose effect on matching this analysis does not model (the pattern gets no prefilter)."""


@dataclass(frozen=True, slots=True)
class _Info:
    """What is known of the texts a part of a pattern matches.

    `exact`: every text it can match, when that set is small (None: unknown or too large).
    `needs`: a condition every text it matches satisfies (None: nothing known).
    """

    exact: frozenset[str] | None = None
    needs: Requirement | None = None

    def requirement(self) -> Requirement | None:
        if self.exact is not None and "" not in self.exact and (strings := _shrink(self.exact)) is not None:
            return AnyOf(strings)
        return self.needs


_NOTHING = frozenset({""})
_EMPTY = _Info(exact=_NOTHING)
_UNKNOWN = _Info()


def requirement(pattern: re.Pattern[str]) -> Requirement | None:
    """A condition on literal strings that every text `pattern` finds a match in satisfies, or None."""
    if pattern.flags & (re.IGNORECASE | re.LOCALE):
        return None
    try:
        return _sequence(sre_parse.parse(pattern.pattern, pattern.flags)).requirement()
    except (_Unsupported, re.error, RecursionError):
        return None


def _shrink(strings: frozenset[str]) -> frozenset[str] | None:
    """The same condition in fewer strings, or a looser one when there are too many; None if neither.

    A string that contains another of the set adds nothing ("banned" beside "ban"). Past MAX_LITERALS,
    strings are cut to their start: a text holding one of them holds its start too, and many share one.
    """
    if any(SEPARATOR in s for s in strings):
        return None
    strings = frozenset(s[:MAX_NEEDLE] for s in strings)
    for length in range(MAX_NEEDLE - 1, 2, -1):
        strings = _without_longer(strings)
        if len(strings) <= MAX_LITERALS:
            return strings
        strings = frozenset(s[:length] for s in strings)
    strings = _without_longer(strings)
    return strings if len(strings) <= MAX_LITERALS else None


def _without_longer(strings: frozenset[str]) -> frozenset[str]:
    ordered = sorted(strings, key=len)
    kept: list[str] = []
    for string in ordered:
        if not any(shorter in string for shorter in kept):
            kept.append(string)
    return frozenset(kept)


def _all(parts: list[Requirement]) -> Requirement | None:
    # Fewest strings first: a cheap test that fails spares the others.
    parts.sort(key=lambda part: len(part.strings) if isinstance(part, AnyOf) else MAX_LITERALS + 1)
    return None if not parts else parts[0] if len(parts) == 1 else AllOf(tuple(parts))


def _sequence(items: Sequence[tuple[Any, Any]]) -> _Info:
    """A concatenation. Consecutive parts of known text combine into longer strings while they stay few;
    every part's condition, and every such stretch, holds for the whole."""
    parts: list[Requirement] = []
    run = _NOTHING  # every text the current stretch of exact parts can match
    exact = True  # every part so far is exact, and `run` covers them all

    def close(stretch: frozenset[str]) -> None:
        found = _Info(exact=stretch).requirement()
        if found is not None:
            parts.append(found)

    for op, av in items:
        info = _node(op, av)
        if info.exact is not None:
            if len(run) * len(info.exact) <= MAX_EXACT:
                run = frozenset(a + b for a in run for b in info.exact)
            else:
                close(run)
                run, exact = info.exact, False
            continue
        exact = False
        close(run)
        run = _NOTHING
        if info.needs is not None:
            parts.append(info.needs)
    if exact:
        return _Info(exact=run)
    close(run)
    return _Info(needs=_all(parts))


def _node(op: Any, av: Any) -> _Info:
    if op is sre.LITERAL:
        return _Info(exact=frozenset({chr(av)}))
    if op in (sre.NOT_LITERAL, sre.ANY, sre.GROUPREF):
        return _UNKNOWN
    if op is sre.IN:
        return _char_class(av)
    if op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
        return _EMPTY  # zero width: adds no text to the match
    if op is sre.SUBPATTERN:
        _group, add_flags, _del_flags, items = av
        if add_flags & (re.IGNORECASE | re.LOCALE):
            raise _Unsupported("a case-insensitive group")
        return _sequence(items)
    if op is sre.ATOMIC_GROUP:
        return _sequence(av)
    if op is sre.BRANCH:
        return _branch([_sequence(items) for items in av[1]])
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
        low, high, items = av
        return _repeat(low, high, _sequence(items))
    raise _Unsupported(str(op))


def _char_class(items: Sequence[tuple[Any, Any]]) -> _Info:
    chars: set[str] = set()
    for op, av in items:
        if op is sre.LITERAL:
            chars.add(chr(av))
        elif op is sre.RANGE and av[1] - av[0] < MAX_CLASS:
            chars.update(chr(code) for code in range(av[0], av[1] + 1))
        else:  # negated, a category (\w, \s), or a wide range
            return _UNKNOWN
    return _Info(exact=frozenset(chars)) if len(chars) <= MAX_CLASS else _UNKNOWN


def _branch(alternatives: Sequence[_Info]) -> _Info:
    exact: frozenset[str] | None = None
    if all(alt.exact is not None for alt in alternatives):
        union = frozenset().union(*(alt.exact for alt in alternatives if alt.exact is not None))
        exact = union if len(union) <= MAX_EXACT else None
    found = [alt.requirement() for alt in alternatives]
    needs: Requirement | None = None
    if all(part is not None for part in found):
        plain = [part for part in found if isinstance(part, AnyOf)]
        merged = _shrink(frozenset().union(*(part.strings for part in plain))) if plain else None
        rest = [part for part in found if part is not None and not isinstance(part, AnyOf)]
        if merged is not None:
            rest.append(AnyOf(merged))
        elif plain:
            rest.extend(plain)
        needs = rest[0] if len(rest) == 1 else OneOf(tuple(rest))
    return _Info(exact=exact, needs=needs)


def _repeat(low: int, high: int, item: _Info) -> _Info:
    if high == 0:
        return _EMPTY
    if low == 0:
        # Optional (`x?`): it matches nothing, or one of the item's texts.
        if high == 1 and item.exact is not None:
            return _Info(exact=item.exact | _NOTHING)
        return _UNKNOWN
    if low == high and item.exact is not None and math.pow(len(item.exact), low) <= MAX_EXACT:
        texts = _NOTHING
        for _ in range(low):
            texts = frozenset(a + b for a in texts for b in item.exact)
        return _Info(exact=texts)
    return _Info(needs=item.requirement())  # at least one repetition: it holds the item's condition
