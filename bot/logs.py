"""What the bot's log may hold: one line per turn and its outcomes, never what anyone said.

Some libraries log what they send at DEBUG: SQL parameters (aiosqlite, SQLAlchemy) and Discord request and
gateway payloads (discord.py), which carry transcripts, held messages and people's words. Those loggers are
kept above DEBUG whatever LOG_LEVEL says.
"""

from __future__ import annotations

import logging

# Logger name -> the lowest level it may log at.
PAYLOAD_LOGGERS = {
    "aiosqlite": logging.WARNING,
    "sqlalchemy.engine": logging.WARNING,
    "discord.http": logging.INFO,
    "discord.webhook.async_": logging.INFO,
    "discord.gateway": logging.INFO,
    # Tool calls: the MCP client writes each request's arguments at DEBUG, its HTTP client each URL at INFO.
    "mcp": logging.INFO,
    "httpx2": logging.WARNING,
    "httpcore2": logging.WARNING,
}


def keep_payloads_out() -> None:
    """Raise the loggers that would write payloads at DEBUG to where they write none."""
    for name, lowest in PAYLOAD_LOGGERS.items():
        logger = logging.getLogger(name)
        logger.setLevel(max(lowest, logger.getEffectiveLevel()))
