"""`python -m bot rehearse`: a council in the terminal, as a newcomer would first run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


def test_bad_arguments_are_explained(tmp_path: Path) -> None:
    result = rehearse(tmp_path, "Topic here", "--members", "Nobody", "--offline")
    assert result.returncode == 2 and "no member called 'Nobody'" in result.stderr
    result = rehearse(tmp_path, "Topic here", "--members", "Llama", "--mode", "chaos")
    assert result.returncode == 2 and "invalid choice" in result.stderr
