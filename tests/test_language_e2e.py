"""Councils held in Russian and Japanese, end to end: slash commands in through the Discord harness, the members
on the fake provider over loopback HTTP. Every prompt the engine writes (turns, the chair, review ballots, peer
ratings, the judge) tells the member the council's language; the bot reads the members' structured answers
whatever language their reasons are in; a human who switches language switches the council."""

from __future__ import annotations

import json
import re
from typing import Any

from storage import deliberation_repository as deliberation_repo
from storage import governance_repository as gov
from tests.council_helpers import convene, wait_for
from tests.fakes.provider_server import FakeProviderServer
from tests.harness import DiscordHarness
from tests.test_deliberation_e2e import asks_ranking, shown
from tests.test_engine import prompt_text
from tests.test_ratings import is_rating

RUSSIAN_TOPIC = "Должен ли наш город заменить парковки парками?"
JAPANESE_TOPIC = "私たちの街は駐車場を公園に置き換えるべきでしょうか？"
CYRILLIC = {"A": "А", "B": "В", "C": "С"}  # the review's labels as a Russian keyboard types them


def asks_verdict(body: dict[str, Any]) -> bool:
    return "governance reviewer" in prompt_text(body)


def russian_member(name: str, others: list[str]) -> Any:
    def reply(body: dict[str, Any]) -> str:
        if asks_verdict(body):
            return json.dumps({"verdict": "ok", "category": "", "reason": ""})
        if asks_ranking(body):
            labels = re.findall(r"^Response ([A-Z]):", prompt_text(body), re.MULTILINE)
            ranked = " > ".join(f"Ответ {CYRILLIC[label]}" for label in reversed(labels))
            return f"Все ответы разумны, но {CYRILLIC[labels[-1]]} точнее.\nFINAL RANKING: {ranked}\nВ целом — хорошо."
        if is_rating(body):
            return "\n".join(f"{other} | 4 | 3 | 5 | Ясно и честно о своих сомнениях." for other in others)
        return f"{name}: я считаю, что часть парковок стоит превратить в парки."

    return reply


async def test_a_russian_council_is_told_its_language_everywhere_and_read_whatever_its_reasons_say(
    rating_harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    harness = rating_harness
    await gov.update_guild_settings(harness.bot.db, harness.guild.id, policy_mode="notify", judge_member="Llama")
    names = ["Claude", "DeepSeek", "Llama"]
    for name, model in (("Claude", "claude-test"), ("DeepSeek", "deepseek-test"), ("Llama", "llama-test")):
        provider_server.script(model, russian_member(name, [other for other in names if other != name]))
    await convene(harness, topic=RUSSIAN_TOPIC, mode="review", rounds=1, chair="Claude")
    [thread] = harness.threads

    bodies = [request.json for request in provider_server.requests]
    kinds = {
        "turn": [b for b in bodies if not (asks_ranking(b) or is_rating(b) or asks_verdict(b))],
        "ballot": [b for b in bodies if asks_ranking(b)],
        "rating": [b for b in bodies if is_rating(b)],
        "verdict": [b for b in bodies if asks_verdict(b)],
    }
    assert all(kinds.values()), {kind: len(found) for kind, found in kinds.items()}
    for kind, found in kinds.items():
        for body in found:
            assert "held in Russian" in prompt_text(body), (kind, prompt_text(body)[-600:])
    # What the thread shows: the members' Russian words, the review's ranking read from Cyrillic labels.
    said = [text for who, text in shown(harness, thread.id) if who in names]
    assert said and all("я считаю" in text for text in said)
    ballots = await deliberation_repo.list_ballots(harness.bot.db, 1)
    assert len(ballots) == 3 and all(b.state == "ranked" for b in ballots), [(b.reviewer, b.state) for b in ballots]
    # Peer ratings with Russian reasons: every member rated, the reasons on the scoreboard as written.
    [board] = [p for p in harness.posts_in(thread.id, kinds=("channel",)) if (p.content or "").startswith("📊")]
    table, *reasons = board.embeds
    rows = table["description"].split("```")[1].strip().splitlines()[1:]
    assert [row.split()[1:4] for row in rows] == [["4.0", "3.0", "5.0"]] * 3
    assert "Ясно и честно о своих сомнениях." in json.dumps(reasons, ensure_ascii=False)


async def test_a_japanese_debate_reads_full_width_stances_and_its_chair_follows_the_topic(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    def member(name: str) -> Any:
        def reply(body: dict[str, Any]) -> str:
            if "End your reply with a last line" in prompt_text(body):
                return f"{name}は考えを変えません。公園の方が良いです。\nＳＴＡＮＣＥ：ｈｏｌｄｓ"
            return f"{name}の意見：駐車場の一部を公園にすべきです。"

        return reply

    provider_server.script("claude-test", member("Claude"))
    provider_server.script("deepseek-test", member("DeepSeek"))
    await convene(harness, topic=JAPANESE_TOPIC, members="Claude, DeepSeek", mode="debate", rounds=3)
    [thread] = harness.threads

    assert all("held in Japanese" in prompt_text(r.json) for r in provider_server.requests)
    view = shown(harness, thread.id)
    later = [text for who, text in view if who in ("Claude", "DeepSeek") and "考えを変えません" in text]
    assert len(later) == 2 and all(text.endswith("-# 🛡️ holds its position") for text in later)
    assert not any("ＳＴＡＮＣＥ" in text for _, text in view)
    # Everyone held in round 2: the debate ends early, as it does in English.
    assert sum(1 for who, _ in view if who in ("Claude", "DeepSeek")) == 4


async def test_a_human_who_switches_language_switches_the_council(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    provider_server.script("claude-test", delay=0.4)
    await convene(harness, topic=RUSSIAN_TOPIC, rounds=1, wait=False)
    [thread] = harness.threads
    await wait_for(lambda: provider_server.in_flight == 1)  # Claude is thinking, in Russian
    await harness.say(
        harness.members["user"], thread, "Could you all please continue in English from now on?", wait_background=False
    )
    await harness.settle()

    claude, deepseek, llama = (prompt_text(r.json) for r in provider_server.requests)
    assert "held in Russian" in claude
    assert "held in English" in deepseek and "held in English" in llama


async def test_the_convener_chooses_the_language_and_an_unknown_one_is_refused(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    refused = await convene(harness, topic=RUSSIAN_TOPIC, language="Klingon")
    assert refused.ephemeral and "I do not know the language 'Klingon'" in (refused.content or "")
    assert not harness.threads

    result = await convene(harness, topic=RUSSIAN_TOPIC, rounds=1, members="Llama", language="日本語")
    assert not result.ephemeral or "convened" in (result.content or "")
    assert all("held in Japanese" in prompt_text(r.json) for r in provider_server.requests)
    starter = next(p for p in harness.posts_in(harness.channel.id) if p.embeds)
    fields = {field["name"]: field["value"] for field in starter.embeds[0]["fields"]}
    assert fields["Language"] == "Japanese (the convener's choice)"
