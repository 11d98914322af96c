"""The moderation gate: every AI reply and every human message in a council thread passes through it."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.catalog import Catalog, MemberSpec
from bot.governance.concerns import Concern
from bot.governance.judge import JUDGE_SYSTEM_PROMPT, JudgeFailure, judge_user_prompt, parse_verdict
from bot.governance.rules import CustomRule, RuleBook
from bot.providers.base import ChatRequest, ChatTurn, ProviderClient, ProviderError
from storage import governance_repository as gov
from storage.database import Database
from storage.models import GuildSettings

log = logging.getLogger(__name__)

MODES = ("hold", "notify")


# The reason goes to the moderators in the council's language; what the bot parses stays as the prompt gives it.
_LANGUAGE = (
    "\n\nThe council is held in {language}: write the reason in {language}; the JSON keys, the verdict and the "
    "category stay as given above."
)


@dataclass(frozen=True, slots=True)
class Policy:
    """A server's moderation policy as the pipeline applies it."""

    guild_id: int
    mode: str
    enabled_categories: frozenset[str]
    judge_member: str | None
    timeout_s: int
    moderator_channel_id: int | None
    moderator_role_id: int | None
    halted: bool

    @property
    def holds(self) -> bool:
        return self.mode == "hold"


class GovernanceGate:
    """Finds concerns in a text: the server's rules, then (for AI text) the judge member if one is set."""

    def __init__(
        self,
        db: Database,
        rulebook: RuleBook,
        catalog: Catalog,
        clients: Callable[[MemberSpec], ProviderClient],
        *,
        judge_timeout: float = 60.0,
        cache_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.rulebook = rulebook
        self.catalog = catalog
        self.clients = clients
        self.judge_timeout = judge_timeout
        self.cache_seconds = cache_seconds
        self.clock = clock
        # Every message reads the policy and the server's rules: keep them briefly. Changes made in
        # this process are seen at once (forget); another process's within `cache_seconds`.
        self._cache: dict[int, tuple[float, Policy, list[CustomRule]]] = {}

    async def policy(self, guild_id: int) -> Policy:
        return (await self._cached(guild_id))[0]

    def forget(self, guild_id: int) -> None:
        """The server's policy or rules changed: read them again next time."""
        self._cache.pop(guild_id, None)

    async def _cached(self, guild_id: int) -> tuple[Policy, list[CustomRule]]:
        hit = self._cache.get(guild_id)
        if hit is not None and self.clock() - hit[0] < self.cache_seconds:
            return hit[1], hit[2]
        policy = self.policy_from(await gov.get_guild_settings(self.db, guild_id))
        custom = [
            CustomRule(rule.id, rule.kind, rule.pattern, rule.category)  # type: ignore[arg-type]
            for rule in await gov.list_guild_rules(self.db, guild_id)
        ]
        self._cache[guild_id] = (self.clock(), policy, custom)
        return policy, custom

    def policy_from(self, settings: GuildSettings) -> Policy:
        disabled = {c for c in settings.disabled_categories.split(",") if c}
        return Policy(
            guild_id=settings.guild_id,
            mode=settings.policy_mode,
            enabled_categories=frozenset(c.id for c in self.rulebook.categories if c.id not in disabled),
            judge_member=settings.judge_member,
            timeout_s=settings.escalation_timeout_s,
            moderator_channel_id=settings.moderator_channel_id,
            moderator_role_id=settings.moderator_role_id,
            halted=settings.halted,
        )

    async def review(
        self,
        policy: Policy,
        *,
        topic: str,
        author_kind: str,
        author_name: str,
        text: str,
        language: Callable[[], Awaitable[str | None]] | None = None,
    ) -> list[Concern]:
        """The concerns the server's rules and its judge member find in `text`. `language`: tells the English
        name of the language the council is held in, asked only when the judge is (its reason is written in it)."""
        _, custom = await self._cached(policy.guild_id)
        concerns = self.rulebook.check(text, enabled=policy.enabled_categories, custom=custom)
        if author_kind == "ai" and policy.judge_member and policy.judge_member != author_name:
            spoken = await language() if language is not None else None
            verdict = await self._judge(
                policy.judge_member, topic=topic, author=author_name, text=text, language=spoken
            )
            if verdict is not None:
                concerns.append(verdict)
        return concerns

    async def _judge(
        self, judge_name: str, *, topic: str, author: str, text: str, language: str | None = None
    ) -> Concern | None:
        spec = self.catalog.get(judge_name)
        if spec is None or not spec.is_available():
            # A judge that cannot judge must not wave messages through.
            return Concern("judge", "judge_failure", f"The judge member {judge_name} is not available.")
        request = ChatRequest(
            model=spec.model,
            system=JUDGE_SYSTEM_PROMPT + (_LANGUAGE.format(language=language) if language else ""),
            turns=(ChatTurn("user", judge_user_prompt(topic, author, text)),),
            max_output_tokens=300,
            temperature=0.0 if spec.provider != "anthropic" else None,
        )
        try:
            completion = await self.clients(spec).complete(request, timeout=self.judge_timeout)
        except ProviderError as error:
            log.warning("Judge %s failed: %s", judge_name, error.kind)
            return Concern("judge", "judge_failure", f"The judge {judge_name} could not review it ({error.kind}).")
        verdict = parse_verdict(completion.text)
        if isinstance(verdict, JudgeFailure):
            return Concern("judge", "judge_failure", f"The judge's verdict could not be read: {verdict.reason}")
        return verdict
