"""Tool use in the fake provider: what each API refuses in tools, calls and results, and how a scripted model
calls tools in each wire format (whole or streamed in pieces).

Kept apart from provider_server.py, which calls it; it holds no server state and imports nothing of it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

# A model's scripted calls: each {"name": str, "arguments": dict}. A list is called until the results come back;
# a callable decides from the request body (None or []: answer with text).
ToolScript = list[dict[str, Any]] | Callable[[dict[str, Any]], list[dict[str, Any]] | None] | None
# (message, param, code), as openai_problem returns it.
OpenAIProblem = tuple[str, str | None, str | None]

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
TOOL_USE_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
ANTHROPIC_TOOL_BLOCKS = frozenset({"tool_use", "tool_result", "thinking", "redacted_thinking"})
SIGNED = frozenset({"thinking", "redacted_thinking"})
# The keys each OpenAI message may carry, by role (anything else is refused, as the real API does).
OPENAI_MESSAGE_KEYS = {
    "system": {"role", "content", "name"},
    "developer": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    # reasoning_content: DeepSeek's thinking, which its API wants back on an assistant message that called tools.
    "assistant": {"role", "content", "name", "tool_calls", "refusal", "reasoning_content"},
    "tool": {"role", "content", "tool_call_id"},
}


def sign(thinking: str) -> str:
    """The fake's signature of a thinking block: it checks it when the block comes back, so a block changed on
    the way is refused like the real API refuses it."""
    return "fakesig-" + hashlib.sha256(thinking.encode()).hexdigest()[:32]


# --- Anthropic: what the Messages API refuses -----------------------------------------------------------


def anthropic_tools_problem(tools: Any) -> str | None:
    if not isinstance(tools, list):
        return "tools: Input should be a valid list"
    names: set[str] = set()
    for k, tool in enumerate(tools):
        if not isinstance(tool, dict):
            return f"tools.{k}: Input should be a valid dictionary"
        for key in tool:
            if key not in ("name", "description", "input_schema", "cache_control"):
                return f"tools.{k}.custom.{key}: Extra inputs are not permitted"
        name = tool.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            return f"tools.{k}.custom.name: String should match pattern '{TOOL_NAME.pattern}'"
        if "description" in tool and not isinstance(tool["description"], str):
            return f"tools.{k}.custom.description: Input should be a valid string"
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            return f"tools.{k}.custom.input_schema: Field required (a JSON Schema object)"
        if schema.get("type") != "object":
            return f"tools.{k}.custom.input_schema.type: Input should be 'object'"
        if name in names:
            return "tools: Tool names must be unique."
        names.add(name)
    return None


def anthropic_tool_block_problem(block: dict[str, Any], where: str, role: str) -> str | None:
    """A tool_use, tool_result, thinking or redacted_thinking block's own shape, and the role it may appear in."""
    kind = block["type"]
    allowed = {
        "tool_use": ({"type", "id", "name", "input", "cache_control"}, "assistant"),
        "tool_result": ({"type", "tool_use_id", "content", "is_error", "cache_control"}, "user"),
        "thinking": ({"type", "thinking", "signature"}, "assistant"),
        "redacted_thinking": ({"type", "data"}, "assistant"),
    }
    keys, owner = allowed[kind]
    if role != owner:
        return f"{where}: `{kind}` blocks are only allowed in {owner} messages"
    for key in block:
        if key not in keys:
            return f"{where}.{kind}.{key}: Extra inputs are not permitted"
    if kind == "tool_use":
        if not isinstance(block.get("id"), str) or not TOOL_USE_ID.match(block["id"]):
            return f"{where}.tool_use.id: String should match pattern '{TOOL_USE_ID.pattern}'"
        if not isinstance(block.get("name"), str) or not block["name"]:
            return f"{where}.tool_use.name: Field required"
        if not isinstance(block.get("input"), dict):
            return f"{where}.tool_use.input: Input should be a valid dictionary"
    elif kind == "tool_result":
        return tool_result_problem(block, where)
    elif kind == "thinking":
        if not isinstance(block.get("thinking"), str) or not isinstance(block.get("signature"), str):
            return f"{where}.thinking.signature: Field required"
        if block["signature"] != sign(block["thinking"]):
            return f"{where}: Invalid `signature` in `thinking` block"
    elif not isinstance(block.get("data"), str) or not block["data"]:
        return f"{where}.redacted_thinking.data: Field required"
    return None


def tool_result_problem(block: dict[str, Any], where: str) -> str | None:
    if not isinstance(block.get("tool_use_id"), str) or not block["tool_use_id"]:
        return f"{where}.tool_result.tool_use_id: Field required"
    if not isinstance(block.get("is_error", False), bool):
        return f"{where}.tool_result.is_error: Input should be a valid boolean"
    content = block.get("content", "")
    if isinstance(content, list):
        for n, part in enumerate(content):
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or set(part) - {"type", "text", "cache_control"}
                or not isinstance(part.get("text"), str)
                or not part["text"].strip()
            ):
                return f"{where}.tool_result.content.{n}: Input should be a non-empty text block"
    elif not isinstance(content, str):
        return f"{where}.tool_result.content: Input should be a valid string or list of text blocks"
    if block.get("is_error") and not content:
        return f"{where}.tool_result: content cannot be empty if `is_error` is true"
    return None


def anthropic_exchange_problem(messages: list[dict[str, Any]], tools: Any) -> str | None:
    """How calls and results pair up across messages: every tool_use answered at the start of the very next
    message, every tool_result answering the message before; thinking first in an assistant message."""
    uses_tools = any(block["type"] in ("tool_use", "tool_result") for message in messages for block in _blocks(message))
    if uses_tools and not tools:
        return "Requests which include `tool_use` or `tool_result` blocks must define tools."
    names = {tool["name"] for tool in tools or []}
    seen: set[str] = set()
    pending: list[str] = []
    pending_at = 0
    for i, message in enumerate(messages):
        blocks = _blocks(message)
        if message["role"] == "assistant":
            kinds = [block["type"] for block in blocks]
            if SIGNED & set(kinds) and kinds[0] not in SIGNED:
                return (
                    f"messages.{i}.content.0: If an assistant message contains any thinking blocks, the first "
                    f"block must be thinking or redacted_thinking. Found {kinds[0]}."
                )
            pending, pending_at = [], i
            for j, block in enumerate(blocks):
                if block["type"] != "tool_use":
                    continue
                if block["id"] in seen:
                    return f"messages.{i}.content.{j}: `tool_use` ids must be unique"
                if block["name"] not in names:
                    return f"messages.{i}.content.{j}: tool `{block['name']}` is not one of the tools in `tools`"
                seen.add(block["id"])
                pending.append(block["id"])
            continue
        problem = _answer_problem(blocks, i, pending, pending_at)
        if problem:
            return problem
        pending = []
    if pending:
        return _unanswered(pending_at, pending)
    return None


def _answer_problem(blocks: list[dict[str, Any]], i: int, pending: list[str], pending_at: int) -> str | None:
    answered: list[str] = []
    for j, block in enumerate(blocks):
        if block["type"] != "tool_result":
            continue
        if block["tool_use_id"] not in pending or block["tool_use_id"] in answered:
            return (
                f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{block['tool_use_id']}. Each `tool_result` block must have a corresponding `tool_use` block in "
                "the previous message."
            )
        answered.append(block["tool_use_id"])
    if not pending:
        return None
    leading = next((j for j, block in enumerate(blocks) if block["type"] != "tool_result"), len(blocks))
    if leading < len(answered):
        return (
            f"messages.{i}: Did not find {len(pending)} `tool_result` block(s) at the beginning of this message. "
            "Messages following `tool_use` blocks must begin with a matching number of `tool_result` blocks."
        )
    missing = [call_id for call_id in pending if call_id not in answered]
    return _unanswered(pending_at, missing) if missing else None


def _unanswered(at: int, ids: list[str]) -> str:
    return (
        f"messages.{at}: `tool_use` ids were found without `tool_result` blocks immediately after: "
        f"{', '.join(ids)}. Each `tool_use` block must have a corresponding `tool_result` block in the next message."
    )


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    return content if isinstance(content, list) else []


# --- OpenAI: what /chat/completions refuses -------------------------------------------------------------


def openai_tools_problem(tools: Any) -> OpenAIProblem | None:
    if not isinstance(tools, list):
        return "Invalid type for 'tools': expected an array.", "tools", None
    for k, tool in enumerate(tools):
        param = f"tools[{k}]"
        if not isinstance(tool, dict) or set(tool) != {"type", "function"}:
            return f"Invalid '{param}': expected an object with exactly 'type' and 'function'.", param, None
        if tool["type"] != "function":
            return f"Invalid value: '{tool['type']}'. Supported values are: 'function'.", f"{param}.type", None
        function = tool["function"]
        if not isinstance(function, dict):
            return f"Invalid type for '{param}.function': expected an object.", f"{param}.function", None
        for key in function:
            if key not in ("name", "description", "parameters", "strict"):
                return f"Unrecognized request argument supplied: {key}", f"{param}.function.{key}", None
        name = function.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            return (
                f"Invalid '{param}.function.name': string does not match pattern. Expected a string that matches "
                f"the pattern '{TOOL_NAME.pattern}'.",
                f"{param}.function.name",
                "invalid_value",
            )
        if "parameters" in function and not isinstance(function["parameters"], dict):
            return (
                f"Invalid schema for function '{name}': schema must be a JSON Schema of 'type: \"object\"'.",
                (f"{param}.function.parameters"),
                "invalid_function_parameters",
            )
        if "description" in function and not isinstance(function["description"], str):
            return f"Invalid type for '{param}.function.description': expected a string.", param, None
    return None


def openai_message_problem(message: dict[str, Any], i: int) -> OpenAIProblem | None:
    """A message's keys for its role, and the shape of a tool message or of an assistant's tool_calls."""
    role = message["role"]
    for key in message:
        if key not in OPENAI_MESSAGE_KEYS[role]:
            return f"Additional properties are not allowed ('{key}' was unexpected) - 'messages.{i}'", None, None
    if role == "tool":
        if not isinstance(message.get("tool_call_id"), str):
            return f"Missing required parameter: 'messages.[{i}].tool_call_id'.", f"messages.[{i}].tool_call_id", None
        if not isinstance(message.get("content"), str):
            return f"Invalid type for 'messages[{i}].content': expected a string.", f"messages[{i}].content", None
    if role == "assistant" and "tool_calls" in message:
        return _tool_calls_problem(message["tool_calls"], i)
    return None


def _tool_calls_problem(calls: Any, i: int) -> OpenAIProblem | None:
    param = f"messages[{i}].tool_calls"
    if not isinstance(calls, list) or not calls:
        return f"Invalid '{param}': empty array. Expected an array with minimum length 1.", param, None
    for k, call in enumerate(calls):
        where = f"{param}[{k}]"
        if not isinstance(call, dict) or set(call) != {"id", "type", "function"}:
            return f"Invalid '{where}': expected exactly 'id', 'type' and 'function'.", where, None
        if not isinstance(call["id"], str) or call["type"] != "function":
            return f"Invalid '{where}': 'id' must be a string and 'type' 'function'.", where, None
        function = call["function"]
        if not isinstance(function, dict) or set(function) != {"name", "arguments"}:
            return f"Invalid '{where}.function': expected exactly 'name' and 'arguments'.", f"{where}.function", None
        if not isinstance(function["name"], str):
            return f"Invalid type for '{where}.function.name': expected a string.", f"{where}.function.name", None
        if not isinstance(function["arguments"], str):
            kind = type(function["arguments"]).__name__
            return (
                f"Invalid type for '{where}.function.arguments': expected a string, but got {kind} instead.",
                f"{where}.function.arguments",
                "invalid_type",
            )
    return None


def openai_exchange_problem(messages: list[dict[str, Any]]) -> OpenAIProblem | None:
    """Every tool message answers a call of the assistant message just before; every call is answered."""
    pending: list[str] = []
    pending_at = 0
    for i, message in enumerate(messages):
        if message["role"] == "tool":
            if message["tool_call_id"] not in pending:
                return (
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with "
                    "'tool_calls'.",
                    f"messages.[{i}].role",
                    None,
                )
            pending.remove(message["tool_call_id"])
            continue
        if pending:
            break
        if message["role"] == "assistant" and message.get("tool_calls"):
            pending, pending_at = [call["id"] for call in message["tool_calls"]], i
    if pending:
        return (
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(pending)}",
            f"messages.[{pending_at}].role",
            None,
        )
    return None


# --- reading a request ----------------------------------------------------------------------------------


def tool_results_in(body: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(call id, content, is_error) of every tool result a request sends back, in either format. OpenAI's wire has
    no error flag: its is_error is always False (the client says so in the content)."""
    return [result for message in body.get("messages") or [] for result in _results_of(message)]


def answers_tools(body: dict[str, Any]) -> bool:
    """Whether the conversation's last user turn (everything after the last assistant message) holds results."""
    messages = body.get("messages") or []
    last = max((i for i, message in enumerate(messages) if message.get("role") == "assistant"), default=-1)
    return any(_results_of(message) for message in messages[last + 1 :])


def _results_of(message: Any) -> list[tuple[str, str, bool]]:
    if not isinstance(message, dict):
        return []
    if message.get("role") == "tool":
        content = message.get("content")
        return [(str(message.get("tool_call_id")), content if isinstance(content, str) else "", False)]
    return [
        (str(block.get("tool_use_id")), _result_text(block.get("content", "")), bool(block.get("is_error")))
        for block in _blocks(message)
        if isinstance(block, dict) and block.get("type") == "tool_result"
    ]


def _result_text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def block_chars(block: Any) -> int:
    """What a content block weighs in the token estimate: its text, a call's name and arguments, a result's
    content; an image (or anything else) a flat 4,000 characters."""
    if not isinstance(block, dict):
        return 0
    kind = block.get("type")
    if kind == "text":
        return len(block.get("text") or "")
    if kind == "tool_use":
        return len(str(block.get("name"))) + len(json.dumps(block.get("input"), ensure_ascii=False))
    if kind == "tool_result":
        return len(_result_text(block.get("content", "")))
    if kind == "thinking":
        return len(block.get("thinking") or "")
    return 0 if kind == "redacted_thinking" else 4000


def calls_chars(message: dict[str, Any]) -> int:
    """An OpenAI assistant message's tool_calls, by their names and argument text."""
    calls = message.get("tool_calls")
    if not isinstance(calls, list):
        return 0
    functions = [call.get("function") for call in calls if isinstance(call, dict)]
    return sum(len(str(f.get("name"))) + len(str(f.get("arguments"))) for f in functions if isinstance(f, dict))


def tools_chars(tools: Any) -> int:
    """Tool definitions are read as input too."""
    return len(json.dumps(tools, ensure_ascii=False)) if isinstance(tools, list) else 0


# --- a scripted model calling tools ---------------------------------------------------------------------


def scripted_calls(script: ToolScript, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The calls the model makes in answer to this request: a fixed list until the results are back."""
    if script is None:
        return []
    if callable(script):
        return list(script(body) or [])
    return [] if answers_tools(body) else list(script)


def call_words(calls: list[dict[str, Any]]) -> int:
    """Output tokens spent on the calls (a word is a token here)."""
    return sum(1 + len(json.dumps(call["arguments"]).split()) for call in calls)


def split_json(text: str) -> list[str]:
    """The arguments' JSON text in pieces cut anywhere (mid-key, mid-string), as both APIs stream it."""
    size = max(1, -(-len(text) // 3))
    return [text[start : start + size] for start in range(0, len(text), size)]


def anthropic_tool_blocks(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "tool_use", "id": call["id"], "name": call["name"], "input": call["arguments"]} for call in calls]


def anthropic_tool_events(calls: list[dict[str, Any]], first: int) -> list[tuple[str, dict[str, Any]]]:
    """(event, data) of each call's block: opened with an empty input, its JSON in input_json_delta pieces (the
    first one empty, as the API sends it), then closed."""
    events: list[tuple[str, dict[str, Any]]] = []
    for index, call in enumerate(calls, start=first):
        opened = {"type": "tool_use", "id": call["id"], "name": call["name"], "input": {}}
        events.append(("content_block_start", {"index": index, "content_block": opened}))
        for piece in ["", *split_json(json.dumps(call["arguments"], ensure_ascii=False))]:
            delta = {"type": "input_json_delta", "partial_json": piece}
            events.append(("content_block_delta", {"index": index, "delta": delta}))
        events.append(("content_block_stop", {"index": index}))
    return events


def openai_tool_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "id": call["id"],
            "type": "function",
            "function": {"name": call["name"], "arguments": json.dumps(call["arguments"], ensure_ascii=False)},
        }
        for call in calls
    ]


def openai_tool_deltas(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The deltas of the calls: the first piece of each with its index, id and name, then its arguments in parts."""
    deltas: list[dict[str, Any]] = []
    for index, call in enumerate(calls):
        function = {"name": call["name"], "arguments": ""}
        deltas.append({"tool_calls": [{"index": index, "id": call["id"], "type": "function", "function": function}]})
        for piece in split_json(json.dumps(call["arguments"], ensure_ascii=False)):
            deltas.append({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    return deltas


def unreturned_reasoning(messages: list[dict[str, Any]]) -> str | None:
    """DeepSeek in thinking mode: an assistant message that called tools must carry its reasoning_content in every
    later request (its API answers 400 otherwise)."""
    for i, message in enumerate(messages):
        if message.get("role") == "assistant" and message.get("tool_calls") and not message.get("reasoning_content"):
            return f"Missing `reasoning_content` field in the assistant message at message index {i}"
    return None
