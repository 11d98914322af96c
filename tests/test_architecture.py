"""The engine, providers and catalog are plain asyncio Python: they must not import discord."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DISCORD_FREE = ["bot/council", "bot/providers", "bot/catalog.py", "bot/settings.py", "bot/text.py", "storage"]
SQL_FREE = ["bot", "cogs"]


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def python_files(relative: str) -> list[Path]:
    target = ROOT / relative
    return [target] if target.is_file() else sorted(target.rglob("*.py"))


def test_engine_code_does_not_import_discord() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for relative in DISCORD_FREE
        for path in python_files(relative)
        for module in imported_modules(path)
        if module == "discord" or module.startswith("discord.")
    ]
    assert offenders == []


def test_only_storage_speaks_sql() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for relative in SQL_FREE
        for path in python_files(relative)
        for module in imported_modules(path)
        if module.split(".")[0] in {"sqlalchemy", "sqlmodel", "alembic", "aiosqlite", "asyncpg"}
    ]
    assert offenders == []


# -- the import graph of bot/ and cogs/ ----------------------------------------------------------------------

LAYERED = ["bot", "cogs"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path, known: set[str]) -> set[str]:
    """The project modules `path` imports, however it imports them (TYPE_CHECKING blocks included: a
    dependency only a type checker sees is a dependency still)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                # `from package import submodule` depends on the submodule; a name defined in the package
                # (or module) itself, on that package.
                submodule = f"{node.module}.{alias.name}"
                if submodule in known:
                    found.add(submodule)
                elif node.module in known:
                    found.add(node.module)
    return found


def import_graph(folders: list[str]) -> dict[str, set[str]]:
    files = {module_name(path): path for folder in folders for path in python_files(folder)}
    known = set(files)
    return {name: project_imports(path, known) - {name} for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The graph's strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_circle_and_nothing_else() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_bot_and_cogs_import_no_module_that_imports_them_back() -> None:
    assert cycles(import_graph(LAYERED)) == []


def test_no_part_of_the_engine_imports_the_engine() -> None:
    """The engine builds its parts and hands each what it uses; a part that imported it would hold the hub."""
    graph = import_graph(["bot/council"])
    holders = sorted(name for name, imported in graph.items() if "bot.council.engine" in imported)
    assert holders == []


def test_the_app_does_not_reach_into_cogs() -> None:
    """bot/ is the product without Discord's cogs: the app loads them by name (EXTENSIONS) and imports none."""
    graph = import_graph(["bot", "cogs"])
    reaching = sorted(
        f"{name} -> {target}"
        for name, imported in graph.items()
        if name.startswith("bot.")
        for target in imported
        if target.startswith("cogs.")
    )
    assert reaching == []
