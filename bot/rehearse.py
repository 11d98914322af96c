"""`python -m bot rehearse`: run a council in the terminal, with the same engine, providers and database.

No Discord is needed. With `--offline`, every member is a clearly labelled local echo, so a newcomer
can watch the mechanics on a fresh machine without any API key.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace
from typing import TextIO

import aiohttp

from bot.catalog import Catalog, MemberSpec
from bot.council.engine import MAX_ROUNDS, MODES, ConveneError, CouncilEngine
from bot.council.seats import Seat
from bot.providers.pool import ProviderPool
from bot.settings import Settings
from storage.database import Database, safe_url
from storage.models import Council

REHEARSAL_GUILD = 0  # councils rehearsed in the terminal belong to no Discord server


class TerminalPublisher:
    """Shows a council on a terminal. Message "ids" are line numbers of this run."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.count = 0
        self.finished = asyncio.Event()

    def _print(self, text: str) -> list[int]:
        self.count += 1
        print(text, file=self.out, flush=True)
        return [self.count]

    async def post_member_message(
        self, council: Council, seat: Seat, content: str, *, recovering: bool = False
    ) -> list[int]:
        return self._print(f"\n── {seat.label} ──\n{content}")

    async def post_notice(self, council: Council, text: str, *, recovering: bool = False) -> list[int]:
        return self._print(f"\n{text}")

    async def council_finished(self, council: Council) -> None:
        self._print(f"\n■ Council #{council.id} {council.state}: {council.end_reason}")
        self.finished.set()

    def progress(self, council: Council, speaking: tuple[str, ...]) -> None:
        return None  # the terminal shows each member's words as they come; no status line to keep

    async def post_escalation(self, council: Council, escalation: object, policy: object) -> None:
        return None

    async def escalation_decided(self, council: Council, escalation: object) -> None:
        return None

    async def delete_messages(self, council: Council, message_ids: list[int]) -> None:
        return None


def offline_catalog(catalog: Catalog) -> Catalog:
    """Every member replaced by an echo of the same name and role: no model, no network, no key."""
    return Catalog(
        tuple(
            replace(spec, provider="echo", model="offline-echo", base_url="http://localhost/echo", api_key_env=None)
            for spec in catalog
        )
    )


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(prog="python -m bot rehearse", description="Run a council in the terminal.")
    parse.add_argument("topic", help="what the council deliberates on")
    parse.add_argument("--members", required=True, help="member names from the catalog, comma-separated")
    parse.add_argument("--roles", default=None, help='e.g. "DeepSeek=Philosopher, Llama=Realist"')
    parse.add_argument("--rounds", type=int, default=2, help=f"1-{MAX_ROUNDS} (default 2)")
    parse.add_argument("--mode", choices=MODES, default="round-robin")
    parse.add_argument("--offline", action="store_true", help="use labelled local echo members instead of models")
    return parse


async def rehearse(args: argparse.Namespace, settings: Settings, catalog: Catalog, out: TextIO) -> int:
    members: Catalog = offline_catalog(catalog) if args.offline else catalog
    db = Database(settings.database_url)
    try:
        await db.migrate()
        publisher = TerminalPublisher(out)
        async with aiohttp.ClientSession() as session:
            engine = CouncilEngine(
                db, members, ProviderPool(session), publisher, provider_timeout=settings.provider_timeout
            )
            try:
                plan = engine.plan(
                    topic=args.topic, member_names=args.members, roles=args.roles, rounds=args.rounds, mode=args.mode
                )
            except ConveneError as error:
                hint = "" if args.offline else " Add --offline to rehearse with local echo members instead."
                print(f"Cannot rehearse: {error}{hint}", file=sys.stderr)
                return 2
            council = await engine.create(
                plan, guild_id=REHEARSAL_GUILD, channel_id=0, convener_id=0, convener_name="terminal"
            )
            cast = ", ".join(f"{seat.label} [{_origin(seat.spec)}]" for seat in plan.seats)
            print(f"Council #{council.id}: {plan.topic}\n{plan.mode}, {plan.rounds} round(s): {cast}", file=out)
            await engine.open(council.id, thread_id=-council.id)  # no Discord thread: a unique stand-in
            try:
                await publisher.finished.wait()
            finally:
                await engine.shutdown()
        print(f"\nThe transcript is stored in {safe_url(db.url)}.", file=out)
        return 0
    finally:
        await db.close()


def _origin(spec: MemberSpec) -> str:
    return "offline echo" if spec.provider == "echo" else f"{spec.provider} {spec.model}"


def main(argv: list[str], settings: Settings, catalog: Catalog) -> int:
    args = parser().parse_args(argv)
    try:
        return asyncio.run(rehearse(args, settings, catalog, sys.stdout))
    except KeyboardInterrupt:
        return 130
