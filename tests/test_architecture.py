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
