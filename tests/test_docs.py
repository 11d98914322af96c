"""The guides cannot go stale: every example in README.md, docs/*.md and ARCHITECTURE.md is checked against the code.

What is checked, block by block (fenced code blocks, by their language):

- ```toml: parsed with tomllib. A block with [[member]] tables must load with Catalog.from_mapping, so every
  field and value is one the bot accepts; a block with [[rule]] tables must load as a rule file. Every member a
  guide defines joins members.toml in one combined catalog, which must load too (names stay unique).
- ```bash / ```sh / ```console: each command line is split with shlex and must be a command the project
  knows. `python -m bot rehearse … --offline` lines are run for real (in a temporary folder, with the
  combined catalog and no Discord token) and must exit 0; other rehearse lines are parsed with the rehearse
  argument parser and planned against the combined catalog; `python -m bench` flags go through bench's own
  parser; `ollama pull` must name the model of a local Ollama member.
- ```env / ```dotenv: every variable must be a setting from .env.example or the `api_key_env` of a member,
  and the values must pass Settings.from_env.
- ```text lines starting with "/", and inline `/council …` / `/governance …` spans anywhere: the command,
  subcommand and option names must exist in the bot's command tree, option values must fit the option's
  type, range and choices, and the values that name things (members, categories, rules) must be valid.
- ```json: every block parses, as one JSON document or as JSON lines.

In docs/ every fenced block must use one of the checked languages, and inline `ALL_CAPS_NAMES` must be
settings or API key variables. Relative links must point at files that exist and, with a #fragment, at a
heading of that file (as GitHub makes anchors of headings).

Beyond the examples: README.md stays a front page (at most about 1,600 words) that links every guide and
shows the picture of a council (docs/council.svg, exactly as tests/docs_picture.py draws it now); every guide
opens with a summary that links back to the README; every command the bot defines is in docs/commands.md,
every setting of .env.example in docs/operations.md, and every module of bot/council/ in ARCHITECTURE.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import tomllib
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from discord import AppCommandOptionType, app_commands
from discord.ext import commands

from bot import app as bot_app
from bot import rehearse
from bot.catalog import Catalog, CatalogError
from bot.council.engine import ConveneError, CouncilEngine
from bot.council.templates import DEFAULT_MODE, DEFAULT_ROUNDS
from bot.governance.rules import CustomRule, RuleBook, RuleFileError
from bot.settings import Settings, SettingsError
from bot.tools.config import ToolConfigError, parse_tool_config
from tests import docs_picture, docs_pictures

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "ARCHITECTURE.md"]
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
CHECKED_LANGUAGES = {"toml", "env", "dotenv", "text", "json", *SHELL_LANGUAGES}
# Environment variables the guides may name that are not bot settings.
OTHER_VARIABLES = {"TEST_POSTGRES_URL"}
OLLAMA_HOSTS = {"localhost:11434", "127.0.0.1:11434"}


# --- reading Markdown ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Block:
    path: str
    line: int  # line of the opening fence
    language: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$")
_INLINE = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def fenced_blocks(markdown: str, path: str) -> list[Block]:
    blocks: list[Block] = []
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        fence, language = opening.group(1), opening.group(2).lower()
        body: list[str] = []
        end = index + 1
        while end < len(lines):
            closing = _FENCE.match(lines[end])
            if (
                closing
                and closing.group(1)[0] == fence[0]
                and len(closing.group(1)) >= len(fence)
                and not closing.group(2)
            ):
                break
            body.append(lines[end])
            end += 1
        blocks.append(Block(path, index + 1, language, "\n".join(body)))
        index = end + 1
    return blocks


def prose_lines(markdown: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line outside fenced blocks."""
    inside: str | None = None
    for number, line in enumerate(markdown.splitlines(), 1):
        fence = _FENCE.match(line)
        if fence and (inside is None or (fence.group(1)[0] == inside[0] and not fence.group(2))):
            inside = fence.group(1) if inside is None else None
            continue
        if inside is None:
            yield number, line


def inline_spans(markdown: str) -> Iterator[tuple[int, str]]:
    for number, line in prose_lines(markdown):
        for match in _INLINE.finditer(line):
            yield number, match.group(2).strip()


_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$")


def heading_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: its text without markup, lower case, punctuation dropped, spaces
    made hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    text = text.replace("`", "").replace("*", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every anchor the headings of a document give; a repeated heading gets -1, -2, … as on GitHub."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in prose_lines(markdown):
        match = _HEADING.match(line)
        if not match:
            continue
        anchor = heading_anchor(match.group(1))
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        found.add(anchor if count == 0 else f"{anchor}-{count}")
    return found


# --- what the code offers -----------------------------------------------------------------------


def command_groups() -> dict[str, app_commands.Group]:
    """The slash command groups the bot's extensions define, read from the cog classes."""
    import importlib

    groups: dict[str, app_commands.Group] = {}
    for extension in bot_app.EXTENSIONS:
        module = importlib.import_module(extension)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, commands.Cog):
                for attribute in vars(value).values():
                    if isinstance(attribute, app_commands.Group):
                        groups[attribute.name] = attribute
    return groups


def setting_names() -> set[str]:
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    return set(re.findall(r"(?m)^#?\s*([A-Z][A-Z0-9_]*)=", text))


class _ParserCaptured(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def bench_parser() -> tuple[argparse.ArgumentParser, set[str]]:
    """bench's own argument parser and group names.

    bench/__main__.py builds its parser inside main(); main() is called with argparse swapped for a stand-in
    whose parse_args hands the finished parser back instead of running anything.
    """
    import bench.__main__ as bench_main

    groups = {group.name for group in bench_main.GROUPS}
    made = getattr(bench_main, "parser", None)
    if callable(made):
        return made(), groups

    class Capturing(argparse.ArgumentParser):
        def parse_args(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            raise _ParserCaptured(self)

    real = bench_main.argparse
    bench_main.argparse = types.SimpleNamespace(ArgumentParser=Capturing)  # type: ignore[assignment]
    try:
        bench_main.main([])
    except _ParserCaptured as captured:
        captured.parser.__class__ = argparse.ArgumentParser  # an ordinary parser from now on
        return captured.parser, groups
    finally:
        bench_main.argparse = real
    raise AssertionError("bench's main() never parsed its arguments")


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    raise TypeError(f"cannot write {value!r} as TOML")


def members_toml(entries: list[dict[str, Any]]) -> str:
    tables = ["[[member]]\n" + "".join(f"{key} = {_toml_value(v)}\n" for key, v in entry.items()) for entry in entries]
    return "\n".join(tables)


# --- checking -----------------------------------------------------------------------------------


@dataclass
class Checker:
    """Checks a set of Markdown documents; `problems` says what is wrong, `offline` what to run."""

    documents: list[tuple[str, str]]  # (path shown in messages, Markdown text)
    problems: list[str] = field(default_factory=list)
    offline: list[tuple[str, list[str], dict[str, str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.settings = setting_names()
        self.groups = command_groups()
        self.rulebook = RuleBook.load()
        self.base_entries: list[dict[str, Any]] = tomllib.loads((ROOT / "members.toml").read_text("utf-8"))["member"]
        self.doc_entries: list[tuple[dict[str, Any], Block]] = []
        self.blocks = [block for path, text in self.documents for block in fenced_blocks(text, path)]
        self.anchors = {path: anchors(text) for path, text in self.documents}
        self._bench: tuple[argparse.ArgumentParser, set[str]] | None = None
        for block in self.blocks:
            if block.language == "toml":
                self.check_toml(block)
        self.catalog = self.combined_catalog()
        self.key_variables = {name for m in self.catalog for name in m.key_envs}
        # Planning needs no keys: every member as an offline echo.
        self.engine = CouncilEngine(None, rehearse.offline_catalog(self.catalog), None, None)  # type: ignore[arg-type]
        for path, text in self.documents:
            in_docs = path.startswith("docs/")
            for number, span in inline_spans(text):
                if re.match(r"/(council|governance)\b", span):
                    self.check_slash(span, f"{path}:{number}", complete=False)
                elif (
                    in_docs
                    and re.fullmatch(r"[A-Z][A-Z0-9]*_[A-Z0-9_]+", span)
                    and span not in self.settings | self.key_variables | OTHER_VARIABLES
                ):
                    self.problem(
                        f"{path}:{number}", f"`{span}` is neither a setting in .env.example nor a member's key"
                    )
            for number, line in prose_lines(text):
                for target in _LINK.findall(line):
                    self.check_link(path, number, target)
        for block in self.blocks:
            if block.language in SHELL_LANGUAGES:
                self.check_shell(block)
            elif block.language in ("env", "dotenv"):
                self.check_env(block)
            elif block.language == "text":
                for offset, line in enumerate(block.text.splitlines(), 1):
                    if line.startswith("/"):
                        self.check_slash(line.strip(), f"{block.path}:{block.line + offset}", complete=True)
            elif block.language == "json":
                self.check_json(block)
            elif block.language not in CHECKED_LANGUAGES and block.path.startswith("docs/"):
                self.problem(
                    block.where,
                    f"```{block.language or '(no language)'} blocks are not checked; use one of {sorted(CHECKED_LANGUAGES)}",
                )

    def problem(self, where: str, text: str) -> None:
        self.problems.append(f"{where}: {text}")

    # toml

    def check_toml(self, block: Block) -> None:
        try:
            data = tomllib.loads(block.text)
        except tomllib.TOMLDecodeError as error:
            self.problem(block.where, f"not valid TOML: {error}")
            return
        if "member" in data:
            try:
                Catalog.from_mapping(data, source="this block")
            except CatalogError as error:
                self.problem(block.where, str(error))
                return
            self.doc_entries.extend((entry, block) for entry in data["member"])
        if "server" in data:
            try:
                parse_tool_config(data, source="this block", base=ROOT)
            except ToolConfigError as error:
                self.problem(block.where, f"tool servers: {error}")
        if "tools" in data and "member" not in data:  # a member's tool list on its own
            try:
                Catalog.from_mapping(
                    {"member": [{**self.base_entries[0], "tools": data["tools"]}]}, source="this block"
                )
            except CatalogError as error:
                self.problem(block.where, str(error))
        if "rule" in data:
            with tempfile.TemporaryDirectory() as folder:
                (Path(folder) / f"{data.get('id', 'rules')}.toml").write_text(block.text, encoding="utf-8")
                try:
                    RuleBook.load(folder)
                except RuleFileError as error:
                    self.problem(block.where, f"rule file: {error}")

    def combined_catalog(self) -> Catalog:
        entries = list(self.base_entries)
        for entry, block in self.doc_entries:
            names = {str(e.get("name", "")).strip().casefold() for e in entries}
            if str(entry.get("name", "")).strip().casefold() in names:
                self.problem(block.where, f"member {entry.get('name')!r} is already defined (members.toml or a guide)")
                continue
            if entry.get("coordinator"):
                self.problem(block.where, "examples may not set coordinator = true (members.toml has the coordinator)")
                continue
            entries.append(entry)
        self.combined_entries = entries
        try:
            return Catalog.from_mapping({"member": entries}, source="members.toml + guides")
        except CatalogError as error:
            self.problem("members.toml + guides", str(error))
            self.combined_entries = list(self.base_entries)
            return Catalog.from_mapping({"member": self.base_entries}, source="members.toml")

    # shell

    def check_shell(self, block: Block) -> None:
        pending = ""
        for offset, raw in enumerate(block.text.splitlines(), 1):
            line = raw.rstrip()
            if block.language == "console":
                if not line.startswith("$ ") and not pending:
                    continue  # output
                line = line[2:] if line.startswith("$ ") and not pending else line
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            command, pending = pending + line, ""
            if command.strip() and not command.strip().startswith("#"):
                self.check_command_line(command, f"{block.path}:{block.line + offset}")

    def check_command_line(self, line: str, where: str) -> None:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        try:
            tokens = list(lexer)
        except ValueError as error:
            self.problem(where, f"cannot split {line!r}: {error}")
            return
        command: list[str] = []
        for token in [*tokens, "&&"]:
            if token in ("&&", ";", "||"):
                if command:
                    self.check_command(command, where)
                command = []
            elif token and set(token) <= set("();<>|&"):
                self.problem(where, f"only simple commands joined with && are checked, not {token!r}")
                return
            else:
                command.append(token)

    def check_command(self, words: list[str], where: str) -> None:
        env: dict[str, str] = {}
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
            name, _, value = words.pop(0).partition("=")
            if name not in self.settings | self.key_variables | OTHER_VARIABLES:
                self.problem(where, f"{name} is not a setting in .env.example")
            env[name] = value
        shown = shlex.join(words)
        if words in (["pip", "install", "-r", "requirements.txt"], ["cp", ".env.example", ".env"]):
            return
        if words in (["alembic", "upgrade", "head"], ["python", "-m", "bot"]):
            return
        if words[:1] == ["pytest"]:
            for arg in words[1:]:
                if not arg.startswith("-") and not (ROOT / arg.split("::")[0]).exists():
                    self.problem(where, f"pytest: {arg} does not exist")
            return
        if words[:4] == ["python", "-m", "bot", "rehearse"]:
            self.check_rehearse(words[4:], env, where)
            return
        if words[:3] == ["python", "-m", "bench"]:
            self.check_bench(words[3:], where)
            return
        if words[:2] == ["ollama", "pull"] and len(words) == 3:
            local = {m.model for m in self.catalog if m.base_url_host in OLLAMA_HOSTS}
            model = words[2]
            if model not in local and model.removesuffix(":latest") not in local:
                self.problem(where, f"ollama pull {model}: no local Ollama member uses it (they use {sorted(local)})")
            return
        self.problem(where, f"`{shown}` is not a command the guides may show")

    def check_rehearse(self, args: list[str], env: dict[str, str], where: str) -> None:
        parsed = _parse(rehearse.parser(), args)
        if isinstance(parsed, str):
            self.problem(where, f"python -m bot rehearse: {parsed}")
            return
        if parsed is None:
            return  # --help
        try:
            rehearse.plan_from(self.engine, parsed)
        except ConveneError as error:
            self.problem(where, f"python -m bot rehearse: {error}")
            return
        if parsed.offline:
            self.offline.append((where, args, env))

    def check_bench(self, args: list[str], where: str) -> None:
        if self._bench is None:
            self._bench = bench_parser()
        parser, groups = self._bench
        parsed = _parse(parser, args)
        if isinstance(parsed, str):
            self.problem(where, f"python -m bench: {parsed}")
            return
        if parsed is not None:
            unknown = {g.strip() for g in parsed.only.split(",") if g.strip()} - groups
            if unknown:
                self.problem(where, f"python -m bench: unknown group(s) {sorted(unknown)}; groups are {sorted(groups)}")

    # env

    def check_env(self, block: Block) -> None:
        values: dict[str, str] = {}
        for offset, line in enumerate(block.text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            match = re.fullmatch(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)", line)
            if not match:
                self.problem(f"{block.path}:{block.line + offset}", f"not a VAR=value line: {line!r}")
                continue
            name = match.group(1)
            if name not in self.settings | self.key_variables:
                self.problem(
                    f"{block.path}:{block.line + offset}", f"{name} is not in .env.example or a member's api_key_env"
                )
            values[name] = match.group(2).strip().strip("'\"")
        try:
            Settings.from_env(values, dotenv=False, require_token=False)
        except SettingsError as error:
            self.problem(block.where, f"Settings refuses these values: {error}")

    # slash commands

    def check_slash(self, text: str, where: str, *, complete: bool) -> None:
        match = re.match(r"/(\S+)\s*(.*)$", text)
        assert match
        group = self.groups.get(match.group(1))
        if group is None:
            self.problem(where, f"there is no /{match.group(1)} command (the bot has {sorted(self.groups)})")
            return
        rest = match.group(2).strip()
        node: app_commands.Group | app_commands.Command[Any, ..., Any] = group
        while isinstance(node, app_commands.Group) and rest:
            name, _, rest = rest.partition(" ")
            child = node.get_command(name)
            if child is None:
                known = ", ".join(c.name for c in node.commands)
                self.problem(where, f"/{node.qualified_name} has no subcommand {name!r} (it has {known})")
                return
            node, rest = child, rest.strip()
        if isinstance(node, app_commands.Group):
            if complete:
                self.problem(where, f"/{node.qualified_name} needs a subcommand")
            return
        params = {p.display_name: p for p in node.parameters}
        if re.search(r"(?:^|\s)[A-Za-z_][\w-]*:", rest):
            self.check_options(node, params, rest, where, complete=complete)
        elif rest:
            listed: dict[str, bool] = {}
            for token in rest.split():
                optional = token.startswith("[") and token.endswith("]")
                name = token.strip("[]")
                if name not in params:
                    self.problem(where, f"/{node.qualified_name} has no option {name!r} (it has {', '.join(params)})")
                elif optional == params[name].required:
                    state = "optional" if not params[name].required else "required"
                    self.problem(
                        where,
                        f"/{node.qualified_name}: {name} is {state}; write it as {'[' + name + ']' if state == 'optional' else name}",
                    )
                listed[name] = True
            missing = set(params) - set(listed)
            if missing:
                self.problem(where, f"/{node.qualified_name}: the option list leaves out {sorted(missing)}")

    def check_options(self, node: Any, params: dict[str, Any], rest: str, where: str, *, complete: bool) -> None:
        pieces = re.split(r"(?:^|\s+)([A-Za-z_][\w-]*):", rest)
        if pieces[0].strip():
            self.problem(where, f"/{node.qualified_name}: {pieces[0].strip()!r} is not an option:value pair")
        given: dict[str, str] = {}
        for name, value in zip(pieces[1::2], pieces[2::2], strict=True):
            value = value.strip()
            if name not in params:
                self.problem(where, f"/{node.qualified_name} has no option {name!r} (it has {', '.join(params)})")
                continue
            if name in given:
                self.problem(where, f"/{node.qualified_name}: {name} is given twice")
            given[name] = value
            error = _option_error(params[name], value)
            if error:
                self.problem(where, f"/{node.qualified_name} {name}: {error}")
        if complete:
            missing = [n for n, p in params.items() if p.required and n not in given]
            if missing:
                self.problem(where, f"/{node.qualified_name} needs {', '.join(missing)}")
        self.check_meaning(node.qualified_name, params, given, where)

    def check_meaning(self, command: str, params: dict[str, Any], given: dict[str, str], where: str) -> None:
        """What the values name must exist: members, categories, valid rules."""
        if command == "council convene" and {"topic", "members"} <= set(given):
            rounds = given.get("rounds", str(DEFAULT_ROUNDS))  # the options default to None: a template may give them
            try:
                self.engine.plan(
                    topic=given["topic"],
                    member_names=given["members"],
                    roles=given.get("roles"),
                    rounds=int(rounds) if rounds.isdigit() else 0,
                    mode=given.get("mode", DEFAULT_MODE),
                )
            except ConveneError as error:
                self.problem(where, f"/council convene: {error}")
        elif command == "council assign" and "member" in given and self.catalog.get(given["member"]) is None:
            self.problem(where, f"/council assign: there is no member {given['member']!r}")
        elif command == "governance policy" and "judge" in given:
            if given["judge"].lower() != "none" and self.catalog.get(given["judge"]) is None:
                self.problem(where, f"/governance policy: there is no member {given['judge']!r} to judge")
        elif command == "governance category" and "category" in given:
            if given["category"] not in self.rulebook.category_ids:
                self.problem(where, f"/governance category: categories are {', '.join(self.rulebook.category_ids)}")
        elif command == "governance rule-add" and {"kind", "pattern"} <= set(given):
            rule = CustomRule(0, given["kind"], given["pattern"], given.get("category", "custom"))  # type: ignore[arg-type]
            try:
                self.rulebook.validate_custom(rule)
            except ValueError as error:
                self.problem(where, f"/governance rule-add: {error}")

    # json

    def check_json(self, block: Block) -> None:
        try:
            json.loads(block.text)
            return
        except json.JSONDecodeError:
            pass
        for offset, line in enumerate(block.text.splitlines(), 1):
            if line.strip():
                try:
                    json.loads(line)
                except json.JSONDecodeError as error:
                    self.problem(f"{block.path}:{block.line + offset}", f"not JSON: {error}")

    # links

    def check_link(self, path: str, number: int, target: str) -> None:
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            return
        where = f"{path}:{number}"
        file, _, fragment = target.partition("#")
        if not file:
            if fragment not in self.anchors[path]:
                self.problem(where, f"link to {target}: {path} has no heading with that anchor")
            return
        linked = (ROOT / path).parent / file
        if not linked.exists():
            self.problem(where, f"link to {target} points at nothing")
            return
        if fragment and linked.suffix != ".md":
            self.problem(where, f"link to {target}: only a Markdown file has headings to point at")
        elif fragment:
            shown = linked.resolve().relative_to(ROOT).as_posix() if linked.resolve().is_relative_to(ROOT) else None
            known = self.anchors.get(shown) if shown else None
            if known is None:
                known = anchors(linked.read_text(encoding="utf-8"))
            if fragment not in known:
                self.problem(where, f"link to {target}: {file} has no heading with that anchor")


def _parse(parser: argparse.ArgumentParser, args: list[str]) -> argparse.Namespace | str | None:
    """The parsed arguments; the parser's complaint as text; None for --help."""
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            return parser.parse_args(args)
    except SystemExit as exit_:
        if exit_.code == 0:
            return None
        return errors.getvalue().strip().splitlines()[-1] if errors.getvalue().strip() else f"exit {exit_.code}"


def _within(number: float, param: Any) -> bool:
    low, high = param.min_value, param.max_value
    return (low is None or number >= low) and (high is None or number <= high)


def _option_error(param: Any, value: str) -> str | None:
    """Why `value` cannot be given to this option, or None. Strings' min/max are lengths."""
    kind = param.type
    if kind is AppCommandOptionType.integer and not re.fullmatch(r"-?\d+", value):
        return f"{value!r} is not a whole number"
    if kind is AppCommandOptionType.integer and not _within(int(value), param):
        return f"{value} is outside {param.min_value}-{param.max_value}"
    if kind is AppCommandOptionType.number and not re.fullmatch(r"-?\d+(?:\.\d+)?", value):
        return f"{value!r} is not a number"
    if kind is AppCommandOptionType.boolean and value.lower() not in ("true", "false"):
        return f"{value!r} is not True or False"
    if kind is AppCommandOptionType.channel and not value.startswith("#"):
        return f"{value!r} should be a channel, written #name"
    mentions = (AppCommandOptionType.role, AppCommandOptionType.user, AppCommandOptionType.mentionable)
    if kind in mentions and not value.startswith("@"):
        return f"{value!r} should be written @name"
    if kind is AppCommandOptionType.string and not _within(len(value), param):
        return f"{len(value)} characters; it takes {param.min_value}-{param.max_value}"
    if param.choices and value not in [str(choice.value) for choice in param.choices]:
        return f"{value!r} is not one of {[choice.value for choice in param.choices]}"
    return None


# --- running the offline rehearsals -------------------------------------------------------------


def start_rehearsal(
    args: list[str], env: dict[str, str], catalog_entries: list[dict[str, Any]], folder: Path
) -> subprocess.Popen[str]:
    folder.mkdir(parents=True, exist_ok=True)
    members = folder / "members.toml"
    members.write_text(members_toml(catalog_entries), encoding="utf-8")
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("DISCORD_")}
    clean.update(env)
    clean.update(
        DISCORD_TOKEN="",
        PYTHONPATH=str(ROOT),
        DATABASE_URL=f"sqlite:///{folder / 'council.db'}",
        MEMBERS_FILE=str(members),
    )
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "rehearse", *args],
        cwd=folder,
        env=clean,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a rehearsal; -1 if it did not end in time."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        return -1, out, f"timed out after {timeout} s\n{err}"
    return process.returncode, out, err


# --- the tests ----------------------------------------------------------------------------------


def _documents() -> list[tuple[str, str]]:
    return [(str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")) for path in DOC_FILES]


@pytest.fixture(scope="module")
def checked() -> Checker:
    return Checker(_documents())


@pytest.fixture(scope="module")
def rehearsals(checked: Checker, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str, str]]:
    """Every distinct offline rehearsal of the guides, plus one that must fail, run at the same time."""
    unique: dict[tuple[str, ...], tuple[str, list[str], dict[str, str]]] = {}
    for where, args, env in checked.offline:
        unique.setdefault((*args, *sorted(env.items())), (where, args, env))  # type: ignore[arg-type]
    jobs = {where: (args, env) for where, args, env in unique.values()}
    jobs["self-test: unknown member"] = (["A topic", "--members", "Nobody", "--offline"], {})
    base = tmp_path_factory.mktemp("rehearse")
    started = {
        where: start_rehearsal(args, env, checked.combined_entries, base / f"run{index}")
        for index, (where, (args, env)) in enumerate(jobs.items())
    }
    return {where: finish(process) for where, process in started.items()}


GUIDES = (
    "commands.md",
    "deliberation.md",
    "best-practices.md",
    "governance.md",
    "members.md",
    "operations.md",
    "performance.md",
    "tools.md",
)
README_WORDS = 1600


def _links(markdown: str) -> list[str]:
    return [target for _, line in prose_lines(markdown) for target in _LINK.findall(line)]


def test_guides_exist_and_are_linked_from_the_readme() -> None:
    readme = _links((ROOT / "README.md").read_text(encoding="utf-8"))
    for name in GUIDES:
        assert (ROOT / "docs" / name).is_file()
        assert f"docs/{name}" in readme, f"README.md does not link docs/{name}"
    assert "ARCHITECTURE.md" in readme
    assert sorted(path.name for path in (ROOT / "docs").glob("*.md")) == sorted(GUIDES), "a guide the README omits"


def test_the_readme_is_a_front_page() -> None:
    words = len((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert words <= README_WORDS, f"README.md has {words} words; the manual belongs in docs/"


def test_every_guide_opens_with_a_summary_that_links_back_to_the_readme() -> None:
    for name in GUIDES:
        text = (ROOT / "docs" / name).read_text(encoding="utf-8")
        title, _, rest = text.partition("\n\n")
        summary = rest.partition("\n\n")[0]
        assert title.startswith("# ") and "\n" not in title, f"docs/{name} does not open with one title"
        assert summary and not summary.startswith(("#", "-", "|", "```")), f"docs/{name}: no summary paragraph"
        assert "../README.md" in _links(summary), f"docs/{name}: its summary does not link back to the README"


def _leaf_commands(node: Any) -> Iterator[Any]:
    if isinstance(node, app_commands.Group):
        for child in node.commands:
            yield from _leaf_commands(child)
    else:
        yield node


def test_every_command_is_documented() -> None:
    """Each slash command is in the commands guide with its whole option list; each Apps menu is named there."""
    guide = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
    spans = [span for _, span in inline_spans(guide)]
    missing = [
        f"/{command.qualified_name}"
        for group in command_groups().values()
        for command in _leaf_commands(group)
        if not any(re.fullmatch(rf"/{re.escape(command.qualified_name)}(?: .*)?", span) for span in spans)
    ]
    assert not missing, f"docs/commands.md does not document {missing}"
    for menu in ("Message details", "Report to moderators"):
        assert menu in guide, f"docs/commands.md does not name the {menu!r} menu"


def test_every_setting_is_in_the_operations_guide() -> None:
    guide = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    documented = {span for _, span in inline_spans(guide)}
    missing = sorted(setting_names() - documented)
    assert not missing, f"docs/operations.md does not list {missing} (see .env.example)"


def test_the_picture_is_what_the_script_draws_now() -> None:
    """docs/council.svg is regenerated by `python -m tests.docs_picture`: a stale picture fails here."""
    drawn = docs_picture.render()
    committed = docs_picture.PICTURE.read_text(encoding="utf-8")
    assert committed == drawn, "docs/council.svg is stale: run `python -m tests.docs_picture`"
    assert len(committed.encode("utf-8")) < 30_000
    svg = ElementTree.fromstring(committed)
    namespace = "{http://www.w3.org/2000/svg}"
    background = svg.find(f"{namespace}rect")
    assert background is not None and background.get("fill", "none") not in ("none", "transparent")
    assert background.get("width") == svg.get("width") and background.get("height") == svg.get("height")
    assert "x" not in background.attrib and "y" not in background.attrib and "opacity" not in background.attrib
    words = " ".join("".join(node.itertext()) for node in svg.iter(f"{namespace}text"))
    for member in docs_picture.seated():
        assert member.name in words and member.model in words  # the catalog's, drawn as text
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert re.search(r"!\[[^\]]+\]\(docs/council\.svg\)", readme), "README.md does not show docs/council.svg"


PNG_DATA = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")
EXAMPLE_TOLERANCE = 6.0  # mean difference per channel (0-255): fonts' antialiasing, not content


def test_the_example_pictures_are_what_a_rehearsal_makes_now(tmp_path: Path) -> None:
    """docs/examples/ is regenerated by `python -m tests.docs_pictures`: stale examples fail here."""
    from PIL import Image, ImageChops, ImageStat

    made = docs_pictures.make(tmp_path)
    committed = {path.name: path.read_bytes() for path in sorted(docs_pictures.FOLDER.glob("council*"))}
    assert sorted(made) == sorted(committed), "docs/examples/ is stale: run `python -m tests.docs_pictures`"
    page, kept = made.pop("council.html").decode(), committed.pop("council.html").decode()
    assert PNG_DATA.sub("", page) == PNG_DATA.sub("", kept), "docs/examples/council.html is stale"
    for name, png in made.items():
        with Image.open(io.BytesIO(png)) as now, Image.open(io.BytesIO(committed[name])) as then:
            assert now.size == then.size, name
            difference = ImageStat.Stat(ImageChops.difference(now.convert("RGB"), then.convert("RGB"))).mean
        assert max(difference) <= EXAMPLE_TOLERANCE, f"docs/examples/{name} is stale: {difference}"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/examples/council-ratings-1.png" in readme and "docs/examples/council.html" in readme


def test_the_picture_escapes_what_it_draws(tmp_path: Path) -> None:
    """Names and roles from a catalog are text in the SVG, never markup."""
    entries = tomllib.loads((ROOT / "members.toml").read_text("utf-8"))["member"]
    for entry in entries:
        if entry["name"] == "DeepSeek":
            entry["role"] = 'the <Philosopher> & "friend"'
    catalog = tmp_path / "members.toml"
    catalog.write_text(members_toml(entries), encoding="utf-8")
    svg = ElementTree.fromstring(docs_picture.render(catalog))
    words = " ".join("".join(node.itertext()) for node in svg.iter())
    assert 'the <Philosopher> & "friend"' in words


def test_the_architecture_maps_every_engine_module() -> None:
    """ARCHITECTURE.md's "bot/council/" section has a line for each module of the engine, and for no other."""
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = re.search(r"^### `bot/council/`\n(.*?)^#", text, re.MULTILINE | re.DOTALL)
    assert section, "ARCHITECTURE.md has no `bot/council/` section"
    listed = re.findall(r"^- `([\w/]+\.py)`", section.group(1), re.MULTILINE)
    modules = sorted(p.name for p in (ROOT / "bot" / "council").glob("*.py") if p.name != "__init__.py")
    assert sorted(listed) == modules, f"listed {sorted(set(listed) ^ set(modules))} differ from bot/council/"
    for folder in ("bot/", "bot/providers/", "bot/governance/", "cogs/", "storage/"):
        assert f"### `{folder}`" in text, f"ARCHITECTURE.md has no section for {folder}"


def test_every_example_matches_the_code(checked: Checker) -> None:
    assert checked.blocks, "no code blocks found"
    assert not checked.problems, "\n".join(checked.problems)


def test_offline_rehearsals_run(checked: Checker, rehearsals: dict[str, tuple[int, str, str]]) -> None:
    assert checked.offline, "the guides show no offline rehearsal"
    failed = [
        f"{where}: exit {code}\n{err[-2000:]}"
        for where, (code, out, err) in rehearsals.items()
        # Concluded: all rounds done, or earlier as the mode allows (a settled debate, a limit), never failed.
        if not where.startswith("self-test")
        and (code != 0 or not re.search(r"^■ Council #\d+ concluded: ", out, re.MULTILINE) or "offline echo" not in out)
    ]
    assert not failed, "\n".join(failed)


def test_a_failing_rehearsal_is_noticed(rehearsals: dict[str, tuple[int, str, str]]) -> None:
    code, _, err = rehearsals["self-test: unknown member"]
    assert code == 2 and "no member called 'Nobody'" in err


WRONG = """
```toml
[[member]]
name = "Bad Claude"
provider = "anthropic"
model = "claude-sonnet-4-6"
base_url = "https://api.anthropic.com"
api_key_env = "ANTHROPIC_API_KEY"
temperature = 0.5
persona = "You disagree."
```

```toml
[[member]]
name = "claude"
provider = "openai"
model = "m"
base_url = "http://localhost:11434/v1"
persona = "A second Claude."
```

```bash
python -m bot rehearse "Should cities ban cars?" --members Claude --mode chaos
python -m bot rehearse "Should cities ban cars?" --members Claude,Nobody --offline
python -m bot rehearse "Should cities ban cars?" --members Claude,Llama --mode debate --chair DeepSeek --offline
python -m bench --quick --only rounds,nonsense
python -m bench --fast
python -m bot serve
rm -rf build && pytest
ollama pull mistral
```

```console
$ alembic downgrade base
this line is output and is not checked
```

```text
/council convene topic:Tabs or spaces? members:Claude, DeepSeek rounds:11
/council convene topic:Tabs or spaces? members:Claude, Claude
/counsel members
/council status council:3
/council assign member:Nobody role:the Skeptic
/governance rule-add kind:regex pattern:(a+)+
/governance rule-add kind:glob pattern:*.exe
/governance policy mode:lenient judge:Nobody
/governance category category:spam enabled:yes
/governance setup role:@Mods
```

```env
NOT_A_SETTING=1
CONTEXT_BUDGET_TOKENS=10
```

```yaml
mode: hold
```

```json
{"name": "ok"}
{"name": "not closed"
```

Inline: `/governance polcy`, `/council convene topic members [roles] [rounds]`, `/council status council_id`,
`CONTEXT_BUDGET`, and [a link](nowhere.md).

## A heading

Anchors: [here](#a-heading) is fine, [there](#no-such-heading) is not, nor [the README's](../README.md#nowhere),
nor [the catalog's](../members.toml#part).
"""

EXPECTED = [
    "rejects `temperature`",
    "'claude' is already defined",
    "invalid choice: 'chaos'",
    "no member called 'Nobody'",
    "The chair must be one of the council's members; 'DeepSeek' is not",
    "unknown group(s) ['nonsense']",
    "unrecognized arguments: --fast",
    "`python -m bot serve` is not a command",
    "`rm -rf build` is not a command",
    "ollama pull mistral: no local Ollama member",
    "`alembic downgrade base` is not a command",
    "rounds: 11 is outside 1-10",
    "Claude is named twice",
    "there is no /counsel command",
    "has no option 'council'",
    "/council assign: there is no member 'Nobody'",
    "repeats a group",
    "kind: 'glob' is not one of",
    "mode: 'lenient' is not one of",
    "there is no member 'Nobody' to judge",
    "categories are",
    "enabled: 'yes' is not True or False",
    "/governance setup needs channel",
    "NOT_A_SETTING is not in .env.example",
    "CONTEXT_BUDGET_TOKENS must be at least 1000",
    "```yaml blocks are not checked",
    "has no subcommand 'polcy'",
    "the option list leaves out ['chair', 'language', 'max_cost', 'max_tokens', 'mode', 'template', 'tools']",
    "council_id is optional",
    "`CONTEXT_BUDGET` is neither a setting",
    "link to nowhere.md points at nothing",
    "docs/wrong.md:62: not JSON",
    "link to #no-such-heading: docs/wrong.md has no heading with that anchor",
    "link to ../README.md#nowhere: ../README.md has no heading with that anchor",
    "link to ../members.toml#part: only a Markdown file has headings",
]


def test_wrong_examples_are_caught() -> None:
    checker = Checker([("docs/wrong.md", WRONG)])
    report = "\n".join(checker.problems)
    missed = [text for text in EXPECTED if text not in report]
    assert not missed, f"not caught: {missed}\nreported:\n{report}"
    assert all(problem.startswith("docs/wrong.md:") for problem in checker.problems)
    assert "#a-heading" not in report
    assert not checker.offline  # the offline line names an unknown member, so it is not run


RIGHT = """
```toml
[[member]]
name = "Tester"
role = "the Tester"
provider = "openai"
model = "llama3.2"
base_url = "http://localhost:11434/v1"
persona = "You test things."
```

```bash
cp .env.example .env
MEMBERS_FILE=members.toml python -m bot rehearse "Tabs or spaces?" --members Tester,Claude --rounds 1 --offline
ollama pull llama3.2
```

```text
/council convene topic:Tabs or spaces? members:Tester, Claude roles:Tester=the Judge mode:parallel
/governance rule-add kind:phrase pattern:free nitro
```

```env
LOG_LEVEL=DEBUG
```
"""


def test_right_examples_pass() -> None:
    checker = Checker([("docs/right.md", RIGHT)])
    assert not checker.problems, "\n".join(checker.problems)
    [(where, args, env)] = checker.offline
    assert where == "docs/right.md:14" and args[-1] == "--offline" and env == {"MEMBERS_FILE": "members.toml"}
