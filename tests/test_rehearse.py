"""`python -m bot rehearse`: a council in the terminal, as a newcomer would first run it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from bot import rehearse as bot_rehearse
from bot.catalog import Catalog
from bot.council.seats import Seat
from bot.settings import DEFAULT_MEMBERS_FILE, Settings
from bot.terminal import CORRECTION, TerminalPublisher
from storage import repository as repo
from storage.database import Database
from storage.models import CouncilMessage
from tests.fakes.provider_server import FakeProviderServer

ROOT = Path(__file__).resolve().parent.parent


def rehearse(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("DISCORD_")}
    clean.update(
        {"DISCORD_TOKEN": "", "PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}"}, **env
    )
    return subprocess.run(
        [sys.executable, "-m", "bot", "rehearse", *args],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_keys_it_says_so_and_offers_offline(tmp_path: Path) -> None:
    result = rehearse(tmp_path, "Should cities ban cars?", "--members", "Claude,DeepSeek")
    assert result.returncode == 2
    assert "Claude needs ANTHROPIC_API_KEY" in result.stderr and "--offline" in result.stderr
    assert "Traceback" not in result.stderr


def test_offline_rehearsal_shows_the_mechanics_with_labelled_echo_members(tmp_path: Path) -> None:
    result = rehearse(tmp_path, "Should cities ban cars?", "--members", "Claude, DeepSeek, Llama", "--rounds", "2")
    assert result.returncode == 2  # no keys: refused until --offline
    result = rehearse(
        tmp_path, "Should cities ban cars?", "--members", "Claude, DeepSeek, Llama", "--rounds", "2", "--offline"
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("Council #1: Should cities ban cars?")
    assert "Claude (the Coordinator) [offline echo]" in out
    speakers = [line for line in out.splitlines() if line.startswith("── ")]
    assert (
        speakers
        == ["── Claude (the Coordinator) ──", "── DeepSeek (the Philosopher) ──", "── Llama (the Realist) ──"] * 2
    )
    replies = [line for line in out.splitlines() if line.startswith("*(offline echo, not an AI)*")]
    assert len(replies) == 6
    assert "I heard Claude (the Coordinator) say" in replies[1]  # each member hears the one before
    assert "■ Council #1 concluded: All 2 round(s) are done." in out
    assert (tmp_path / "r.db").exists()


def test_ctrl_c_concludes_the_rehearsal_and_leaves_nothing_half_stored(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("DISCORD_")}
    clean.update(DISCORD_TOKEN="", PYTHONPATH=str(ROOT), DATABASE_URL=f"sqlite:///{tmp_path / 'r.db'}")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot",
            "rehearse",
            "Ban cars?",
            "--members",
            "Claude, Llama",
            "--rounds",
            "9",
            "--offline",
        ],
        cwd=tmp_path,
        env=clean,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    while not process.stdout.readline().startswith("── "):  # a member has begun to speak
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
    process.send_signal(signal.SIGINT)
    rest = process.stdout.read()  # not communicate(): it would skip what readline() has buffered
    err = process.stderr.read() if process.stderr else ""
    process.wait(timeout=60)
    assert process.returncode == 130 and "Traceback" not in err, err
    assert "■ Council #1 concluded: The rehearsal was interrupted." in rest
    lines = asyncio.run(stored_lines(tmp_path))
    assert lines and all(line.visibility == "visible" and line.posted_at is not None for line in lines)
    cut = [line for line in lines if "✂️ cut off: the council was concluded" in line.content]
    assert all(f"{line.content}\n" in rest for line in cut), (rest, [c.content for c in cut])


def test_bad_arguments_are_explained(tmp_path: Path) -> None:
    result = rehearse(tmp_path, "Topic here", "--members", "Nobody", "--offline")
    assert result.returncode == 2 and "no member called 'Nobody'" in result.stderr
    result = rehearse(tmp_path, "Topic here", "--members", "Llama", "--mode", "chaos")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_a_chair_or_limit_the_council_cannot_have_is_refused(tmp_path: Path) -> None:
    members = ("Should cities ban cars?", "--members", "Claude, DeepSeek", "--mode", "review", "--offline")
    result = rehearse(tmp_path, *members, "--chair", "Llama")
    assert result.returncode == 2, result.stdout
    assert result.stderr.strip() == (
        "Cannot rehearse: The chair must be one of the council's members; 'Llama' is not."
    )  # no --offline hint: a key is not what is missing
    result = rehearse(tmp_path, *members, "--max-tokens", "500")
    assert result.returncode == 2 and "A token limit below 1,000" in result.stderr
    result = rehearse(tmp_path, *members, "--max-cost", "0")
    assert result.returncode == 2 and "A cost limit must be more than $0" in result.stderr
    result = rehearse(tmp_path, *members, "--max-tokens", "many")
    assert result.returncode == 2 and "invalid int value: 'many'" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "r.db").exists()  # nothing was convened


# --- in process: every mode, streaming, limits -------------------------------------------------------------


class Capture:
    """Stdout redirected to a file, as a test sees it: not a terminal, and every write kept apart."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return False

    @property
    def text(self) -> str:
        return "".join(self.writes)


def settings_for(tmp_path: Path, *, peer_ratings: bool = True) -> Settings:
    return Settings(
        discord_token="",
        database_url=f"sqlite:///{tmp_path / 'r.db'}",
        members_file=DEFAULT_MEMBERS_FILE,
        provider_timeout=10,
        log_level="WARNING",
        peer_ratings=peer_ratings,
    )


async def rehearse_here(
    tmp_path: Path, *argv: str, catalog: Catalog | None = None, peer_ratings: bool = True
) -> tuple[int, Capture]:
    out = Capture()
    code = await bot_rehearse.rehearse(
        bot_rehearse.parser().parse_args(list(argv)),
        settings_for(tmp_path, peer_ratings=peer_ratings),
        catalog or Catalog.load(DEFAULT_MEMBERS_FILE),
        out,
    )
    return code, out


THREE = ("Should cities ban cars?", "--members", "Claude, DeepSeek, Llama", "--offline")
SEATS = ["Claude (the Coordinator)", "DeepSeek (the Philosopher)", "Llama (the Realist)"]


def speakers(out: str) -> list[str]:
    return [line.removeprefix("── ").removesuffix(" ──") for line in out.splitlines() if line.startswith("── ")]


def blocks(out: str) -> list[str]:
    """The output's blocks (a reply with its header, a notice, a table), in order."""
    return [block.strip() for block in out.split("\n\n") if block.strip()]


def reply_writes(out: Capture, label: str) -> list[str]:
    """The writes that printed one member's reply: after its header, up to the one ending its line."""
    start = out.writes.index(f"\n── {label} ──\n") + 1
    end = next(n for n in range(start, len(out.writes)) if out.writes[n].endswith("\n"))
    return out.writes[start : end + 1]


async def stored_lines(tmp_path: Path, council_id: int = 1) -> list[CouncilMessage]:
    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        return await repo.transcript(db, council_id)
    finally:
        await db.close()


async def test_parallel_members_answer_each_round_in_seat_order(tmp_path: Path) -> None:
    code, out = await rehearse_here(tmp_path, *THREE, "--mode", "parallel", "--rounds", "2", peer_ratings=False)
    assert code == 0
    assert speakers(out.text) == SEATS * 2
    assert "🎼" not in out.text and "⚖️" not in out.text and "📊" not in out.text  # no ratings when they are off
    # Everyone in round 2 read round 1: each echoes another member's answer (which one was stored last depends
    # on which parallel answer came back last), never the topic.
    round_two = [b for b in blocks(out.text) if b.startswith("── ")][3:]
    for seat, block in zip(SEATS, round_two, strict=True):
        assert any(f"I heard {other} say" in block for other in SEATS if other != seat), block


async def test_conductor_rehearsal_shows_who_gives_the_floor_before_each_turn(tmp_path: Path) -> None:
    code, out = await rehearse_here(tmp_path, *THREE, "--mode", "conductor", "--rounds", "2", "--chair", "llama")
    assert code == 0, out.text
    assert "conductor, 2 round(s)" in out.text and "\nChair: Llama\n" in out.text
    shown = blocks(out.text)
    floors = [n for n, b in enumerate(shown) if b.startswith("🎼 ")]
    assert len(floors) == 6  # one before every turn: 3 members × 2 rounds
    for n in floors:
        chosen = shown[n].split("gives the floor to ", 1)[1].split(":", 1)[0]
        assert shown[n].startswith("🎼 Llama gives the floor to ") and "**" not in shown[n]  # the chair; plain text
        assert shown[n + 1].startswith(f"── {chosen} (")  # …and that member speaks next
    # The echo chair gives the floor to whoever waited longest: everyone speaks once per round.
    assert sorted(speakers(out.text)[:3]) == sorted(SEATS) and sorted(speakers(out.text)[3:]) == sorted(SEATS)


async def test_debate_rehearsal_marks_stances_and_settles_when_everyone_holds(tmp_path: Path) -> None:
    code, out = await rehearse_here(tmp_path, *THREE, "--mode", "debate", "--rounds", "4")
    assert code == 0, out.text
    replies = [b for b in blocks(out.text) if b.startswith("── ")]
    assert len(replies) == 6  # round 1 alone, round 2 revised or defended; no rounds 3 and 4
    assert not any("holds its position" in reply for reply in replies[:3])
    assert all(reply.endswith("\n-# 🛡️ holds its position") for reply in replies[3:])
    assert "STANCE" not in out.text  # the stance line became the marker
    assert "■ Council #1 concluded: Every member holds its position after round 2; the debate has settled." in out.text


async def test_review_rehearsal_ranks_the_answers_then_the_chair_sums_up(tmp_path: Path) -> None:
    code, out = await rehearse_here(tmp_path, *THREE, "--mode", "review", "--rounds", "1", "--chair", "DeepSeek")
    assert code == 0, out.text
    shown = blocks(out.text)
    table = next(n for n, b in enumerate(shown) if b.startswith("⚖️ Peer review: the answers ranked"))
    assert [b.split("\n", 1)[0] for b in shown[table - 3 : table]] == [f"── {seat} ──" for seat in SEATS]
    rows = shown[table].splitlines()
    assert set(rows[1]) == {"─"}  # the title is underlined
    ranked = [row.strip() for row in rows[2:] if row.strip()[:2] in ("1.", "2.", "3.")]
    assert len(ranked) == 3 and all("mean place" in row and "from 2 ranking(s)" in row for row in ranked)
    assert "**" not in shown[table]
    assert shown[table + 1].startswith("── DeepSeek (the Philosopher) ──\n*(offline echo, not an AI)*")  # synthesis
    assert shown[table + 2] == "■ Council #1 concluded: All 1 round(s) are done."
    # Peer ratings after the closing line, as in a thread: a table of members × criteria, then the reasons.
    board = shown[table + 3].splitlines()
    assert board[0] == "📊 Peer ratings #1 of council #1, at its end"
    assert board[1].split() == ["member", "clarity", "insight", "self-awareness", "overall", "ratings"]
    assert board[3].split() == ["Claude", "3.0", "3.0", "3.0", "3.0", "2"]
    assert sum(line.startswith("- ") and "not a judgement" in line for line in board) == 6


async def test_a_reply_streams_in_several_writes_and_ends_as_stored(tmp_path: Path) -> None:
    code, out = await rehearse_here(tmp_path, *THREE, "--rounds", "1", "--members", "Claude, DeepSeek")
    assert code == 0
    pieces = reply_writes(out, "DeepSeek (the Philosopher)")
    assert len(pieces) >= 3, pieces  # printed as it arrived, a few words at a time
    [_, deepseek] = [line for line in await stored_lines(tmp_path) if line.author_kind == "ai"]
    assert "".join(pieces) == deepseek.content + "\n"  # the printed reply is exactly the stored one
    assert f"\n── DeepSeek (the Philosopher) ──\n{deepseek.content}\n" in out.text


async def test_the_token_limit_concludes_the_rehearsal_with_its_note(tmp_path: Path) -> None:
    code, out = await rehearse_here(tmp_path, *THREE, "--rounds", "10", "--max-tokens", "1000")
    assert code == 0
    assert "Token limit: 1,000" in out.text
    closing = next(line for line in out.text.splitlines() if line.startswith("■ "))
    assert closing.startswith("■ Council #1 concluded: The council reached its limit of 1,000 tokens (")
    assert 1 <= len(speakers(out.text)) < 30
    assert "📊" not in out.text  # ratings would spend past the limit


async def test_models_stream_in_the_terminal_and_a_cut_reply_ends_with_its_note(
    tmp_path: Path, catalog: Catalog, provider_server: FakeProviderServer
) -> None:
    reply = "Parks cool the streets. They cost money every year. A pilot on one block would tell us more."
    provider_server.script("claude-test", reply, chunk_delay=0.03)
    provider_server.script("llama-test", reply, chunk_delay=0.03, cut_after=6)
    code, out = await rehearse_here(
        tmp_path,
        "Parks or parking?",
        "--members",
        "Claude, Llama",
        "--rounds",
        "1",
        catalog=catalog,
        peer_ratings=False,
    )
    assert code == 0, out.text
    assert "Claude (the Coordinator) [anthropic claude-test]" in out.text
    assert f"\n── Claude (the Coordinator) ──\n{reply}\n" in out.text
    pieces = reply_writes(out, "Claude (the Coordinator)")
    assert len(pieces) >= 3 and "".join(pieces) == reply + "\n", pieces
    # Llama's words stop where the stream broke; the cut note follows them, and no correction is needed.
    cut = out.text.split("── Llama (the Realist) ──\n", 1)[1]
    assert cut.startswith("Parks cool the streets. They cost\n\n✂️ cut off: Llama: reply cut off before the end\n")
    assert "⚠️ Llama could not finish its reply in round 1" in cut and CORRECTION not in out.text


async def test_a_final_reply_unlike_what_streamed_is_printed_again_under_a_note(catalog: Catalog) -> None:
    seat = Seat(catalog.get("Claude"), "the Coordinator")  # type: ignore[arg-type]
    out = Capture()
    publisher = TerminalPublisher(out, interval=0)
    same = await publisher.open_stream(None, seat)  # type: ignore[arg-type]
    await same.update("Parks cool ")
    await same.update("Parks cool the streets. ")
    await same.finish("Parks cool the streets.")
    assert out.text == "\n── Claude (the Coordinator) ──\nParks cool the streets.\n"
    assert out.writes[1:] == ["Parks cool", " the streets.", "\n"]  # only what is new, each time

    out.writes.clear()
    changed = await publisher.open_stream(None, seat)  # type: ignore[arg-type]
    await changed.update("Parks cool the streets.\nFLAG: other: ")
    await changed.finish("Parks cool the streets.")  # a self-flag line was taken out
    assert out.text == (
        "\n── Claude (the Coordinator) ──\nParks cool the streets.\nFLAG: other:"
        f"\n\n{CORRECTION}\nParks cool the streets.\n"
    )

    out.writes.clear()
    unseen = await publisher.open_stream(None, seat)  # type: ignore[arg-type]
    await unseen.finish("Parks cool", cut_note="the bot restarted")  # nothing printed before: printed whole
    assert out.text == "\n── Claude (the Coordinator) ──\nParks cool\n\n✂️ cut off: the bot restarted\n"


async def test_html_writes_the_transcript_page_with_every_reply_and_the_charts_beside_it(tmp_path: Path) -> None:
    page = tmp_path / "council.html"
    code, out = await rehearse_here(tmp_path, *THREE, "--rounds", "1", "--mode", "review", "--html", str(page))
    assert code == 0 and f"The HTML transcript is in {page}." in out.text
    charts = charts_beside(page)
    assert [name.rsplit("-", 1)[0] for name in charts] == ["council-ranking", "council-ratings"]
    for name, png in charts.items():
        assert png.startswith(b"\x89PNG") and f"A chart is in {page.with_name(name)}." in out.text
    assert page.read_text(encoding="utf-8").count("data:image/png;base64,") == 2  # both, drawn in the page too
    written = page.read_text(encoding="utf-8")
    replies = [
        line for line in await stored_lines(tmp_path) if line.author_kind == "ai" and line.visibility == "visible"
    ]
    assert len(replies) == 4  # three answers and the chair's synthesis
    for line in replies[:3]:  # each reply, its Discord markdown shown as formatting
        assert f"I am {line.author_name}, and I heard" in written
    assert "<em>(offline echo, not an AI)</em>" in written
    assert "Peer ratings #1" in written and "default-src 'none'" in written


def charts_beside(page: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(page.parent.glob(f"{page.stem}-*.png"))}
