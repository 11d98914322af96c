"""Typed settings read from the environment and `.env`; secrets never have defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import load_dotenv

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "sqlite:///council.db"
DEFAULT_MEMBERS_FILE = PROJECT_ROOT / "members.toml"
DEFAULT_TOOLS_FILE = PROJECT_ROOT / "tools.toml"
DEFAULT_WEBHOOKS_PER_CHANNEL = 4


class SettingsError(Exception):
    """A setting is missing or malformed; the message tells the user what to change."""


@dataclass(frozen=True, slots=True)
class Settings:
    discord_token: str
    database_url: str
    members_file: Path
    provider_timeout: float
    log_level: str
    max_councils_per_user: int = 2
    max_councils_per_server: int = 10
    max_convenes_per_hour: int = 6
    context_budget_tokens: int = 6000
    provider_max_concurrency: int = 8
    health_port: int | None = None
    shard_count: int | None = None
    shard_ids: tuple[int, ...] | None = None
    health_host: str = "127.0.0.1"
    peer_ratings: bool = True  # members rate each other when a council concludes (one call per member)
    # provider_timeout is the total for a whole reply; these catch a provider that hangs well before it.
    provider_first_token_timeout: float = 120.0
    provider_idle_timeout: float = 30.0
    # Councils of one channel spread over this many webhooks (Discord allows 15).
    webhooks_per_channel: int = DEFAULT_WEBHOOKS_PER_CHANNEL
    # Seconds between two edits of starter embeds in one channel (Discord limits edits per channel); not read
    # from the environment: the tests shorten it.
    channel_edit_interval: float = 2.0
    # Seconds a council waits out an outage before its thread is told (the starter embed says so at once).
    outage_notice_after: float = 60.0
    # The MCP tool servers members may call (bot/tools/config.py); a missing file configures none.
    tools_file: Path = DEFAULT_TOOLS_FILE

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, dotenv: bool = True, require_token: bool = True
    ) -> Settings:
        """Read settings; `.env` in the working directory fills in what the environment lacks."""
        if dotenv and env is None:
            load_dotenv(override=False)
        source = os.environ if env is None else env
        token = source.get("DISCORD_TOKEN", "").strip()
        if not token and require_token:
            raise SettingsError(
                "DISCORD_TOKEN is not set. The bot needs its Discord bot token to log in: create an "
                "application at https://discord.com/developers/applications, add a bot, copy its token "
                "and put DISCORD_TOKEN=<token> in a file named .env next to README.md (copy .env.example "
                "to .env; it lists every setting) or export it in your shell, then run `python -m bot` again."
            )
        timeout = _seconds(source, "PROVIDER_TIMEOUT", 600.0)
        first_token_timeout = _seconds(source, "PROVIDER_FIRST_TOKEN_TIMEOUT", 120.0)
        idle_timeout = _seconds(source, "PROVIDER_IDLE_TIMEOUT", 30.0)
        limits = {
            name.lower(): _positive_int(source, name, default)
            for name, default in (
                ("MAX_COUNCILS_PER_USER", 2),
                ("MAX_COUNCILS_PER_SERVER", 10),
                ("MAX_CONVENES_PER_HOUR", 6),
                ("CONTEXT_BUDGET_TOKENS", 6000),
                ("PROVIDER_MAX_CONCURRENCY", 8),
                ("WEBHOOKS_PER_CHANNEL", DEFAULT_WEBHOOKS_PER_CHANNEL),
            )
        }
        if limits["webhooks_per_channel"] > 10:
            raise SettingsError("WEBHOOKS_PER_CHANNEL must be at most 10: Discord allows 15 per channel, leave room.")
        if limits["context_budget_tokens"] < 1000:
            raise SettingsError("CONTEXT_BUDGET_TOKENS must be at least 1000: the roles and topic alone need room.")
        health_text = source.get("HEALTH_PORT", "").strip()
        if health_text and (not health_text.isdigit() or not 1 <= int(health_text) <= 65535):
            raise SettingsError(f"HEALTH_PORT must be a port number from 1 to 65535, not {health_text!r}.")
        shard_count, shard_ids = _shards(source)
        ratings_text = source.get("PEER_RATINGS", "").strip().lower() or "on"
        if ratings_text not in ("on", "off", "true", "false", "1", "0", "yes", "no"):
            raise SettingsError(f"PEER_RATINGS must be on or off, not {ratings_text!r}.")
        return cls(
            peer_ratings=ratings_text in ("on", "true", "1", "yes"),
            discord_token=token,
            shard_count=shard_count,
            shard_ids=shard_ids,
            health_port=int(health_text) if health_text else None,
            health_host=source.get("HEALTH_HOST", "").strip() or "127.0.0.1",
            database_url=source.get("DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL,
            members_file=Path(source.get("MEMBERS_FILE", "").strip() or DEFAULT_MEMBERS_FILE),
            tools_file=Path(source.get("TOOLS_FILE", "").strip() or DEFAULT_TOOLS_FILE),
            provider_timeout=timeout,
            provider_first_token_timeout=first_token_timeout,
            provider_idle_timeout=idle_timeout,
            log_level=source.get("LOG_LEVEL", "INFO").strip().upper() or "INFO",
            **limits,
        )


def _shards(source: Mapping[str, str]) -> tuple[int | None, tuple[int, ...] | None]:
    """SHARD_COUNT alone: this process runs every shard. With SHARD_IDS: only those (comma-separated)."""
    count_text, ids_text = source.get("SHARD_COUNT", "").strip(), source.get("SHARD_IDS", "").strip()
    if not count_text:
        if ids_text:
            raise SettingsError("SHARD_IDS needs SHARD_COUNT: say how many shards there are in all.")
        return None, None
    if not count_text.isdigit() or int(count_text) < 1:
        raise SettingsError(f"SHARD_COUNT must be a whole number of at least 1, not {count_text!r}.")
    count = int(count_text)
    if not ids_text:
        return count, None
    try:
        ids = tuple(sorted({int(part) for part in ids_text.split(",") if part.strip()}))
    except ValueError:
        raise SettingsError(
            f"SHARD_IDS must be shard numbers separated by commas, like 0,1 — not {ids_text!r}."
        ) from None
    if not ids or any(not 0 <= shard < count for shard in ids):
        raise SettingsError(f"SHARD_IDS must be numbers from 0 to {count - 1} (SHARD_COUNT is {count}).")
    return count, ids


def _seconds(source: Mapping[str, str], name: str, default: float) -> float:
    text = source.get(name, "").strip()
    if not text:
        return default
    try:
        seconds = float(text)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, not {text!r}.") from None
    if not seconds > 0 or seconds == float("inf"):
        raise SettingsError(f"{name} must be greater than 0 seconds.")
    return seconds


def _positive_int(source: Mapping[str, str], name: str, default: int) -> int:
    text = source.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise SettingsError(f"{name} must be a whole number of at least 1, not {text!r}.")
    return int(text)
