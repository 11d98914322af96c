"""The rules' literal prefilter (bot/governance/prefilter.py) skips only searches that could not match.

Checked three ways: strings drawn at random from each shipped pattern itself (every one the pattern
matches must pass its prefilter), every rule's examples, and random texts mixing examples, words from the
patterns and noise, where the checks with and without the prefilter must give the same concerns.
"""

from __future__ import annotations

import random
import re
import string
import tomllib
from pathlib import Path
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

import pytest

from bot.governance.concerns import Concern
from bot.governance.prefilter import AllOf, AnyOf, OneOf, Requirement, haystack, requirement
from bot.governance.rules import Rule, RuleBook, _views

BOOK = RuleBook.load()
RULES = [rule for category in BOOK.categories for rule in category.rules]
ALL = frozenset(BOOK.category_ids)
_CLASS_POOL = string.ascii_lowercase + string.digits + " .,:;!?'\"-_/@#&()<>*+=\n\téü"


def _sample(items: Any, rng: random.Random, groups: dict[int, str] | None = None) -> str:
    """A random text the parsed pattern `items` can match (lookarounds and anchors are ignored, so the
    caller keeps only the samples the pattern really matches)."""
    groups = {} if groups is None else groups
    out: list[str] = []
    for op, av in items:
        if op is sre.LITERAL:
            out.append(chr(av))
        elif op is sre.NOT_LITERAL:
            out.append(rng.choice([c for c in _CLASS_POOL if ord(c) != av]))
        elif op is sre.ANY:
            out.append(rng.choice(_CLASS_POOL))
        elif op is sre.IN:
            out.append(_class_member(av, rng))
        elif op is sre.BRANCH:
            out.append(_sample(rng.choice(av[1]), rng, groups))
        elif op is sre.SUBPATTERN:
            text = _sample(av[3], rng, groups)
            if av[0] is not None:
                groups[av[0]] = text
            out.append(text)
        elif op is sre.ATOMIC_GROUP:
            out.append(_sample(av, rng, groups))
        elif op is sre.GROUPREF:
            out.append(groups.get(av, ""))
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
            low, high, inner = av
            count = rng.randint(low, min(high, low + 3))
            out.extend(_sample(inner, rng, groups) for _ in range(count))
        elif op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
            continue
        else:
            raise AssertionError(f"the sampler does not know {op}")
    return "".join(out)


def _class_member(items: Any, rng: random.Random) -> str:
    pattern = re.compile(_class_source(items))
    choices = [c for c in _CLASS_POOL if pattern.fullmatch(c)]
    return rng.choice(choices) if choices else ""


def _class_source(items: Any) -> str:
    negate = any(op is sre.NEGATE for op, _ in items)
    parts = []
    for op, av in items:
        if op is sre.LITERAL:
            parts.append(re.escape(chr(av)))
        elif op is sre.RANGE:
            parts.append(f"{re.escape(chr(av[0]))}-{re.escape(chr(av[1]))}")
        elif op is sre.CATEGORY:
            parts.append(_CATEGORIES[str(av)])
    return ("[^" if negate else "[") + "".join(parts) + "]"


_CATEGORIES = {
    "CATEGORY_DIGIT": r"\d",
    "CATEGORY_SPACE": r"\s",
    "CATEGORY_WORD": r"\w",
    "CATEGORY_NOT_DIGIT": r"\D",
    "CATEGORY_NOT_SPACE": r"\S",
    "CATEGORY_NOT_WORD": r"\W",
}


def _plain_check(text: str) -> list[Concern]:
    """The shipped rules' concerns without any prefilter: every pattern searched."""
    views = _views(text)
    if not views[0]:
        return []
    return [
        Concern("rule", category.id, rule.reason, rule.id, category.spoiler)
        for category in BOOK.categories
        for rule in category.rules
        if any(rule.pattern.search(view) for view in views)
    ]


def test_every_shipped_rule_has_a_prefilter() -> None:
    # A rule without one is still checked correctly, only slowly: this keeps the fast path for all.
    assert [rule.id for rule in RULES if rule.needs is None] == []


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.id)
def test_texts_drawn_from_a_pattern_pass_its_prefilter(rule: Rule) -> None:
    assert rule.needs is not None
    rng = random.Random(rule.id)
    parsed = sre_parse.parse(rule.pattern.pattern, rule.pattern.flags)
    matched = 0
    for _ in range(300):
        text = _sample(parsed, rng)
        if rule.pattern.search(text):
            matched += 1
            assert rule.needs.holds(text, {}), (rule.id, text)
            assert rule.needs.holds(f"well, {text} and so on", {}), (rule.id, text)
    assert matched >= 30, f"{rule.id}: only {matched} of 300 samples matched; the sampler needs work"


def test_every_example_still_fires_its_rule() -> None:
    for path in sorted(Path("bot/governance/rules").glob("*.toml")):
        for entry in tomllib.loads(path.read_text(encoding="utf-8"))["rule"]:
            rule = next(r for r in RULES if r.id == entry["id"])
            for example in entry.get("examples", []):
                views = _views(example)
                assert rule.matches(views, {}), (rule.id, example)
                assert rule.id in {c.rule_id for c in BOOK.check(example, enabled=ALL)}, (rule.id, example)


def test_random_texts_get_the_same_concerns_with_and_without_the_prefilter() -> None:
    rng = random.Random(20_240_611)
    examples = [
        example
        for path in sorted(Path("bot/governance/rules").glob("*.toml"))
        for entry in tomllib.loads(path.read_text(encoding="utf-8"))["rule"]
        for example in entry.get("examples", [])
    ]
    words = sorted({w for rule in RULES for w in _strings(rule.needs)})
    noise = ["the", "council", "should", "we", "how", "to", "park", "I", "you", "!", "?", ".", "\n", "**", "ＡＢＣ"]
    fired = 0
    for _ in range(1500):
        pieces = []
        for _ in range(rng.randint(1, 12)):
            pick = rng.random()
            if pick < 0.25:
                example = rng.choice(examples)
                start = rng.randint(0, len(example) // 2)
                pieces.append(example[start:] if rng.random() < 0.5 else example)
            elif pick < 0.7:
                pieces.append(rng.choice(words))
            else:
                pieces.append(rng.choice(noise))
        text = " ".join(pieces)
        if rng.random() < 0.2:
            text = text.upper()
        expected = _plain_check(text)
        assert BOOK.check(text, enabled=ALL) == expected, text
        fired += bool(expected)
    assert fired >= 300  # the texts did exercise matching rules, not only silent ones


def _strings(needs: Requirement | None) -> set[str]:
    if needs is None:
        return set()
    if isinstance(needs, AnyOf):
        return set(needs.strings)
    assert isinstance(needs, AllOf | OneOf)
    return set().union(*(_strings(part) for part in needs.parts))


@pytest.mark.parametrize(
    ("pattern", "inside", "outside"),
    [
        (r"\bkill(?:ed|ing)?\s+him\b", ["kill him"], ["skill", "him"]),
        (r"(?:how to|help me)\s+\w+\s+(?:poison|stab)", ["how to x poison"], ["how to cook", "poison"]),
        (r"neighbou?r", ["neighbor", "neighbour"], ["neighbo"]),
        (r"sk-[a-z0-9]{20,}", ["sk-aaaaaaaaaaaaaaaaaaaa"], ["sk"]),
    ],
)
def test_requirements_of_small_patterns(pattern: str, inside: list[str], outside: list[str]) -> None:
    needs = requirement(re.compile(pattern))
    assert needs is not None
    for text in inside:
        assert needs.holds(text, {}), text
    for text in outside:
        assert not needs.holds(text, {}), text


@pytest.mark.parametrize(
    "pattern",
    [r"(?i)kill", r"(?i:kill)", r"\w+", r"a?", r"(a)?\1", r"(a)?(?(1)a|b)", r"[^x]+"],
)
def test_patterns_it_cannot_read_get_no_prefilter(pattern: str) -> None:
    needs = requirement(re.compile(pattern))
    if needs is not None:  # whatever it says must still hold for every match
        for text in ("kill", "KILL", "a", "b", "aa", "xyz", "hello"):
            if re.compile(pattern).search(text):
                assert needs.holds(text, {}), (pattern, text)


def test_a_string_is_found_in_the_joined_views_only_within_one_view() -> None:
    views = ("ig**no**re the rules", "ignore the rules")
    assert AnyOf(frozenset({"ignore"})).holds(haystack(views), {})
    assert not AnyOf(frozenset({"rulesig"})).holds(haystack(views), {})
    assert requirement(re.compile("a\x00b")) is None  # a string holding the separator could span two views
