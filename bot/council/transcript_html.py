"""A council's record as one self-contained HTML page that a browser shows the way the thread looked: members under
their names and avatars, rounds, humans, notices, the ranking and the scoreboard, moderators' decisions.

The page is a Jinja2 template (bot/council/html/) with autoescaping: no string of the record is ever markup. It
makes no request of its own: styles are inline, avatars are drawn as SVG data (a member's initial on its colour),
charts are PNG data, and a Content-Security-Policy forbids anything else. It holds what the export it comes with
holds (`CouncilRecord`, as bot/council/reports.py filters it for who asks).
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from bot.council.publisher import Table
from bot.council.reports import CouncilRecord, _outcome, _readable
from bot.pictures.charts import PALETTE

TEMPLATES = Path(__file__).resolve().parent / "html"
SHOWN = ("visible", "scoreboard")  # what the thread showed (as the Markdown export)
HUMAN_COLOUR = "#5865f2"


@dataclass(frozen=True, slots=True)
class _Item:
    kind: str  # member | human | notice | tool | card
    id: int
    round: int
    round_break: bool = False
    who: str = ""
    role: str | None = None
    avatar: str = ""
    time: str = ""
    text: str = ""
    files: tuple[str, ...] = ()
    title: str = ""
    rows: tuple[str, ...] = ()
    note: str | None = None
    image: str | None = None


# Discord's markdown a member writes, as the thread shows it: code first (nothing inside it is formatted), then
# bold, italic, strikethrough. Applied to the escaped text, so the tags below are the only markup there is.
_CODE_BLOCK = re.compile(r"```(?:[a-zA-Z0-9_+-]*\n)?(.*?)```", re.DOTALL)
_CODE = re.compile(r"`([^`\n]+)`")
_INLINE = (
    (re.compile(r"\*\*(.+?)\*\*", re.DOTALL), "strong"),
    (re.compile(r"(?<![*\w])\*(?!\s)(.+?)(?<!\s)\*(?![*\w])"), "em"),
    (re.compile(r"(?<!\w)_(?!\s)(.+?)(?<!\s)_(?!\w)"), "em"),
    (re.compile(r"~~(.+?)~~", re.DOTALL), "s"),
)


def discord_markdown(text: str) -> Markup:
    """`text` escaped, with Discord's bold, italic, strikethrough and code as HTML (and nothing else)."""
    escaped = str(escape(text))
    kept: list[str] = []

    def keep(html: str) -> str:
        kept.append(html)
        return f"\x00{len(kept) - 1}\x00"

    escaped = _CODE_BLOCK.sub(lambda m: keep(f"<pre><code>{m.group(1)}</code></pre>"), escaped)
    escaped = _CODE.sub(lambda m: keep(f"<code>{m.group(1)}</code>"), escaped)
    for pattern, tag in _INLINE:
        escaped = pattern.sub(lambda m, tag=tag: f"<{tag}>{m.group(1)}</{tag}>", escaped)
    return Markup(re.sub(r"\x00(\d+)\x00", lambda m: kept[int(m.group(1))], escaped))


@functools.cache
def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html", "j2"), default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["discord"] = discord_markdown
    return environment


def avatar(name: str, colour: str) -> str:
    """A round avatar with the name's first character, as an SVG data URL (no request to any avatar host)."""
    glyph = escape(next((char for char in name if not char.isspace()), "?"))
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40" viewBox="0 0 40 40">'
        f'<circle cx="20" cy="20" r="20" fill="{colour}"/>'
        '<text x="20" y="26" font-size="18" text-anchor="middle" fill="#ffffff" '
        f'font-family="system-ui, sans-serif">{glyph}</text></svg>'
    )
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def transcript_html(
    record: CouncilRecord,
    *,
    language: str | None = None,
    charts: Mapping[int, bytes] | None = None,
) -> str:
    """The page. `language`: the council's (an ISO 639 code, for the browser's fonts and reading); `charts`: PNGs
    to show with the lines they draw (a scoreboard's or a ranking's), by line id."""
    charts = charts or {}
    council = record.council
    colours: dict[str, str] = {}
    members = []
    for position, member in enumerate(sorted(record.members, key=lambda m: m.position)):
        colours[member.name] = (member.spec.colour if member.spec else None) or PALETTE[position % len(PALETTE)]
        members.append(
            {
                "name": member.name + (" (dismissed)" if member.dismissed else " (benched)" if member.benched else ""),
                "role": member.role,
                "model": f"{member.spec.provider} · {member.spec.model}" if member.spec else "no longer in the catalog",
                "avatar": avatar(member.name, colours[member.name]),
            }
        )
    roles = {member.name: member.role for member in record.members}
    files: dict[int, list[str]] = {}
    for attachment in record.attachments:
        files.setdefault(attachment.message_id, []).append(f"{attachment.filename} ({attachment.kind})")
    items: list[_Item] = []
    last_round = None
    for line in record.messages:
        if line.visibility not in SHOWN:
            continue
        line_id = line.id or 0
        common = {"id": line_id, "round": line.round, "round_break": line.round != last_round}
        last_round = line.round
        image = charts.get(line_id)
        data_url = f"data:image/png;base64,{base64.b64encode(image).decode('ascii')}" if image else None
        if line.author_kind == "ai":
            colour = colours.get(line.author_name, PALETTE[0])
            items.append(
                _Item(
                    "member",
                    who=line.author_name,
                    role=roles.get(line.author_name),
                    avatar=avatar(line.author_name, colour),
                    time=_readable(line.created_at),
                    text=line.content,
                    **common,
                )
            )
        elif line.author_kind == "human":
            items.append(
                _Item(
                    "human",
                    who=line.author_name,
                    role="human",
                    avatar=avatar(line.author_name, HUMAN_COLOUR),
                    time=_readable(line.created_at),
                    text=line.content,
                    files=tuple(files.get(line_id, ())),
                    **common,
                )
            )
        elif line.author_kind == "table":
            table = Table.loads(line.content)
            rows = tuple(row.replace("**", "") for row in table.rows)
            items.append(_Item("card", title=table.title, rows=rows, note=table.note, image=data_url, **common))
        elif line.visibility == "scoreboard":
            title, _, rest = line.content.partition("\n")
            rows = tuple(rest.split("\n"))
            items.append(_Item("card", title=title.replace("**", ""), rows=rows, image=data_url, **common))
        else:
            items.append(_Item("tool" if line.author_kind == "tool" else "notice", text=line.content, **common))
    decisions = [
        f"Escalation #{item.id} ({item.source} · {item.category}) about {item.author_name}'s message: {_outcome(item)}"
        + (f" Reason given: {item.decision_reason}" if item.decision_reason else "")
        for item in record.escalations
    ]
    return (
        _environment()
        .get_template("transcript.html.j2")
        .render(
            lang=language or "en",
            council=council,
            convened=_readable(council.created_at),
            ended=_readable(council.ended_at) if council.ended_at else None,
            members=members,
            items=items,
            decisions=decisions,
        )
    )
