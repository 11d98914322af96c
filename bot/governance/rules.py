"""The shipped rule book (TOML files in `rules/`) and a server's own phrase and regex rules.

Rules are data: each category is one TOML file of regexes, matched case-insensitively on a
normalized view of the text (the patterns are casefolded too), so that full-width letters, zero-width characters and look-alike
letters do not slip past a pattern written in plain ASCII.
"""

from __future__ import annotations

import functools
import logging
import re
import tomllib
import unicodedata
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bot.governance.concerns import CATEGORY_IDS, CUSTOM_CATEGORY, SENSITIVE_CATEGORIES, Concern
from bot.governance.prefilter import Requirement, haystack, requirement

log = logging.getLogger(__name__)

DEFAULT_RULES_DIR = Path(__file__).with_name("rules")
# Only the start of a text is examined, so that one huge message cannot stall the event loop.
MAX_CHECKED_CHARS = 20_000
CUSTOM_PATTERN_LIMIT = 200

_CATEGORY_ID = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_RULE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_FRAGMENT_REF = re.compile(r"\{\{([a-z_][a-z0-9_]*)\}\}")
_FILE_KEYS = {"id", "title", "description", "spoiler", "fragments", "rule"}
_RULE_KEYS = {"id", "pattern", "reason", "examples"}

# --- normalization ------------------------------------------------------------------------------

# Invisible characters: soft hyphen, joiners, bidi controls, word joiner and friends, variation
# selectors, Hangul fillers, the BOM and the tag block (decoded first, see below).
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e007f\U000e0100-\U000e01ef]"
)
# Unicode tag characters mirror ASCII invisibly ("ASCII smuggling"); decode them so they are checked.
_TAG_RUN = re.compile("[\U000e0020-\U000e007e]+")
# Combining marks left over after NFKC (strike-through and "zalgo" decorations).
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_WHITESPACE = re.compile(r"\s+")
# Cyrillic and Greek letters that look like Latin ones (after casefolding), plus curly quotes.
_LOOKALIKES = str.maketrans(
    {
        "а": "a", "е": "e", "ё": "e", "і": "i", "ї": "i", "ј": "j", "к": "k", "о": "o", "р": "p",
        "с": "c", "у": "y", "х": "x", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l",
        "ɑ": "a", "ɡ": "g", "ı": "i", "ο": "o", "α": "a", "ι": "i", "κ": "k", "ν": "v", "ρ": "p",
        "υ": "u", "χ": "x",
        "\u2018": "'", "\u2019": "'", "\u201b": "'", "\u2032": "'", "\u201c": '"', "\u201d": '"',
        "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",
    }
)  # fmt: skip
# Markdown emphasis or spoiler marks inside a word ("ig**no**re", "ig||no||re").
_MARKS_IN_WORD = re.compile(r"(?<=[^\W_])[*~|`]+(?=[^\W_])")
# Three or more single letters spaced out ("i g n o r e", "b.o.m.b").
_SPACED_LETTERS = re.compile(r"(?<![^\W\d_])(?:[^\W\d_][ .\-_*·]){2,}[^\W\d_](?![^\W\d_])")
_SPACERS = re.compile(r"[ .\-_*·]")


def reveal_hidden(text: str) -> str:
    """Decode invisible tag characters to the ASCII they mirror and drop other invisible characters."""
    text = _TAG_RUN.sub(lambda m: " " + "".join(chr(ord(c) - 0xE0000) for c in m.group()) + " ", text)
    return _INVISIBLE.sub("", text)


def normalize(text: str) -> str:
    """The view of `text` that rules match: NFKC, casefolded, invisible characters removed,
    look-alike letters mapped to Latin, whitespace collapsed to single spaces."""
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", reveal_hidden(text)).casefold())
    text = _INVISIBLE.sub("", text)  # NFKC maps a few fillers onto invisible ones
    text = _COMBINING.sub("", text)
    text = text.translate(_LOOKALIKES)
    return _WHITESPACE.sub(" ", text).strip()


def fold_pattern(pattern: str) -> str:
    """Casefold a regex and map look-alike letters, leaving escapes alone ("\\S", "\\N{...}").

    Text is casefolded before matching, so patterns are folded too instead of compiling them with
    re.IGNORECASE: case-insensitive literals defeat the regex engine's fast paths and cost about
    twice the time on every message.
    """
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\":
            end = pattern.find("}", i) + 1 if pattern.startswith("\\N{", i) else 0
            end = end or i + 2
            out.append(pattern[i:end])
            i = end
            continue
        out.append(pattern[i].casefold().translate(_LOOKALIKES))
        i += 1
    return "".join(out)


def _joined_view(normalized: str) -> str:
    """A second view with markup inside words and separators between single letters removed."""
    text = _MARKS_IN_WORD.sub("", normalized)
    return _SPACED_LETTERS.sub(lambda m: _SPACERS.sub("", m.group()), text)


def _views(text: str) -> tuple[str, ...]:
    main = normalize(text[:MAX_CHECKED_CHARS])[:MAX_CHECKED_CHARS]
    joined = _joined_view(main)
    return (main,) if joined == main else (main, joined)


# --- the shipped rule book ----------------------------------------------------------------------


class RuleFileError(Exception):
    """A rule file cannot be used; the message names the file and, where it applies, the rule."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One shipped rule: a compiled pattern and the sentence moderators see when it matches."""

    id: str
    category: str
    pattern: re.Pattern[str]
    reason: str
    # Literal strings every text the pattern matches in holds (bot/governance/prefilter.py); None: no
    # prefilter, always searched.
    needs: Requirement | None = None

    def matches(self, views: Sequence[str], present: dict[str, bool], text: str | None = None) -> bool:
        """Whether the pattern matches one of the views (`text`: them joined, see prefilter.haystack);
        `present` remembers, across the rules of one check, which strings they hold (rules share words)."""
        if self.needs is not None and not self.needs.holds(haystack(views) if text is None else text, present):
            return False  # the pattern cannot match: skip the search
        return any(self.pattern.search(view) for view in views)


@dataclass(frozen=True, slots=True)
class Category:
    """One rule file: a category moderators can turn on or off."""

    id: str
    title: str
    description: str
    spoiler: bool
    rules: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class CustomRule:
    """A server's own rule: a phrase matched as whole words, or a regex, on the normalized text."""

    id: int | str
    kind: Literal["phrase", "regex"]
    pattern: str
    category: str


@dataclass(frozen=True, slots=True)
class RuleBook:
    """All shipped categories, in file-name order."""

    categories: tuple[Category, ...]

    def __iter__(self) -> Iterator[Category]:
        return iter(self.categories)

    @property
    def category_ids(self) -> tuple[str, ...]:
        return tuple(category.id for category in self.categories)

    def category(self, category_id: str) -> Category | None:
        return next((c for c in self.categories if c.id == category_id), None)

    @classmethod
    def load(cls, directory: Path | str = DEFAULT_RULES_DIR) -> RuleBook:
        """Load and compile every `*.toml` file in `directory`; raise RuleFileError on a bad file."""
        directory = Path(directory)
        paths = sorted(directory.glob("*.toml"))
        if not paths:
            raise RuleFileError(f"{directory}: no rule files (*.toml) found")
        categories: list[Category] = []
        for path in paths:
            category = _load_category(path)
            if any(c.id == category.id for c in categories):
                raise RuleFileError(f"{path.name}: category id {category.id!r} is used by another file")
            categories.append(category)
        return cls(tuple(categories))

    def validate_custom(self, rule: CustomRule) -> re.Pattern[str]:
        """compile_custom, with the categories of this book."""
        return compile_custom(rule, categories=self.category_ids)

    def check(self, text: str, *, enabled: Collection[str], custom: Sequence[CustomRule] = ()) -> list[Concern]:
        """One Concern per matching rule, from enabled categories only.

        A server rule counts under its own category (checked only when that category is enabled),
        except the "custom" category, which is always on. Only the first MAX_CHECKED_CHARS
        characters are examined.
        """
        views = _views(text)
        if not views[0]:
            return []
        concerns: list[Concern] = []
        present: dict[str, bool] = {}
        text = haystack(views)
        for category in self.categories:
            if category.id not in enabled:
                continue
            for rule in category.rules:
                if rule.matches(views, present, text):
                    concerns.append(Concern("rule", category.id, rule.reason, rule.id, category.spoiler))
        seen: set[tuple[str, str]] = set()
        for rule in custom:
            if rule.category != CUSTOM_CATEGORY and rule.category not in enabled:
                continue
            key = (rule.kind, rule.pattern)
            if key in seen:
                continue
            seen.add(key)
            try:
                pattern = _compile_custom_cached(rule.kind, rule.pattern)
            except ValueError as error:
                # Rules are validated when added; one that no longer compiles must not stop the others.
                log.warning("Skipping server rule %s: %s", rule.id, error)
                continue
            if any(pattern.search(view) for view in views):
                category = self.category(rule.category)
                spoiler = category.spoiler if category else rule.category in SENSITIVE_CATEGORIES
                concerns.append(Concern("rule", rule.category, _custom_reason(rule), f"custom:{rule.id}", spoiler))
        return concerns


def _load_category(path: Path) -> Category:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise RuleFileError(f"{path.name}: cannot be read: {error}") from error
    unknown = set(data) - _FILE_KEYS
    if unknown:
        raise RuleFileError(f"{path.name}: unknown keys {sorted(unknown)}")
    category_id = _string(data, "id", path.name)
    if not _CATEGORY_ID.match(category_id) or category_id == CUSTOM_CATEGORY:
        raise RuleFileError(f"{path.name}: id {category_id!r} must be lower_snake_case and not 'custom'")
    if category_id != path.stem:
        raise RuleFileError(f"{path.name}: id {category_id!r} must match the file name")
    title = _string(data, "title", path.name)
    description = _string(data, "description", path.name)
    spoiler = data.get("spoiler")
    if not isinstance(spoiler, bool):
        raise RuleFileError(f"{path.name}: 'spoiler' must be true or false")
    fragments = data.get("fragments", {})
    if not isinstance(fragments, dict) or not all(isinstance(v, str) for v in fragments.values()):
        raise RuleFileError(f"{path.name}: [fragments] must map names to regex strings")
    entries = data.get("rule")
    if not isinstance(entries, list) or not entries:
        raise RuleFileError(f"{path.name}: needs at least one [[rule]]")
    rules: list[Rule] = []
    for index, entry in enumerate(entries, start=1):
        rule = _load_rule(path.name, category_id, index, entry, fragments)
        if any(r.id == rule.id for r in rules):
            raise RuleFileError(f"{path.name}: rule {rule.id!r} is defined twice")
        rules.append(rule)
    return Category(category_id, title, description, spoiler, tuple(rules))


def _load_rule(file: str, category_id: str, index: int, entry: Any, fragments: dict[str, str]) -> Rule:
    if not isinstance(entry, dict):
        raise RuleFileError(f"{file}: rule #{index} must be a table")
    where = f"{file}: rule {entry.get('id', f'#{index}')!r}"
    unknown = set(entry) - _RULE_KEYS
    if unknown:
        raise RuleFileError(f"{where}: unknown keys {sorted(unknown)}")
    rule_id = _string(entry, "id", where)
    if not _RULE_ID.match(rule_id):
        raise RuleFileError(f"{where}: id must be letters, digits, '-' or '_'")
    reason = _string(entry, "reason", where)
    if len(reason) > 200:
        raise RuleFileError(f"{where}: reason must be one short sentence (at most 200 characters)")
    source = _pattern_source(entry, where)

    def expand(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in fragments:
            raise RuleFileError(f"{where}: unknown fragment {{{{{name}}}}}")
        return f"(?:{fragments[name]})"

    try:
        pattern = re.compile(fold_pattern(_FRAGMENT_REF.sub(expand, source)))
    except re.error as error:
        raise RuleFileError(f"{where}: pattern does not compile: {error}") from error
    if pattern.search("") or pattern.search(" "):
        raise RuleFileError(f"{where}: pattern matches empty text")
    examples = entry.get("examples", [])
    if not isinstance(examples, list) or not all(isinstance(e, str) for e in examples):
        raise RuleFileError(f"{where}: 'examples' must be a list of strings")
    for example in examples:
        if not any(pattern.search(view) for view in _views(example)):
            raise RuleFileError(f"{where}: pattern does not match its example {example!r}")
    return Rule(rule_id, category_id, pattern, reason, requirement(pattern))


def _pattern_source(entry: dict[str, Any], where: str) -> str:
    """A pattern is one regex, or a list of alternatives (easier to read and review in TOML)."""
    value = entry.get("pattern")
    if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
        return "|".join(f"(?:{v.strip()})" for v in value)
    return _string(entry, "pattern", where)


def _string(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise RuleFileError(f"{where}: '{key}' must be a non-empty string")
    return value.strip()


# --- a server's own rules -----------------------------------------------------------------------

# A group that contains a repeat and is itself repeated: "(a+)+", "(\w+\s?)*" — the shape behind
# catastrophic backtracking. Python's re cannot be interrupted, so such patterns are refused.
_QUANTIFIER = re.compile(r"[*+]|\{\d*,\d*\}")


def compile_custom(rule: CustomRule, *, categories: Collection[str] = CATEGORY_IDS) -> re.Pattern[str]:
    """Validate and compile a server rule; raise ValueError with a message fit to show the moderator."""
    if rule.category != CUSTOM_CATEGORY and rule.category not in categories:
        known = ", ".join([*categories, CUSTOM_CATEGORY])
        raise ValueError(f"Unknown category {rule.category!r}; choose one of: {known}.")
    return _compile_custom_cached(rule.kind, rule.pattern)


@functools.lru_cache(maxsize=1024)
def _compile_custom_cached(kind: str, pattern: str) -> re.Pattern[str]:
    if len(pattern) > CUSTOM_PATTERN_LIMIT:
        raise ValueError(f"A rule can be at most {CUSTOM_PATTERN_LIMIT} characters long.")
    if kind == "phrase":
        phrase = normalize(pattern)
        if len(phrase.replace(" ", "")) < 2:
            raise ValueError("A phrase needs at least two visible characters.")
        return re.compile(rf"(?<!\w){re.escape(phrase)}(?!\w)")
    if kind != "regex":
        raise ValueError(f"A rule is a 'phrase' or a 'regex', not {kind!r}.")
    if not pattern.strip():
        raise ValueError("The regex is empty.")
    try:
        compiled = re.compile(fold_pattern(pattern))
    except re.error as error:
        raise ValueError(f"That regex does not compile: {error.msg} (at position {error.pos}).") from error
    if compiled.search("") is not None:
        raise ValueError("That regex matches an empty message, so it would flag everything.")
    if _has_nested_repeat(pattern):
        raise ValueError(
            "That regex repeats a group that itself contains a repeat, like (a+)+; such patterns can "
            "freeze the bot on some messages. Rewrite it without the nested repeat."
        )
    return compiled


def _has_nested_repeat(pattern: str) -> bool:
    """Whether a repeated group contains a repeat. A heuristic: it catches the usual shape only."""
    open_groups: list[bool] = []  # per open group: whether it contains a repeat so far
    closed_with_repeat = False  # the token just before is a group that contains a repeat
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            closed_with_repeat = False
            continue
        if in_class:
            in_class = char != "]"
            i += 1
            continue
        quantifier = _QUANTIFIER.match(pattern, i)
        if quantifier:
            if closed_with_repeat:
                return True
            open_groups = [True] * len(open_groups)
            i = quantifier.end()
            closed_with_repeat = False
            continue
        closed_with_repeat = False
        if char == "[":
            in_class = True
            # A "]" right after "[" or "[^" is a literal.
            i += 3 if pattern.startswith("^]", i + 1) else 2 if pattern.startswith("]", i + 1) else 1
            continue
        if char == "(":
            open_groups.append(False)
        elif char == ")" and open_groups:
            closed_with_repeat = open_groups.pop()
        i += 1
    return False


def _custom_reason(rule: CustomRule) -> str:
    if rule.kind == "phrase":
        shown = " ".join(rule.pattern.split())
        shown = shown if len(shown) <= 60 else shown[:59] + "…"
        return f'Contains the phrase "{shown}" from server rule #{rule.id}.'
    return f"Matches the pattern of server rule #{rule.id}."
