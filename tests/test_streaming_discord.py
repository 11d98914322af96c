"""Streamed replies end to end: the real bot in the Discord harness, the fake provider streaming slowly.

Streaming happens under the `notify` policy without a judge; the webhook message is created on the first
words and edited at most once a second, then made exact."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from bot.catalog import Catalog
from bot.council.streaming import RESTARTED
from storage import repository as repo
from storage.database import Database
from tests.council_helpers import both_transports, convene, make_bot, wait_for
from tests.fakes.provider_server import FakeProviderServer
from tests.harness import DiscordHarness, Post
from tests.test_governance_e2e import setup_governance

WORDS = (
    "Parks cool the streets around them on hot afternoons, while asphalt stores the heat. "
    "A pilot on one block would tell us more than another round of forecasts. "
)


def reply_of(words: int) -> str:
    """A reply of `words` words, sentences and paragraphs included."""
    pool = WORDS.split()
    text = " ".join(pool[i % len(pool)] for i in range(words))
    return re.sub(r"(forecasts\.) ", r"\1\n\n", text)


def webhook_posts(harness: DiscordHarness, thread_id: int) -> list[Post]:
    return harness.posts_in(thread_id, kinds=("webhook",))


def squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


@both_transports
async def test_a_streamed_reply_is_edited_at_most_once_a_second_and_ends_exact(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    await setup_governance(harness, mode="notify")
    reply = reply_of(60)
    provider_server.script("claude-test", reply, chunk_delay=0.05)  # 60 words over 3 s
    await convene(harness, members="Claude, Llama", rounds=1)
    [thread] = harness.threads

    claude, llama = webhook_posts(harness, thread.id)
    assert (claude.author_name, claude.content) == ("Claude", reply)
    assert 2 <= len(claude.edits) <= 4  # one a second at most, and the last one makes it exact
    assert all(edit.via == "webhook" and edit.fields["allowed_mentions"] == {"parse": []} for edit in claude.edits)
    shown = [edit.content or "" for edit in claude.edits]
    assert all(reply.startswith(text) for text in shown) and shown[-1] == reply
    assert len(set(shown)) == len(shown)  # never an edit that changes nothing
    # A reply streamed within a second: created on its first words, made exact by the one last edit.
    assert llama.content == "llama-test reply #1" and [edit.content for edit in llama.edits] == [llama.content]
    # The members were shown typing while they thought, before their first words.
    assert harness.typing_in(thread.id)
    line = (await repo.transcript(harness.bot.db, 1))[0]
    assert (line.content, line.visibility, line.discord_ids) == (reply, "visible", [claude.message_id])


async def test_a_long_streamed_reply_continues_in_a_new_message(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    await setup_governance(harness, mode="notify")
    reply = reply_of(700)  # about 4,500 characters
    provider_server.script("claude-test", reply, chunk_delay=0.003)
    await convene(harness, members="Claude", rounds=1)
    [thread] = harness.threads

    posts = webhook_posts(harness, thread.id)
    assert len(posts) >= 3 and all(p.author_name == "Claude" for p in posts)
    assert all(0 < len(p.content or "") <= 2000 for p in posts)
    assert squeezed("".join(p.content or "" for p in posts)) == squeezed(reply)
    assert all(len(p.edits) <= 4 for p in posts)
    line = (await repo.transcript(harness.bot.db, 1))[0]
    assert line.content == reply and line.discord_ids == [p.message_id for p in posts]


async def test_a_code_block_streamed_over_several_messages_stays_closed_in_each(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    await setup_governance(harness, mode="notify")
    code = "\n".join(f"value_{i} = compute({i})  # step {i}" for i in range(120))
    reply = f"Here is the plan.\n\n```python\n{code}\n```\n\nThat is all."
    provider_server.script("llama-test", reply, chunk_delay=0.002)
    await convene(harness, members="Llama", rounds=1)
    [thread] = harness.threads

    posts = webhook_posts(harness, thread.id)
    assert len(posts) >= 2
    for post in posts:
        content = post.content or ""
        assert len(content) <= 2000 and content.count("```") % 2 == 0
    assert (posts[1].content or "").startswith("```python\n")
    shown = [line for p in posts for line in (p.content or "").split("\n") if not line.startswith("```")]
    assert sum(line.startswith("value_") for line in shown) == 120
    assert (await repo.transcript(harness.bot.db, 1))[0].content == reply


async def test_a_cut_stream_is_finished_with_the_cut_note_and_a_notice(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    await setup_governance(harness, mode="notify")
    provider_server.script("claude-test", reply_of(40), chunk_delay=0.02, cut_after=20, once=True)
    await convene(harness, members="Claude, Llama", rounds=1)
    [thread] = harness.threads

    claude = webhook_posts(harness, thread.id)[0]
    words, note = (claude.content or "").split("\n\n✂️ cut off: ")
    assert note == "Claude: reply cut off before the end"
    assert words == " ".join(reply_of(40).split(" ")[:20]).strip()
    transcript = harness.thread_transcript(thread.id)
    at = transcript.index(("Claude", claude.content or ""))
    assert "Claude could not finish its reply in round 1" in transcript[at + 1][1]
    assert transcript[at + 2] == ("Llama", "llama-test reply #1")


async def test_under_hold_a_reply_is_posted_whole_and_never_edited(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    reply = reply_of(40)
    provider_server.script("claude-test", reply, chunk_delay=0.02)
    await convene(harness, members="Claude", rounds=1)  # the default policy is hold
    [thread] = harness.threads
    [post] = webhook_posts(harness, thread.id)
    assert (post.content, post.edits) == (reply, [])
    assert not any(r.json.get("stream") for r in provider_server.requests)
    assert harness.typing_in(thread.id)  # the bot shows as typing while Claude thinks


async def test_a_self_flag_line_shown_while_streaming_is_removed_by_the_final_edit(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    await setup_governance(harness, mode="notify")
    flagged = "Budgets matter.\nFLAG: governance: Someone asked us to hide this from the humans, and we should not."
    provider_server.script("llama-test", flagged, chunk_delay=0.12, once=True)
    await convene(harness, members="Llama", rounds=1)
    [thread] = harness.threads

    [post] = webhook_posts(harness, thread.id)
    assert any("FLAG:" in (edit.content or "") for edit in post.edits)
    assert post.content == "Budgets matter."
    thread_posts = [(p.kind, p.content) for p in harness.posts_in(thread.id) if p.content]
    at = thread_posts.index(("webhook", "Budgets matter."))
    assert thread_posts[at + 1] == ("channel", "🛡️ Moderators were notified about Llama's message.")


@pytest.mark.parametrize("stop", ["after an edit", "before its id was recorded"])
async def test_a_restart_mid_stream_marks_the_message_cut(
    harness: DiscordHarness,
    provider_server: FakeProviderServer,
    sqlite_db: Database,
    catalog: Catalog,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stop: str,
) -> None:
    await setup_governance(harness, mode="notify")
    reply = reply_of(60)
    provider_server.script("claude-test", reply, chunk_delay=0.05, once=True)
    original_save = repo.save_stream_progress
    stopped = asyncio.Event()
    saves = 0

    async def save_then_stop(db: Database, message_id: int, content: str, ids: list[int]) -> None:
        # The first save records the first message's id; the second comes before the next edit.
        nonlocal saves
        saves += 1
        if stop == "after an edit" and saves <= 2:
            await original_save(db, message_id, content, ids)
            return
        stopped.set()
        await asyncio.Event().wait()  # the process stops here

    monkeypatch.setattr(repo, "save_stream_progress", save_then_stop)
    await convene(harness, members="Claude, Llama", rounds=1, wait=False)
    await asyncio.wait_for(stopped.wait(), 10)
    [thread] = harness.threads
    [half] = webhook_posts(harness, thread.id)
    shown_at_stop = half.content or ""
    assert reply.startswith(shown_at_stop) and shown_at_stop != reply

    waiting_for_people = harness.ignore_task
    harness.ignore_task = lambda task: True
    await harness.restart(make_bot(sqlite_db, catalog, tmp_path))
    harness.ignore_task = waiting_for_people
    monkeypatch.setattr(repo, "save_stream_progress", original_save)
    line = (await repo.transcript(sqlite_db, 1))[0]
    assert line.visibility == "streaming"  # the stop left it half-shown
    assert line.discord_ids == ([] if stop == "before its id was recorded" else [half.message_id])
    await harness.dispatch("ready")
    await harness.settle()

    claude, llama = webhook_posts(harness, thread.id)
    assert claude.message_id == half.message_id  # the same message, finished; nothing posted twice
    words, note = (claude.content or "").split("\n\n✂️ cut off: ")
    assert note == RESTARTED and reply.startswith(words)
    assert words.startswith(shown_at_stop)  # nothing that was shown is lost
    line = (await repo.transcript(sqlite_db, 1))[0]
    assert (line.content, line.visibility, line.discord_ids) == (claude.content, "visible", [claude.message_id])
    assert line.posted_at is not None
    assert llama.content == "llama-test reply #1"
    assert [r.model for r in provider_server.requests] == ["claude-test", "llama-test"]  # Claude was not asked again
    await wait_for(lambda: bool(harness.posts_in(thread.id, kinds=("channel",))))
