"""The HTML transcript: every line the thread showed and nothing it did not, escaped, in the council's script; and
in a real headless Chromium, a page that looks as it did (a screenshot against a reference) and asks the network
for nothing."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageStat

from bot.catalog import Catalog
from bot.council.publisher import Table
from bot.council.reports import CouncilRecord, RecordMember
from bot.council.transcript_html import _CODE_BLOCK, discord_markdown, transcript_html
from storage.models import Council, CouncilMessage, Escalation

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = Path(__file__).resolve().parent / "golden" / "transcript.png"
WINDOW = (1000, 1500)
# Mean difference per channel (0-255) a rendering may have from the reference: fonts' antialiasing varies a little
# between builds; a layout or colour change moves it far past this.
TOLERANCE = 6.0
START = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def line(
    line_id: int, round_number: int, kind: str, author: str, content: str, visibility: str = "visible"
) -> CouncilMessage:
    return CouncilMessage(
        id=line_id,
        council_id=7,
        round=round_number,
        author_kind=kind,
        author_name=author,
        turn_key=f"{kind}:{line_id}",
        content=content,
        visibility=visibility,
        created_at=START + timedelta(minutes=line_id),
    )


def sample() -> CouncilRecord:
    catalog = Catalog.load(ROOT / "members.toml")
    council = Council(
        id=7,
        guild_id=1,
        channel_id=2,
        thread_id=3,
        topic="Should our city replace parking lots with parks? 駐車場を公園に? Парки вместо парковок?",
        mode="review",
        rounds=2,
        current_round=2,
        state="concluded",
        end_reason="All rounds are done.",
        convener_id=9,
        convener_name="Ada <admin>",
        tokens_in=12345,
        tokens_out=678,
        created_at=START,
        ended_at=START + timedelta(minutes=30),
    )
    members = (
        RecordMember("Claude", "the Coordinator", 0, False, catalog.get("Claude")),
        RecordMember("DeepSeek", "the Philosopher", 1, False, catalog.get("DeepSeek")),
        RecordMember("Llama", "the Realist", 2, True, catalog.get("Llama")),
    )
    ranking = Table(
        title="⚖️ Peer review: the answers ranked",
        rows=("1. **Claude**: mean place 1.50 from 2 ranking(s)", "2. **Llama**: mean place 2.00 from 1 ranking(s)"),
        note="Each member ranked the others' answers without their names, its own left out; 1 is best.",
        places=(("Claude", (1, 2)), ("Llama", (2,))),
    )
    messages = (
        line(1, 1, "ai", "Claude", "Parks on **half** the lots, and a toll on the rest.\nA second paragraph."),
        line(2, 1, "human", "Ada <admin>", "<script>alert('x')</script> What about buses? @everyone"),
        line(3, 1, "ai", "DeepSeek", "公園は都市の肺です。Парки — лёгкие города."),
        line(4, 1, "ai", "Llama", "WITHHELD-WORDS: a held reply that nobody saw.", visibility="withheld"),
        line(5, 1, "system", "Llama", "🛡️ A message from Llama was withheld by the moderators."),
        line(6, 1, "tool", "Claude", '🔧 **Claude** calls `councils.search_councils` with `query: "parks"`'),
        line(7, 1, "tool", "Claude", '↳ `search_councils` (0.2 s): `Council #3 "Parks" (2026-11-03, concluded)…`'),
        line(8, 2, "table", "council", ranking.dumps()),
        line(
            9, 2, "system", "Llama", "The moderators withheld your message. Reason: PRIVATE-NOTE", visibility="private"
        ),
        line(10, 2, "ai", "Claude", "Synthesis: parks on most lots, tolls for the rest."),
        line(
            11,
            2,
            "system",
            "council",
            "📊 Peer ratings #1 of council #7, at its end\nClaude: clarity 4.5 · insight 4.0 · overall 4.2 (2 ratings)",
            visibility="scoreboard",
        ),
    )
    escalation = Escalation(
        id=1,
        guild_id=1,
        council_id=7,
        message_id=4,
        source="rule",
        category="governance",
        reason="Injection attempt",
        author_name="Llama",
        content="WITHHELD-WORDS",
        held=True,
        state="rejected",
        decided_by_name="Mo",
        decided_at=START + timedelta(minutes=6),
        created_at=START + timedelta(minutes=5),
        expires_at=START + timedelta(days=1),
    )
    return CouncilRecord(council, members, messages, (escalation,), (), moderators_notes=False)


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.sources: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.sources += [value or "" for name, value in attrs if name in ("src", "href")]


def read(page: str) -> _Text:
    parser = _Text()
    parser.feed(page)
    return parser


def test_the_page_holds_every_line_the_thread_showed_and_nothing_else() -> None:
    record = sample()
    page = transcript_html(record, language="ja")
    text = " ".join(" ".join(read(page).parts).split())
    for message in record.messages:
        words = message.content if message.author_kind != "table" else ""
        if message.visibility in ("visible", "scoreboard"):
            for part in words.splitlines():  # Discord's markdown shows as formatting, its marks gone
                assert " ".join(re.sub(r"\*\*|`", "", part).split()) in text, part
        else:
            assert message.content not in text  # held, withheld and private lines are in no page
    assert "PRIVATE-NOTE" not in page and "WITHHELD-WORDS" not in page
    for row in ("Claude: mean place 1.50 from 2 ranking(s)", "Each member ranked the others"):
        assert row in text
    assert "rejected by Mo" in text and "(benched)" in text
    assert '<html lang="ja">' in page


def test_what_people_wrote_is_text_never_markup() -> None:
    page = transcript_html(sample())
    assert "<script" not in page and "&lt;script&gt;alert(" in page
    assert "Ada &lt;admin&gt;" in page
    # Everything the page shows comes with it: data URLs only, and a policy that forbids the rest.
    assert all(source.startswith("data:") for source in read(page).sources)
    assert "default-src 'none'" in page


def chromium(page: Path, tmp_path: Path) -> tuple[Image.Image, list[str]]:
    """A screenshot of the page in headless Chromium, and every URL Chromium's network log saw requested."""
    assert CHROMIUM is not None
    shot, log = tmp_path / "shot.png", tmp_path / "net.json"
    subprocess.run(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            # Chromium's own traffic (updates, time, dictionaries) would hide the page's in the log: none of it.
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-domain-reliability",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-features=Translate,OptimizationHints,MediaRouter,SpellcheckService,NetworkTimeServiceQuerying",
            "--force-device-scale-factor=1",
            "--font-render-hinting=none",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            f"--screenshot={shot}",
            f"--log-net-log={log}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=60,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    # The page's own requests are those made for its site (file://); Chromium's own traffic has other keys.
    urls = []
    for event in json.loads(log.read_text(encoding="utf-8") or "{}").get("events", []):
        params = event.get("params") or {}
        if str(params.get("network_isolation_key", "")).startswith("file://") and isinstance(params.get("url"), str):
            urls.append(params["url"])
    with Image.open(shot) as image:
        return image.convert("RGB"), urls


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (`.ci/run` installs Debian's chromium)")
def test_chromium_shows_the_page_as_the_reference_and_it_requests_nothing(tmp_path: Path) -> None:
    page = tmp_path / "council-7.html"
    page.write_text(transcript_html(sample(), language="en"), encoding="utf-8")
    shot, urls = chromium(page, tmp_path)
    assert [url for url in urls if not url.startswith("file:")] == []
    if os.environ.get("UPDATE_REFERENCE") == "1" or not REFERENCE.exists():
        REFERENCE.parent.mkdir(exist_ok=True)
        shot.save(REFERENCE, optimize=True)
        pytest.skip(f"reference written to {REFERENCE.relative_to(ROOT)}: check it by eye and commit it")
    with Image.open(REFERENCE) as reference:
        assert reference.size == shot.size
        difference = ImageStat.Stat(ImageChops.difference(reference.convert("RGB"), shot)).mean
    assert max(difference) <= TOLERANCE, f"mean difference per channel {difference} (tolerance {TOLERANCE})"
    # Not an empty page: the dark background and the members' colours are there.
    colours = {pixel for pixel in shot.resize((250, 375)).get_flattened_data()}
    assert (0x31, 0x33, 0x38) in colours


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (`.ci/run` installs Debian's chromium)")
def test_the_network_check_sees_a_page_that_loads_something(tmp_path: Path) -> None:
    page = tmp_path / "leaky.html"
    page.write_text('<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/pixel.png">hi</body></html>')
    _, urls = chromium(page, tmp_path)
    assert urls == ["http://127.0.0.1:9/pixel.png"]


def test_a_page_that_differs_from_the_reference_fails_the_comparison(tmp_path: Path) -> None:
    """The comparison catches a changed page: the same picture with a block painted over differs past the tolerance."""
    base = Image.new("RGB", WINDOW, (0x31, 0x33, 0x38))
    changed = base.copy()
    changed.paste((255, 255, 255), (0, 0, WINDOW[0], WINDOW[1] // 5))
    difference = ImageStat.Stat(ImageChops.difference(base, changed)).mean
    assert max(difference) > TOLERANCE


ALLOWED_TAGS = {"strong", "em", "s", "code", "pre"}
MARKS = "*_~`"


@given(st.text())
@example("**a** *b* _c_ ~~d~~ `e` ```py\nf\n``` <script>")
@example("`a**b`**c**")
def test_discord_markdown_writes_only_its_own_tags_and_loses_no_words(text: str) -> None:
    rendered = str(discord_markdown(text))
    assert {tag for _, tag in re.findall(r"<(/?)([a-zA-Z]+)", rendered)} <= ALLOWED_TAGS
    shown = html.unescape(re.sub(r"</?(?:strong|em|s|code|pre)>", "", rendered))
    # Every word stays; only the marks go (and a code block's language name, as Discord hides it).
    assert _unmarked(shown) == _unmarked(_CODE_BLOCK.sub(r"\1", text))


def _unmarked(text: str) -> str:
    return "".join(char for char in text if char not in MARKS)
