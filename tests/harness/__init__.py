"""End-to-end Discord harness: interaction payloads in, recorded messages out. See tests/README.md."""

from .errors import HarnessError, InvalidInvocation, NoResponseError, SettleTimeout, UnhandledBotError
from .harness import BOT_PERMISSIONS, MEMBER_PERMISSIONS, MODERATOR_PERMISSIONS, DiscordHarness
from .interactions import InteractionResult
from .rate_limits import RateLimits
from .recorder import Edit, Pings, Post, Reaction
from .server import WebhookInfo

__all__ = [
    "BOT_PERMISSIONS",
    "MEMBER_PERMISSIONS",
    "MODERATOR_PERMISSIONS",
    "DiscordHarness",
    "Edit",
    "HarnessError",
    "InteractionResult",
    "InvalidInvocation",
    "NoResponseError",
    "Pings",
    "Post",
    "RateLimits",
    "Reaction",
    "SettleTimeout",
    "UnhandledBotError",
    "WebhookInfo",
]
