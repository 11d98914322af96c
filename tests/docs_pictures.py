"""The guides' examples of a council's pictures, made by the project itself: an offline rehearsal (echo members,
two rounds in seat order, peer ratings on) written with `--html`, giving the HTML transcript and the ratings chart.
Seat order keeps it the same from run to run (a parallel round stores answers in the order they come back).

`python -m tests.docs_pictures` writes them into docs/examples/; tests/test_docs.py makes them again and checks
the committed ones still match (the page exactly, its times aside; the chart within a small pixel tolerance, as
font builds differ), so the examples follow the code and the catalog and cannot go stale.
"""

from __future__ import annotations

import asyncio
import io
import re
import sys
import tempfile
from pathlib import Path

from bot import rehearse
from bot.catalog import Catalog
from bot.settings import DEFAULT_MEMBERS_FILE, Settings

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "docs" / "examples"
STEM = "council"
TOPIC = "Should our library lend tools as well as books?"
ARGS = (TOPIC, "--members", "Claude, DeepSeek, Llama", "--rounds", "2", "--offline")
WHEN = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC")
STILL = "2026-12-07 12:00:00 UTC"  # every time on the example page: a page made today reads the same


def make(folder: Path) -> dict[str, bytes]:
    """The example files, by name, made in `folder` (which also holds the rehearsal's database)."""
    page = folder / f"{STEM}.html"
    settings = Settings(
        discord_token="",
        database_url=f"sqlite:///{folder / 'examples.db'}",
        members_file=DEFAULT_MEMBERS_FILE,
        provider_timeout=10,
        log_level="WARNING",
        peer_ratings=True,
    )
    args = rehearse.parser().parse_args([*ARGS, "--html", str(page)])
    code = asyncio.run(rehearse.rehearse(args, settings, Catalog.load(DEFAULT_MEMBERS_FILE), io.StringIO()))
    if code != 0:
        raise RuntimeError(f"the example rehearsal exited with {code}")
    made = {path.name: path.read_bytes() for path in sorted(folder.glob(f"{STEM}*.png"))}
    made[page.name] = WHEN.sub(STILL, page.read_text(encoding="utf-8")).encode("utf-8")
    return made


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        made = make(Path(scratch))
    FOLDER.mkdir(exist_ok=True)
    for old in FOLDER.glob(f"{STEM}*"):
        old.unlink()
    for name, data in made.items():
        (FOLDER / name).write_bytes(data)
        print(f"wrote docs/examples/{name}", file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
