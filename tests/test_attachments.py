"""Files humans share in a council thread (bot/council/attachments.py): images kept within the providers' limits
and sent to members that see, in each API's own shape (the fake provider refuses a wrong one), a line for those
that cannot see; text files read as the human's words; other files named; everything kept with its line, so a
council resumed after a restart still has it, and listed in the export."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from bot.council.attachments import MAX_EDGE, MAX_IMAGE_BYTES, KeptImage, SharedFile, fit_image, prepare
from bot.council.prompts import TranscriptLine, build_request
from bot.council.seats import Seat
from bot.council.transcript_view import prompt_lines
from bot.providers.anthropic import AnthropicClient
from bot.providers.base import ChatRequest, ChatTurn, ImagePart, ProviderError
from bot.providers.openai_compat import OpenAICompatClient
from storage import repository as repo
from storage.database import Database
from tests.conftest import catalog_with, make_catalog
from tests.council_helpers import convene, member_posts, start_harness, wait_for
from tests.fakes.provider_server import FakeProviderServer
from tests.harness import DiscordHarness
from tests.test_engine import prompt_text
from tests.test_governance_e2e import escalations, setup_governance


def picture(width: int, height: int, fmt: str = "PNG", colour: tuple[int, int, int] = (40, 120, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format=fmt)
    return out.getvalue()


def noisy(width: int, height: int) -> bytes:
    """A JPEG that does not compress well: random pixels."""
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), bytes((i * 7919) % 251 for i in range(width * height * 3))).save(
        out, format="JPEG", quality=100
    )
    return out.getvalue()


def test_a_small_image_is_kept_as_it_was_shared() -> None:
    data = picture(300, 200)
    prepared = prepare([SharedFile("map.png", "image/png", len(data), data)])
    [kept] = prepared.images
    assert kept.image.data == data and (kept.image.width, kept.image.height) == (300, 200)
    assert kept.image.media_type == "image/png" and prepared.text == ""


def test_a_large_image_is_scaled_down_within_the_limits_never_refused() -> None:
    data = noisy(2400, 1800)
    image = fit_image(data)
    assert image is not None and image.media_type == "image/jpeg"
    assert max(image.width, image.height) <= MAX_EDGE and len(image.data) <= MAX_IMAGE_BYTES
    assert image.width / image.height == pytest.approx(2400 / 1800, rel=0.01)


def test_text_files_are_read_and_other_files_named() -> None:
    notes = "# Budget\nParks cost 2 M€ a year.".encode()
    files = [
        SharedFile("notes.md", None, len(notes), notes),
        SharedFile("data.csv", "text/csv", 9, b"a,b\n1,2\n"),
        SharedFile("report.pdf", "application/pdf", 2 * 2**20, None),
        SharedFile("latin1.txt", "text/plain", 4, "café".encode("latin-1")),
        SharedFile("fake.png", "image/png", 12, b"not an image"),
    ]
    prepared = prepare(files)
    assert "[file notes.md]\n# Budget\nParks cost 2 M€ a year." in prepared.text
    assert "[file data.csv]\na,b\n1,2" in prepared.text
    assert "[file report.pdf (2.0 MB) not read: only images and text files reach the members]" in prepared.text
    assert "[file latin1.txt (1 KB) not read: not UTF-8 text]" in prepared.text
    assert "[file fake.png (1 KB) not read: not an image the bot could read]" in prepared.text
    assert not prepared.images


def seeing_request(image: ImagePart) -> ChatRequest:
    turn = ChatTurn("user", "What do you make of this map?", (image,))
    return ChatRequest(model="m1", system="Be brief.", turns=(turn,), max_output_tokens=50)


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
async def test_images_go_in_each_apis_own_shape_and_a_wrong_one_is_refused(
    provider_server: FakeProviderServer, http_session: aiohttp.ClientSession, provider: str
) -> None:
    client = (
        AnthropicClient(http_session, base_url=provider_server.base_url, api_key="k")
        if provider == "anthropic"
        else OpenAICompatClient(http_session, base_url=f"{provider_server.base_url}/v1", api_key="k")
    )
    data = picture(64, 48)
    await client.complete(seeing_request(ImagePart("image/png", data, 64, 48)), timeout=5)
    [content] = [m["content"] for m in provider_server.requests[-1].json["messages"] if m["role"] == "user"]
    if provider == "anthropic":
        assert content[0]["type"] == "image" and content[0]["source"]["media_type"] == "image/png"
        assert content[-1] == {"type": "text", "text": "What do you make of this map?"}
    else:
        assert content[0] == {"type": "text", "text": "What do you make of this map?"}
        assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")
    with pytest.raises(ProviderError) as caught:  # JPEG bytes said to be a PNG: the real APIs refuse it too
        await client.complete(seeing_request(ImagePart("image/png", picture(64, 48, "JPEG"), 64, 48)), timeout=5)
    assert caught.value.status == 400


def seat(name: str, *, vision: bool) -> Seat:
    spec = make_catalog("http://127.0.0.1:1").get(name)
    assert spec is not None
    return Seat(dataclasses.replace(spec, vision=vision), None)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=80), st.text(max_size=200))
def test_a_shared_files_name_cannot_pose_as_anyone(filename: str, words: str) -> None:
    image = KeptImage(filename, 10, ImagePart("image/png", picture(4, 4), 4, 4))
    line = TranscriptLine("human", "Ada", words, images=(image,))
    for viewer in (seat("Claude", vision=True), seat("DeepSeek", vision=False)):
        request = build_request(viewer, [viewer], topic="Parks", lines=[line], round_number=1, rounds=1)
        text = "\n".join(turn.content for turn in request.turns)
        assert text.count("<human ") == 1 and "<member" not in text and "<moderator" not in text
        assert sum(len(turn.images) for turn in request.turns) == (1 if viewer.spec.vision else 0)


async def test_a_human_shares_an_image_and_a_file_and_each_member_gets_what_it_can_read(
    monkeypatch: pytest.MonkeyPatch,
    sqlite_db: Database,
    provider_server: FakeProviderServer,
    provider_keys: dict[str, str],
    tmp_path: Path,
) -> None:
    catalog = catalog_with(provider_server.base_url, "Claude", vision=True)
    harness = await start_harness(monkeypatch, sqlite_db, catalog, tmp_path)
    try:
        provider_server.script("claude-test", delay=0.4)
        await convene(harness, members="Claude, DeepSeek, Llama", rounds=2, wait=False)
        [thread] = harness.threads
        await wait_for(lambda: provider_server.in_flight == 1)  # Claude is thinking
        user = harness.members["user"]
        image = picture(640, 480)
        plan = b"Phase 1: the lot on Elm Street.\nPhase 2: the one by the station."
        await harness.say(user, thread, "", files=[("lots.png", image), ("plan.txt", plan)], wait_background=False)
        await harness.settle()

        assert [who for who, _ in member_posts(harness, thread.id)] == ["Claude", "DeepSeek", "Llama"] * 2
        bodies = {(r.model, n): r.json for n, r in enumerate(provider_server.requests)}
        deepseek = next(body for (model, _), body in bodies.items() if model == "deepseek-test")
        assert f"{user.display_name} shared an image you cannot see: lots.png, 640×480" in prompt_text(deepseek)
        assert "Phase 2: the one by the station." in prompt_text(deepseek)
        assert all(isinstance(m["content"], str) for m in deepseek["messages"])  # no image parts for it
        claude_second = [body for (model, _), body in bodies.items() if model == "claude-test"][1]
        images = [
            block
            for message in claude_second["messages"]
            if isinstance(message["content"], list)
            for block in message["content"]
            if block["type"] == "image"
        ]
        assert len(images) == 1 and images[0]["source"]["media_type"] == "image/png"
        assert "[image: lots.png, 640×480]" in prompt_text(claude_second)

        # Kept with its line: prompts built again from the database (as after a restart) still have the image.
        lines = await repo.transcript(sqlite_db, 1)
        [shared_line] = [line for line in lines if line.author_kind == "human"]
        [rebuilt] = [line for line in await prompt_lines(sqlite_db, 1, lines) if line.author_kind == "human"]
        assert shared_line.attachment_count == 3 - 1 and rebuilt.images[0].image.data == image

        exported = await harness.slash(user, "council", "export", channel=thread)
        record = json.loads(exported.response.files["council-1.json"])  # type: ignore[union-attr]
        listed = {(a["filename"], a["kind"], a["size"], a["shared_by"]) for a in record["attachments"]}
        assert listed == {
            ("lots.png", "image", len(image), user.display_name),
            ("plan.txt", "text", len(plan), user.display_name),
        }
    finally:
        await harness.close()


async def test_a_file_that_breaks_a_server_rule_holds_its_message_and_its_image(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    mods = await setup_governance(harness)
    provider_server.script("claude-test", delay=0.3)
    await convene(harness, members="Claude, Llama", rounds=1, wait=False)
    [thread] = harness.threads
    await wait_for(lambda: provider_server.in_flight == 1)
    contacts = b"Call the mayor's assistant: grace.hopper@fastmail.com"
    image = picture(32, 32)
    await harness.say(
        harness.members["user"],
        thread,
        "Here.",
        files=[("contacts.txt", contacts), ("lot.png", image)],
        wait_background=False,
    )
    await wait_for(lambda: len(escalations(harness, mods)) == 1)
    await harness.settle()
    llama = next(r.json for r in provider_server.requests if r.model == "llama-test")
    assert "grace.hopper" not in prompt_text(llama) and "lot.png" not in prompt_text(llama)
    [line] = [line for line in await repo.transcript(harness.bot.db, 1) if line.author_kind == "human"]
    assert line.visibility == "held" and line.attachment_count == 2
