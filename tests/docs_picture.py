"""The README's picture: a short council as its Discord thread shows it, drawn as an SVG (docs/council.svg).

`python -m tests.docs_picture` writes the file; tests/test_docs.py checks that the committed file is exactly
what this script draws now, so the picture follows the catalog (names, roles, models, avatar colours) and
cannot go stale. The SVG is written as text (every string XML-escaped), keeps its words as text, and has an
opaque background, so it reads the same in GitHub's light and dark themes.
"""

from __future__ import annotations

import textwrap
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse
from xml.sax.saxutils import escape, quoteattr

ROOT = Path(__file__).resolve().parent.parent
PICTURE = ROOT / "docs" / "council.svg"

WIDTH = 720
TEXT_X = 72  # where names and words start, right of the avatars
BODY_CHARS = 76  # a line of words at 15 px stays inside WIDTH even in a wide fallback font
LINE = 22

# Discord's dark theme.
BACKGROUND = "#313338"
EMBED_BACKGROUND = "#2b2d31"
BLURPLE = "#5865f2"  # the bot's embeds (cogs/council/_embeds.py COLOUR) and app tags
TEXT = "#dbdee1"
BRIGHT = "#f2f3f5"
MUTED = "#949ba4"

TOPIC = "Should cities ban cars?"
COUNCIL_ID = 12
MEMBERS = ("Claude", "DeepSeek", "Gemini")
HUMAN = ("Maya", "#3ba55c")
BOT = ("AI Council", BLURPLE)
EMBED_FOOTER = "Write in the thread to join the discussion. /council info shows what stands behind each member."


@dataclass(frozen=True, slots=True)
class Speaker:
    name: str
    colour: str  # the avatar's background
    app: bool  # the bot and the members' webhooks carry Discord's APP tag; humans do not


@dataclass(frozen=True, slots=True)
class Post:
    speaker: Speaker
    time: str
    words: str


@dataclass(frozen=True, slots=True)
class Seated:
    name: str
    role: str
    model: str
    colour: str


def seated(members_file: Path = ROOT / "members.toml") -> list[Seated]:
    """The council's members as the catalog has them; the avatar colour is the one their avatar URL asks for."""
    catalog = {entry["name"]: entry for entry in tomllib.loads(members_file.read_text("utf-8"))["member"]}
    members = []
    for name in MEMBERS:
        entry = catalog[name]
        background = parse_qs(urlparse(entry.get("avatar_url", "")).query).get("background", ["5865f2"])[0]
        members.append(Seated(name, entry.get("role", ""), entry["model"], f"#{background.lower()}"))
    return members


def transcript(members: list[Seated]) -> list[Post]:
    """Round 1 in round-robin, a human's question answered by name, and round 2 held for the moderators."""
    claude, deepseek, gemini = (Speaker(m.name, m.colour, app=True) for m in members)
    maya = Speaker(*HUMAN, app=False)
    bot = Speaker(*BOT, app=True)
    return [
        Post(
            claude,
            "18:02",
            "Not a ban, a default. Most trips in a dense centre are short enough to walk, cycle or ride; "
            "cars keep the ring roads and the deliveries. What would a ban cost those with no other way in?",
        ),
        Post(
            deepseek,
            "18:03",
            "The question hides another: whose freedom counts. A car-free street frees children and the old; "
            "a ban takes it from the driver who lives far out. Ask who pays, not only who gains.",
        ),
        Post(
            gemini,
            "18:03",
            "The cities that tried it found shops busier, not emptier, once people could linger. Start with "
            "one street, measure, and let the results argue for the next.",
        ),
        Post(maya, "18:04", f"@{deepseek.name} and my dad, who can't walk far? He uses his car for everything."),
        Post(
            deepseek,
            "18:04",
            f"{maya.name}, that is the hardest case, and a rule that forgets it is unjust. Permits for those "
            "who need a car, and door-to-door shuttles, keep the street open to them first.",
        ),
        Post(
            bot,
            "18:05",
            f"🛡️ A message from {claude.name} awaits moderator review. The council waits for their decision.",
        ),
    ]


def _attrs(**values: object) -> str:
    return "".join(f" {key.rstrip('_').replace('_', '-')}={quoteattr(str(value))}" for key, value in values.items())


# Widths of letters in em, in the sans-serif fonts above at weight 600 (a little generous).
_NARROW, _WIDE = set("fijlrtI "), set("mwMW")


def _name_width(name: str) -> int:
    """About how wide a name is in 16 px semibold; the name is drawn to exactly this width (textLength), so
    the APP tag after it never overlaps whatever font the viewer has."""
    em = sum(0.34 if c in _NARROW else 0.92 if c in _WIDE else 0.7 if c.isupper() else 0.6 for c in name)
    return round(em * 16) + 4


def _avatar(speaker: Speaker, top: int) -> list[str]:
    initials = "".join(part[0] for part in speaker.name.split())[:2] if " " in speaker.name else speaker.name[0]
    return [
        f"<circle{_attrs(cx=36, cy=top + 20, r=20, fill=speaker.colour)}/>",
        f"<text{_attrs(x=36, y=top + 25, class_='initials')}>{escape(initials)}</text>",
    ]


def _header(speaker: Speaker, time: str, top: int) -> list[str]:
    width = _name_width(speaker.name)
    parts = [
        f"<text{_attrs(x=TEXT_X, y=top + 16, class_='name', textLength=width)}>{escape(speaker.name)}</text>",
    ]
    after = TEXT_X + width + 6
    if speaker.app:
        parts += [
            f"<rect{_attrs(x=after, y=top + 4, width=30, height=15, rx=3, fill=BLURPLE)}/>",
            f"<text{_attrs(x=after + 15, y=top + 15, class_='tag')}>APP</text>",
        ]
        after += 36
    parts.append(f"<text{_attrs(x=after + 2, y=top + 16, class_='time')}>Today at {escape(time)}</text>")
    return parts


def _post(post: Post, top: int) -> tuple[list[str], int]:
    lines = textwrap.wrap(post.words, BODY_CHARS)
    parts = _avatar(post.speaker, top) + _header(post.speaker, post.time, top)
    parts += [
        f"<text{_attrs(x=TEXT_X, y=top + 40 + index * LINE, class_='body')}>{escape(line)}</text>"
        for index, line in enumerate(lines)
    ]
    return parts, top + 26 + len(lines) * LINE + 18


def _starter(members: list[Seated], top: int) -> tuple[list[str], int]:
    """The message the thread was opened from: the bot's live embed, as the council waits for the moderators."""
    bot = Speaker(*BOT, app=True)
    parts = _avatar(bot, top) + _header(bot, "18:02", top)
    x, y, width = TEXT_X, top + 28, WIDTH - TEXT_X - 32
    inner = x + 16
    rows = [f"<text{_attrs(x=inner, y=y + 26, class_='title')}>{escape(f'Council #{COUNCIL_ID}: {TOPIC}')}</text>"]
    rows.append(f"<text{_attrs(x=inner, y=y + 50, class_='body')}>{escape(TOPIC)}</text>")
    rows.append(f"<text{_attrs(x=inner, y=y + 76, class_='label')}>Members</text>")
    line_y = y + 96
    for member in members:
        rows.append(
            f"<text{_attrs(x=inner, y=line_y, class_='field')}>"
            f"<tspan class='strong'>{escape(member.name)}</tspan> — {escape(member.role)} · "
            f"<tspan class='code'>{escape(member.model)}</tspan></text>"
        )
        line_y += 20
    fields = (("Mode", "round-robin"), ("Round", "2 of 2"), ("Speaking", "waiting for the moderators"))
    for index, (label, value) in enumerate(fields):
        column = inner + index * 170
        rows.append(f"<text{_attrs(x=column, y=line_y + 12, class_='label')}>{escape(label)}</text>")
        rows.append(f"<text{_attrs(x=column, y=line_y + 32, class_='field')}>{escape(value)}</text>")
    footer_y = line_y + 58
    for line in textwrap.wrap(EMBED_FOOTER, 84):
        rows.append(f"<text{_attrs(x=inner, y=footer_y, class_='footer')}>{escape(line)}</text>")
        footer_y += 17
    height = footer_y - y
    parts += [
        f"<rect{_attrs(x=x, y=y, width=width, height=height, rx=4, fill=EMBED_BACKGROUND)}/>",
        f"<rect{_attrs(x=x, y=y, width=4, height=height, fill=BLURPLE)}/>",
        *rows,
    ]
    return parts, y + height + 20


STYLE = f"""
text {{ font-family: 'gg sans', 'Noto Sans', 'Helvetica Neue', Helvetica, Arial, sans-serif; }}
.thread {{ font-size: 16px; font-weight: 700; fill: {BRIGHT}; }}
.hash {{ font-size: 22px; fill: {MUTED}; }}
.name {{ font-size: 16px; font-weight: 600; fill: {BRIGHT}; }}
.time {{ font-size: 12px; fill: {MUTED}; }}
.tag {{ font-size: 10px; font-weight: 700; fill: #ffffff; text-anchor: middle; }}
.initials {{ font-size: 15px; font-weight: 700; fill: #ffffff; text-anchor: middle; }}
.body {{ font-size: 15px; fill: {TEXT}; }}
.title {{ font-size: 15px; font-weight: 700; fill: {BRIGHT}; }}
.label {{ font-size: 13px; font-weight: 700; fill: {BRIGHT}; }}
.field {{ font-size: 14px; fill: {TEXT}; }}
.strong {{ font-weight: 700; fill: {BRIGHT}; }}
.code {{ font-family: Consolas, 'Andale Mono', 'DejaVu Sans Mono', monospace; font-size: 13px; }}
.footer {{ font-size: 12px; fill: #b5bac1; }}
"""


def render(members_file: Path = ROOT / "members.toml") -> str:
    """The whole SVG, as text; the same input always gives the same bytes."""
    members = seated(members_file)
    parts = [
        f"<text{_attrs(x=24, y=31, class_='hash')}>#</text>",
        f"<text{_attrs(x=48, y=30, class_='thread')}>{escape(TOPIC)}</text>",
        f"<line{_attrs(x1=0, y1=48, x2=WIDTH, y2=48, stroke='#1f2023', stroke_width=2)}/>",
    ]
    body, top = _starter(members, 64)
    parts += body
    for post in transcript(members):
        body, top = _post(post, top)
        parts += body
    height = top + 8
    title = f"A council in its Discord thread: {TOPIC}"
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label={quoteattr(title)}>',
            f"<title>{escape(title)}</title>",
            f"<style>{STYLE}</style>",
            f"<rect{_attrs(width=WIDTH, height=height, rx=8, fill=BACKGROUND)}/>",
            *parts,
            "</svg>",
            "",
        ]
    )


def main() -> None:
    PICTURE.write_text(render(), encoding="utf-8")
    print(f"wrote {PICTURE.relative_to(ROOT)} ({PICTURE.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
