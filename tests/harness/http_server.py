"""The fake Discord over real HTTP: an aiohttp app on 127.0.0.1 serving Discord's REST API under /api/v10
from the harness's route table, so the bot's requests run through discord.py's own code (HTTPClient.request,
the webhook adapter, their rate limiters, their retries) and through the bot's aiohttp tracing.

Each request is matched to its route template, judged by the rate-limit model (a 429 never reaches the
handler), decoded (JSON, or multipart with `payload_json` and files), and served. A handler's
`discord.HTTPException` becomes its status and Discord's JSON error body; a dropped-connection fault
really drops the connection.
"""

from __future__ import annotations

import io
import json
import logging
import math
import urllib.parse
from typing import Any

import aiohttp
import discord
from aiohttp import web

from .errors import discord_body
from .fake_http import Request, Router
from .rate_limits import Verdict

PREFIX = "/api/v10"
# Discord's API answers through Google's load balancer; discord.py takes a 429 without `Via` for a
# Cloudflare ban and raises instead of waiting it out.
VIA = {"Via": "1.1 google"}

log = logging.getLogger(__name__)


class DiscordHttpServer:
    """Serve `router` on a loopback port; `base_url` is what discord.http.Route.BASE should be."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.dropped = 0  # connections dropped on purpose (faults "reset" and "reset-after")

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}{PREFIX}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, http: web.Request) -> web.StreamResponse:
        url_path = http.raw_path.split("?", 1)[0]
        found = self.router.match(http.method, url_path.removeprefix(PREFIX)) if url_path.startswith(PREFIX) else None
        if found is None:
            self.router.log.append((http.method, url_path))
            missing = NotImplementedError(f"the Discord harness has no fake for {http.method} {url_path}")
            # Logged with the exception so the harness's guard fails the test, naming the route.
            log.error("%s", missing, exc_info=missing)
            return _json(404, {"message": "404: Not Found", "code": 0}, VIA)
        verdict = self.router.verdict(http.method, found.template, found.params, http.headers.get("Authorization"))
        if verdict is not None and not verdict.allowed:
            return _limited(verdict)
        headers = {**VIA, **(verdict.headers if verdict else {})}
        body, files = await _decode(http)
        reason = http.headers.get("X-Audit-Log-Reason")
        request = Request(
            http.method,
            found.template,
            found.params,
            body,
            dict(http.query),
            files,
            urllib.parse.unquote(reason) if reason else None,
        )
        try:
            result = await self.router.serve(request, url_path, found.handler)
        except aiohttp.ServerDisconnectedError:
            # The fault "reset": the client gets no answer at all, as when a connection drops.
            self.dropped += 1
            if http.transport is not None:
                http.transport.close()
            return web.Response(status=204)  # never arrives: the transport is closed
        except discord.DiscordServerError as error:
            return web.Response(status=error.status, text=error.text, headers=headers)
        except discord.HTTPException as error:
            answer = discord_body(error)
            if error.status == 429:  # a fault: a 429 the model did not decide
                retry_after = float(answer.get("retry_after", 1.0))
                headers.update({"Retry-After": str(math.ceil(retry_after)), "X-RateLimit-Scope": "user"})
            return _json(error.status, answer, headers)
        except Exception as error:
            # A bug in a fake, or a request it cannot serve: fail the test (the guard sees the log).
            log.error("the fake Discord failed serving %s %s", http.method, url_path, exc_info=error)
            return _json(400, {"message": f"the Discord harness failed: {error!r}", "code": 0}, headers)
        if result is None:
            return web.Response(status=204, headers=headers)
        return _json(200, result, headers)


def _limited(verdict: Verdict) -> web.Response:
    # Cloudflare's ban comes from the edge: no `Via`, so discord.py raises at once.
    headers = verdict.headers if verdict.banned else {**VIA, **verdict.headers}
    return _json(429, verdict.body, headers)


def _json(status: int, data: Any, headers: dict[str, str]) -> web.Response:
    # Content-Type exactly application/json: discord.py parses JSON only then (json_response adds a charset).
    body = discord.utils._to_json(data).encode()
    return web.Response(body=body, status=status, headers={**headers, "Content-Type": "application/json"})


async def _decode(http: web.Request) -> tuple[Any, list[discord.File]]:
    """The JSON body, or a multipart form's `payload_json` and its files (as discord.File, like the
    in-process path hands the routes)."""
    if http.content_type == "application/json":
        text = await http.text()
        return (json.loads(text) if text else None), []
    if not http.content_type.startswith("multipart/"):
        return None, []
    body: Any = None
    files: list[discord.File] = []
    reader = await http.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, aiohttp.BodyPartReader):
            continue
        if part.name == "payload_json":
            body = json.loads(await part.text())
        elif part.filename:
            files.append(discord.File(io.BytesIO(await part.read()), filename=part.filename))
    return body, files


__all__ = ["PREFIX", "DiscordHttpServer"]
