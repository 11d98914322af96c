"""The tool servers the bot brings itself, and the start-up check that members name only servers that exist."""

from __future__ import annotations

from bot.catalog import Catalog
from bot.tools.config import ToolConfig, ToolConfigError

# The project's own servers (bot/tools/councils.py): always there, configured by nobody.
BUILTIN_SERVERS = ("councils",)


def check_member_tools(catalog: Catalog, config: ToolConfig) -> None:
    """A member naming a server no one configured would silently get no tools: said at start-up instead."""
    for name in BUILTIN_SERVERS:
        if name in config.servers:
            raise ToolConfigError(f"[server.{name}]: {name!r} is the bot's own tool server; give yours another name.")
    known = set(config.servers) | set(BUILTIN_SERVERS)
    for member in catalog.members:
        for pattern in member.tools:
            server = pattern.split(".", 1)[0]
            if server not in known:
                raise ToolConfigError(
                    f"Member {member.name!r} may call tools of {server!r}, which no tool server file names "
                    f"(known: {', '.join(sorted(known))}). Add [server.{server}] to tools.toml or set TOOLS_FILE."
                )
