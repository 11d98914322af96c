"""What each model family accepts in a request, as data: one table, matched by model name, first match wins.

Providers differ not only by wire format but by model: OpenAI's reasoning models refuse `max_tokens` and any
`temperature` but their default, while every other OpenAI-compatible server the catalog ships takes both.
Keeping those differences here, rather than as ifs in the clients, lets the catalog check a member against
them at start-up and lets an operator override them per member (`token_limit_param`, `accepts_temperature`).

Sources, checked 2026: OpenAI's chat-completions reference (`max_tokens` "is not compatible with o-series
models", deprecated for `max_completion_tokens`; the API answers "Unsupported parameter: 'max_tokens' is not
supported with this model. Use 'max_completion_tokens' instead." and "Unsupported value: 'temperature' does not
support 0.7 with this model. Only the default (1) value is supported."); Anthropic's API version 2026-10-21,
which rejects sampling parameters; DeepSeek's thinking-mode guide (temperature accepted and ignored, no rule
needed); the OpenAI-compatibility pages of Gemini, Groq and Ollama (max_tokens and temperature accepted as sent;
Ollama does not list max_completion_tokens, so max_tokens stays the default).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

TokenLimitParam = Literal["max_tokens", "max_completion_tokens"]
TOKEN_LIMIT_PARAMS: tuple[TokenLimitParam, ...] = ("max_tokens", "max_completion_tokens")


@dataclass(frozen=True, slots=True)
class ModelRule:
    """How to ask one family of models.

    provider: the wire format the rule is for ("anthropic" or "openai").
    pattern: a regular expression searched (ignoring case) in the model name; "" matches every model.
    token_limit_param: the request field that carries the member's max_output_tokens.
    accepts_temperature: False when the API refuses any temperature but its default: none is sent.
    why: what the catalog says when a member sets something the rule forbids.
    """

    provider: str
    pattern: str
    token_limit_param: TokenLimitParam = "max_tokens"
    accepts_temperature: bool = True
    why: str = ""

    def matches(self, provider: str, model: str) -> bool:
        return self.provider == provider and re.search(self.pattern, model, re.IGNORECASE) is not None

    def overridden(
        self, *, token_limit_param: TokenLimitParam | None = None, accepts_temperature: bool | None = None
    ) -> ModelRule:
        """This rule with a member's own settings from the catalog in place of the table's."""
        changes: dict[str, object] = {}
        if token_limit_param is not None:
            changes["token_limit_param"] = token_limit_param
        if accepts_temperature is not None:
            changes["accepts_temperature"] = accepts_temperature
        return replace(self, **changes) if changes else self  # type: ignore[arg-type]


# A model id may carry a router's prefix ("openai/gpt-5" on OpenRouter), hence (^|/).
_REASONING = "OpenAI's reasoning models (gpt-5, o1, o3, o4 families) refuse any temperature but their default"

# fmt: off
RULES: tuple[ModelRule, ...] = (
    ModelRule("anthropic", "", accepts_temperature=False,
              why="Anthropic's current API rejects `temperature` (API version 2026-10-21 refuses sampling parameters)"),
    # The chat variants of GPT-5 are not reasoning models: they take a temperature, but not max_tokens.
    ModelRule("openai", r"(^|/)gpt-5[\w.]*-chat", token_limit_param="max_completion_tokens"),
    ModelRule("openai", r"(^|/)(o\d+|gpt-5)([-.:]|$)", token_limit_param="max_completion_tokens",
              accepts_temperature=False, why=_REASONING),
)
# fmt: on


def rule_for(provider: str, model: str) -> ModelRule:
    """The first rule of the table for this model, or the plain default (max_tokens, any temperature)."""
    for rule in RULES:
        if rule.matches(provider, model):
            return rule
    return ModelRule(provider, "")
