"""Waiting for the bot to finish reacting, and failing loudly when it broke while doing so.

discord.py runs every command, view callback and listener in its own task and only *logs* their
exceptions, so a broken command passes silently unless something watches logging. Bot code may
also spawn its own tasks; a task factory sees every task, even ones that finish between two
polls, so their exceptions are not lost either.
"""

from __future__ import annotations

import asyncio
import logging
import re
import traceback
from collections.abc import Callable

from .errors import SettleTimeout, UnhandledBotError

TaskFilter = Callable[["asyncio.Task[object]"], bool]

# Tasks discord.py starts that sleep for minutes by design (view timeouts, delete_after, ext.tasks
# loops). Waiting for them would hang every test.
_LONG_LIVED_CORO_SUFFIXES = ("__timeout_task_impl", ".inner_call", "Loop._loop")
# Connections to MCP tool servers live as long as the bot (bot/tools/connection.py and the SDK's own tasks under
# it), as do the tool servers tests run in-process: the council's turn waiting on a call is what settles.
_LONG_LIVED_CORO_PREFIXES = ("ServerConnection.", "mcp.", "uvicorn.", "starlette.", "sse_starlette.", "anyio.")
# Tasks that *are* the dispatch of an incoming event, as opposed to work the bot spawned.
_DISPATCH_TASK_PREFIXES = ("CommandTree-invoker", "discord.py: ", "discord-ui-")


def _coro_name(task: asyncio.Task[object]) -> str:
    coro = task.get_coro()
    return getattr(coro, "__qualname__", "") or ""


def is_long_lived(task: asyncio.Task[object]) -> bool:
    name = _coro_name(task)
    # anyio names the tasks it starts after the function they run, which is the telling name.
    started = task.get_name() if name == "TaskHandle._run_coro" else name
    return name.endswith(_LONG_LIVED_CORO_SUFFIXES) or started.startswith(_LONG_LIVED_CORO_PREFIXES)


def is_dispatch(task: asyncio.Task[object]) -> bool:
    return task.get_name().startswith(_DISPATCH_TASK_PREFIXES) or _coro_name(task).endswith("_run_event")


def describe(task: asyncio.Task[object]) -> str:
    return f"{task.get_name()} ({_coro_name(task)})"


class TaskTracker:
    """Records every task created on the loop while installed (via the loop's task factory)."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[object]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: object = None

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        previous = loop.get_task_factory()

        def factory(loop: asyncio.AbstractEventLoop, coro, **kwargs):  # type: ignore[no-untyped-def]
            task = previous(loop, coro, **kwargs) if previous else asyncio.Task(coro, loop=loop, **kwargs)
            # Tasks made outside any task are the test runner's own (each test and fixture runs
            # in one); everything the bot or discord.py starts is created from inside a task.
            if asyncio.current_task(loop) is not None:
                self.tasks.append(task)
            return task

        loop.set_task_factory(factory)
        self._loop, self._previous = loop, previous

    def uninstall(self) -> None:
        if self._loop is not None:
            self._loop.set_task_factory(self._previous)  # type: ignore[arg-type]
            self._loop = None

    def mark(self) -> int:
        return len(self.tasks)

    def since(self, mark: int) -> list[asyncio.Task[object]]:
        return self.tasks[mark:]


class ErrorCapture(logging.Handler):
    """ERROR records that mean the bot broke.

    That is any ERROR from the `discord` logger tree (discord.py, dpytest), and any logged
    exception (exc_info) from other loggers, e.g. a bot's own `tree.on_error` that logs and then
    answers "something went wrong". Records matching an allowance are set aside instead.
    """

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self.allowances: list[tuple[re.Pattern[str], list[logging.LogRecord]]] = []
        self._discord = logging.getLogger("discord")
        self._attached: list[logging.Logger] = []
        self._old_level: int | None = None

    def emit(self, record: logging.LogRecord) -> None:
        from_discord = record.name == "discord" or record.name.startswith("discord.")
        if not (from_discord or record.exc_info):
            return
        text = _formatter.format(record)
        for pattern, bucket in self.allowances:
            if pattern.search(text):
                bucket.append(record)
                return
        self.records.append(record)

    def install(self) -> None:
        # The root logger sees everything that propagates; a non-propagating `discord` logger
        # (some logging setups do that) gets the handler directly.
        self._attached = [logging.getLogger()] + ([] if self._discord.propagate else [self._discord])
        for logger in self._attached:
            logger.addHandler(self)
        if self._discord.getEffectiveLevel() > logging.ERROR:
            self._old_level = self._discord.level
            self._discord.setLevel(logging.ERROR)

    def uninstall(self) -> None:
        for logger in self._attached:
            logger.removeHandler(self)
        if self._old_level is not None:
            self._discord.setLevel(self._old_level)

    def take(self) -> list[logging.LogRecord]:
        records, self.records = self.records, []
        return records


_formatter = logging.Formatter("%(name)s: %(message)s")


def raise_if_failed(
    capture: ErrorCapture, tasks: list[asyncio.Task[object]], checked: set[int], *, check_tasks: bool = True
) -> None:
    """Raise UnhandledBotError for captured log records and for tasks that died unobserved.

    A task's exception counts only if nobody retrieved it (awaited the task, gathered it, called
    .exception()): that is asyncio's own "exception was never retrieved", without waiting for GC.
    """
    problems = [_formatter.format(record) for record in capture.take()]
    for task in tasks if check_tasks else ():
        if id(task) in checked or not task.done():
            continue
        checked.add(id(task))
        if task.cancelled() or not getattr(task, "_log_traceback", True):
            continue
        error = task.exception()  # marks it retrieved: asyncio won't warn about it again at GC
        if error is not None:
            trace = "".join(traceback.format_exception(error))
            problems.append(f"task {describe(task)} died with an exception nobody retrieved:\n{trace}")
    if problems:
        raise UnhandledBotError("the bot raised while handling a Discord event:\n\n" + "\n\n".join(problems))


async def settle(
    tracker: TaskTracker,
    mark: int,
    *,
    timeout: float,
    background: bool = True,
    ignore: TaskFilter | None = None,
) -> list[asyncio.Task[object]]:
    """Wait until every task created since `mark` is done; return those tasks.

    With background=False only the dispatch tasks (command invoker, listeners, view callbacks)
    are awaited; work they spawned keeps running (await `settle` again later).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    current = asyncio.current_task()
    while True:
        # Let callbacks scheduled by the dispatch run, so their tasks exist before we look.
        await asyncio.sleep(0)
        pending = [
            task
            for task in tracker.since(mark)
            if task is not current
            and not task.done()
            and not is_long_lived(task)
            and not (ignore and ignore(task))
            and (background or is_dispatch(task))
        ]
        if not pending:
            return tracker.since(mark)
        remaining = deadline - loop.time()
        if remaining <= 0:
            names = ", ".join(describe(task) for task in pending)
            raise SettleTimeout(f"still running after {timeout}s: {names}")
        # Poll rather than wait for completion: a task may become ignorable (e.g. start waiting for a
        # person) without finishing.
        await asyncio.wait(pending, timeout=min(remaining, 0.05))
