"""The MCP client layer (bot/tools/): the servers file, listing, calls over stdio, streamable HTTP and
in-process, and every way a call can fail without the hub raising; then the text a member reads of a result,
with property tests over arbitrary Unicode. Real MCP servers throughout (tests/fakes/mcp_servers.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path

import mcp_types
import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.tools.config import ServerConfig, ToolConfig, ToolConfigError, load_tool_config
from bot.tools.connection import ServerUnavailable
from bot.tools.hub import ToolHub, ToolInfo, exposed_names
from bot.tools.results import RESULT_CAP, TOOL_READING_RULE, TOOL_RESULT_TAG, cap, frame_result, result_text
from tests.fakes.mcp_servers import (
    FAIL_MESSAGE,
    POSE,
    WEATHER_TOOL,
    build_liar,
    build_server,
    free_socket,
    serve_http,
)

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cr3t-Zq9Zq9Zq9"
BACKOFF = 0.5
NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tools.toml"
    path.write_text(text, encoding="utf-8")
    return path


def stdio_entry(name: str, *, timeout: float = 5, extra: str = "") -> str:
    return (
        f'[server.{name}]\ncommand = {json.dumps(sys.executable)}\nargs = ["-m", "tests.fakes.mcp_servers"]\n'
        f"cwd = {json.dumps(str(ROOT))}\ntimeout = {timeout}\n{extra}\n"
    )


def url_entry(name: str, url: str, *, timeout: float = 5, extra: str = "") -> str:
    return f"[server.{name}]\nurl = {json.dumps(url)}\ntimeout = {timeout}\n{extra}\n"


@asynccontextmanager
async def open_hub(
    tmp_path: Path, text: str = "", *, inproc: bool = True, backoff: float = BACKOFF
) -> AsyncIterator[ToolHub]:
    config = load_tool_config(write_config(tmp_path, text))
    hub = ToolHub(config, builtin={"inproc": build_server()} if inproc else None, backoff=backoff)
    await hub.start()
    try:
        yield hub
    finally:
        await hub.close()


async def tool(hub: ToolHub, server: str, name: str) -> ToolInfo:
    return next(info for info in await hub.tools(server) if info.name == name)


def closed_port() -> int:
    """A loopback port nothing listens on (bound for a moment to learn a free one)."""
    with free_socket() as sock:
        return sock.getsockname()[1]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- the servers file ----------------------------------------------------------------------------------------


def test_a_good_file_gives_every_server_as_written(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        """
[server.search]
command = "python"
args = ["-m", "some_server"]
env = { MODE = "fast" }
env_from = ["SEARCH_KEY"]
cwd = "servers"
timeout = 20

[server.search.policy]
"*" = "notify"
delete_page = "hold"

[server.docs-2]
url = "https://example.com/mcp"
headers_from = { Authorization = "DOCS_TOKEN" }

[server.local]
url = "http://127.0.0.1:8000/mcp"
""",
    )
    config = load_tool_config(path)
    search, docs, local = config.servers["search"], config.servers["docs-2"], config.servers["local"]
    assert (search.transport, search.command, search.args, search.timeout) == (
        "stdio",
        "python",
        ("-m", "some_server"),
        20,
    )
    assert (dict(search.env), search.env_from, search.cwd) == ({"MODE": "fast"}, ("SEARCH_KEY",), tmp_path / "servers")
    assert (docs.transport, docs.url, dict(docs.headers_from), docs.timeout) == (
        "http",
        "https://example.com/mcp",
        {"Authorization": "DOCS_TOKEN"},
        30,
    )
    assert local.where == "http: 127.0.0.1:8000"
    assert search.policy_for("delete_page", read_only=True) == "hold"
    assert search.policy_for("anything", read_only=False) == "notify"


def test_a_missing_file_configures_no_server(tmp_path: Path) -> None:
    assert load_tool_config(tmp_path / "absent.toml") == ToolConfig()


def test_policy_defaults_trust_only_tools_that_say_they_read() -> None:
    plain = ServerConfig("s", command="x")
    assert plain.policy_for("lookup", read_only=True) == "allow"
    assert plain.policy_for("delete", read_only=False) == "hold"
    named = ServerConfig("s", command="x", policy={"delete": "notify"})
    assert named.policy_for("delete", read_only=False) == "notify"
    assert named.policy_for("lookup", read_only=False) == "hold"
    assert ServerConfig("s", command="x", policy={"*": "hold"}).policy_for("lookup", read_only=True) == "hold"


INVALID = [
    ("[server", "is not valid TOML"),
    ("servers = 1", "unknown top-level key(s): servers"),
    ("[server.Search]\ncommand = 'x'", "server 'Search': a server's name is 1-24"),
    (f"[server.{'a' * 25}]\ncommand = 'x'", "a server's name is 1-24"),
    ("[server.s]\ntimeout = 5", "server 's' needs either `command`"),
    ("[server.s]\ncommand = 'x'\nurl = 'https://e.com'", "server 's' needs either `command`"),
    ("[server.s]\ncommand = 'x'\ncolour = 'red'", "server 's' has unknown field(s): colour"),
    ("[server.s]\ncommand = ''", "`command` must be a non-empty string"),
    ("[server.s]\ncommand = 'x'\nargs = 'a b'", "`args` must be a list of strings"),
    ("[server.s]\ncommand = 'x'\ntimeout = 0", "`timeout` must be a number of seconds from 1 to 300"),
    ("[server.s]\ncommand = 'x'\ntimeout = 301", "from 1 to 300"),
    ("[server.s]\ncommand = 'x'\ntimeout = true", "from 1 to 300"),
    (
        "[server.s]\ncommand = 'x'\npolicy = { delete = 'maybe' }",
        "the policy for 'delete' must be one of allow, notify, hold",
    ),
    ("[server.s]\ncommand = 'x'\npolicy = 'allow'", "`policy` must be a table"),
    ("[server.s]\ncommand = 'x'\nenv_from = ['not a name']", "`env_from` must be a list of variable names"),
    ("[server.s]\ncommand = 'x'\nheaders_from = { A = 'B' }", "only apply to a `url` server"),
    ("[server.s]\nurl = 'https://e.com/mcp'\nargs = []", "only apply to a `command` server"),
    ("[server.s]\nurl = 'ftp://e.com/mcp'", "`url` must be an https URL"),
    ("[server.s]\nurl = 'http://example.com/mcp'", "must use https (plain http only for 127.0.0.1 or localhost)"),
    (
        "[server.s]\nurl = 'https://e.com'\nheaders_from = { 'Bad Header' = 'X' }",
        "'Bad Header' is not an HTTP header name",
    ),
    (
        "[server.s]\nurl = 'https://e.com'\nheaders_from = { Authorization = 'Bearer abc' }",
        "must name the environment variable",
    ),
]


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_each_invalid_file_is_refused_with_a_message_naming_file_and_server(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(ToolConfigError) as caught:
        load_tool_config(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        f"[server.s]\ncommand = 'x'\nenv = {{ 'bad name' = '{SECRET}' }}",
        "[server.s]\ncommand = 'x'\nenv = { TOKEN = 5 }",
        f"[server.s]\nurl = 'https://user:{SECRET}@example.com/mcp'",
        f"[server.s]\nurl = 'http://example.com/mcp?key={SECRET}'",
        f"[server.s]\nurl = 'https://example.com/mcp?key={SECRET}'\nheaders_from = {{ Authorization = '{SECRET}' }}",
    ],
)
def test_errors_never_quote_a_secret(tmp_path: Path, text: str) -> None:
    with pytest.raises(ToolConfigError) as caught:
        load_tool_config(write_config(tmp_path, text))
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)


def test_reprs_name_variables_never_their_values(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        f"[server.s]\ncommand = 'x'\nenv = {{ TOKEN = '{SECRET}' }}\n"
        f"[server.w]\nurl = 'https://example.com/mcp?key={SECRET}'\nheaders_from = {{ Authorization = 'W_TOKEN' }}\n",
    )
    config = load_tool_config(path)
    for shown in (repr(config), str(config), repr(config.servers["s"]), str(config.servers["w"]), f"{config}"):
        assert SECRET not in shown
    assert "TOKEN" in repr(config.servers["s"]) and "W_TOKEN" in repr(config.servers["w"])


# -- names the models see ----------------------------------------------------------------------------------


def test_exposed_names_are_made_valid_and_kept_unique() -> None:
    names = exposed_names("web", ["search", WEATHER_TOOL, "get_weather_today", "a" * 80, "a" * 81, "ünïcode"])
    assert names["search"] == "web__search"
    assert names["get_weather_today"] == "web__get_weather_today"  # a valid name keeps itself
    assert names[WEATHER_TOOL].startswith("web__get_weather_") and names[WEATHER_TOOL] != "web__get_weather_today"
    assert names["ünïcode"] == "web___n_code"
    assert len(names["a" * 80]) == 64 and names["a" * 80] != names["a" * 81]
    assert all(NAME.match(name) for name in names.values())
    assert exposed_names("web", [WEATHER_TOOL]) == {WEATHER_TOOL: "web__get_weather_today"}


@given(st.lists(st.text(max_size=90), unique=True, max_size=12), st.from_regex(r"[a-z0-9_-]{1,24}", fullmatch=True))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_exposed_names_always_valid_and_distinct(tool_names: list[str], server: str) -> None:
    names = exposed_names(server, tool_names)
    assert all(NAME.match(name) for name in names.values())
    assert len(set(names.values())) == len(tool_names)


def test_a_spec_always_has_an_object_schema_and_a_sane_description() -> None:
    info = ToolInfo("s", "t", "s__t", None, "é" * 2000, {"type": "string"}, False, False, True, "hold")
    spec = info.spec()
    assert spec.name == "s__t" and spec.input_schema == {"type": "object", "properties": {}}
    assert len(spec.description) <= 1024
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    assert ToolInfo("s", "t", "s__t", "Title", "", schema, True, True, False, "allow").spec().input_schema == schema
    assert ToolInfo("s", "t", "s__t", "Title", "", schema, True, True, False, "allow").spec().description == "Title"


# -- listing and calling --------------------------------------------------------------------------------------


async def test_listing_in_process_maps_hints_policy_and_names(tmp_path: Path) -> None:
    async with asyncio.timeout(20), open_hub(tmp_path) as hub:
        assert hub.status()["inproc"] == "not started"
        tools = {info.name: info for info in await hub.tools("inproc")}
        assert hub.status()["inproc"] == "connected"
        add, echo, grow = tools["add"], tools["echo"], tools["grow"]
        assert (add.exposed_name, add.read_only, add.destructive, add.policy) == ("inproc__add", True, False, "allow")
        assert (echo.read_only, echo.destructive, echo.policy) == (False, True, "hold")
        assert (grow.destructive, grow.idempotent) == (False, True)
        assert tools[WEATHER_TOOL].exposed_name == "inproc__get_weather_today"
        spec = add.spec()
        assert spec.description == "Add two integers."
        assert spec.input_schema["type"] == "object" and set(spec.input_schema["properties"]) == {"a", "b"}
        assert all(NAME.match(info.exposed_name) for info in tools.values())


async def test_available_resolves_patterns_and_skips_what_is_down(tmp_path: Path) -> None:
    port = closed_port()
    text = url_entry("down", f"http://127.0.0.1:{port}/mcp")
    async with asyncio.timeout(20), open_hub(tmp_path, text) as hub:
        found = await hub.available(["inproc.add", "inproc.echo", "inproc.add", "down.*", "nowhere.x", "inproc.nope"])
        assert [info.exposed_name for info in found] == ["inproc__add", "inproc__echo"]
        assert len(await hub.available(["inproc.*"])) == len(await hub.tools("inproc"))
        assert hub.status()["down"].startswith("unavailable: ")
        with pytest.raises(ServerUnavailable):
            await hub.tools("down")
        with pytest.raises(KeyError):
            await hub.tools("nowhere")


async def test_calls_in_process_over_stdio_and_over_http(tmp_path: Path) -> None:
    async with asyncio.timeout(40), serve_http() as url:
        text = stdio_entry("child") + url_entry("web", url)
        async with open_hub(tmp_path, text) as hub:
            for server in ("inproc", "child", "web"):
                outcome = await hub.call(await tool(hub, server, "add"), {"a": 2, "b": 3})
                assert (outcome.text, outcome.is_error, outcome.failed, outcome.cut) == ("5", False, None, False)
                echoed = await hub.call(await tool(hub, server, "echo"), {"text": "héllo 👍🏽"})
                assert echoed.text == "héllo 👍🏽" and echoed.duration_ms >= 0
                assert (await hub.call(await tool(hub, server, WEATHER_TOOL), {})).text == "sunny"
            assert set(hub.status().values()) == {"connected"}


async def test_a_tool_error_is_a_result_not_a_failure(tmp_path: Path) -> None:
    async with asyncio.timeout(20), open_hub(tmp_path, stdio_entry("child")) as hub:
        for server in ("inproc", "child"):
            outcome = await hub.call(await tool(hub, server, "fail"), {})
            assert (outcome.is_error, outcome.failed) == (True, None)
            assert FAIL_MESSAGE in outcome.text
        bad = await hub.call(await tool(hub, "inproc", "add"), {"a": "not a number"})
        assert bad.is_error and bad.failed is None


async def test_protocol_errors_are_errors_and_keep_the_connection(tmp_path: Path) -> None:
    config = load_tool_config(write_config(tmp_path, ""))
    hub = ToolHub(config, builtin={"inproc": build_server(), "liar": build_liar()}, backoff=BACKOFF)
    async with asyncio.timeout(20):
        try:
            invalid = await hub.call(await tool(hub, "liar", "count"), {})
            assert (invalid.failed, invalid.is_error) == ("error", True)
            assert hub.status()["liar"] == "connected"
            add = await tool(hub, "inproc", "add")
            gone = await hub.call(replace(add, name="vanished"), {})
            assert gone.failed == "error" and "no longer offers 'vanished'" in gone.text
            nowhere = await hub.call(replace(add, server="nowhere"), {})
            assert nowhere.failed == "error"
            assert (await hub.call(add, {"a": 2, "b": 2})).text == "4"
        finally:
            await hub.close()


async def test_a_call_past_its_timeout_is_abandoned_and_the_next_one_works(tmp_path: Path) -> None:
    async with asyncio.timeout(40), serve_http() as url:
        text = stdio_entry("child") + url_entry("web", url, timeout=1)
        async with open_hub(tmp_path, text) as hub:
            for server, timeout in (("inproc", 0.5), ("child", 0.5), ("web", None)):
                started = time.monotonic()
                outcome = await hub.call(await tool(hub, server, "slow"), {"seconds": 30}, timeout=timeout)
                assert outcome.failed == "timeout" and outcome.is_error
                assert time.monotonic() - started < 3
                assert (await hub.call(await tool(hub, server, "add"), {"a": 1, "b": 1})).text == "2"
                assert hub.status()[server] == "connected"


async def test_servers_that_are_not_there_are_unavailable_quickly_and_say_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOWN_TOKEN", SECRET)
    port = closed_port()
    text = (
        url_entry("down", f"http://127.0.0.1:{port}/mcp", extra='headers_from = { Authorization = "DOWN_TOKEN" }')
        + "[server.nocmd]\ncommand = '/no/such/command/anywhere'\ntimeout = 5\n"
        + f"[server.hush]\ncommand = {json.dumps(sys.executable)}\nargs = ['-c', 'import time; time.sleep(60)']\ntimeout = 1\n"
        + url_entry("unset", "https://example.com/mcp", extra='headers_from = { Authorization = "UNSET_TOKEN_X" }')
    )
    async with asyncio.timeout(30), open_hub(tmp_path, text, inproc=False, backoff=60) as hub:
        add = ToolInfo("down", "add", "down__add", None, "", {"type": "object"}, True, False, False, "allow")
        for server, reason in (
            ("down", "could not connect"),
            ("nocmd", "command not found"),
            ("hush", "no answer in time"),  # it runs, but never speaks MCP
            ("unset", "environment variable UNSET_TOKEN_X is not set"),
        ):
            started = time.monotonic()
            outcome = await hub.call(replace(add, server=server), {"a": 1, "b": 2})
            assert outcome.failed == "unavailable" and outcome.is_error, (server, outcome)
            assert reason in outcome.text and time.monotonic() - started < 8
            assert hub.status()[server] == f"unavailable: {reason}"
            started = time.monotonic()
            again = await hub.call(replace(add, server=server), {"a": 1, "b": 2})
            assert again.failed == "unavailable" and time.monotonic() - started < 0.5  # refused, not tried again
            assert await hub.available([f"{server}.*"]) == []
        assert SECRET not in json.dumps(hub.status())


async def test_headers_from_sends_the_token_and_a_refusal_says_its_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("GOOD_TOKEN", f"Bearer {SECRET}")
    monkeypatch.setenv("BAD_TOKEN", "Bearer wrong")
    async with asyncio.timeout(20), serve_http(token=SECRET) as url:
        text = url_entry("good", url, extra='headers_from = { Authorization = "GOOD_TOKEN" }') + url_entry(
            "bad", url, extra='headers_from = { Authorization = "BAD_TOKEN" }'
        )
        async with open_hub(tmp_path, text, inproc=False) as hub:
            assert (await hub.call(await tool(hub, "good", "add"), {"a": 1, "b": 2})).text == "3"
            assert await hub.available(["bad.*"]) == []
            assert hub.status() == {"good": "connected", "bad": "unavailable: HTTP status 401"}
            assert SECRET not in repr(hub.status())
    assert SECRET not in caplog.text  # in no log line at any level, the SDK's and httpx's included


async def test_a_killed_stdio_server_is_made_again_after_the_pause(tmp_path: Path) -> None:
    async with asyncio.timeout(30), open_hub(tmp_path, stdio_entry("child")) as hub:
        pid_tool, add = await tool(hub, "child", "pid"), await tool(hub, "child", "add")
        first = int((await hub.call(pid_tool, {})).text)
        os.kill(first, signal.SIGKILL)
        lost = await hub.call(add, {"a": 1, "b": 2})
        assert lost.failed == "unavailable", lost
        assert (await hub.call(add, {"a": 1, "b": 2})).failed == "unavailable"  # within the pause
        assert hub.status()["child"].startswith("unavailable: ")
        await asyncio.sleep(BACKOFF + 0.1)
        assert (await hub.call(add, {"a": 1, "b": 2})).text == "3"
        second = int((await hub.call(pid_tool, {})).text)
        assert second != first and alive(second)


async def test_an_http_server_that_stops_and_comes_back_is_reached_again(tmp_path: Path) -> None:
    async with asyncio.timeout(40), AsyncExitStack() as stack:
        serving = AsyncExitStack()
        url = await serving.enter_async_context(serve_http())
        stack.push_async_callback(serving.aclose)
        hub = await stack.enter_async_context(open_hub(tmp_path, url_entry("web", url), inproc=False))
        add = await tool(hub, "web", "add")
        assert (await hub.call(add, {"a": 1, "b": 2})).text == "3"
        await serving.aclose()
        assert (await hub.call(add, {"a": 1, "b": 2})).failed == "unavailable"
        assert hub.status()["web"].startswith("unavailable: ")
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        async with serve_http(port):
            await asyncio.sleep(BACKOFF + 0.1)
            assert (await hub.call(add, {"a": 1, "b": 2})).text == "3"
            await hub.close()  # before the server it talks to


async def test_a_big_result_is_cut_with_a_note(tmp_path: Path) -> None:
    async with asyncio.timeout(20), open_hub(tmp_path) as hub:
        outcome = await hub.call(await tool(hub, "inproc", "big"), {"n": 20_000})
        assert outcome.cut and outcome.chars == 20_000 and len(outcome.text) <= RESULT_CAP
        shown = outcome.text.count("x")
        assert outcome.text.endswith(f"[… result cut: showed {shown:,} of 20,000 characters]")
        small = await hub.call(await tool(hub, "inproc", "big"), {"n": 10})
        assert (small.text, small.cut, small.chars) == ("x" * 10, False, 10)


async def test_an_image_is_described_not_pasted(tmp_path: Path) -> None:
    async with asyncio.timeout(20), open_hub(tmp_path) as hub:
        outcome = await hub.call(await tool(hub, "inproc", "image"), {})
        assert outcome.text == "[image image/png, 70 bytes]"


async def test_a_result_posing_as_a_moderator_is_framed_harmlessly(tmp_path: Path) -> None:
    async with asyncio.timeout(20), open_hub(tmp_path, stdio_entry("child")) as hub:
        outcome = await hub.call(await tool(hub, "child", "pose"), {})
        assert outcome.text == POSE
        framed = frame_result("child", "pose", outcome.text, outcome.is_error)
        assert framed.count("<") == 2 and framed.count(">") == 2
        assert framed.startswith('<tool_result server="child" tool="pose">\n') and framed.endswith("\n</tool_result>")
        assert "<moderator_note" not in framed and "<human" not in framed
        assert unescape(body(framed)) == POSE


async def test_meta_reaches_the_server_and_arguments_cannot_forge_it(tmp_path: Path) -> None:
    async with (
        asyncio.timeout(30),
        serve_http() as url,
        open_hub(tmp_path, stdio_entry("child") + url_entry("web", url)) as hub,
    ):
        for server in ("inproc", "child", "web"):
            whoami = await tool(hub, server, "whoami")
            told = await hub.call(whoami, {"_meta": {"ai-council/council": 666}}, meta={"ai-council/council": 42})
            assert json.loads(told.text) == {"ai-council/council": 42}
            untold = await hub.call(whoami, {"_meta": {"ai-council/council": 666}, "note": "x"})
            assert json.loads(untold.text) == {}


async def test_a_stdio_child_gets_only_the_variables_it_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("COUNCIL_TEST_SECRET", SECRET)
    monkeypatch.setenv("COUNCIL_TEST_SHARED", "shared-value")
    extra = 'env = { COUNCIL_TEST_LITERAL = "literal" }\nenv_from = ["COUNCIL_TEST_SHARED"]'
    async with asyncio.timeout(20), open_hub(tmp_path, stdio_entry("child", extra=extra)) as hub:
        env = await tool(hub, "child", "env")
        assert (await hub.call(env, {"name": "COUNCIL_TEST_SECRET"})).text == "<unset>"
        assert (await hub.call(env, {"name": "COUNCIL_TEST_SHARED"})).text == "shared-value"
        assert (await hub.call(env, {"name": "COUNCIL_TEST_LITERAL"})).text == "literal"
        assert SECRET not in repr(hub.status())
    assert SECRET not in caplog.text


async def test_close_stops_the_child_and_may_be_called_twice(tmp_path: Path) -> None:
    async with asyncio.timeout(30), open_hub(tmp_path, stdio_entry("child")) as hub:
        pid_tool = await tool(hub, "child", "pid")
        pid = int((await hub.call(pid_tool, {})).text)
        assert alive(pid)
        await hub.close()
        await hub.close()
        assert not alive(pid)
        after = await hub.call(pid_tool, {})
        assert after.failed == "unavailable"
        await hub.start()  # usable again, from a fresh child
        assert int((await hub.call(pid_tool, {})).text) != pid


async def test_a_changed_tool_list_is_listed_again(tmp_path: Path) -> None:
    async with (
        asyncio.timeout(30),
        serve_http() as url,
        open_hub(tmp_path, stdio_entry("child") + url_entry("web", url)) as hub,
    ):
        for server in ("inproc", "child", "web"):
            assert "grown" not in {info.name for info in await hub.tools(server)}
            await hub.call(await tool(hub, server, "grow"), {})
            while "grown" not in {info.name for info in await hub.tools(server)}:
                await asyncio.sleep(0.02)
            assert (await hub.call(await tool(hub, server, "grown"), {})).text == "grown"


async def test_a_listing_is_kept_until_it_is_old(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = build_server()
    hub = ToolHub(ToolConfig(), builtin={"quiet": server})
    async with asyncio.timeout(20):
        try:
            assert "unannounced" not in {info.name for info in await hub.tools("quiet")}
            server.add_tool(lambda: "new", name="unannounced")  # no change announced
            assert "unannounced" not in {info.name for info in await hub.tools("quiet")}
            monkeypatch.setattr("bot.tools.connection.LIST_TTL", 0.0)  # five minutes later
            assert "unannounced" in {info.name for info in await hub.tools("quiet")}
        finally:
            await hub.close()


# -- results as text -------------------------------------------------------------------------------------------


def test_every_kind_of_content_becomes_text() -> None:
    result = mcp_types.CallToolResult(
        content=[
            mcp_types.TextContent(text="first"),
            mcp_types.ImageContent(data="A" * 16_384, mime_type="image/jpeg"),
            mcp_types.AudioContent(data="A" * 400, mime_type="audio/wav\n<x>"),
            mcp_types.EmbeddedResource(resource=mcp_types.TextResourceContents(uri="file:///notes.md", text="notes")),
            mcp_types.EmbeddedResource(
                resource=mcp_types.BlobResourceContents(uri="file:///a.pdf", blob="A" * 4, mime_type="application/pdf")
            ),
            mcp_types.ResourceLink(uri="https://example.com/page", name="page"),
        ],
        structured_content={"ignored": True},
    )
    assert result_text(result).split("\n") == [
        "first",
        "[image image/jpeg, 12 KB]",
        "[audio of unknown type, 300 bytes]",
        "[resource file:///notes.md]",
        "notes",
        "[resource file:///a.pdf application/pdf, 3 bytes]",
        "[resource https://example.com/page]",
    ]


def test_structured_content_is_shown_only_without_text() -> None:
    structured = mcp_types.CallToolResult(content=[], structured_content={"temp": 21, "city": "Zürich"})
    assert result_text(structured) == '{"temp":21,"city":"Zürich"}'
    assert result_text(mcp_types.CallToolResult(content=[])) == "[the tool returned nothing]"


def test_the_reading_rule_names_the_block() -> None:
    assert f"<{TOOL_RESULT_TAG} " in TOOL_READING_RULE and f"</{TOOL_RESULT_TAG}>" in TOOL_READING_RULE


_REFERENCE = re.compile(r"&(amp|lt|gt|quot|#x[0-9A-F]+);")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"'}


def unescape(text: str) -> str:
    return _REFERENCE.sub(lambda m: _NAMED.get(m[1]) or chr(int(m[1][2:], 16)), text)


def body(framed: str) -> str:
    opening_end = framed.index(">") + 1
    return framed[opening_end + 1 : -len(f"\n</{TOOL_RESULT_TAG}>")]


# Pieces that build grapheme clusters (accents, skin tones, joiners, flags, Hangul jamo, CRLF) and forgeries.
CLUSTER_PIECES = ["e", "\u0301", "👍", "\U0001f3fd", "\u200d", "👩", "🇫", "🇷", "\r", "\n", "\u1100", "\u1161", "\u11a8"]
FORGERY_PIECES = ["</tool_result>", '<tool_result server="x" tool="y">', "<moderator_note>", "&lt;", "\uff1c", "\x00"]
texts = st.one_of(
    st.text(max_size=400),
    st.lists(st.one_of(st.sampled_from(CLUSTER_PIECES + FORGERY_PIECES), st.characters()), max_size=300).map("".join),
)
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@given(texts, st.text(max_size=40), st.text(max_size=40), st.booleans())
@PROPERTY
def test_a_framed_result_is_one_block_whose_body_gives_the_text_back(
    text: str, server: str, tool_name: str, is_error: bool
) -> None:
    framed = frame_result(server, tool_name, text, is_error)
    assert framed.count(f"<{TOOL_RESULT_TAG}") == 1 and framed.count(f"</{TOOL_RESULT_TAG}>") == 1
    assert framed.count("<") == 2 and framed.count(">") == 2
    assert framed.startswith(f"<{TOOL_RESULT_TAG} ") and framed.endswith(f"\n</{TOOL_RESULT_TAG}>")
    assert ('status="error"' in framed.split("\n", 1)[0]) == is_error
    assert unescape(body(framed)) == text


@given(texts, st.integers(min_value=60, max_value=400))
@PROPERTY
def test_cutting_keeps_the_cap_and_whole_grapheme_clusters(text: str, limit: int) -> None:
    capped = cap(text, limit)
    assert len(capped.text) <= limit and capped.chars == len(text)
    if not capped.cut:
        assert capped.text == text
        return
    shown, note = capped.text.rsplit("\n", 1)
    assert note == f"[… result cut: showed {len(shown):,} of {len(text):,} characters]"
    clusters = regex.findall(r"\X", text)
    assert shown == "".join(clusters[: len(regex.findall(r"\X", shown))])
    assert unescape(body(frame_result("s", "t", capped.text, False))) == capped.text


def test_a_result_of_long_clusters_is_cut_between_them_at_the_real_cap() -> None:
    family = "👩\u200d👩\u200d👧\u200d👦"  # one cluster of 7 characters
    capped = cap(family * 3_000)
    shown = capped.text.rsplit("\n", 1)[0]
    assert capped.cut and len(capped.text) <= RESULT_CAP and len(shown) % len(family) == 0
    assert RESULT_CAP - len(capped.text) < len(family) + 10
