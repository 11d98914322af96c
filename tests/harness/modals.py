"""Modals: Discord's checks on the modal a bot sends (response type 9), and the MODAL_SUBMIT
components a user's answers become.

A modal holds action rows (type 1) or labels (type 18) around text inputs (type 4) and, in
labels, string selects (type 3); text displays (type 10) carry no value.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .errors import InvalidInvocation, form_error
from .payloads import JsonDict

TEXT_INPUT, STRING_SELECT, ACTION_ROW, LABEL = 4, 3, 1, 18
TITLE_MAX = 45
CUSTOM_ID_MAX = 100
MAX_TOP_LEVEL = 5
TEXT_INPUT_MAX = 4000
LABEL_MAX = 45
PLACEHOLDER_MAX = 100

Values = dict[str, str | list[str]]


def fields(components: list[JsonDict]) -> Iterator[JsonDict]:
    """Every component that takes a value (text inputs, selects), in order."""
    for component in components:
        kind = component.get("type")
        if kind == ACTION_ROW:
            yield from fields(component.get("components") or [])
        elif kind == LABEL:
            yield from fields([component["component"]])
        elif "custom_id" in component:
            yield component


def check_modal(data: JsonDict) -> None:
    """What Discord refuses (400/50035) in a type 9 response's `data`."""
    title = data.get("title")
    if not isinstance(title, str) or not 1 <= len(title) <= TITLE_MAX:
        raise form_error(["data", "title"], "BASE_TYPE_BAD_LENGTH", f"Must be between 1 and {TITLE_MAX} in length.")
    custom_id = data.get("custom_id") or ""
    if not 1 <= len(custom_id) <= CUSTOM_ID_MAX:
        message = f"Must be between 1 and {CUSTOM_ID_MAX} in length."
        raise form_error(["data", "custom_id"], "BASE_TYPE_BAD_LENGTH", message)
    components = data.get("components") or []
    if not 1 <= len(components) <= MAX_TOP_LEVEL:
        message = f"Must be between 1 and {MAX_TOP_LEVEL} in length."
        raise form_error(["data", "components"], "BASE_TYPE_BAD_LENGTH", message)
    for i, field in enumerate(fields(components)):
        where: list[str | int] = ["data", "components", i]
        if field["type"] != TEXT_INPUT:
            continue
        low, high = field.get("min_length"), field.get("max_length")
        if low is not None and not 0 <= low <= TEXT_INPUT_MAX:
            raise form_error([*where, "min_length"], "NUMBER_TYPE_MAX", f"int value should be <= {TEXT_INPUT_MAX}.")
        if high is not None and not 1 <= high <= TEXT_INPUT_MAX:
            raise form_error([*where, "max_length"], "NUMBER_TYPE_MAX", f"int value should be <= {TEXT_INPUT_MAX}.")
        for key, limit in (("label", LABEL_MAX), ("placeholder", PLACEHOLDER_MAX), ("value", TEXT_INPUT_MAX)):
            if len(field.get(key) or "") > limit:
                raise form_error([*where, key], "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def _text_value(field: JsonDict, given: Any) -> str:
    custom_id = field["custom_id"]
    # What the user leaves untouched is submitted as prefilled (the input's `value`).
    value = (field.get("value") or "") if given is None else given
    if not isinstance(value, str):
        raise InvalidInvocation(f"text input {custom_id!r} takes a string, not {value!r}")
    if value == "":
        if field.get("required", True):
            raise InvalidInvocation(f"text input {custom_id!r} is required")
        return value
    low, high = field.get("min_length") or 0, field.get("max_length") or TEXT_INPUT_MAX
    if not low <= len(value) <= high:
        raise InvalidInvocation(f"text input {custom_id!r} takes {low}-{high} characters, got {len(value)}")
    return value


def _select_values(field: JsonDict, given: Any) -> list[str]:
    custom_id = field["custom_id"]
    chosen = [] if given is None else [given] if isinstance(given, str) else list(given)
    offered = [option["value"] for option in field.get("options") or []]
    unknown = [value for value in chosen if value not in offered]
    if unknown:
        raise InvalidInvocation(f"select {custom_id!r} offers {offered}, not {unknown}")
    low, high = field.get("min_values", 1), field.get("max_values", 1)
    if not chosen and not field.get("required", True):
        return chosen
    if not low <= len(chosen) <= high:
        raise InvalidInvocation(f"select {custom_id!r} takes {low}-{high} values, got {len(chosen)}")
    return chosen


def _with_id(answer: JsonDict, component: JsonDict) -> JsonDict:
    if component.get("id") is not None:
        answer["id"] = component["id"]
    return answer


def _answer(component: JsonDict, values: Values) -> JsonDict | None:
    kind = component.get("type")
    if kind == ACTION_ROW:
        inner = [answer for c in component.get("components") or [] if (answer := _answer(c, values)) is not None]
        return {"type": ACTION_ROW, "components": inner} if inner else None
    if kind == LABEL:
        inner_answer = _answer(component["component"], values)
        if inner_answer is None:
            return None
        return _with_id({"type": LABEL, "component": inner_answer}, component)
    custom_id = component.get("custom_id")
    if custom_id is None:
        return None
    answer = _with_id({"type": kind, "custom_id": custom_id}, component)
    if kind == TEXT_INPUT:
        answer["value"] = _text_value(component, values.get(custom_id))
    elif kind == STRING_SELECT:
        answer["values"] = _select_values(component, values.get(custom_id))
    elif custom_id in values:
        raise InvalidInvocation(f"the harness cannot fill a type {kind} modal component ({custom_id!r})")
    else:
        return None
    return answer


def submission(modal: JsonDict, values: Values) -> JsonDict:
    """The `data` of a MODAL_SUBMIT for `modal` filled in with `values` (by custom_id),
    validated the way the Discord client validates before it lets the user press Submit."""
    components = modal.get("components") or []
    known = {field["custom_id"] for field in fields(components)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InvalidInvocation(f"modal {modal.get('custom_id')!r} has no input(s) {unknown} (has {sorted(known)})")
    answers = [answer for c in components if (answer := _answer(c, values)) is not None]
    return {"custom_id": modal["custom_id"], "components": answers}
