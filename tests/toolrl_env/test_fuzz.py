"""Fuzzing with hypothesis: the parser, the reward and every env's `step` on near-valid and arbitrary completions.

The strategies build what a model half-trained on the TIR format writes: a think text, then `<tool_call>` lines
that call the offered tools with sampled arguments, some of them changed (a wrong type, a hostile string, a
missing or unknown parameter, a tool that is not offered), mutated copies of the gold, tag soup, and arbitrary
text, so the fuzzing reaches the matching, the argument checks, the tools and the episode metrics rather
than stopping at "not JSON". test_format.py, test_rewards.py and test_env.py hold the hand-made cases and
the first properties on arbitrary text; these extend them to every preset's component bounds, to random
reward configs, and to whole multi-step episodes of every registered env in both modes.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.fixtures.hostile_actions import CODE_STRINGS, EXPRESSIONS, PATHS, STATIC
from tests.fixtures.tool_envs import CASE_IDS, ENV_CASES, builtin_ids, check_step, deadline, make_env, tool_env
from toolrl_env.envs.bfcl.backends import backend_tools
from toolrl_env.format import ParsedTurn, parse, render_turn, tool_call_lines
from toolrl_env.rewards import PRESETS, RewardConfig, component_bounds, compute_score, gold_calls, reward_bounds
from tools.calculator import CALCULATE, CONVERT_UNITS
from tools.mock import sample_arguments
from tools.tool import Tool

TAGS = ["<think>", "</think>", "<tool_call>", "</tool_call>", "<response>", "</response>", "<obs>", "</obs>"]
SEPARATORS = st.sampled_from(["\n", "\n", "\n", "", " ", "\n\n", "\r\n", "\r"])


def json_values(integers: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    """JSON values (nested up to a few levels) with these integers, hostile strings among the text."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-3, 3),
        integers,
        st.floats(),
        st.text(max_size=12),
        st.sampled_from([*CODE_STRINGS.values(), *PATHS.values(), *EXPRESSIONS.values(), "", "\x00", "\ud800"]),
        st.lists(st.sampled_from([*TAGS, "x", "\n"]), max_size=4).map("".join),  # tags inside values
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=8,
    )


JSON_VALUES = json_values(st.integers())
# For calls that run, small integers: BFCL's MathAPI computes `power` and `round_number` on integers as sent,
# and each huge one costs its sandbox's whole timeout (the corpus has those, in hostile_actions.MATH_CALLS).
RUN_VALUES = json_values(st.integers(-1000, 1000))
# Short hostile entries only: the megabyte ones are the corpus test's job, here they would only slow examples down.
SHORT_HOSTILE = sorted(name for name, action in STATIC.items() if not isinstance(action, str) or len(action) < 2_000)
FUZZ_TOOLS = [CALCULATE, CONVERT_UNITS, *backend_tools("GorillaFileSystem"), *backend_tools("MathAPI")]


def dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


# -- arguments and call lines ---------------------------------------------------------------------------


@st.composite
def arguments(draw: st.DrawFn, tool: Tool, values: st.SearchStrategy[Any]) -> Any:
    """Valid arguments for `tool` (sampled from its schema), then none to three changes."""
    args: dict[str, Any] = sample_arguments(tool, np.random.default_rng(draw(st.integers(0, 2**32 - 1))))
    properties = tool.parameters.get("properties")
    names = list(properties) if isinstance(properties, dict) else []
    for _ in range(draw(st.integers(0, 3))):
        change = draw(st.sampled_from(["value", "drop", "add", "retype"]))
        if change == "value" and names:
            args[draw(st.sampled_from(names))] = draw(values)
        elif change == "drop" and args:
            del args[draw(st.sampled_from(sorted(args)))]
        elif change == "add":
            args[draw(st.text(max_size=8) | st.sampled_from(names or ["x"]))] = draw(values)
        elif change == "retype" and args:
            key = draw(st.sampled_from(sorted(args)))
            args[key] = draw(st.sampled_from([str(args[key]), [args[key]], {"value": args[key]}, None]))
    if draw(st.integers(0, 19)) == 0:  # now and then not an object at all
        return draw(values)
    return args


@st.composite
def call_lines(draw: st.DrawFn, tools: Sequence[Tool], values: st.SearchStrategy[Any]) -> str:
    """One <tool_call> line: mostly a call of an offered tool, sometimes a wrong name, JSON or text."""
    kind = draw(st.sampled_from(["offered"] * 6 + ["renamed", "json", "text", "no parameters"]))
    if kind in ("offered", "renamed", "no parameters") and tools:
        tool = draw(st.sampled_from(list(tools)))
        name = tool.name
        if kind == "renamed":
            name = draw(
                st.sampled_from([name.upper(), name + "_", " " + name, "none", "None", ""]) | st.text(max_size=6)
            )
        if kind == "no parameters":
            return dumps({"name": name})
        line = dumps({"name": name, "parameters": draw(arguments(tool, values))})
        # JSON may escape "/": a closing tag inside a value then survives the block it sits in.
        return line.replace("/", "\\/") if draw(st.integers(0, 3)) == 0 else line
    if kind == "json":
        return dumps(draw(values))
    return draw(st.text(max_size=30))


@st.composite
def tir_actions(
    draw: st.DrawFn, tools: Sequence[Tool], gold: str | None = None, values: st.SearchStrategy[Any] = JSON_VALUES
) -> Any:
    """A completion for one turn: near-valid TIR text over `tools`, the gold, tag soup, text, or a hostile entry."""
    kinds = ["calls"] * 5 + ["response", "calls and response", "soup", "text", "hostile"]
    if gold is not None:
        kinds += ["gold"] * 3 + ["mutated gold"] * 2
    kind = draw(st.sampled_from(kinds))
    think = f"<think>{draw(st.text(max_size=20))}</think>{draw(SEPARATORS)}"
    if kind == "gold" and gold is not None:
        return gold
    if kind == "mutated gold" and gold is not None:
        return draw(mutated_golds(gold, values))
    if kind == "hostile":
        return STATIC[draw(st.sampled_from(SHORT_HOSTILE))]
    if kind == "text":
        return draw(st.text())
    if kind == "soup":
        fragments = st.sampled_from([*TAGS, "\n", " ", "{", "}", '"name"', ":"]) | call_lines(tools, values)
        return "".join(draw(st.lists(fragments, max_size=12)))
    response = f"<response>{draw(st.text(max_size=20))}</response>"
    if kind == "response":
        return think + response
    lines = draw(st.lists(call_lines(tools, values), min_size=1, max_size=3))
    block = f"<tool_call>{draw(SEPARATORS)}" + draw(SEPARATORS).join(lines) + f"{draw(SEPARATORS)}</tool_call>"
    return think + block + (draw(SEPARATORS) + response if kind == "calls and response" else "")


@st.composite
def mutated_golds(draw: st.DrawFn, gold: str, values: st.SearchStrategy[Any]) -> str:
    """The gold turn with its calls changed: dropped, repeated, reordered, renamed, or a parameter altered."""
    calls = copy.deepcopy(gold_calls(gold))
    for _ in range(draw(st.integers(1, 3))):
        change = draw(st.sampled_from(["drop", "repeat", "reorder", "rename", "value", "drop key", "add key"]))
        if not calls:
            break
        index = draw(st.integers(0, len(calls) - 1))
        call, params = calls[index], calls[index]["parameters"]
        if change == "drop":
            del calls[index]
        elif change == "repeat":
            calls.insert(index, copy.deepcopy(call))
        elif change == "reorder":
            calls.reverse()
        elif change == "rename":
            call["name"] = draw(st.sampled_from([c["name"] for c in calls]) | st.text(max_size=6))
        elif change == "value" and params:
            params[draw(st.sampled_from(sorted(params)))] = draw(values)
        elif change == "drop key" and params:
            del params[draw(st.sampled_from(sorted(params)))]
        elif change == "add key":
            params[draw(st.text(max_size=6))] = draw(values)
    think = draw(st.sampled_from(["<think> t </think>", "<think></think>", ""]))
    response = draw(st.none() | st.text(max_size=10))
    text = think
    if calls:
        text += "\n<tool_call>\n" + "\n".join(map(dumps, calls)) + "\n</tool_call>"
    if response is not None:
        text += f"\n<response>{response}</response>"
    return text


# -- the parser ---------------------------------------------------------------------------------------


def same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN (repr compares floats by their digits)."""
    return bool(a == b) or repr(a) == repr(b)


@settings(max_examples=300, deadline=None)
@given(text=tir_actions(FUZZ_TOOLS))
def test_parse_of_near_valid_completions_never_raises_and_round_trips(text: Any) -> None:
    parsed = parse(text)
    assert isinstance(parsed, ParsedTurn)
    assert parsed.format_ok is (not parsed.errors)
    if not parsed.format_ok:
        return
    # A well-formed turn decoded every call line, and rendering its parts gives the same parts back.
    stripped = text.strip()
    if "<tool_call>" in stripped:
        assert len(parsed.tool_calls) == len(tool_call_lines(stripped))
    again = parse(render_turn(parsed.think, parsed.tool_calls, parsed.response))
    assert again.format_ok
    assert (again.think, again.response) == (parsed.think, parsed.response)
    assert same(again.tool_calls, parsed.tool_calls)


# -- the reward ---------------------------------------------------------------------------------------

# Gold turns of every shape the envs produce: calls (one, parallel, nested values), a response, both.
GOLDS = [
    render_turn("t", [{"name": "calculate", "parameters": {"expression": "12 * 7"}}]),
    render_turn(
        "t",
        [
            {"name": "convert_units", "parameters": {"value": 10, "from_unit": "cm", "to_unit": "m"}},
            {"name": "calculate", "parameters": {"expression": "2 + 2"}},
            {"name": "convert_units", "parameters": {"value": 1.5, "from_unit": "kg", "to_unit": "lb"}},
        ],
    ),
    render_turn("t", [{"name": "cp", "parameters": {"source": "a.txt", "destination": "b/c.txt"}}]),
    render_turn("t", [{"name": "f", "parameters": {"xs": [1, [2, {"k": None}]], "flag": True, "empty": {}}}]),
    render_turn("t", [{"name": "g", "parameters": {}}], response="done"),
    render_turn("t", response="james madison"),
    "<think> t </think>",
]


def assert_within_bounds(config: RewardConfig, step: int, result: Any) -> None:
    low, high = reward_bounds(config, step)
    values = result.model_dump()
    assert all(math.isfinite(v) for v in values.values()), values
    assert low - 1e-9 <= result.total <= high + 1e-9, (values, low, high)
    for name, (lowest, highest) in component_bounds(config, step).items():
        assert lowest - 1e-9 <= values[name] <= highest + 1e-9, (name, values, lowest, highest)
    assert result.total == result.format + result.correctness + result.length + result.answer


@settings(max_examples=400, deadline=None)
@given(data=st.data(), gold=st.sampled_from(GOLDS), preset=st.sampled_from(sorted(PRESETS)), step=st.integers(0, 400))
def test_compute_score_of_every_preset_stays_within_each_components_bounds(
    data: st.DataObject, gold: str, preset: str, step: int
) -> None:
    response = data.draw(tir_actions(FUZZ_TOOLS, gold))
    result = compute_score(response, gold, step=step, preset=preset)
    assert_within_bounds(PRESETS[preset], step, result)
    assert compute_score(response, gold, step=step, preset=preset) == result  # a pure function of its inputs
    if "<tool_call>" not in gold:
        assert result.correctness == 0.0


SCALES = st.floats(-5, 5, allow_nan=False)
STEPS = st.floats(-200, 400, allow_nan=False)
CONFIG_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "format_max": SCALES,
        "format_min": SCALES,
        "correctness_max": SCALES,
        "correctness_min": SCALES,
        "coarse": st.booleans(),
        "intermediate": st.booleans(),
        "refined": st.booleans(),
        "two_stage_step": st.none() | st.integers(-10, 300),
        "schedule_steps": st.none() | STEPS | st.just(0.0),
        "length_words": st.none() | STEPS | st.just(0.0),
        "length_words_schedule": st.none() | st.tuples(STEPS, STEPS, STEPS),
        "length_max": SCALES,
        "length_min": SCALES,
        "answer": st.none() | st.sampled_from(["em", "f1"]),
        "answer_max": SCALES,
        "answer_min": SCALES,
    },
)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), fields=CONFIG_FIELDS, gold=st.sampled_from(GOLDS), step=st.integers(0, 400))
def test_any_reward_config_is_refused_at_construction_or_scores_within_its_bounds(
    data: st.DataObject, fields: dict[str, Any], gold: str, step: int
) -> None:
    try:
        config = RewardConfig(**fields)
    except ValidationError as error:
        # Refused up front, naming the field, rather than failing (or leaving the bounds) while scoring.
        assert any(name in str(error) for name in fields), error
        return
    response = data.draw(tir_actions(FUZZ_TOOLS, gold))
    assert_within_bounds(config, step, compute_score(response, gold, step=step, preset=config))


# -- every env's step -----------------------------------------------------------------------------------

MAX_STEPS = 12
STEP_SECONDS = 10.0


def test_the_cases_cover_every_builtin_id() -> None:
    assert {env_id for env_id, _ in ENV_CASES} == builtin_ids()


def run_episode(env: Any, reset: dict[str, Any], actions: list[Any]) -> list[str]:
    """Everything the env returns for these actions after this reset, as text (so NaN equals NaN)."""
    trace = [repr(env.reset(**reset))]
    for action in actions:
        result = env.step(action)
        trace.append(repr(result))
        if result[2] or result[3]:
            break
    return trace


def describe(result: tuple[Any, ...]) -> None:
    """Tell hypothesis's statistics (`--hypothesis-show-statistics`) how deep the step went."""
    info = result[4]
    event(f"format ok: {info['parsed']['format_ok']}")
    if info["tool_results"]:
        event(f"a call ran: {any(r['ok'] for r in info['tool_results'])}")
    if result[2] or result[3]:
        event("episode " + ("terminated" if result[2] else "truncated"))
        if "error_type" in info["metrics"]:  # BFCL multi-turn: the official checker ran unless force-terminated
            event(f"BFCL checker: {info['metrics']['error_type'] or 'success'}")


@pytest.mark.slow
@pytest.mark.parametrize(("env_id", "mode"), ENV_CASES, ids=CASE_IDS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_every_env_step_keeps_the_contract_and_replays_identically(
    rlla_data: dict[str, Any], env_id: str, mode: str, data: st.DataObject
) -> None:
    preset = data.draw(st.sampled_from(sorted(PRESETS)), label="preset")
    env = make_env(env_id, mode, str(rlla_data["json"]), preset)
    tool_rl = tool_env(env)
    task = data.draw(st.sampled_from(tool_rl.tasks), label="task").id
    step = data.draw(st.integers(0, 300), label="training step")
    reset = {"seed": data.draw(st.integers(0, 2**31 - 1)), "options": {"task_id": task, "training_step": step}}
    trace = [repr(env.reset(**reset))]
    actions = []
    for _ in range(MAX_STEPS):
        action = data.draw(tir_actions(tool_rl.offered_tools(), tool_rl.current_gold().text, RUN_VALUES))
        actions.append(action)
        with deadline(STEP_SECONDS):
            result = env.step(action)
        check_step(env_id, tool_rl, result, step)
        trace.append(repr(result))
        describe(result)
        if result[2] or result[3]:
            break
    # Determinism: the same seed and actions give the same observations, rewards and info; replayed on the
    # same env, so state left over from the first run would show.
    assert run_episode(env, reset, actions) == trace
