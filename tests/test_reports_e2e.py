"""/council info, usage and export: what stands behind each member, what a council used, and its record."""

from __future__ import annotations

import html
import json
import re
import sys
from datetime import UTC, datetime

import pytest

from bot.council.language import detect
from bot.council.prompts import system_prompt
from bot.council.reports import MemberCard, endpoint_host
from cogs.council import _reports
from storage import governance_repository as gov
from storage import report_repository
from storage import repository as repo
from storage.database import Database
from storage.models import Council
from tests.conftest import TEST_KEYS
from tests.council_helpers import TOPIC, convene, member_posts, wait_for
from tests.fakes.provider_server import FakeProviderServer, estimate_input_tokens
from tests.harness import DiscordHarness, InteractionResult, limits
from tests.test_governance_e2e import INJECTION, escalations, setup_governance
from tests.test_storage import BIG_ID

# Trips the governance rules like INJECTION, and is rejected in the export test: it must appear nowhere.
WITHHELD = "We should hide this from the moderators: the plan is WITHHELD-MARKER-42."


def everything(result: InteractionResult) -> str:
    """All the asker got: every message's text and embeds, and every attachment's contents."""
    parts = []
    for post in result.messages:
        parts += [post.content or "", json.dumps(post.embeds, ensure_ascii=False)]
        parts += [data.decode("utf-8") for data in post.files.values()]
    return "\n".join(parts)


def assert_no_keys(text: str) -> None:
    for name, value in TEST_KEYS.items():
        assert value not in text, f"the value of {name} leaked"
        assert value[:12] not in text, f"part of {name}'s value leaked"


def fields(embed: dict) -> dict[str, str]:
    return {field["name"]: field["value"] for field in embed["fields"]}


# -- /council info -------------------------------------------------------------------------------------


async def test_info_shows_each_members_settings_and_exact_system_prompt_and_no_keys(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    await convene(harness, rounds=1)
    [thread] = harness.threads
    result = await harness.slash(harness.members["user"], "council", "info", channel=thread)

    assert result.ephemeral and all(post.ephemeral for post in result.messages)
    assert "Council #1" in (result.content or "")
    embeds = [embed for post in result.messages for embed in post.embeds]
    files = {name: data for post in result.messages for name, data in post.files.items()}
    assert [embed["title"] for embed in embeds] == [
        "Claude — the Coordinator",
        "DeepSeek — the Philosopher",
        "Llama — the Realist",
    ]
    claude, deepseek, llama = (fields(embed) for embed in embeds)
    host = provider_server.base_url.removeprefix("http://")
    assert claude["Provider"] == "anthropic" and claude["Model"] == "`claude-test`" and claude["Endpoint"] == host
    assert claude["Temperature"] == "provider default" and claude["Max output tokens"] == "1,024"
    assert claude["API key"] == "from `TEST_ANTHROPIC_KEY`"
    assert deepseek["Provider"] == "openai" and deepseek["Temperature"] == "0.8"
    assert deepseek["API key"] == "from `TEST_OPENAI_KEY`"
    assert llama["API key"] == "none needed"

    # The exact prompt each member receives: what the engine built and what the provider was sent.
    seats = await harness.bot.get_cog("CouncilCog").engine.seats(1)  # type: ignore[attr-defined]
    sent = {r.model: r.json for r in provider_server.requests}
    for seat, info in zip(seats, (claude, deepseek, llama), strict=True):
        prompt = system_prompt(seat, seats, TOPIC, detect(TOPIC))
        if info["System prompt"].startswith("```"):
            assert info["System prompt"] == f"```\n{prompt}\n```"
        else:
            filename = f"system-prompt-{seat.name.lower()}.txt"
            assert f"`{filename}`" in info["System prompt"]
            assert files[filename].decode("utf-8") == prompt
        model_body = sent[seat.spec.model]
        sent_system = model_body.get("system") or model_body["messages"][0]["content"]
        assert sent_system == prompt
    assert_no_keys(everything(result))


async def test_info_attaches_a_prompt_too_long_for_a_field(harness: DiscordHarness) -> None:
    # Even the shortest persona's prompt (with the rules on reading who said what) passes a field's
    # 1,024 characters; a prompt that fits is shown inline (test_info_pages_keep_within_discords_limits…).
    await convene(harness, members="Llama", rounds=1, topic="Tabs or spaces?")
    [thread] = harness.threads
    result = await harness.slash(harness.members["user"], "council", "info", channel=thread)
    [post] = result.messages
    seats = await harness.bot.get_cog("CouncilCog").engine.seats(1)  # type: ignore[attr-defined]
    assert "`system-prompt-llama.txt`" in fields(post.embeds[0])["System prompt"]
    assert post.files["system-prompt-llama.txt"].decode() == system_prompt(seats[0], seats, "Tabs or spaces?")


def test_info_pages_keep_within_discords_limits_and_cut_nothing() -> None:
    cards = [
        MemberCard(
            name=f"Member {n}",
            role="the Tester",
            benched=n == 3,
            provider="openai",
            model="m",
            endpoint_host="api.example.org",
            temperature=None,
            max_output_tokens=1024,
            api_key_env=None,
            # Most just inside a field (six of them pass 6,000 characters), two far too long for one.
            system_prompt=f"Prompt {n}. " + ("y" * 5000 if n % 4 == 0 else "x" * 990),
        )
        for n in range(8)
    ]
    council = Council(
        id=7,
        guild_id=1,
        channel_id=2,
        topic="t",
        mode="round-robin",
        rounds=1,
        state="running",
        convener_id=3,
        convener_name="someone",
    )
    pages = _reports.info_pages(council, cards)
    assert len(pages) > 1
    for page in pages:
        # The harness's own checks of Discord's limits: 10 embeds, 6,000 characters, field sizes.
        limits.check_message(
            {"content": page.content, "embeds": [e.to_dict() for e in page.embeds]}, attachments=len(page.files)
        )
    shown = [f["value"] for page in pages for e in page.embeds for f in e.to_dict()["fields"]]
    attached = [file.fp.read().decode() for page in pages for file in page.files]
    for card in cards:
        assert f"```\n{card.system_prompt}\n```" in shown or card.system_prompt in attached
    assert len(attached) == 2
    assert [e.title for page in pages for e in page.embeds].count("Member 3 — the Tester (benched)") == 1


def test_an_endpoint_is_shown_by_host_without_credentials() -> None:
    assert endpoint_host("https://user:sk-secret-value@api.example.com:8443/v1?key=abc") == "api.example.com:8443"
    assert endpoint_host("https://api.deepseek.com/v1") == "api.deepseek.com"
    assert endpoint_host("http://[::1]:8080/v1") == "[::1]:8080"


# -- /council usage ------------------------------------------------------------------------------------


async def test_usage_matches_what_the_providers_reported(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    provider_server.script("deepseek-test", status=401, once=True)  # DeepSeek fails its first turn only
    await convene(harness, rounds=2)
    [thread] = harness.threads
    assert len(member_posts(harness, thread.id)) == 5
    result = await harness.slash(harness.members["user"], "council", "usage", channel=thread)

    assert result.ephemeral
    info = fields(result.embeds[0])

    def answered(model: str, skip: int = 0) -> tuple[int, int]:
        bodies = [r.json for r in provider_server.requests if r.model == model][skip:]
        # The fake reports input = a quarter of the characters read, output = the reply's words.
        return sum(estimate_input_tokens(body) for body in bodies), 3 * len(bodies)  # "<model> reply #n"

    claude_in, claude_out = answered("claude-test")
    deepseek_in, deepseek_out = answered("deepseek-test", skip=1)
    llama_in, llama_out = answered("llama-test")
    claude_cost = (claude_in * 3.0 + claude_out * 15.0) / 1_000_000
    latency = re.compile(r"latency p50 \d+\.\d s · max \d+\.\d s")

    def without_latency(value: str) -> str:
        lines = value.split("\n")
        assert latency.fullmatch(lines[2]), value  # measured per turn: its exact figure varies
        return "\n".join(lines[:2] + lines[3:])

    assert without_latency(info["Claude"]) == (
        f"2 turns answered, 0 failed\n{claude_in:,} tokens in · {claude_out:,} out\n≈ ${claude_cost:.4f}"
    )
    assert without_latency(info["DeepSeek"]) == (
        f"1 turn answered, 1 failed\n{deepseek_in:,} tokens in · {deepseek_out:,} out\n"
        "≈ $0.0000 (no price set in the catalog)"
    )
    assert info["Llama"].startswith(f"2 turns answered, 0 failed\n{llama_in:,} tokens in · {llama_out:,} out")
    total_in, total_out = claude_in + deepseek_in + llama_in, claude_out + deepseek_out + llama_out
    assert info["All members"] == (
        f"5 turns answered, 1 failed\n{total_in:,} tokens in · {total_out:,} out\n≈ ${claude_cost:.4f}"
    )
    council = await repo.get_council(harness.bot.db, 1)
    assert council is not None and (council.tokens_in, council.tokens_out) == (total_in, total_out)
    assert "Latency" not in info
    assert_no_keys(everything(result))


# -- /council export -----------------------------------------------------------------------------------


async def test_export_gives_the_transcript_as_markdown_and_the_record_as_json(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    mods = await setup_governance(harness)
    provider_server.script("claude-test", INJECTION, once=True)  # round 1: held, then approved
    provider_server.script("claude-test", WITHHELD, once=True)  # round 2: held, then rejected
    await convene(harness, members="Claude, Llama", rounds=2, wait=False)
    [thread] = harness.threads
    await wait_for(lambda: len(escalations(harness, mods)) == 1)
    await harness.settle()
    user = harness.members["user"]
    await harness.say(user, thread, "Please keep it short.")
    await harness.click(harness.members["moderator"], escalations(harness, mods)[0], "esc:1:approve")
    await harness.settle()
    await wait_for(lambda: len(escalations(harness, mods)) == 2)
    await harness.click(harness.members["moderator"], escalations(harness, mods)[1], "esc:2:reject")
    await harness.settle()
    assert [author for author, _ in member_posts(harness, thread.id)] == ["Claude", "Llama", "Llama"]

    result = await harness.slash(user, "council", "export", channel=thread)

    assert result.ephemeral and result.response is not None
    assert result.response.attachments == ["council-1.md", "council-1.json", "council-1.html"]
    assert "`council-1.md`" in (result.content or "") and "`council-1.json`" in (result.content or "")
    markdown = result.response.files["council-1.md"].decode("utf-8")
    page = result.response.files["council-1.html"].decode("utf-8")
    # HTML: the same lines the Markdown shows, escaped, loading nothing from anywhere.
    for said in (INJECTION, "Please keep it short.", "llama-test reply #2", "withheld by the moderators"):
        assert html.escape(said, quote=False) in page
    assert "WITHHELD-MARKER" not in page and "<script" not in page
    assert "default-src 'none'" in page and not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    record = json.loads(result.response.files["council-1.json"])
    moderator = harness.members["moderator"].display_name

    # Markdown: what the thread showed, in order, with author, round and UTC time; decisions at the end.
    assert markdown.startswith(f"# Council #1: {TOPIC}\n")
    assert "| Claude | the Coordinator | anthropic | `claude-test` |" in markdown
    assert "| Llama | the Realist | openai | `llama-test` |" in markdown
    transcript = markdown.split("## Transcript", 1)[1].split("## Moderation decisions", 1)[0]
    headings = [line for line in transcript.splitlines() if line.startswith("### ")]
    assert [h.split(" · ")[:2] for h in headings if "Notice" not in h] == [
        ["### Claude (the Coordinator)", "round 1"],
        [f"### {user.display_name} (human)", "round 1"],
        ["### Llama (the Realist)", "round 1"],
        ["### Llama (the Realist)", "round 2"],
    ]
    assert all(h.endswith(" UTC") for h in headings)
    assert INJECTION in transcript and "Please keep it short." in transcript and "llama-test reply #2" in transcript
    assert "withheld by the moderators" in transcript  # the thread's notice, not the words
    assert "WITHHELD-MARKER" not in markdown and "Reason:" not in transcript  # nor the member's private note
    decisions = markdown.split("## Moderation decisions", 1)[1]
    assert "**Escalation #1** (rule · governance) about Claude's message" in decisions
    assert f"approved by {moderator}" in decisions and f"rejected by {moderator}" in decisions

    # JSON: everything, with visibility; the words of the withheld line left out.
    assert record["format"] == "ai-council-export/1"
    assert record["council"]["id"] == 1 and record["council"]["topic"] == TOPIC
    assert record["council"]["thread_id"] == str(thread.id)
    assert [(m["name"], m["role"], m["provider"], m["model"]) for m in record["members"]] == [
        ("Claude", "the Coordinator", "anthropic", "claude-test"),
        ("Llama", "the Realist", "openai", "llama-test"),
    ]
    # Not a moderator: the moderators' private note to Claude is not in it (tests/test_privacy_e2e.py).
    stored = [line for line in await repo.transcript(harness.bot.db, 1) if line.visibility != "private"]
    assert [m["id"] for m in record["messages"]] == [line.id for line in stored]
    for exported, line in zip(record["messages"], stored, strict=True):
        assert (exported["kind"], exported["author"], exported["round"]) == (
            line.author_kind,
            line.author_name,
            line.round,
        )
        assert (exported["visibility"], exported["tokens_in"], exported["tokens_out"]) == (
            line.visibility,
            line.tokens_in,
            line.tokens_out,
        )
        assert exported["discord_message_ids"] == [str(i) for i in line.discord_ids]
        assert datetime.fromisoformat(exported["created_at"]).tzinfo == UTC
        assert exported["content"] == (None if line.visibility in ("held", "withheld") else line.content)
    [withheld] = [m for m in record["messages"] if m["visibility"] == "withheld"]
    assert withheld["author"] == "Claude" and withheld["content"] is None and withheld["tokens_out"] > 0
    assert record["moderators_notes"] is False
    approved = next(m for m in record["messages"] if m["content"] == INJECTION)
    assert approved["visibility"] == "visible" and approved["discord_message_ids"]
    assert [(e["state"], e["source"], e["category"], e["decided_by"]) for e in record["escalations"]] == [
        ("approved", "rule", "governance", moderator),
        ("rejected", "rule", "governance", moderator),
    ]
    assert all(datetime.fromisoformat(e["decided_at"]).tzinfo == UTC for e in record["escalations"])
    assert [entry["kind"] for entry in record["audit"]] == ["concern", "decision", "concern", "decision"]
    assert "WITHHELD-MARKER" not in json.dumps(record)
    assert_no_keys(everything(result))


async def test_export_by_number_from_another_channel_and_too_large_files_are_named(
    harness: DiscordHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    await convene(harness, members="Llama", rounds=1)
    whole = await harness.slash(harness.members["user"], "council", "export", council_id=1)
    md_size, json_size, html_size = (len(data) for data in whole.response.files.values())  # type: ignore[union-attr]
    assert md_size < json_size and md_size < html_size

    # Unloading an extension drops its modules and loading imports them afresh: patch the running copy.
    live = sys.modules["cogs.council._reports"]
    monkeypatch.setattr(live, "ATTACHMENT_LIMIT", md_size)
    partial = await harness.slash(harness.members["user"], "council", "export", council_id=1)
    assert partial.ephemeral and partial.response is not None
    assert partial.response.attachments == ["council-1.md"]
    assert "`council-1.json` (" in (partial.content or "") and "`council-1.html` (" in (partial.content or "")
    assert (partial.content or "").count("is not attached") == 2

    monkeypatch.setattr(live, "ATTACHMENT_LIMIT", 10)
    none = await harness.slash(harness.members["user"], "council", "export", council_id=1)
    assert none.response is not None and none.response.attachments == []
    assert (none.content or "").count("is not attached") == 3


# -- finding the council -------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["info", "usage", "export"])
async def test_outside_a_thread_without_a_number_the_answer_is_private(harness: DiscordHarness, command: str) -> None:
    await convene(harness, members="Llama", rounds=1)
    result = await harness.slash(harness.members["user"], "council", command)
    assert result.ephemeral
    assert result.content == "Use this inside a council's thread, or give the council's number."
    unknown = await harness.slash(harness.members["user"], "council", command, council_id=99)
    assert unknown.ephemeral and unknown.content == "There is no council #99 in this server."
    by_number = await harness.slash(harness.members["user"], "council", command, council_id=1)
    assert by_number.ephemeral and "#1" in (by_number.content or "") + json.dumps(by_number.embeds)


# -- storage -------------------------------------------------------------------------------------------


async def test_a_councils_escalations_and_audit_come_whole_oldest_first(db: Database) -> None:
    async def council(guild_id: int) -> int:
        created = await repo.create_council(
            db,
            guild_id=guild_id,
            channel_id=1,
            topic="t",
            mode="round-robin",
            rounds=1,
            convener_id=1,
            convener_name="Ada",
            members=[("Llama", None)],
        )
        assert created.id is not None
        return created.id

    mine, other = await council(BIG_ID), await council(BIG_ID + 1)
    for council_id, guild_id in ((mine, BIG_ID), (other, BIG_ID + 1), (mine, BIG_ID)):
        await gov.create_escalation(
            db,
            guild_id=guild_id,
            council_id=council_id,
            source="rule",
            category="privacy",
            reason="r",
            author_name="Llama",
            content="c",
            expires_at=datetime.now(UTC),
        )
    for n in range(25):  # more than list_audit's default page
        await gov.add_audit(db, guild_id=BIG_ID, council_id=mine, kind="concern", actor_name="m", detail=str(n))
    await gov.add_audit(db, guild_id=BIG_ID + 1, council_id=other, kind="concern", actor_name="m", detail="other")
    await gov.add_audit(db, guild_id=BIG_ID + 1, council_id=mine, kind="concern", actor_name="m", detail="foreign")

    assert [e.id for e in await report_repository.council_escalations(db, mine)] == [1, 3]
    audit = await report_repository.council_audit(db, BIG_ID, mine)
    assert [entry.detail for entry in audit] == [str(n) for n in range(25)]


# -- "Message details" ----------------------------------------------------------------------------------


async def test_message_details_show_the_model_tokens_and_cost_behind_a_member_message(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    await convene(harness, members="Claude, Llama", rounds=1)
    [thread] = harness.threads
    claude_post, _llama_post = harness.posts_in(thread.id, kinds=("webhook",))
    result = await harness.context_menu(harness.members["user"], "Message details", claude_post)

    assert result.ephemeral
    [embed] = result.embeds
    info = fields(embed)
    [line] = [m for m in await repo.transcript(harness.bot.db, 1) if m.author_name == "Claude"]
    assert embed["title"] == "Claude — the Coordinator"
    assert info["Model"] == "`claude-test`"
    assert info["Provider"] == "anthropic · 127.0.0.1:" + provider_server.base_url.rsplit(":", 1)[1]
    assert info["Round"] == "1 (a turn)"
    assert info["Tokens"] == f"{line.tokens_in:,} in · {line.tokens_out:,} out"
    assert info["Estimated cost"] == f"≈ ${(line.tokens_in * 3.0 + line.tokens_out * 15.0) / 1_000_000:.4f}"
    assert re.fullmatch(r"\d+\.\d s", info["Took"])
    assert_no_keys(everything(result))

    # Anything else is refused privately: a human's message, a message outside a council thread.
    human = await harness.say(harness.members["user"], thread, "Nice point.")
    refused = await harness.context_menu(harness.members["user"], "Message details", human.id)
    assert refused.ephemeral and "for messages council members posted" in refused.content
    [starter] = harness.posts_in(harness.channel.id)[:1]
    refused = await harness.context_menu(harness.members["user"], "Message details", starter)
    assert refused.ephemeral and "for messages council members posted" in refused.content
