"""How a tool call shows in a council's thread: who called what with which arguments, then how it ended.

The lines are the bot's notices, short on purpose (the full result is in Message details and the export).
Everything a model or a tool wrote is shown as inline code with its backticks replaced, so it cannot format,
link or mention anything (the notices are sent without pings anyway).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

ARGUMENTS_SHOWN = 300  # characters of a call's arguments in its line
RESULT_SHOWN = 200  # characters of a result in its line


def _code(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return "`" + (flat.replace("`", "ˋ") or " ") + "`"


def arguments_text(arguments: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in arguments.items())


def call_line(member: str, server: str, tool: str, arguments: Mapping[str, Any], *, policy: str) -> str:
    what = f"🔧 **{member}** calls {_code(f'{server}.{tool}', 120)}"
    if arguments:
        what += f" with {_code(arguments_text(arguments), ARGUMENTS_SHOWN)}"
    if policy == "hold":
        what += "\n-# ⏸️ This tool needs a moderator's approval: the call waits for their decision."
    elif policy == "notify":
        what += "\n-# 🛡️ The moderators are told of calls to this tool."
    return what


def result_line(member: str, tool: str, *, status: str, result: str, seconds: float | None) -> str:
    took = f" ({seconds:.1f} s)" if seconds is not None else ""
    if status == "done":
        return f"↳ {_code(tool, 120)}{took}: {_code(result, RESULT_SHOWN)}"
    if status == "failed":
        return (
            f"↳ ⚠️ {_code(tool, 120)} gave no result{took}: {_code(result, RESULT_SHOWN)} {member} answers without it."
        )
    if status == "interrupted":
        return f"↳ ⚠️ {_code(tool, 120)} was cut off by a restart and is not run twice; {member} answers without it."
    return f"↳ 🚫 {_code(tool, 120)} was not run: {_code(result, RESULT_SHOWN)}"
