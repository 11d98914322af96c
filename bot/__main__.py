"""`python -m bot`: settings → database (migrated) → bot. `python -m bot rehearse …`: a council in the terminal."""

from __future__ import annotations

import asyncio
import logging
import sys

import discord

from bot import rehearse
from bot.app import bot_class
from bot.catalog import Catalog, CatalogError
from bot.governance.rules import RuleBook, RuleFileError
from bot.logs import keep_payloads_out
from bot.settings import Settings, SettingsError
from bot.tools.builtin import check_member_tools
from bot.tools.config import ToolConfig, ToolConfigError, load_tool_config
from storage.database import Database, DatabaseURLError, async_url, safe_url

log = logging.getLogger("bot")


async def run(settings: Settings, catalog: Catalog, rulebook: RuleBook, tools: ToolConfig) -> None:
    db = Database(settings.database_url)
    try:
        await db.migrate()
        log.info("Database ready at %s", safe_url(db.url))
        async with bot_class(settings)(settings, catalog, db, rulebook=rulebook, tool_config=tools) as client:
            await client.start(settings.discord_token)
    finally:
        await db.close()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    rehearsing = bool(argv) and argv[0] == "rehearse"
    try:
        settings = Settings.from_env(require_token=not rehearsing)
        catalog = Catalog.load(settings.members_file)
        rulebook = RuleBook.load()
        tools = load_tool_config(settings.tools_file)
        check_member_tools(catalog, tools)
        async_url(settings.database_url)  # a bad DATABASE_URL is reported before logging in
    except (SettingsError, CatalogError, DatabaseURLError, RuleFileError, ToolConfigError) as error:
        print(f"AI Council cannot start: {error}", file=sys.stderr)
        return 2
    if rehearsing:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        return rehearse.main(argv[1:], settings, catalog)
    if argv:
        print(
            f"Unknown arguments: {' '.join(argv)}. Run `python -m bot` or `python -m bot rehearse --help`.",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    keep_payloads_out()  # transcripts belong in the database, not the log (bot/logs.py)
    try:
        asyncio.run(run(settings, catalog, rulebook, tools))
    except discord.LoginFailure:
        print("AI Council cannot start: Discord rejected DISCORD_TOKEN. Copy the bot token again.", file=sys.stderr)
        return 2
    except discord.PrivilegedIntentsRequired:
        print(
            "AI Council cannot start: enable the Message Content intent for the bot in the Discord developer "
            "portal (Bot → Privileged Gateway Intents); members need it to hear humans in council threads.",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
