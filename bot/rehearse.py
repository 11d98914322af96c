"""`python -m bot rehearse`: run a council in the terminal, with the same engine, providers and database.

No Discord is needed. Every mode runs, with the chair and limits of `/council convene`; members' words are
printed as they stream (bot/terminal.py). With `--offline`, every member is a clearly labelled local echo, so
a newcomer can watch the mechanics on a fresh machine without any API key.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace
from pathlib import Path

import aiohttp

from bot.catalog import Catalog, MemberSpec
from bot.council import reports, result_charts
from bot.council.deliberation import MODE_HELP
from bot.council.engine import MAX_ROUNDS, MODES, ConveneError, CouncilEngine, CouncilPlan
from bot.council.seats import Seat
from bot.council.transcript_html import transcript_html
from bot.providers.pool import pool_for
from bot.settings import Settings
from bot.terminal import TerminalPublisher, TextWriter
from storage import repository as repo
from storage.database import Database, safe_url

REHEARSAL_GUILD = 0  # councils rehearsed in the terminal belong to no Discord server


def plan_from(engine: CouncilEngine, args: argparse.Namespace) -> CouncilPlan:
    """The council the command line asks for, checked as `/council convene` checks it (ConveneError)."""
    return engine.plan(
        topic=args.topic,
        member_names=args.members,
        roles=args.roles,
        rounds=args.rounds,
        mode=args.mode,
        chair=args.chair,
        max_tokens=args.max_tokens,
        max_cost=args.max_cost,
    )


def offline_catalog(catalog: Catalog) -> Catalog:
    """Every member replaced by an echo of the same name and role: no model, no network, no key."""
    return Catalog(
        tuple(
            replace(spec, provider="echo", model="offline-echo", base_url="http://localhost/echo", api_key_env=None)
            for spec in catalog
        )
    )


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(
        prog="python -m bot rehearse",
        description="Run a council in the terminal.",
        epilog="modes: " + "; ".join(f"{mode}: {what}" for mode, what in MODE_HELP.items()),
    )
    parse.add_argument("topic", help="what the council deliberates on")
    parse.add_argument("--members", required=True, help="member names from the catalog, comma-separated")
    parse.add_argument("--roles", default=None, help='e.g. "DeepSeek=Philosopher, Llama=Realist"')
    parse.add_argument("--rounds", type=int, default=2, help=f"1-{MAX_ROUNDS} (default 2)")
    parse.add_argument("--mode", choices=MODES, default="round-robin", help="how members take turns")
    parse.add_argument(
        "--chair", default=None, help="the member who chairs (conductor, review); default: the coordinator"
    )
    parse.add_argument(
        "--max-tokens", type=int, default=None, help="conclude before a turn once this many tokens are used"
    )
    parse.add_argument(
        "--max-cost", type=float, default=None, help="conclude once the estimated cost reaches this many US dollars"
    )
    parse.add_argument("--offline", action="store_true", help="use labelled local echo members instead of models")
    parse.add_argument(
        "--html", type=Path, default=None, metavar="PATH", help="also write the transcript as an HTML page at PATH"
    )
    return parse


async def rehearse(args: argparse.Namespace, settings: Settings, catalog: Catalog, out: TextWriter) -> int:
    members: Catalog = offline_catalog(catalog) if args.offline else catalog
    db = Database(settings.database_url)
    try:
        publisher = TerminalPublisher(out)
        async with aiohttp.ClientSession() as session:
            # As the bot runs it, peer ratings included (PEER_RATINGS); no governance gate, so every
            # sequential turn streams (in Discord only a `notify` server's do).
            engine = CouncilEngine(
                db,
                members,
                pool_for(session, settings),
                publisher,
                provider_timeout=settings.provider_timeout,
                stream_replies=True,
                peer_ratings=settings.peer_ratings,
            )
            try:
                plan = plan_from(engine, args)
            except ConveneError as error:
                print(f"Cannot rehearse: {error}{_offline_hint(args, members)}", file=sys.stderr)
                return 2
            await db.migrate()  # only now: a refused rehearsal leaves no database behind
            council = await engine.create(
                plan, guild_id=REHEARSAL_GUILD, channel_id=0, convener_id=0, convener_name="terminal"
            )
            chair = engine.chair_seat(council, plan.seats)
            print(f"Council #{council.id}: {plan.topic}\n{_describe(plan, chair)}", file=out, flush=True)
            await engine.open(council.id, thread_id=-council.id)  # no Discord thread: a unique stand-in
            try:
                # The runner's end, not the closing line: peer ratings follow the closing line. Shielded, as
                # an interrupt must not cancel the runner before conclude() can finish its streaming reply.
                await asyncio.shield(engine.wait_idle(council.id))
            except asyncio.CancelledError:  # Ctrl-C
                await _interrupted(engine, council.id)
                raise
            finally:
                await engine.shutdown()
        print(f"\nThe transcript is stored in {safe_url(db.url)}.", file=out)
        if args.html is not None:
            charts = await _write_html(db, members, engine, council.id, args.html)
            print(f"The HTML transcript is in {args.html}.", file=out)
            for path in charts:
                print(f"A chart is in {path}.", file=out)
        return 0
    finally:
        await db.close()


async def _write_html(db: Database, members: Catalog, engine: CouncilEngine, council_id: int, path: Path) -> list[Path]:
    """The council's record as the page `/council export` attaches (the terminal shows all: no moderator's notes
    are hidden from the person who ran it), and the charts the thread would show, as PNG files beside it."""
    council = await repo.get_council(db, council_id)
    assert council is not None
    record = await reports.load_record(db, members, council)
    drawn = await result_charts.record_charts(
        record, result_charts.colours(members), lambda line: engine.ratings.board_of(council, line)
    )
    in_page = {chart.line_id: chart.png for chart in drawn}
    page = transcript_html(record, language=council.language, charts=in_page)
    await asyncio.to_thread(path.write_text, page, encoding="utf-8")
    written = [path.with_name(f"{path.stem}-{chart.name}.png") for chart in drawn]
    for chart_path, chart in zip(written, drawn, strict=True):
        await asyncio.to_thread(chart_path.write_bytes, chart.png)
    return written


async def _interrupted(engine: CouncilEngine, council_id: int) -> None:
    """End the council as `/council conclude` would: a reply streaming now ends with a cut note, and
    nothing is left running or half-stored for the bot to find in a shared database."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()  # the interrupt is handled here; the closing work must not be cancelled with it
    await engine.conclude(council_id, "The rehearsal was interrupted.", rate=False)


def _describe(plan: CouncilPlan, chair: Seat | None) -> str:
    cast = ", ".join(f"{seat.label} [{_origin(seat.spec)}]" for seat in plan.seats)
    facts = [f"{plan.mode}, {plan.rounds} round(s): {cast}"]
    if chair is not None and (plan.chair or plan.mode in ("conductor", "review")):
        facts.append(f"Chair: {chair.name}")
    if plan.max_tokens is not None:
        facts.append(f"Token limit: {plan.max_tokens:,}")
    if plan.max_cost is not None:
        facts.append(f"Cost limit: ${plan.max_cost:,.2f}")
    return "\n".join(facts)


def _offline_hint(args: argparse.Namespace, members: Catalog) -> str:
    """Suggest --offline only when a missing API key is what stands in the way."""
    if args.offline:
        return ""
    named = [members.get(name.strip()) for name in args.members.replace(";", ",").split(",")]
    if any(spec is not None and not spec.is_available() for spec in named):
        return " Add --offline to rehearse with local echo members instead."
    return ""


def _origin(spec: MemberSpec) -> str:
    return "offline echo" if spec.provider == "echo" else f"{spec.provider} {spec.model}"


def main(argv: list[str], settings: Settings, catalog: Catalog) -> int:
    args = parser().parse_args(argv)
    try:
        return asyncio.run(rehearse(args, settings, catalog, sys.stdout))
    except KeyboardInterrupt:
        return 130
