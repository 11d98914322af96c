"""What a tool call adds to a member's turn: the engine's round trip (the call stored and shown, the MCP call, the
result stored and shown, the model asked again), and the MCP call alone in process and over loopback HTTP."""

from __future__ import annotations

import itertools
import statistics
import time
from pathlib import Path

from bench.report import Figure, percentile
from bench.rig import BenchMember, rig
from bot.tools.config import parse_tool_config
from bot.tools.hub import ToolHub
from tests.fakes.mcp_servers import build_server, serve_http

CALLER = BenchMember("Claude", "claude-bench", "anthropic", tools=("probe.add",))
ADD = [{"name": "probe__add", "arguments": {"a": 2, "b": 3}}]


async def tool_round_trip(workdir: Path, *, councils: int = 20, calls: int = 200) -> list[Figure]:
    with_call, without = await _turns(workdir, councils)
    in_process, over_http = await _mcp_calls(calls)
    overhead = [a - b for a, b in zip(with_call, without, strict=True)]
    detail = (
        f"a one-member, one-round council ({councils} of each, alternated, provider with no latency, SQLite file, "
        "governance gate on): wall time when the member calls one tool (an MCP server in process) minus when it "
        "answers at once; includes the second provider request over loopback HTTP"
    )
    return [
        Figure(
            "tool_call_overhead_ms_p50",
            statistics.median(overhead),
            "ms",
            50,
            extra={
                "p90": percentile(overhead, 90),
                "turn_with_call_ms_p50": statistics.median(with_call),
                "turn_without_ms_p50": statistics.median(without),
                "samples": len(overhead),
                "detail": detail,
            },
        ),
        Figure(
            "mcp_call_ms_p50",
            percentile(in_process, 50),
            "ms",
            extra={"p99": percentile(in_process, 99), "samples": len(in_process), "transport": "in process"},
        ),
        Figure(
            "mcp_call_ms_p50_http",
            percentile(over_http, 50),
            "ms",
            extra={
                "p99": percentile(over_http, 99),
                "samples": len(over_http),
                "transport": "streamable HTTP, loopback",
            },
        ),
    ]


async def _turns(workdir: Path, councils: int) -> tuple[list[float], list[float]]:
    hub = ToolHub(parse_tool_config({}, source="bench", base=workdir), builtin={"probe": build_server("probe")})
    with_call: list[float] = []
    without: list[float] = []
    tags = itertools.count(1)
    try:
        async with rig(workdir, seated=(CALLER,), engine_options={"tools": hub}) as r:
            for _ in range(2):  # warm: the connection, compiled SQL, imports
                r.server.script(CALLER.model, "Five.", tool_calls=ADD)
                council_id = await r.convene(next(tags), rounds=1)
                await r.publisher.wait_finished(council_id, timeout=30)
            for _ in range(councils):
                for calling, into in ((True, with_call), (False, without)):
                    r.server.script(CALLER.model, "Five.", tool_calls=ADD if calling else None)
                    council_id = await r.create(next(tags), rounds=1)
                    started = time.perf_counter()
                    await r.open(council_id)
                    finished = await r.publisher.wait_finished(council_id, timeout=30)
                    if not r.publisher.member_posts(council_id):
                        raise RuntimeError(f"council {council_id}: the member did not answer")
                    into.append((finished - started) * 1000)
    finally:
        await hub.close()
    return with_call, without


async def _mcp_calls(calls: int) -> tuple[list[float], list[float]]:
    measured: list[list[float]] = []
    async with serve_http() as url:
        for config, builtin in (
            ({}, {"probe": build_server("probe")}),
            ({"server": {"probe": {"url": url}}}, {}),
        ):
            hub = ToolHub(parse_tool_config(config, source="bench", base=Path(".")), builtin=builtin)
            try:
                [add] = [info for info in await hub.available(["probe.add"])]
                times = []
                for n in range(calls + 5):
                    started = time.perf_counter()
                    outcome = await hub.call(add, {"a": n, "b": 1})
                    if outcome.failed or outcome.text != str(n + 1):
                        raise RuntimeError(f"probe.add answered {outcome.text!r}")
                    if n >= 5:
                        times.append((time.perf_counter() - started) * 1000)
                measured.append(times)
            finally:
                await hub.close()
    return measured[0], measured[1]
