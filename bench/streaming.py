"""Figure 6, streaming edits: how often a streamed member reply is edited in Discord, and that it ends exact.

The real bot runs in the tests' Discord harness (tests/harness), with the server's policy set to `notify`
(where replies stream). One member streams a reply of `tokens` words from the loopback fake provider, one
word per chunk, evenly over `seconds`. The harness records every webhook edit on the message it edits.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.report import Figure
from bench.rig import bench_catalog, database, members, prose_words
from bot.app import CouncilBot
from bot.settings import Settings
from storage import governance_repository as gov
from storage import repository as repo
from tests.fakes.provider_server import FakeProviderServer
from tests.harness import DiscordHarness


async def streaming_edits(workdir: Path, *, tokens: int = 1000, seconds: float = 5.0) -> list[Figure]:
    """Convene one member in `notify` mode; count the edits of each Discord message of its streamed reply."""
    reply = prose_words(tokens)
    [member] = members(1)
    monkeypatch = pytest.MonkeyPatch()
    server = FakeProviderServer()
    await server.start()
    try:
        server.script(member.model, reply, chunk_delay=seconds / tokens)
        async with database("sqlite", workdir) as db:
            settings = Settings(
                discord_token="unused",
                database_url="sqlite://",
                members_file=workdir / "members.toml",
                provider_timeout=seconds * 4 + 10,
                log_level="WARNING",
            )
            bot = CouncilBot(settings, bench_catalog(server.base_url, [member]), db)
            harness = await DiscordHarness.start(bot, monkeypatch, settle_timeout=seconds * 4 + 10)
            try:
                await gov.update_guild_settings(db, harness.guild.id, policy_mode="notify")
                await harness.slash(
                    harness.members["convener"],
                    "council",
                    "convene",
                    topic="Should our city replace its parking lots with parks?",
                    members=member.name,
                    rounds=1,
                )
                [thread] = harness.threads
                posts = harness.posts_in(thread.id, kinds=("webhook",))
                [line] = [line for line in await repo.transcript(db, 1) if line.author_kind == "ai"]
            finally:
                await harness.close()
    finally:
        monkeypatch.undo()
        await server.stop()
    [call] = server.requests
    edits = [len(post.edits) for post in posts]
    contents = [post.content or "" for post in posts]
    exact = (
        bool(posts)
        and line.content == reply
        and line.discord_ids == [post.message_id for post in posts]
        and all(0 < len(content) <= 2000 for content in contents)
        and _squeezed("".join(contents)) == _squeezed(reply)
    )
    return [
        Figure(
            "streaming_edits_per_message",
            max(edits, default=None),
            "edits",
            6,
            valid=exact,
            extra={
                "final_text_exact": exact,
                "messages": len(posts),
                "edits": edits,
                "edits_total": sum(edits),
                "reply_chars": len(reply),
                "tokens": tokens,
                "stream_s": (call.finished or call.started) - call.started,
                "detail": f"real bot in the Discord harness, policy notify: one member streams {tokens} tokens "
                f"(one word per chunk) over {seconds:g} s; the most webhook edits any of its messages got, "
                "its final edit included; ok only if every message ends exact",
            },
        )
    ]


def _squeezed(text: str) -> str:
    """The words without the whitespace a message split may drop at its boundary."""
    return re.sub(r"\s+", "", text)
