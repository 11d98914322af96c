"""Charts of ratings, rankings and usage: PNGs within Discord's limits, every member in the picture in its own
colour, any script drawn where the fonts are installed, and a chart that cannot be drawn left out quietly."""

from __future__ import annotations

import io
import logging
import time
import warnings

import pytest
from PIL import Image

from bot.pictures import charts, render
from bot.pictures.charts import MemberCost, RankedMember, RatedMember

ATTACHMENT_LIMIT = 10 * 1024 * 1024  # Discord's per-file limit for bots without a boosted server
COLOURS = {"Claude": "#d97757", "DeepSeek": "#4d6bfe"}
RATED = [
    RatedMember("Claude", 4.5, 4.0, 3.5, 4.0),
    RatedMember("DeepSeek", 3.0, 4.5, None, None),
    RatedMember("Лама", 2.0, 3.0, 4.0, 3.0),
    RatedMember("ラマ 日本語の名前がとても長い評議会のメンバーです", 1.0, 1.5, 2.0, 1.5),
]


def pixels(png: bytes) -> set[tuple[int, int, int]]:
    with Image.open(io.BytesIO(png)) as image:
        return set(image.convert("RGB").get_flattened_data())


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


@pytest.mark.parametrize(
    "chart",
    [
        lambda: charts.ratings_chart("Peer ratings #1", RATED, COLOURS),
        lambda: charts.ranking_chart(
            "The answers ranked",
            [RankedMember("Claude", (1, 2, 1)), RankedMember("DeepSeek", (2, 1, 3)), RankedMember("Лама", (3, 3))],
            COLOURS,
        ),
        lambda: charts.usage_chart(
            "Council #1: usage",
            [MemberCost("Claude", 1200, 300, 0.0123, 2.3), MemberCost("DeepSeek", 900, 600, None, None)],
            COLOURS,
        ),
    ],
    ids=["ratings", "ranking", "usage"],
)
def test_each_chart_is_a_png_within_discords_limits_with_every_member_in_its_colour(chart) -> None:  # type: ignore[no-untyped-def]
    drawn = chart()
    assert drawn.png.startswith(b"\x89PNG\r\n\x1a\n") and len(drawn.png) < ATTACHMENT_LIMIT
    with Image.open(io.BytesIO(drawn.png)) as image:
        assert image.size == (drawn.width, drawn.height)
        assert 600 <= drawn.width <= 1600 and 400 <= drawn.height <= 1000
        assert image.getpixel((2, 2))[:3] == rgb(charts.BACKGROUND)  # an opaque card, for both themes
    assert "Claude" in drawn.labels and "DeepSeek" in drawn.labels
    colours = pixels(drawn.png)
    assert rgb(COLOURS["Claude"]) in colours and rgb(COLOURS["DeepSeek"]) in colours


def test_members_without_a_catalog_colour_get_the_palettes_by_seat_and_long_names_are_shortened() -> None:
    drawn = charts.ratings_chart("Peer ratings #2", RATED, {})
    assert {rgb(charts.PALETTE[i]) for i in range(len(RATED))} <= pixels(drawn.png)
    assert "Лама" in drawn.labels
    long = next(label for label in drawn.labels if label.startswith("ラマ"))
    assert len(long) == charts.LABEL_CHARS and long.endswith("…")


def test_cyrillic_and_cjk_names_are_drawn_with_a_font_that_has_them() -> None:
    if not charts.covers_cjk():
        pytest.skip("no CJK font here: `bash scripts/install-fonts.sh` installs one (.ci/run does)")
    # matplotlib warns "Glyph … missing from font(s)" for a character no font in its list has.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        charts.ratings_chart("評価 · Оценки", RATED, COLOURS)
    missing = [str(w.message) for w in caught if "missing from font" in str(w.message)]
    assert not missing, missing


async def test_a_chart_that_fails_or_overruns_is_left_out_with_a_log_line(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(title: str) -> charts.Chart:
        raise ValueError("no data")

    with caplog.at_level(logging.WARNING, logger="bot.pictures.render"):
        assert await render.draw("broken", broken, "x") is None
    assert "Could not draw the broken chart" in caplog.text

    monkeypatch.setattr(render, "DRAW_SECONDS", 0.05)

    def slow(title: str) -> charts.Chart:
        time.sleep(0.3)
        return charts.ratings_chart(title, RATED[:1], {})

    started = time.perf_counter()
    assert await render.draw("slow", slow, "x") is None
    assert time.perf_counter() - started < 0.25  # the caller does not wait for the drawing thread

    monkeypatch.undo()  # the next chart waits its turn behind the slow one, as charts queue
    drawn = await render.draw("ratings", charts.ratings_chart, "Peer ratings #3", RATED, COLOURS)
    assert drawn is not None and drawn.png.startswith(b"\x89PNG")
