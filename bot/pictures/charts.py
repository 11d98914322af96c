"""Charts of a council's results as PNG images: peer ratings, a review's ranking, what each member used.

Drawn with matplotlib's object API (no pyplot: no global state, so a worker thread may draw) on an opaque card
that reads the same in Discord's dark and light themes. Each chart returns the labels it drew, so tests can check
the picture holds every member without reading pixels. matplotlib is imported when the first chart is drawn: it
takes about a second, which the bot's start and the tests that draw nothing need not pay.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

BACKGROUND = "#2b2d31"  # an opaque card: Discord's dark grey, legible on both themes' backgrounds
FOREGROUND = "#f2f3f5"
GRID = "#4e5058"
# Fonts tried in order for each character: Latin, Greek and Cyrillic in DejaVu (matplotlib's own), then the
# CJK fonts the system has (scripts/install-fonts.sh installs WenQuanYi Micro Hei; Noto CJK serves as well).
WANTED_FONTS = (
    "DejaVu Sans",
    "Noto Sans CJK JP",
    "Noto Sans CJK SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Droid Sans Fallback",
)
CJK_FONT_FILES = ("wqy-microhei", "wqy-zenhei", "notosanscjk", "droidsansfallback")
PALETTE = ("#d97757", "#4d6bfe", "#34a853", "#a970ff", "#f4b400", "#00a3a3", "#e0457b", "#8d99ae")
WIDTH_IN, HEIGHT_IN, DPI = 9.6, 5.4, 100  # 960×540 px: sharp in Discord's preview, a few dozen KB
LABEL_CHARS = 24  # a member's name in a legend or on an axis


@dataclass(frozen=True, slots=True)
class Chart:
    """A drawn chart: the PNG, its size in pixels, and every text label it drew."""

    png: bytes
    width: int
    height: int
    labels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RatedMember:
    """One member's mean peer scores (1-5; None: no readable rating)."""

    name: str
    clarity: float | None
    insight: float | None
    self_awareness: float | None
    overall: float | None


@dataclass(frozen=True, slots=True)
class RankedMember:
    """Where the reviewers placed one member's answer (1 = best), ballot by ballot."""

    name: str
    places: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class MemberCost:
    name: str
    tokens_in: int
    tokens_out: int
    cost: float | None
    latency_p50_s: float | None


@functools.cache
def fonts() -> list[str]:
    """The wanted fonts this system has, in order (asking matplotlib for a missing one logs on every text)."""
    from matplotlib import font_manager

    installed = {entry.name for entry in font_manager.fontManager.ttflist}
    if not installed & set(WANTED_FONTS[1:]):
        # matplotlib's font cache predates fonts installed since: it learns of the CJK ones here.
        for path in font_manager.findSystemFonts():
            if any(part in path.lower() for part in CJK_FONT_FILES):
                font_manager.fontManager.addfont(path)
        installed = {entry.name for entry in font_manager.fontManager.ttflist}
    return [name for name in WANTED_FONTS if name in installed] or ["DejaVu Sans"]


def covers_cjk() -> bool:
    """Whether a chart can draw Chinese, Japanese and Korean text here (else those characters show as boxes)."""
    return len(fonts()) > 1


def colour_of(name: str, position: int, colours: Mapping[str, str]) -> str:
    """A member's colour from the catalog, else the palette's by its seat."""
    return colours.get(name) or PALETTE[position % len(PALETTE)]


def ratings_chart(title: str, members: Sequence[RatedMember], colours: Mapping[str, str]) -> Chart:
    """Grouped bars: for each score (clarity, insight, self-awareness, overall) a bar per member in its colour."""
    metrics = ("Clarity", "Insight", "Self-awareness", "Overall")
    figure, axes = _canvas(title)
    width = 0.8 / max(1, len(members))
    labels = [title, *metrics]
    for position, member in enumerate(members):
        values = (member.clarity, member.insight, member.self_awareness, member.overall)
        xs = [m + (position - (len(members) - 1) / 2) * width for m in range(len(metrics))]
        name = _short(member.name)
        labels.append(name)
        axes.bar(
            xs, [v or 0 for v in values], width * 0.92, color=colour_of(member.name, position, colours), label=name
        )
        for x, value in zip(xs, values, strict=True):
            text = f"{value:.1f}" if value is not None else "n/a"
            axes.text(x, (value or 0) + 0.05, text, ha="center", va="bottom", fontsize=8, color=FOREGROUND)
    axes.set_xticks(range(len(metrics)), metrics)
    axes.set_ylim(0, 5.6)
    axes.set_ylabel("mean score (1-5)")
    _legend(axes, len(members))
    return _png(figure, labels)


def ranking_chart(title: str, members: Sequence[RankedMember], colours: Mapping[str, str]) -> Chart:
    """Each member's mean place (a bar, 1 = best at the top) and every ballot's place (the dots): the spread."""
    figure, axes = _canvas(title)
    labels = [title]
    ranked = [member for member in members if member.places]
    most = max((max(member.places) for member in ranked), default=1)
    for row, member in enumerate(ranked):
        colour = colour_of(member.name, row, colours)
        mean = sum(member.places) / len(member.places)
        axes.barh(row, mean, 0.6, color=colour)
        axes.scatter(member.places, [row] * len(member.places), color=FOREGROUND, edgecolors=BACKGROUND, zorder=3)
        axes.text(mean + 0.05, row + 0.32, f"{mean:.2f}", va="center", fontsize=8, color=FOREGROUND)
        labels.append(_short(member.name))
    axes.set_yticks(range(len(ranked)), labels[1:])
    axes.invert_yaxis()  # the best first
    axes.set_xlim(0, most + 0.5)
    axes.set_xlabel("place (1 = best): the bar is the mean, each dot a ballot")
    return _png(figure, labels)


def usage_chart(title: str, members: Sequence[MemberCost], colours: Mapping[str, str]) -> Chart:
    """Three panels side by side: tokens (in and out), estimated cost, median latency, a bar per member."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, facecolor=BACKGROUND)
    figure.suptitle(title, color=FOREGROUND, fontsize=13, fontfamily=fonts())
    names = [_short(member.name) for member in members]
    panel_colours = [colour_of(member.name, i, colours) for i, member in enumerate(members)]
    panels: list[tuple[str, list[float]]] = [
        ("tokens (in + out)", [float(m.tokens_in + m.tokens_out) for m in members]),
        ("estimated cost (US$)", [m.cost or 0.0 for m in members]),
        ("latency p50 (s)", [m.latency_p50_s or 0.0 for m in members]),
    ]
    for index, (label, values) in enumerate(panels):
        axes = figure.add_subplot(1, 3, index + 1)
        _style(axes)
        axes.barh(range(len(members)), values, color=panel_colours)
        axes.set_yticks(range(len(members)), names if index == 0 else [""] * len(members))
        axes.invert_yaxis()
        axes.set_title(label, color=FOREGROUND, fontsize=10, fontfamily=fonts())
    figure.tight_layout()
    return _png(figure, [title, *names, *(label for label, _ in panels)])


def _canvas(title: str) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, facecolor=BACKGROUND)
    axes = figure.add_subplot(1, 1, 1)
    _style(axes)
    axes.set_title(title, color=FOREGROUND, fontsize=13, fontfamily=fonts())
    return figure, axes


def _style(axes: Any) -> None:
    axes.set_facecolor(BACKGROUND)
    axes.tick_params(colors=FOREGROUND, labelsize=9)
    for label in (*axes.get_xticklabels(), *axes.get_yticklabels()):
        label.set_fontfamily(fonts())
    axes.xaxis.label.set_color(FOREGROUND)
    axes.yaxis.label.set_color(FOREGROUND)
    for spine in axes.spines.values():
        spine.set_color(GRID)
    axes.grid(axis="both", color=GRID, linewidth=0.5, alpha=0.6)
    axes.set_axisbelow(True)


def _legend(axes: Any, entries: int) -> None:
    legend = axes.legend(
        loc="upper center",
        bbox_to_anchor=(0.5, -0.08),
        ncol=min(entries, 4),
        frameon=False,
        prop={"family": fonts(), "size": 9},
    )
    for text in legend.get_texts():
        text.set_color(FOREGROUND)


def _png(figure: Any, labels: Sequence[str]) -> Chart:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    for text in figure.findobj(lambda artist: hasattr(artist, "set_fontfamily")):
        text.set_fontfamily(fonts())
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", facecolor=BACKGROUND, bbox_inches="tight", pad_inches=0.25)
    width, height = (round(size) for size in figure.get_size_inches() * DPI)
    data = buffer.getvalue()
    return Chart(data, *_png_size(data, width, height), tuple(labels))


def _png_size(data: bytes, width: int, height: int) -> tuple[int, int]:
    """The PNG's own size (a tight bounding box changes it), from its header."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return width, height


def _short(name: str) -> str:
    return name if len(name) <= LABEL_CHARS else name[: LABEL_CHARS - 1] + "…"
