"""The benchmark package: its report format and exit status, and one small figure end to end.

No timing targets are asserted here: the machine running the tests may be slow or busy.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.figures import round_ratios
from bench.report import Figure, exit_status, failed, percentile
from bench.rig import BENCH_KEYS, prose_words
from bench.streaming import streaming_edits
from bench.tools import tool_round_trip

REQUIRED_KEYS = {"name", "value", "unit", "target", "ok"}


def test_a_figure_is_one_json_line_with_its_verdict() -> None:
    met = Figure("parallel_round_ratio", 1.0412345, "ratio", 1.10, extra={"wall_s": [0.8329]})
    missed = Figure("overhead_per_message_ms_p50", 7.5, "ms", 5)
    record = json.loads(met.line())
    assert record.keys() >= REQUIRED_KEYS
    assert record["value"] == 1.041 and record["target"] == 1.1 and record["ok"] is True
    assert record["cmp"] == "<=" and record["wall_s"] == [0.833]
    assert json.loads(missed.line())["ok"] is False
    assert Figure("concurrent_councils", 2400, "messages", 2400, cmp=">=").ok
    assert not Figure("concurrent_councils", 2399, "messages", 2400, cmp=">=").ok
    assert Figure("message_cycle_ms_p50", 3.0, "ms").ok  # reported, not judged
    assert not Figure("streaming_edits_per_message", 2, "edits", 6, valid=False).ok  # e.g. the text was not exact


def test_exit_status_is_1_when_any_target_is_missed_or_a_measurement_broke() -> None:
    met = Figure("a", 1.0, "ms", 2)
    assert exit_status([met]) == 0
    assert exit_status([met, Figure("b", 3.0, "ms", 2)]) == 1
    broken = failed("concurrency", RuntimeError("no councils finished"))
    record = json.loads(broken.line())
    assert record["ok"] is False and record["value"] is None and "no councils finished" in record["detail"]
    assert exit_status([met, broken]) == 1
    assert not Figure("c", math.nan, "ms", 2).ok


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    assert percentile(list(map(float, range(101))), 99) == 99.0
    assert math.isnan(percentile([], 50))


def test_an_unknown_group_is_refused() -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--only", "rounds,nonsense"])
    assert stopped.value.code == 2


async def test_round_ratios_run_the_real_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in BENCH_KEYS.items():
        monkeypatch.setenv(name, value)
    figures = await round_ratios(tmp_path, latencies=(0.02, 0.05), repeats=1)
    records = [json.loads(figure.line()) for figure in figures]
    assert [r["name"] for r in records] == ["parallel_round_ratio", "round_robin_ratio"]
    for record in records:
        assert record.keys() >= REQUIRED_KEYS
        assert record["value"] > 0 and record["unit"] == "ratio"
        assert isinstance(record["ok"], bool)
    parallel, round_robin = records
    assert parallel["ideal_s"] == 0.05 and round_robin["ideal_s"] == 0.07
    # Both members answered, one after the other or at once: never faster than the latencies allow.
    assert parallel["wall_s"][0] >= 0.05 and round_robin["wall_s"][0] >= 0.07


async def test_streaming_edits_run_the_real_bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in BENCH_KEYS.items():
        monkeypatch.setenv(name, value)
    assert len(prose_words(450).split()) == 450
    [figure] = await streaming_edits(tmp_path, tokens=450, seconds=1.5)
    record = json.loads(figure.line())
    assert record["name"] == "streaming_edits_per_message" and record["final_text_exact"] is True
    assert record["messages"] == 2 and record["value"] >= 1 and record["edits_total"] >= 2


async def test_tool_round_trip_runs_the_real_engine_and_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in BENCH_KEYS.items():
        monkeypatch.setenv(name, value)
    figures = await tool_round_trip(tmp_path, councils=2, calls=5)
    records = {record["name"]: record for record in (json.loads(figure.line()) for figure in figures)}
    assert set(records) == {"tool_call_overhead_ms_p50", "mcp_call_ms_p50", "mcp_call_ms_p50_http"}
    overhead = records["tool_call_overhead_ms_p50"]
    assert overhead["samples"] == 2 and overhead["turn_with_call_ms_p50"] > 0 and overhead["turn_without_ms_p50"] > 0
    assert records["mcp_call_ms_p50"]["samples"] == 5 and records["mcp_call_ms_p50_http"]["value"] > 0
