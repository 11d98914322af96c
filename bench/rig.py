"""What every figure runs on: the fake provider, a members catalog on it, a migrated database, the real engine.

The engine, storage, governance gate and provider clients are the production ones. Only the two ends are
stand-ins: the loopback fake provider (tests/fakes) and, for most figures, an in-process publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import itertools
import os
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.catalog import Catalog, MemberSpec
from bot.council.engine import ConveneLimits, CouncilEngine, CouncilPlan
from bot.council.publisher import NoHistory, PostProgress, Table
from bot.council.seats import Seat
from bot.governance.gate import GovernanceGate, Policy
from bot.governance.rules import RuleBook
from bot.providers.base import ChatRequest, Completion, ProviderClient, StreamDelta
from bot.providers.pool import ProviderPool
from bot.settings import Settings
from storage.database import Database
from storage.models import Council, Escalation
from storage.scratch import scratch_database
from tests.fakes.provider_server import Behaviour, FakeProviderServer, RecordedRequest, estimate_input_tokens

# Shaped like real keys (as the tests' keys are), set only inside `bench_keys()`.
BENCH_KEYS = {"BENCH_ANTHROPIC_KEY": "sk-ant-api03-" + "Bn8" * 20, "BENCH_OPENAI_KEY": "sk-proj-" + "Bq4" * 16}
TOPIC = "Should our city replace its parking lots with parks?"
GUILD_ID, CHANNEL_ID = 1, 2

# A member's reply about as long as a real one (175 words), on topic and harmless, so the governance
# rules read a realistic amount of text and nothing is held for review.
_PROSE = (
    "Parks cool the streets around them by a few degrees on hot afternoons.",
    "A parking lot earns the city a little money, but it also sends rain straight into the drains.",
    "Shops near a new park often see more people walking past their windows.",
    "Some residents still need to drive, so the change should come one lot at a time.",
    "The bus routes would have to run more often before many people give up their cars.",
    "Trees take years to grow, so the first summer in a new park is mostly grass and hope.",
    "We should count how full each lot is on a normal weekday before deciding anything.",
    "Children and older people gain the most from green space within a short walk.",
    "Maintenance costs money every year, while asphalt mostly costs money once.",
    "A pilot on one block would tell us more than another round of forecasts.",
    "Delivery vans and disabled drivers need places to stop, whatever we decide.",
    "Listening to the neighbours early avoids a fight after the bulldozers arrive.",
)


def prose_reply(model: str, call_number: int) -> str:
    """A deterministic reply of about 1,000 characters; the header keeps every reply unique."""
    start = call_number % len(_PROSE)
    sentences = [_PROSE[(start + i) % len(_PROSE)] for i in range(len(_PROSE))]
    return f"{model} reply #{call_number}. " + " ".join(sentences)


def prose_words(words: int) -> str:
    """Exactly `words` words of the same harmless prose, with a paragraph break every four sentences."""
    out: list[str] = []
    count = index = 0
    while count < words:
        sentence = _PROSE[index % len(_PROSE)].split()[: words - count]
        count += len(sentence)
        index += 1
        out.append(" ".join(sentence) + ("\n\n" if index % 4 == 0 else " "))
    return "".join(out).strip()


@dataclass(frozen=True, slots=True)
class BenchMember:
    name: str
    model: str
    provider: str = "openai"
    tools: tuple[str, ...] = ()  # "server.tool" / "server.*" of the bench's tool servers


def members(count: int = 4) -> tuple[BenchMember, ...]:
    """`count` members over both wire formats, as a real catalog mixes them."""
    pool = (
        BenchMember("Claude", "claude-bench", "anthropic"),
        BenchMember("DeepSeek", "deepseek-bench"),
        BenchMember("Llama", "llama-bench"),
        BenchMember("Qwen", "qwen-bench"),
        BenchMember("Haiku", "haiku-bench", "anthropic"),
        BenchMember("Mistral", "mistral-bench"),
        BenchMember("Gemma", "gemma-bench"),
        BenchMember("Phi", "phi-bench"),
    )
    return pool[:count]


def bench_catalog(base_url: str, seated: Sequence[BenchMember]) -> Catalog:
    """Like tests/conftest.py's make_catalog: every member on the fake server, with its key variable."""
    entries = []
    for member in seated:
        anthropic = member.provider == "anthropic"
        entries.append(
            {
                "name": member.name,
                "role": f"the {member.name} seat",
                "provider": member.provider,
                "model": member.model,
                "base_url": base_url if anthropic else f"{base_url}/v1",
                "api_key_env": "BENCH_ANTHROPIC_KEY" if anthropic else "BENCH_OPENAI_KEY",
                "persona": f"You are {member.name}, a careful and concise council member.",
                "avatar_url": f"https://example.org/{member.name.lower()}.png",
                "price_input_per_mtok": 1.0,
                "price_output_per_mtok": 5.0,
                **({"tools": list(member.tools)} if member.tools else {}),
            }
        )
    return Catalog.from_mapping({"member": entries}, source="bench catalog")


def bench_settings(workdir: Path, councils: int, **overrides: Any) -> Settings:
    """Settings of a bot the benchmark drives in the Discord harness: quiet logs, no peer ratings, and room for
    `councils` councils of one user in one server within the hour."""
    values: dict[str, Any] = {
        "discord_token": "unused",
        "database_url": "sqlite://",
        "members_file": workdir / "members.toml",
        "provider_timeout": 60,
        "log_level": "WARNING",
        "peer_ratings": False,
        "max_councils_per_user": councils,
        "max_councils_per_server": councils,
        "max_convenes_per_hour": councils,
    }
    return Settings(**{**values, **overrides})


@contextlib.contextmanager
def bench_keys() -> Iterator[None]:
    """Set the catalog's key variables for the run (the engine reads keys from the environment)."""
    saved = {name: os.environ.get(name) for name in BENCH_KEYS}
    os.environ.update(BENCH_KEYS)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# -- the fake provider, with per-call latency ------------------------------------------------------

DelayFor = Callable[[str, int | None, int], float | None]  # (model, council tag, nth call of it) -> seconds
_current: contextvars.ContextVar[RecordedRequest | None] = contextvars.ContextVar("bench_request", default=None)


@dataclass(slots=True)
class ServedCall:
    """What the fake provider saw of one call (the request body itself is dropped to save memory)."""

    model: str | None
    tag: int | None  # the council's bench tag, read from the topic in the prompt
    index: int  # how many calls this council made to this model before
    prompt_tokens: int  # the fake's own estimate: a quarter of the characters the model reads
    prompt_chars: int
    delay: float = 0.0
    record: RecordedRequest | None = None


def council_topic(tag: int) -> str:
    return f"[bench council {tag}] {TOPIC}"


def _tag_of(body: Any) -> int | None:
    if not isinstance(body, dict):
        return None
    system = body.get("system")
    if not isinstance(system, str):
        messages = body.get("messages") or [{}]
        system = messages[0].get("content") if isinstance(messages[0], dict) else None
    if not isinstance(system, str):
        return None
    start = system.find("[bench council ")
    if start < 0:
        return None
    digits = system[start + len("[bench council ") :].split("]", 1)[0]
    return int(digits) if digits.isdigit() else None


class BenchProviderServer(FakeProviderServer):
    """The tests' fake provider, plus: a latency chosen per call, realistic replies, and call summaries.

    Hooks two of the fake's internals: `_record` (to summarise each request) and `_next` (to choose the
    call's latency). Both run in the request's own handler task, so a context variable links them.
    """

    def __init__(self, *, delay_for: DelayFor | None = None, prose: bool = True) -> None:
        super().__init__()
        self.delay_for = delay_for
        self.prose = prose
        self.calls: list[ServedCall] = []
        self._per_council: defaultdict[tuple[int | None, str | None], int] = defaultdict(int)
        self._call_of: dict[int, ServedCall] = {}

    async def _record(self, request: web.Request) -> RecordedRequest:
        record = await super()._record(request)
        body = record.json
        tokens = chars = 0
        if isinstance(body, dict) and isinstance(body.get("messages"), list):
            tokens = estimate_input_tokens(body)
            chars = len(body.get("system") or "") if isinstance(body.get("system"), str) else 0
            chars += sum(len(m.get("content") or "") for m in body["messages"] if isinstance(m, dict))
        tag = _tag_of(body)
        key = (tag, record.model)
        call = ServedCall(record.model, tag, self._per_council[key], tokens, chars, record=record)
        self._per_council[key] += 1
        self.calls.append(call)
        self._call_of[id(record)] = call
        _current.set(record)
        return record

    def _next(self, model: str) -> Behaviour:
        behaviour = super()._next(model)
        record = _current.get()
        call = self._call_of.pop(id(record), None) if record is not None else None
        if record is not None:
            # The handler holds the body from here on; dropping our reference lets it go with the response.
            record.json = None
        if call is not None and self.delay_for is not None:
            delay = self.delay_for(model, call.tag, call.index)
            if delay is not None:
                behaviour = dataclasses.replace(behaviour, delay=delay)
        if call is not None:
            call.delay = behaviour.delay
        return behaviour

    def _reply_text(self, behaviour: Behaviour, model: str, body: dict[str, Any], calling: bool = False) -> str:
        if behaviour.reply is None and self.prose and not calling:
            return prose_reply(model, self._calls[model])
        return super()._reply_text(behaviour, model, body, calling)


# -- the publisher and the provider clients, with timing ------------------------------------------------


@dataclass(frozen=True, slots=True)
class PostRecord:
    at: float  # time.perf_counter() when the engine handed it over
    kind: str  # "member" or "notice"
    council_id: int
    author: str
    content: str


@dataclass
class BenchPublisher(NoHistory):
    """The engine's CouncilPublisher, in process: it records posts and finishes with their times."""

    posts: list[PostRecord] = field(default_factory=list)
    finished: dict[int, float] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1_000_000))
    _events: dict[int, asyncio.Event] = field(default_factory=dict)
    _counted: asyncio.Event = field(default_factory=asyncio.Event)
    _expect: int | None = None

    async def post_member_message(
        self,
        council: Council,
        seat: Seat,
        content: str,
        *,
        recovering: bool = False,
        shown: Sequence[int] = (),
        progress: PostProgress | None = None,
    ) -> list[int]:
        self.posts.append(PostRecord(time.perf_counter(), "member", council.id, seat.name, content))
        return [next(self._ids)]

    async def post_notice(
        self,
        council: Council,
        text: str,
        *,
        recovering: bool = False,
        shown: Sequence[int] = (),
        progress: PostProgress | None = None,
    ) -> list[int]:
        self.posts.append(PostRecord(time.perf_counter(), "notice", council.id, "system", text))
        return [next(self._ids)]

    async def post_table(self, council: Council, table: Table, *, recovering: bool = False) -> list[int]:
        self.posts.append(PostRecord(time.perf_counter(), "table", council.id, "system", table.as_text()))
        return [next(self._ids)]

    def progress(self, council: Council, speaking: tuple[str, ...]) -> None:
        return None

    # Moderation: the bench's replies raise no concerns, so these only complete the protocol.
    async def post_escalation(self, council: Council, escalation: Escalation, policy: Policy) -> tuple[int, int] | None:
        return None

    async def escalation_changed(self, council: Council, escalation: Escalation) -> None:
        return None

    async def delete_messages(self, council: Council, message_ids: list[int]) -> None:
        return None

    async def council_finished(self, council: Council) -> None:
        self.finished[council.id] = time.perf_counter()
        self._events.setdefault(council.id, asyncio.Event()).set()
        if self._expect is not None and len(self.finished) >= self._expect:
            self._counted.set()

    async def wait_finished(self, council_id: int, timeout: float) -> float:
        """Wait (at most `timeout` s) for the council to end; returns when it did."""
        await asyncio.wait_for(self._events.setdefault(council_id, asyncio.Event()).wait(), timeout)
        return self.finished[council_id]

    async def wait_count(self, count: int, timeout: float) -> None:
        """Wait (at most `timeout` s) until `count` councils have ended in all."""
        self._expect = count
        if len(self.finished) >= count:
            return
        self._counted.clear()
        await asyncio.wait_for(self._counted.wait(), timeout)

    def member_posts(self, council_id: int) -> list[PostRecord]:
        return [post for post in self.posts if post.kind == "member" and post.council_id == council_id]


class TimedClients:
    """Wraps the ProviderPool: every complete() call's (start, end) is kept, so it can be told apart
    from the engine's own time."""

    def __init__(self, clients: Callable[[MemberSpec], ProviderClient]) -> None:
        self._clients = clients
        self.calls: list[tuple[float, float]] = []

    def __call__(self, spec: MemberSpec) -> ProviderClient:
        return _TimedClient(self._clients(spec), self.calls)


class _TimedClient:
    def __init__(self, inner: ProviderClient, calls: list[tuple[float, float]]) -> None:
        self.name = inner.name
        self._inner = inner
        self._calls = calls

    async def complete(self, request: ChatRequest, *, timeout: float) -> Completion:
        started = time.perf_counter()
        try:
            return await self._inner.complete(request, timeout=timeout)
        finally:
            self._calls.append((started, time.perf_counter()))

    def stream(self, request: ChatRequest, *, timeout: float) -> AsyncIterator[StreamDelta | Completion]:
        return self._inner.stream(request, timeout=timeout)


# -- memory ---------------------------------------------------------------------------------------------


def rss_mb() -> float:
    """This process's resident set size, from /proc/self/status."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class RssSampler:
    """Samples RSS every `interval` s while it runs; `peak` is the highest seen."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peak = rss_mb()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RssSampler:
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self.peak = max(self.peak, rss_mb())

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_mb())
            await asyncio.sleep(self.interval)


# -- databases ------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def database(backend: str, workdir: Path) -> AsyncIterator[Database]:
    """A freshly migrated database: an SQLite file in `workdir`, or a schema of its own on the
    PostgreSQL server of TEST_POSTGRES_URL (dropped afterwards), as the tests use."""
    url = os.environ["TEST_POSTGRES_URL"] if backend != "sqlite" else None
    async with scratch_database(url, workdir) as db:
        yield db


# -- the whole rig --------------------------------------------------------------------------------------

UNLIMITED = ConveneLimits(running_per_user=10**6, running_per_server=10**6, convenes_per_user_per_hour=10**6)


@functools.cache
def rulebook() -> RuleBook:
    return RuleBook.load()


def count_sessions(db: Database) -> list[int]:
    """Count the database sessions opened from now on (every repository call opens one); returns the
    one-element list that holds the count."""
    counter = [0]
    opened = db.session

    def session(**options: Any) -> contextlib.AbstractAsyncContextManager[Any]:
        counter[0] += 1
        return opened(**options)

    db.session = session  # type: ignore[method-assign]
    return counter


@dataclass
class Rig:
    server: BenchProviderServer
    catalog: Catalog
    db: Database
    clients: TimedClients
    publisher: BenchPublisher
    engine: CouncilEngine
    sessions: list[int]  # database sessions opened so far (see count_sessions)

    async def convene(self, tag: int, *, rounds: int, mode: str = "round-robin") -> int:
        """Create and open a council of every catalog member; returns its id."""
        council_id = await self.create(tag, rounds=rounds, mode=mode)
        await self.open(council_id)
        return council_id

    async def create(self, tag: int, *, rounds: int, mode: str = "round-robin") -> int:
        """Create a council (state `starting`) tagged `tag` in its topic, seating every catalog member.

        The plan is built directly rather than through engine.plan(), so rounds beyond the convene
        limit (10) are possible: the prompt figure needs 300 turns.
        """
        seats = tuple(Seat(spec, spec.role) for spec in self.catalog)
        plan = CouncilPlan(topic=council_topic(tag), seats=seats, rounds=rounds, mode=mode)
        council = await self.engine.create(
            plan, guild_id=GUILD_ID, channel_id=CHANNEL_ID, convener_id=100 + tag, convener_name=f"Convener {tag}"
        )
        assert council.id is not None
        return council.id

    async def open(self, council_id: int) -> None:
        """Give the council its (pretend) thread; the engine starts running it."""
        await self.engine.open(council_id, thread_id=1_000_000 + council_id)


@contextlib.asynccontextmanager
async def rig(
    workdir: Path,
    *,
    backend: str = "sqlite",
    seated: Sequence[BenchMember] | None = None,
    delay_for: DelayFor | None = None,
    prose: bool = True,
    engine_options: dict[str, Any] | None = None,
    provider_timeout: float = 60.0,
) -> AsyncIterator[Rig]:
    """The fake provider, a catalog on it, a migrated database, the real provider pool on an aiohttp
    session made as the bot makes it, the governance gate, and a CouncilEngine without convene limits."""
    server = BenchProviderServer(delay_for=delay_for, prose=prose)
    await server.start()
    try:
        catalog = bench_catalog(server.base_url, seated or members())
        async with database(backend, workdir) as db, aiohttp.ClientSession() as session:
            clients = TimedClients(ProviderPool(session))
            publisher = BenchPublisher()
            engine = CouncilEngine(
                db,
                catalog,
                clients,
                publisher,
                provider_timeout=provider_timeout,
                gate=GovernanceGate(db, rulebook(), catalog, clients),
                limits=UNLIMITED,
                **(engine_options or {}),
            )
            try:
                yield Rig(server, catalog, db, clients, publisher, engine, count_sessions(db))
            finally:
                await engine.shutdown()
    finally:
        await server.stop()
