"""Drawing off the event loop: one chart at a time in a worker thread, within a time bound; a chart that cannot
be drawn is left out (the text it goes with stands alone) with a log line."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec

from bot.pictures.charts import Chart

log = logging.getLogger(__name__)

DRAW_SECONDS = 20.0
# One drawing thread: matplotlib's memory per chart is bounded, and charts queue instead of piling up.
_DRAWER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="charts")

P = ParamSpec("P")


async def draw(what: str, chart: Callable[P, Chart], *args: P.args, **kwargs: P.kwargs) -> Chart | None:
    """`chart(*args)` drawn in the drawing thread; None (logged) when it fails or takes too long."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(DRAW_SECONDS):
            return await loop.run_in_executor(_DRAWER, functools.partial(chart, *args, **kwargs))
    except Exception:  # a picture is never worth a lost message: the text goes out without it
        log.warning("Could not draw the %s chart; the text goes without it", what, exc_info=True)
        return None
