"""The members catalog: which AI members exist, what model and prompt stand behind each."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse, urlsplit

from bot.providers.model_rules import TOKEN_LIMIT_PARAMS, ModelRule, TokenLimitParam, rule_for

PROVIDERS = ("anthropic", "openai")
# Each continuation of a reply cut at the output limit is one more call, with the whole prompt again.
MAX_CONTINUATIONS = 5
# Discord refuses webhook usernames that contain these words or exceed 80 characters.
_FORBIDDEN_NAME_WORDS = ("discord", "clyde")
_NAME_PATTERN = re.compile(r"^[\w][\w .'-]{0,31}$")


class CatalogError(Exception):
    """The catalog file cannot be used; the message names the file, member and field."""


def endpoint_host(base_url: str) -> str:
    """`host[:port]` of a base URL, never its user info, path or query (any of which may hold a key)."""
    parts = urlsplit(base_url)
    host = parts.hostname or "unknown host"
    if ":" in host:  # IPv6
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port else host


@dataclass(frozen=True, slots=True)
class MemberSpec:
    """One AI member as the catalog defines it."""

    name: str
    provider: str
    model: str
    base_url: str
    api_key_env: str | None
    persona: str
    role: str | None = None
    avatar_url: str | None = None
    temperature: float | None = None
    max_output_tokens: int = 1024
    price_input_per_mtok: float = 0.0
    price_output_per_mtok: float = 0.0
    coordinator: bool = False
    # The catalog's overrides of the model rules table (bot/providers/model_rules.py); None keeps the table's.
    token_limit_param: TokenLimitParam | None = None
    accepts_temperature: bool | None = None
    # How often a reply cut at max_output_tokens is asked to go on (catalog: continue_when_cut); 0 = never.
    max_continuations: int = 0
    # Variables of further keys (catalog: api_key_env as a list); calls spread over every key (providers/keys.py).
    extra_key_envs: tuple[str, ...] = ()
    # Claude's extended thinking (catalog: thinking): "adaptive" or a budget of thinking tokens; None: off.
    thinking: str | int | None = None
    # Whether the model sees images (catalog: vision): humans' images reach it; others get a line saying so.
    vision: bool = False
    # The tools it may call (catalog: tools), as "server.tool" or "server.*" of the servers in tools.toml.
    tools: tuple[str, ...] = ()
    # Its colour in charts (catalog: colour, "#RRGGBB"); None: the charts' palette by seat.
    colour: str | None = None

    @property
    def model_rule(self) -> ModelRule:
        """What this member's model accepts in a request: the table's rule, with the member's overrides."""
        return rule_for(self.provider, self.model).overridden(
            token_limit_param=self.token_limit_param, accepts_temperature=self.accepts_temperature
        )

    @property
    def key_envs(self) -> tuple[str, ...]:
        """The variables the member's keys are read from, in the catalog's order."""
        return (self.api_key_env, *self.extra_key_envs) if self.api_key_env else ()

    @property
    def key_names(self) -> str:
        """The variables' names, for people (never their values)."""
        return ", ".join(self.key_envs)

    def api_keys(self, env: Mapping[str, str] | None = None) -> tuple[str, ...]:
        """The member's keys from the environment, in order, each once: every variable named, each of which may
        hold several keys separated by commas, spaces or new lines."""
        source = os.environ if env is None else env
        keys = [key for name in self.key_envs for key in re.split(r"[\s,]+", source.get(name, "")) if key]
        return tuple(dict.fromkeys(keys))

    def api_key(self, env: Mapping[str, str] | None = None) -> str | None:
        """The member's first key, or None when it needs none or none is set."""
        keys = self.api_keys(env)
        return keys[0] if keys else None

    def is_available(self, env: Mapping[str, str] | None = None) -> bool:
        """A member that needs a key is available only when at least one key is set."""
        return not self.api_key_env or bool(self.api_keys(env))

    @property
    def base_url_host(self) -> str:
        return endpoint_host(self.base_url)

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.price_input_per_mtok + output_tokens * self.price_output_per_mtok) / 1_000_000


@dataclass(frozen=True, slots=True)
class Catalog:
    """The members by name; lookups ignore case because people type names by hand."""

    members: tuple[MemberSpec, ...]

    def __iter__(self) -> Iterator[MemberSpec]:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def get(self, name: str) -> MemberSpec | None:
        wanted = name.strip().casefold()
        return next((m for m in self.members if m.name.casefold() == wanted), None)

    @property
    def coordinator(self) -> MemberSpec | None:
        return next((m for m in self.members if m.coordinator), None)

    @classmethod
    def load(cls, path: Path) -> Catalog:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CatalogError(f"Members catalog {path} does not exist (set MEMBERS_FILE to its path).") from None
        except tomllib.TOMLDecodeError as exc:
            raise CatalogError(f"Members catalog {path} is not valid TOML: {exc}") from None
        return cls.from_mapping(data, source=str(path))

    @classmethod
    def from_mapping(cls, data: Mapping[str, object], *, source: str = "catalog") -> Catalog:
        entries = data.get("member")
        if not isinstance(entries, list) or not entries:
            raise CatalogError(f"{source}: define at least one [[member]] table.")
        members = tuple(_parse_member(entry, source, index) for index, entry in enumerate(entries, 1))
        seen: set[str] = set()
        for member in members:
            key = member.name.casefold()
            if key in seen:
                raise CatalogError(f"{source}: member name {member.name!r} is defined twice.")
            seen.add(key)
        if sum(m.coordinator for m in members) > 1:
            raise CatalogError(f"{source}: only one member may be the coordinator.")
        return cls(members)


_FIELDS = {
    "name",
    "provider",
    "model",
    "base_url",
    "api_key_env",
    "persona",
    "role",
    "avatar_url",
    "temperature",
    "max_output_tokens",
    "price_input_per_mtok",
    "price_output_per_mtok",
    "coordinator",
    "token_limit_param",
    "thinking",
    "vision",
    "tools",
    "colour",
    "accepts_temperature",
    "continue_when_cut",
    "max_continuations",
}


def _parse_member(entry: object, source: str, index: int) -> MemberSpec:
    where = f"{source}: member #{index}"
    if not isinstance(entry, dict):
        raise CatalogError(f"{where} must be a table.")
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise CatalogError(f"{where} has unknown field(s): {', '.join(unknown)}.")
    for required in ("name", "provider", "model", "base_url", "persona"):
        if not isinstance(entry.get(required), str) or not entry[required].strip():
            raise CatalogError(f"{where} needs a non-empty string `{required}`.")
    name = entry["name"].strip()
    where = f"{source}: member {name!r}"
    if not _NAME_PATTERN.match(name) or any(word in name.casefold() for word in _FORBIDDEN_NAME_WORDS):
        raise CatalogError(
            f"{where}: names are 1-32 letters, digits, spaces, dots, dashes or apostrophes and may not "
            "contain 'discord' or 'clyde' (Discord refuses such webhook names)."
        )
    provider = entry["provider"].strip().lower()
    if provider not in PROVIDERS:
        raise CatalogError(f"{where}: provider must be one of {', '.join(PROVIDERS)}, not {provider!r}.")
    base_url = entry["base_url"].strip().rstrip("/")
    if urlparse(base_url).scheme not in ("http", "https"):
        raise CatalogError(f"{where}: base_url must be an http(s) URL.")
    model = entry["model"].strip()
    token_limit_param, accepts_temperature = _rule_overrides(entry, provider, where)
    rule = rule_for(provider, model).overridden(
        token_limit_param=token_limit_param, accepts_temperature=accepts_temperature
    )
    temperature = entry.get("temperature")
    if temperature is not None:
        if not rule.accepts_temperature:
            # Refused by the API (or never sent): better said at start-up than ignored or failed on every turn.
            how = "remove it" if provider == "anthropic" else "remove it, or set `accepts_temperature = true`"
            raise CatalogError(f"{where}: {rule.why or 'this model refuses `temperature`'}; {how}.")
        if not isinstance(temperature, int | float) or not 0 <= temperature <= 2:
            raise CatalogError(f"{where}: temperature must be a number from 0 to 2.")
    max_tokens = entry.get("max_output_tokens", 1024)
    if not isinstance(max_tokens, int) or not 1 <= max_tokens <= 64_000:
        raise CatalogError(f"{where}: max_output_tokens must be an integer from 1 to 64000.")
    prices = {}
    for key in ("price_input_per_mtok", "price_output_per_mtok"):
        value = entry.get(key, 0.0)
        if not isinstance(value, int | float) or value < 0:
            raise CatalogError(f"{where}: {key} must be a number ≥ 0 (US dollars per million tokens).")
        prices[key] = float(value)
    api_key_env = entry.get("api_key_env")
    variables = [api_key_env] if isinstance(api_key_env, str) else api_key_env
    if api_key_env is not None and (
        not isinstance(variables, list)
        or not variables
        or not all(isinstance(v, str) and re.fullmatch(r"[A-Z_][A-Z0-9_]*", v) for v in variables)
        or len(set(variables)) != len(variables)
    ):
        raise CatalogError(
            f"{where}: api_key_env must be an environment variable name like DEEPSEEK_API_KEY, or a list of "
            'different ones like ["DEEPSEEK_API_KEY", "DEEPSEEK_API_KEY_2"].'
        )
    role = entry.get("role")
    avatar_url = entry.get("avatar_url")
    if avatar_url is not None and urlparse(str(avatar_url)).scheme != "https":
        raise CatalogError(f"{where}: avatar_url must be an https URL.")
    return MemberSpec(
        name=name,
        provider=provider,
        model=model,
        base_url=base_url,
        api_key_env=variables[0] if variables else None,
        extra_key_envs=tuple(variables[1:]) if variables else (),
        persona=entry["persona"].strip(),
        role=str(role).strip() if role else None,
        avatar_url=str(avatar_url) if avatar_url else None,
        temperature=float(temperature) if temperature is not None else None,
        max_output_tokens=max_tokens,
        coordinator=bool(entry.get("coordinator", False)),
        token_limit_param=token_limit_param,
        accepts_temperature=accepts_temperature,
        max_continuations=_continuations(entry, where),
        thinking=_thinking(entry, provider, max_tokens, where),
        vision=_flag(entry, "vision", where),
        tools=_tools(entry, where),
        colour=_colour(entry, where),
        **prices,
    )


def _flag(entry: dict[str, object], key: str, where: str) -> bool:
    value = entry.get(key, False)
    if not isinstance(value, bool):
        raise CatalogError(f"{where}: {key} must be true or false.")
    return value


TOOL_PATTERN = re.compile(r"[a-z0-9_-]{1,24}\.(\*|[^\s.][^\s]{0,199})")


def _tools(entry: dict[str, object], where: str) -> tuple[str, ...]:
    """`tools = ["search.*", "notes.read_page"]`: a server's every tool, or one of them (tools.toml names the
    servers; one the file does not name is said at start-up)."""
    tools = entry.get("tools", [])
    if not isinstance(tools, list) or not all(isinstance(t, str) and TOOL_PATTERN.fullmatch(t) for t in tools):
        raise CatalogError(
            f'{where}: tools must be a list like ["search.*", "notes.read_page"]: a server named in tools.toml, '
            "a dot, then one of its tools or * for all of them."
        )
    return tuple(dict.fromkeys(tools))


def _colour(entry: dict[str, object], where: str) -> str | None:
    colour = entry.get("colour")
    if colour is None:
        return None
    if not isinstance(colour, str) or not re.fullmatch(r"#[0-9a-fA-F]{6}", colour.strip()):
        raise CatalogError(f'{where}: colour must be a hex colour like "#D97757".')
    return colour.strip().lower()


def _thinking(entry: dict[str, object], provider: str, max_tokens: int, where: str) -> str | int | None:
    """Claude's extended thinking: `thinking = "adaptive"` (the model decides how much to think), or a budget of
    thinking tokens (at least 1,024 and below max_output_tokens, which counts the thinking too)."""
    thinking = entry.get("thinking")
    if thinking is None:
        return None
    if provider != "anthropic":
        raise CatalogError(
            f"{where}: thinking is for anthropic members; OpenAI-compatible reasoning models reason on their own "
            "and the bot keeps their reasoning apart."
        )
    if thinking == "adaptive":
        return "adaptive"
    if isinstance(thinking, bool) or not isinstance(thinking, int) or not 1024 <= thinking < max_tokens:
        raise CatalogError(
            f'{where}: thinking must be "adaptive" or a budget of thinking tokens from 1024 to below '
            f"max_output_tokens ({max_tokens}), which counts the thinking too."
        )
    return thinking


def _continuations(entry: dict[str, object], where: str) -> int:
    """`continue_when_cut = true` asks a cut reply to go on once; `max_continuations` allows more."""
    wanted, count = entry.get("continue_when_cut", False), entry.get("max_continuations")
    if not isinstance(wanted, bool):
        raise CatalogError(f"{where}: continue_when_cut must be true or false.")
    if count is None:
        return 1 if wanted else 0
    if not wanted:
        raise CatalogError(f"{where}: max_continuations needs continue_when_cut = true.")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_CONTINUATIONS:
        raise CatalogError(f"{where}: max_continuations must be a whole number from 1 to {MAX_CONTINUATIONS}.")
    return count


def _rule_overrides(entry: dict[str, object], provider: str, where: str) -> tuple[TokenLimitParam | None, bool | None]:
    """A member's own `token_limit_param` / `accepts_temperature`, for a model the rules table gets wrong."""
    param, accepts = entry.get("token_limit_param"), entry.get("accepts_temperature")
    if (param is not None or accepts is not None) and provider != "openai":
        # Anthropic's API has one field for the limit and refuses every temperature: nothing to override.
        raise CatalogError(f"{where}: token_limit_param and accepts_temperature are for openai members only.")
    if param is not None and param not in TOKEN_LIMIT_PARAMS:
        raise CatalogError(f"{where}: token_limit_param must be one of {', '.join(TOKEN_LIMIT_PARAMS)}.")
    if accepts is not None and not isinstance(accepts, bool):
        raise CatalogError(f"{where}: accepts_temperature must be true or false.")
    return param, accepts  # type: ignore[return-value]
