"""One provider client per member, sharing the bot's aiohttp session."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from bot.catalog import MemberSpec
from bot.providers import make_client
from bot.providers.base import ProviderClient


class ProviderPool:
    """Builds clients lazily; the key is read from the environment when the client is first needed."""

    def __init__(self, session: aiohttp.ClientSession, env: Mapping[str, str] | None = None) -> None:
        self._session = session
        self._env = env
        self._clients: dict[str, ProviderClient] = {}

    def __call__(self, spec: MemberSpec) -> ProviderClient:
        client = self._clients.get(spec.name)
        if client is None:
            client = make_client(
                spec.provider, self._session, base_url=spec.base_url, api_key=spec.api_key(self._env), name=spec.name
            )
            self._clients[spec.name] = client
        return client
