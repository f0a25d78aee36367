"""The TIR format: parse never raises and says what is wrong; render_* round-trip; matches_shape is ToolRL's check."""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolrl_env.format import ParsedTurn, decode_json, matches_shape, parse, render_observation, render_turn
from tools.call import ToolCall, ToolResult

CALL_F = '{"name": "f", "parameters": {"x": 1}}'
CALL_G = '{"name": "g", "parameters": {}}'
THINK_CALL = f"<think> plan </think>\n<tool_call>\n{CALL_F}\n{CALL_G}\n</tool_call>"
THINK_RESPONSE = "<think> plan </think>\n<response> done </response>"
THINK_CALL_RESPONSE = f"<think> plan </think>\n<tool_call>\n{CALL_F}\n</tool_call>\n<response> done </response>"
SHAPES = [(False, True), (True, False), (True, True), (False, False)]  # (has_call, has_response)


def dumped(parsed: ParsedTurn) -> list[dict[str, Any]]:
    return [call.model_dump() for call in parsed.tool_calls]


# ------------------------------------------------------------------------------------------------ parse
@pytest.mark.parametrize(
    ("text", "calls", "response"),
    [
        (THINK_CALL, [{"name": "f", "parameters": {"x": 1}}, {"name": "g", "parameters": {}}], None),
        (THINK_RESPONSE, [], "done"),
        (THINK_CALL_RESPONSE, [{"name": "f", "parameters": {"x": 1}}], "done"),
        ("\n  " + THINK_RESPONSE + "\n\n ", [], "done"),  # outer whitespace is stripped first
    ],
)
def test_parse_splits_the_valid_shapes(text: str, calls: list[dict[str, Any]], response: str | None) -> None:
    parsed = parse(text)
    assert parsed.format_ok
    assert parsed.errors == []
    assert parsed.think == "plan"
    assert dumped(parsed) == calls
    assert parsed.response == response


# (text, a word the explanation must contain)
BAD_TURNS = [
    ("<tool_call>\n" + CALL_F + "\n</tool_call>", "<think>"),  # missing think
    ("<think> plan\n<response> r </response>", "<think>"),  # unclosed think
    ("<think> plan </think>\n<tool_call>\n" + CALL_F, "unclosed <tool_call>"),
    ("<think> plan </think>\n<response> r", "unclosed <response>"),
    ("<think> plan </think>", "neither"),  # a think alone is not a turn
    (THINK_RESPONSE + "\n<response> again </response>", "repeated"),
    (THINK_CALL + "\n<tool_call>\n" + CALL_G + "\n</tool_call>", "repeated"),
    ("<think> plan </think> <response> r </response>", "newline"),  # a space instead of a newline
    ("<think> plan </think>\n\n<response> r </response>", "newline"),  # two newlines
    (f"<think> plan </think>\n<tool_call>{CALL_F}</tool_call>", "newline"),  # block without its newlines
    ("<response> r </response>\n<think> plan </think>", "order"),
    (f"<think> plan </think>\n<tool_call>\n{CALL_F}\nnot json\n</tool_call>", "line 2: not json"),
    ("<think> plan </think>\n<tool_call>\n\n</tool_call>", "not json"),  # an empty block: one empty line
    ('<think> plan </think>\n<tool_call>\n{"name": "f"}\n</tool_call>', "'parameters'"),
    ('<think> plan </think>\n<tool_call>\n{"name": "f", "parameters": [1]}\n</tool_call>', "'parameters'"),
    ('<think> plan </think>\n<tool_call>\n{"parameters": {}}\n</tool_call>', "'name'"),
    ('<think> plan </think>\n<tool_call>\n{"name": 3, "parameters": {}}\n</tool_call>', "'name'"),
    ("<think> plan </think>\n<tool_call>\n[1, 2]\n</tool_call>", "object"),
    ("<think> plan </think>\n<tool_call>\n5\n</tool_call>", "object"),
    ('<think> plan </think>\n<tool_call>\n"f"\n</tool_call>', "object"),
    ("<think> plan </think>\n<tool_call>\n" + "[" * 100_000 + "\n</tool_call>", "not json"),
    ("", "<think>"),
]


@pytest.mark.parametrize(("text", "keyword"), BAD_TURNS)
def test_parse_explains_a_bad_turn(text: str, keyword: str) -> None:
    parsed = parse(text)
    assert not parsed.format_ok
    assert any(keyword.lower() in error.lower() for error in parsed.errors), parsed.errors


def test_parse_keeps_the_good_lines_of_a_bad_block() -> None:
    parsed = parse(f"<think> plan </think>\n<tool_call>\n{CALL_F}\n[1]\n{CALL_G}\n</tool_call>")
    assert not parsed.format_ok
    assert dumped(parsed) == [{"name": "f", "parameters": {"x": 1}}, {"name": "g", "parameters": {}}]
    assert len(parsed.errors) == 1
    assert "line 2" in parsed.errors[0]


def test_parse_bounds_the_number_of_errors() -> None:
    parsed = parse("<think> plan </think>\n<tool_call>\n" + "x\n" * 10_000 + "</tool_call>")
    assert not parsed.format_ok
    assert 1 <= len(parsed.errors) < 100


def test_parse_is_stricter_than_the_format_reward() -> None:
    # ToolRL's format reward looks at the shape only; parse also wants every call line to decode.
    text = '<think> plan </think>\n<tool_call>\n{"name": "f"}\n</tool_call>'
    assert matches_shape(text, has_call=True, has_response=False)
    assert not parse(text).format_ok


def test_parse_accepts_a_repeated_think_as_toolrl_does() -> None:
    # ^<think>.*?</think>\n<response> lets .*? run over the first </think>; only call/response tags are counted.
    parsed = parse("<think> a </think>\n<think> b </think>\n<response> r </response>")
    assert parsed.format_ok
    assert parsed.think == "a"  # the first think text (the length reward reads the last one, as ToolRL did)


@pytest.mark.parametrize("action", [None, b"<think> t </think>\n<response> r </response>", 42, ["<think>"], {}])
def test_parse_of_a_non_str_explains_and_does_not_raise(action: Any) -> None:
    parsed = parse(action)
    assert not parsed.format_ok
    assert parsed.think is None and parsed.tool_calls == [] and parsed.response is None
    assert any("str" in error for error in parsed.errors)


TAGS = ["<think>", "</think>", "<tool_call>", "</tool_call>", "<response>", "</response>", "<obs>", "</obs>"]
ANY_CHAR = st.characters() | st.characters(categories=["Cs"]) | st.sampled_from(["\x00", "\n", "\r", "\u2028"])
FRAGMENTS = st.sampled_from([*TAGS, "\n", " ", "x", "\x00", "{", "[", '"', CALL_F, CALL_G, "[" * 5000, "1" * 5000])
ARBITRARY = st.one_of(
    st.text(ANY_CHAR),
    st.lists(FRAGMENTS | st.text(ANY_CHAR, max_size=5), max_size=30).map("".join),
)


@settings(max_examples=300, deadline=None)
@given(ARBITRARY)
def test_parse_never_raises(text: str) -> None:
    parsed = parse(text)
    assert isinstance(parsed, ParsedTurn)
    if parsed.format_ok:
        assert parsed.errors == []
        assert parsed.think is not None
        assert parsed.tool_calls or parsed.response is not None
        stripped = text.strip()
        assert matches_shape(stripped, "<tool_call>" in stripped, "<response>" in stripped)
    else:
        assert parsed.errors


MEGABYTE_INPUTS = {
    "long think": "<think>" + "a" * 1_000_000 + "</think>\n<response> r </response>",
    "many closing thinks": "<think>" + "</think>\n" * 120_000 + "<response> r </response>",
    "many opening thinks": "<think>" * 150_000,
    "deep list in a call": "<think> t </think>\n<tool_call>\n" + "[" * 1_000_000 + "\n</tool_call>",
    "deep object in a call": "<think> t </think>\n<tool_call>\n" + '{"a": ' * 200_000 + "\n</tool_call>",
    "huge integer": "<think> t </think>\n<tool_call>\n" + "1" * 1_000_000 + "\n</tool_call>",
    "long string value": '<think> t </think>\n<tool_call>\n{"name": "f", "parameters": {"s": "'
    + "a" * 1_000_000
    + '"}}\n</tool_call>',
    "many calls": "<think> t </think>\n<tool_call>\n" + "\n".join([CALL_F] * 30_000) + "\n</tool_call>",
    "many bad lines": "<think> t </think>\n<tool_call>\n" + "x\n" * 500_000 + "</tool_call>",
    "many newlines in a block": "<think> t </think>\n<tool_call>\n" + "\n" * 1_000_000 + "</tool_call> tail",
    "NUL bytes": "\x00" * 1_000_000,
    "only brackets": "[" * 1_000_000,
}


@pytest.mark.parametrize("name", list(MEGABYTE_INPUTS))
def test_parse_of_megabyte_inputs_returns(name: str) -> None:
    # No timing assertion: a super-linear parse would show up as a slow or hung test run.
    text = MEGABYTE_INPUTS[name]
    parsed = parse(text)
    assert isinstance(parsed, ParsedTurn)
    for has_call, has_response in SHAPES:
        matches_shape(text, has_call, has_response)


def test_parse_of_megabyte_inputs_gives_the_expected_parts() -> None:
    assert parse(MEGABYTE_INPUTS["long think"]).format_ok
    assert len(parse(MEGABYTE_INPUTS["many calls"]).tool_calls) == 30_000
    assert not parse(MEGABYTE_INPUTS["deep list in a call"]).format_ok
    assert parse(MEGABYTE_INPUTS["long string value"]).tool_calls[0].parameters["s"] == "a" * 1_000_000


# ----------------------------------------------------------------------------------------------- render
def test_render_turn_text() -> None:
    calls = [ToolCall(name="f", parameters={"x": 1}), {"name": "g", "parameters": {}}]
    assert render_turn("plan", calls) == f"<think> plan </think>\n<tool_call>\n{CALL_F}\n{CALL_G}\n</tool_call>"
    assert render_turn("plan", response="done") == "<think> plan </think>\n<response> done </response>"
    assert render_turn("plan", [{"name": "f", "parameters": {"x": 1}}], "done") == (
        f"<think> plan </think>\n<tool_call>\n{CALL_F}\n</tool_call>\n<response> done </response>"
    )
    assert render_turn(None, [{"name": "g"}]) == f"<think>  </think>\n<tool_call>\n{CALL_G}\n</tool_call>"


NO_TAG_TEXT = st.text(st.characters(exclude_characters="<"), max_size=40)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**18), 10**18)
    | st.floats(allow_nan=False, allow_infinity=False)
    | NO_TAG_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NO_TAG_TEXT, inner, max_size=4),
    max_leaves=8,
)
CALLS = st.lists(
    st.fixed_dictionaries({"name": NO_TAG_TEXT, "parameters": st.dictionaries(NO_TAG_TEXT, JSON_VALUES, max_size=4)}),
    max_size=4,
)


@settings(max_examples=100, deadline=None)
@given(
    think=st.none() | NO_TAG_TEXT,
    calls=CALLS,
    as_models=st.booleans(),
    response=st.none() | NO_TAG_TEXT,
)
def test_render_turn_round_trips_through_parse(
    think: str | None, calls: list[dict[str, Any]], as_models: bool, response: str | None
) -> None:
    given_calls = [ToolCall(**call) for call in calls] if as_models else calls
    parsed = parse(render_turn(think, given_calls, response))
    assert parsed.think == (think or "").strip()
    assert dumped(parsed) == calls
    assert parsed.response == (None if response is None else response.strip())
    assert parsed.format_ok == (bool(calls) or response is not None)


def test_render_observation_text() -> None:
    results = [
        ToolResult(name="f", ok=True, content={"x": 1}),
        ToolResult(name="g", ok=False, content={"error": "boom"}),
    ]
    expected = '<obs> [{"name": "f", "results": {"x": 1}}, {"name": "g", "results": {"error": "boom"}}] </obs>'
    assert render_observation(results) == expected
    assert render_observation([]) == "<obs> [] </obs>"
    # Values JSON cannot hold are written with str().
    dated = ToolResult(name="d", ok=True, content=datetime.date(2024, 1, 2))
    assert render_observation([dated]) == '<obs> [{"name": "d", "results": "2024-01-02"}] </obs>'


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.text(), st.booleans(), JSON_VALUES), max_size=4))
def test_render_observation_round_trips_through_json(results: list[tuple[str, bool, Any]]) -> None:
    text = render_observation([ToolResult(name=name, ok=ok, content=content) for name, ok, content in results])
    assert text.startswith("<obs> [") and text.endswith("] </obs>")
    payload = json.loads(text.removeprefix("<obs> ").removesuffix(" </obs>"))
    assert payload == [{"name": name, "results": content} for name, _, content in results]


# ------------------------------------------------------------------------------------------ matches_shape
# ToolRL's check as their rlla.py makes it, written out independently: the shape's pattern searched with DOTALL,
# and exactly one of each of the shape's call/response tags.
TOOLRL_PATTERNS = {
    (False, True): r"^<think>.*?</think>\n<response>.*?</response>$",
    (True, False): r"^<think>.*?</think>\n<tool_call>\n.*?\n</tool_call>$",
    (True, True): r"^<think>.*?</think>\n<tool_call>\n.*?\n</tool_call>\n<response>.*?</response>$",
    (False, False): r"^<think>.*?</think>$",
}


def toolrl_shape(text: str, has_call: bool, has_response: bool) -> bool:
    counted = (["<tool_call>", "</tool_call>"] if has_call else []) + (
        ["<response>", "</response>"] if has_response else []
    )
    found = re.search(TOOLRL_PATTERNS[has_call, has_response], text, re.DOTALL) is not None
    return found and all(text.count(tag) == 1 for tag in counted)


# (text, has_call, has_response, expected), worked out by hand from the patterns
SHAPE_CASES = [
    ("<think>a</think>\n<response>b</response>", False, True, True),
    ("<think>a</think>\n<response>b</response>\n", False, True, True),  # $ matches before a final newline
    ("<think>a</think>\n<response>b</response>\n\n", False, True, False),
    (" <think>a</think>\n<response>b</response>", False, True, False),  # matches_shape does not strip
    ("<think>a</think><response>b</response>", False, True, False),
    ("<think>a</think>\n<response>b</response>\n<response>c</response>", False, True, False),  # two responses
    ("<think>a</think>\n<think>b</think>\n<response>c</response>", False, True, True),  # think is not counted
    ("<think>\nmulti\nline\n</think>\n<response>\nb\n</response>", False, True, True),  # DOTALL
    ("<think>a</think>\n<tool_call>\nX\n</tool_call>", True, False, True),  # the block's content is not checked
    ("<think>a</think>\n<tool_call>\n\n</tool_call>", True, False, True),  # empty: \n + "" + \n
    ("<think>a</think>\n<tool_call>\n</tool_call>", True, False, False),  # needs two newlines
    ("<think>a</think>\n<tool_call>X</tool_call>", True, False, False),
    ("<think>a</think>\n<tool_call>\nX\n</tool_call>\n<tool_call>\nY\n</tool_call>", True, False, False),
    ("<think>a</think>\n<tool_call>\nX\n</tool_call>\n<response>r</response>", True, False, False),
    ("<think>a</think>\n<tool_call>\nX\n</tool_call>\n<response>r</response>", False, True, False),
    ("<think>a</think>\n<tool_call>\nX\n</tool_call>\n<response>r</response>", True, True, True),
    ("<think>a</think>\n<response>r</response>\n<tool_call>\nX\n</tool_call>", True, True, False),
    ("<think>a</think>\n<tool_call>\nX\n</tool_call>", True, True, False),
    ("<think>a</think>", False, False, True),
    ("<think>a</think>\n", False, False, True),
    ("<think>a</think> anything <tool_call> <think>b</think>", False, False, True),  # only start and end
    ("<think>a</think>\n<response>b</response>", False, False, False),
    ("<think>a", False, False, False),
    ("", False, False, False),
]


@pytest.mark.parametrize(("text", "has_call", "has_response", "expected"), SHAPE_CASES)
def test_matches_shape_by_hand(text: str, has_call: bool, has_response: bool, expected: bool) -> None:
    assert matches_shape(text, has_call, has_response) is expected
    assert toolrl_shape(text, has_call, has_response) is expected  # the oracle agrees with the hand verdicts


SHAPE_TOKENS = ["<think>", "a", "</think>", "\n", "<tool_call>", "\n", "X", "\n", "</tool_call>", "\n"]
SHAPE_TOKENS += ["<response>", "b", "</response>"]


@st.composite
def near_shapes(draw: st.DrawFn) -> str:
    """The full both-shape turn with tokens dropped, doubled or joined by stray text."""
    out = []
    for token in SHAPE_TOKENS:
        out.extend([token] * draw(st.sampled_from([0, 1, 1, 1, 2])))
        if draw(st.integers(0, 5)) == 0:
            out.append(draw(st.sampled_from([*TAGS, "\n", " ", "z"])))
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(st.one_of(near_shapes(), st.lists(st.sampled_from([*TAGS[:6], "\n", "a", " "]), max_size=14).map("".join)))
def test_matches_shape_agrees_with_toolrl(text: str) -> None:
    for has_call, has_response in SHAPES:
        assert matches_shape(text, has_call, has_response) == toolrl_shape(text, has_call, has_response)


TAG_SOUP = st.lists(
    st.sampled_from(
        ["<think>", "</think>", "<tool_call>", "</tool_call>", "<response>", "</response>", "\n", "x", " ", "{}", "<"]
    ),
    max_size=14,
).map("".join)


@settings(max_examples=3000, deadline=None)
@given(text=TAG_SOUP)
def test_matches_shape_agrees_with_toolrl_on_tag_soup(text: str) -> None:
    for has_call, has_response in SHAPES:
        assert matches_shape(text, has_call, has_response) == toolrl_shape(text, has_call, has_response)


JSON_SOUP = st.lists(
    st.sampled_from(
        ["{", "}", "[", "]", '"a"', ":", ",", "1", "-", ".5", "e3", "true", "null", "NaN", " ", "\t", "\n", "\x0b", "x"]
    ),
    max_size=10,
).map("".join)


def _loads_verdict(decode: Any, line: str) -> tuple[str, str]:
    try:
        return "ok", repr(decode(line))
    except ValueError:
        return "error", ""


@settings(max_examples=3000, deadline=None)
@given(line=JSON_SOUP | st.text(max_size=20))
def test_decode_json_gives_json_loads_verdicts(line: str) -> None:
    assert _loads_verdict(decode_json, line) == _loads_verdict(json.loads, line)
