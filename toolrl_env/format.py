"""The TIR format: `<think>`, `<tool_call>` (one JSON object per line), `<response>`, and `<obs>` observations.

A completion is one assistant turn::

    <think> reasoning </think>
    <tool_call>
    {"name": "convert_units", "parameters": {"value": 10, "from_unit": "cm", "to_unit": "m"}}
    </tool_call>
    <response> final answer </response>

`parse` never raises, whatever the string; `render_turn` and `render_observation` build the same text from parts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from tools.call import ToolCall, ToolResult

_scan_json = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # set in __init__, not in the stubs
_JSON_SPACE = " \t\n\r"


def decode_json(line: str) -> Any:
    """`json.loads(line)` for a str, with the same verdicts (JSON whitespace around one value, else
    ValueError), minus the checks and regex matches of its wrappers: it runs on every call line."""
    start = len(line) - len(line.lstrip(_JSON_SPACE))
    try:
        value, end = _scan_json(line, start)
    except StopIteration as stop:
        raise json.JSONDecodeError("Expecting value", line, stop.value) from None
    if end != len(line) and line[end:].strip(_JSON_SPACE):
        raise json.JSONDecodeError("Extra data", line, end)
    return value


# One encoder for observations: json.dumps with `default=` would build a new encoder on every call.
_encode_results = json.JSONEncoder(default=str).encode
# Integers of more bits may have more than 4,300 digits, which Python refuses to print (sys.int_info).
_PRINTABLE_INT_BITS = 14_000
_MAX_ERRORS = 8
MAX_PARAMETER_DEPTH = 64  # deeper arguments are refused, so records of calls stay copyable and picklable


def _deeper_than(value: Any, limit: int) -> bool:
    """True if `value` nests lists or dicts more than `limit` levels deep (checked without recursion)."""
    if isinstance(value, dict) and not any(isinstance(v, (dict, list)) for v in value.values()):
        return limit < 1  # flat arguments, the common case
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            if depth >= limit:
                return True
            stack.extend((child, depth + 1) for child in item)
    return False


def _ends_at(text: str, end: int) -> bool:
    """Python's `$` without MULTILINE: the end of the text, or just before a final newline."""
    return end == len(text) or (end == len(text) - 1 and text[-1] == "\n")


def matches_shape(text: str, has_call: bool, has_response: bool) -> bool:
    """True if `text` is a well-formed turn of the given shape, exactly as ToolRL's format reward decides it.

    ToolRL searches, with DOTALL and after checking that each tag of the shape occurs exactly once:
    `^<think>.*?</think>\n<response>.*?</response>$` (response only), `^<think>.*?</think>\n<tool_call>\n.*?\n
    </tool_call>$` (calls only), the two joined by `\n` (both), or `^<think>.*?</think>$` (neither). With each
    tag unique, where it must stand is fixed, so this checks those positions instead of running the patterns.
    """
    if not text.startswith("<think>"):
        return False
    if not has_call and not has_response:
        return (len(text) >= 15 and text.endswith("</think>")) or (len(text) >= 16 and text.endswith("</think>\n"))
    if has_call and (text.count("<tool_call>") != 1 or text.count("</tool_call>") != 1):
        return False
    if has_response and (text.count("<response>") != 1 or text.count("</response>") != 1):
        return False
    first = text.find("<tool_call>" if has_call else "<response>")
    if first < 16 or text[first - 9 : first] != "</think>\n":  # "<think>" + ".*?" + "</think>\n" before it
        return False
    if has_call:
        close = text.find("</tool_call>")
        if text[first + 11 : first + 12] != "\n" or close < first + 13 or text[close - 1] != "\n":
            return False
        if not has_response:
            return _ends_at(text, close + 12)
        if text[close + 12 : close + 23] != "\n<response>":
            return False
        first = close + 13
    close = text.find("</response>")
    return close >= first + 10 and _ends_at(text, close + 11)


def text_between(text: str, open_tag: str, close_tag: str) -> str | None:
    """Text after the first `open_tag` up to the next `close_tag`, or None if either is missing."""
    start = text.find(open_tag)
    if start < 0:
        return None
    start += len(open_tag)
    end = text.find(close_tag, start)
    return None if end < 0 else text[start:end]


def tool_call_lines(text: str) -> list[str]:
    """Lines of the first <tool_call> block: up to the next </tool_call> or <tool_call>, as ToolRL reads it."""
    block = text.partition("<tool_call>")[2].partition("<tool_call>")[0].partition("</tool_call>")[0]
    return block.strip().split("\n")


def decode_call(line: str) -> ToolCall | str:
    """Decode one `<tool_call>` line into a ToolCall, or return why it is not one."""
    try:
        obj = decode_json(line)
    except (ValueError, RecursionError) as exc:
        return f"not JSON ({type(exc).__name__}: {str(exc)[:80]})"
    if not isinstance(obj, dict):
        return f"expected a JSON object, got {type(obj).__name__}"
    name, parameters = obj.get("name"), obj.get("parameters")
    if not isinstance(name, str):
        return "missing string field 'name'"
    if parameters is None:
        return "missing field 'parameters' (use {} for none)"
    if not isinstance(parameters, dict):
        return f"'parameters' must be an object, got {type(parameters).__name__}"
    if _deeper_than(parameters, MAX_PARAMETER_DEPTH):
        return f"'parameters' nest deeper than {MAX_PARAMETER_DEPTH} levels"
    return ToolCall(name=name, parameters=parameters)


class ParsedTurn(BaseModel):
    """One assistant turn split into its parts."""

    think: str | None = Field(default=None, description="Text inside the first <think>…</think>, stripped.")
    tool_calls: list[ToolCall] = Field(
        default_factory=list, description="Calls decoded from the lines of the first <tool_call> block."
    )
    response: str | None = Field(default=None, description="Text inside the first <response>…</response>.")
    format_ok: bool = Field(
        default=False,
        description="The turn is <think> then <tool_call> and/or <response>, each once, every call line valid.",
    )
    errors: list[str] = Field(default_factory=list, description="Why the format does not hold, if it does not.")


def parse(text: str) -> ParsedTurn:
    """Split a completion into think text, tool calls and response; never raises."""
    if not isinstance(text, str):
        return ParsedTurn(errors=[f"expected a str action, got {type(text).__name__}"])
    text = text.strip()
    errors: list[str] = []
    think = text_between(text, "<think>", "</think>")
    if think is None:
        errors.append("missing <think>…</think>")
    calls: list[ToolCall] = []
    has_call = "<tool_call>" in text
    if has_call and "</tool_call>" not in text:
        errors.append("unclosed <tool_call>")
    elif has_call:
        for i, line in enumerate(tool_call_lines(text)):
            if len(errors) >= _MAX_ERRORS:
                errors.append("more <tool_call> lines not decoded")
                break
            call = decode_call(line)
            if isinstance(call, ToolCall):
                calls.append(call)
            else:
                errors.append(f"<tool_call> line {i + 1}: {call}")
    response = text_between(text, "<response>", "</response>")
    has_response = "<response>" in text
    if has_response and response is None:
        errors.append("unclosed <response>")
    if not has_call and not has_response:
        errors.append("neither <tool_call> nor <response>")
    shape_ok = matches_shape(text, has_call, has_response)
    if not shape_ok and not errors:
        errors.append("tags out of order, repeated, or not separated by single newlines")
    return ParsedTurn(
        think=None if think is None else think.strip(),
        tool_calls=calls,
        response=None if response is None else response.strip(),
        format_ok=shape_ok and not errors,
        errors=errors,
    )


def _call_json(call: ToolCall | dict[str, Any]) -> str:
    if isinstance(call, ToolCall):
        call = call.model_dump()
    return json.dumps({"name": call["name"], "parameters": call.get("parameters", {})})


def render_turn(
    think: str | None = None,
    tool_calls: Sequence[ToolCall | dict[str, Any]] = (),
    response: str | None = None,
) -> str:
    """Render one assistant turn in the TIR format (the inverse of `parse`)."""
    parts = [f"<think> {think or ''} </think>"]
    if tool_calls:
        parts.append("<tool_call>\n" + "\n".join(_call_json(c) for c in tool_calls) + "\n</tool_call>")
    if response is not None:
        parts.append(f"<response> {response} </response>")
    return "\n".join(parts)


def render_observation(results: Iterable[ToolResult]) -> str:
    """Render tool results as one `<obs>` record, shaped as in ToolRL's RLLA data."""
    payload = [{"name": r.name, "results": r.content} for r in results]
    try:
        return f"<obs> {_encode_results(payload)} </obs>"
    except ValueError:  # an integer past Python's 4,300-digit limit for printing (a tool squared 10**4000)
        return f"<obs> {_encode_results(_printable(payload))} </obs>"


def _printable(value: Any) -> Any:
    """`value` with every integer too long to print replaced by a note of its size."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _PRINTABLE_INT_BITS:
        return f"<an integer of about {int((value.bit_length() - 1) * math.log10(2)) + 1:,} digits>"
    if isinstance(value, dict):
        return {k: _printable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_printable(v) for v in value]
    return value


def render_user(text: str) -> str:
    """Render a user message as a dialogue record."""
    return f"<user> {text.strip()} </user>"
