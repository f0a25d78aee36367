"""ToolRL's reward: hand-computed regression cases for every preset, the edge cases of the matching, and bounds.

Every expected value is worked out by hand from ToolRL's definition (their released
verl/utils/reward_score/rlla.py, as toolrl_env/rewards.py's docstring states it), never by running our code; the
arithmetic sits in a comment beside it. Notation: S is the match score, S_max its maximum, and
correctness = (max_c - min_c) * S / S_max + min_c, evaluated left to right as in the code.
`exact` rows compare with ==, because every intermediate value is a dyadic rational (or the double that
round() returns, which is the double nearest the decimal literal); `approx` rows (abs 1e-12) involve a
division that is not exact in binary (thirds, fifths, step/150, ...).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolrl_env.rewards import PRESETS, RewardBreakdown, RewardConfig, compute_score, reward_bounds

PRESET_NAMES = [
    "default",
    "coarse",
    "intermediate",
    "refined",
    "correct_max1",
    "max1_step30_max3",
    "schedule_reward",
    "with_length",
    "schedule_length",
]


def call(name: Any, **params: Any) -> dict[str, Any]:
    """One call object; keyword order is parameter order."""
    return {"name": name, "parameters": params}


def turn(*lines: dict[str, Any] | str, think: str = "think", response: str | None = None) -> str:
    """A TIR turn: think, then a <tool_call> block of `lines` (dicts JSON-encoded, str as-is), then a response."""
    text = f"<think>{think}</think>"
    if lines:
        body = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
        text += f"\n<tool_call>\n{body}\n</tool_call>"
    if response is not None:
        text += f"\n<response>{response}</response>"
    return text


def words(n: int) -> str:
    return " ".join(["w"] * n)


def approx(values: tuple[float, ...]) -> Any:
    return pytest.approx(values, rel=0, abs=1e-12)


def scored(result: RewardBreakdown) -> tuple[float, float, float, float]:
    return (result.format, result.correctness, result.length, result.total)


# The running example: one gold call with two parameters, S_max = 1 (names) + (1 (keys) + 2 (values)) = 4.
GOLD = turn(call("f", a=1, b=2))
EXACT = GOLD
PARTIAL = turn(call("f", a=1, b=3))  # S = 1 (names) + (1 (keys equal) + 1 (a matches)) = 3
SWAPPED = turn(call("f", b=3, a=1))  # keys ["b", "a"] vs ["a", "b"]: multiset m = 2/(2+2-2) = 1, strict m = 0
NO_CALL = "<think>think</think>\n<response>r</response>"  # wrong shape for a call gold, no <tool_call>
GARBAGE = "no tags at all"
GOLD_RESPONSE = "<think>think</think>\n<response>done</response>"
GOLD_BOTH = turn(call("f", a=1), response="done")
GOLD_THINK = "<think>think</think>"

E, A = "exact", "approx"


# --------------------------------------------------------------------------------------------- presets
# (preset, step, response, (format, correctness, length, total), comparison)
PRESET_CASES = [
    # default: format [0, 1], correctness [-3, 3]; the step does not matter.
    ("default", 0, EXACT, (1.0, 3.0, 0.0, 4.0), E),  # P == G -> max_c
    ("default", 0, PARTIAL, (1.0, 1.5, 0.0, 2.5), E),  # (3 - -3) * 3 / 4 + -3 = 18/4 - 3 = 1.5
    ("default", 300, PARTIAL, (1.0, 1.5, 0.0, 2.5), E),  # same at any step
    ("default", 0, SWAPPED, (1.0, 1.5, 0.0, 2.5), E),  # keys m = 1 (multiset), a matches: S = 3 -> 1.5
    ("default", 0, NO_CALL, (0.0, -3.0, 0.0, -3.0), E),  # no <tool_call> -> min_c; shape wrong -> min_f
    ("default", 0, GARBAGE, (0.0, -3.0, 0.0, -3.0), E),
    # coarse: anything but P == G is min_c.
    ("coarse", 0, EXACT, (1.0, 3.0, 0.0, 4.0), E),
    ("coarse", 0, PARTIAL, (1.0, -3.0, 0.0, -2.0), E),  # P != G -> -3; 1 + -3 = -2
    ("coarse", 0, SWAPPED, (1.0, -3.0, 0.0, -2.0), E),
    # intermediate: a gold call scores 1 only on an exact unused match; S_max = 1 + |G| = 2.
    ("intermediate", 0, EXACT, (1.0, 3.0, 0.0, 4.0), E),
    ("intermediate", 0, PARTIAL, (1.0, 0.0, 0.0, 1.0), E),  # S = 1 (names) + 0 -> 6 * 1 / 2 - 3 = 0
    # refined: name and key lists score 1 only when equal (order included).
    ("refined", 0, PARTIAL, (1.0, 1.5, 0.0, 2.5), E),  # keys in the same order: as default
    ("refined", 0, SWAPPED, (1.0, 0.0, 0.0, 1.0), E),  # S = 1 + (0 + 1) = 2 -> 6 * 2 / 4 - 3 = 0
    ("refined", 0, EXACT, (1.0, 3.0, 0.0, 4.0), E),
    # correct_max1: correctness [-1, 1].
    ("correct_max1", 0, EXACT, (1.0, 1.0, 0.0, 2.0), E),
    ("correct_max1", 0, PARTIAL, (1.0, 0.5, 0.0, 1.5), E),  # (1 - -1) * 3 / 4 + -1 = 6/4 - 1 = 0.5
    ("correct_max1", 0, NO_CALL, (0.0, -1.0, 0.0, -1.0), E),
    # max1_step30_max3: steps < 30: correctness [-3/3, 3/3] = [-1, 1]; steps >= 30: format [0/2, 1/2] = [0, 0.5].
    ("max1_step30_max3", 0, EXACT, (1.0, 1.0, 0.0, 2.0), E),
    ("max1_step30_max3", 29, EXACT, (1.0, 1.0, 0.0, 2.0), E),
    ("max1_step30_max3", 30, EXACT, (0.5, 3.0, 0.0, 3.5), E),
    ("max1_step30_max3", 31, EXACT, (0.5, 3.0, 0.0, 3.5), E),
    ("max1_step30_max3", 29, PARTIAL, (1.0, 0.5, 0.0, 1.5), E),  # (1 - -1) * 3 / 4 + -1 = 0.5
    ("max1_step30_max3", 30, PARTIAL, (0.5, 1.5, 0.0, 2.0), E),  # 6 * 3 / 4 - 3 = 1.5
    ("max1_step30_max3", 29, NO_CALL, (0.0, -1.0, 0.0, -1.0), E),
    ("max1_step30_max3", 30, NO_CALL, (0.0, -3.0, 0.0, -3.0), E),  # format min 0 / 2 = 0
    # schedule_reward: format max 2 - (2 - 1) * s / 150 (>= 1), min -2 + (2 + 0) * s / 150 (<= -1);
    # correctness max (3 - 2) * s / 150 + 2 (<= 3), min (-3 + 2) * s / 150 - 2 (>= -3).
    ("schedule_reward", 0, EXACT, (2.0, 2.0, 0.0, 4.0), E),  # format [-2, 2], correctness [-2, 2]
    ("schedule_reward", 0, PARTIAL, (2.0, 1.0, 0.0, 3.0), E),  # (2 - -2) * 3 / 4 + -2 = 3 - 2 = 1
    ("schedule_reward", 0, NO_CALL, (-2.0, -2.0, 0.0, -4.0), E),
    # step 30: format max 2 - 30/150 = 1.8, min -2 + 60/150 = -1.6; correctness 30/150 + 2 = 2.2, -2.2
    ("schedule_reward", 30, EXACT, (1.8, 2.2, 0.0, 4.0), A),
    ("schedule_reward", 30, NO_CALL, (-1.6, -2.2, 0.0, -3.8), A),
    # step 75: format max 2 - 75/150 = 1.5, min -2 + 150/150 = -1; correctness [-0.5 - 2, 0.5 + 2]
    ("schedule_reward", 75, EXACT, (1.5, 2.5, 0.0, 4.0), E),
    ("schedule_reward", 75, PARTIAL, (1.5, 1.25, 0.0, 2.75), E),  # (2.5 - -2.5) * 3 / 4 + -2.5 = 3.75 - 2.5
    ("schedule_reward", 75, NO_CALL, (-1.0, -2.5, 0.0, -3.5), E),
    # step 150: format max 2 - 1 = 1, min -2 + 2 = 0 -> capped at -1; correctness [-3, 3]
    ("schedule_reward", 150, EXACT, (1.0, 3.0, 0.0, 4.0), E),
    ("schedule_reward", 150, PARTIAL, (1.0, 1.5, 0.0, 2.5), E),  # 6 * 3 / 4 - 3
    ("schedule_reward", 150, NO_CALL, (-1.0, -3.0, 0.0, -4.0), E),
    # step 151: format max 2 - 151/150 < 1 -> 1, min > -1 -> -1; correctness 151/150 + 2 > 3 -> 3, < -3 -> -3
    ("schedule_reward", 151, PARTIAL, (1.0, 1.5, 0.0, 2.5), E),
    ("schedule_reward", 151, NO_CALL, (-1.0, -3.0, 0.0, -4.0), E),
    # step 300: format max 0 -> 1, min 2 -> -1; correctness 4 -> 3, -4 -> -3
    ("schedule_reward", 300, EXACT, (1.0, 3.0, 0.0, 4.0), E),
    ("schedule_reward", 300, PARTIAL, (1.0, 1.5, 0.0, 2.5), E),
    ("schedule_reward", 300, NO_CALL, (-1.0, -3.0, 0.0, -4.0), E),
    # with_length / schedule_length without a think tag: length 0 (its min), the rest as default.
    ("with_length", 0, GARBAGE, (0.0, -3.0, 0.0, -3.0), E),
    ("schedule_length", 0, GARBAGE, (0.0, -3.0, 0.0, -3.0), E),
    # with_length, 100 words: 100 / 512 = 0.1953125 -> round(., 2) = 0.2; total 1 + 3 + 0.2
    ("with_length", 0, turn(call("f", a=1, b=2), think=words(100)), (1.0, 3.0, 0.2, 4.2), A),
    # schedule_length at step 0: target (640 - 384) * 0 / 105 + 384 = 384; 100 / 384 = 0.2604 -> 0.26
    ("schedule_length", 0, turn(call("f", a=1, b=2), think=words(100)), (1.0, 3.0, 0.26, 4.26), A),
]


@pytest.mark.parametrize(("preset", "step", "response", "expected", "comparison"), PRESET_CASES)
def test_preset_cases(preset: str, step: int, response: str, expected: tuple[float, ...], comparison: str) -> None:
    result = scored(compute_score(response, GOLD, step=step, preset=preset))
    assert result == (expected if comparison == E else approx(expected))


def test_every_preset_is_named() -> None:
    assert set(PRESET_NAMES) <= set(PRESETS)
    assert all(isinstance(PRESETS[name], RewardConfig) for name in PRESET_NAMES)


def test_a_preset_name_and_its_config_score_alike() -> None:
    for name in PRESET_NAMES:
        for step in (0, 30, 151):
            by_name = compute_score(PARTIAL, GOLD, step=step, preset=name)
            assert by_name == compute_score(PARTIAL, GOLD, step=step, preset=PRESETS[name])


def test_unknown_preset_names_the_presets() -> None:
    with pytest.raises(ValueError, match="unknown reward preset") as info:
        compute_score(EXACT, GOLD, preset="fine_grained")
    assert "fine_grained" in str(info.value)
    for name in PRESET_NAMES:
        assert name in str(info.value)


# ---------------------------------------------------------------------------------------------- length
# (preset, step, think text or None for no think tags, expected length component)
LENGTH_CASES = [
    ("with_length", 0, words(100), 0.2),  # 100 / 512 = 0.1953125 -> 0.2
    ("with_length", 0, words(64), 0.12),  # 64 / 512 = 0.125, an exact tie: round half to even -> 0.12
    ("with_length", 0, words(192), 0.38),  # 192 / 512 = 0.375, exact tie -> 0.38 (even)
    ("with_length", 0, words(256), 0.5),  # 256 / 512 = 0.5
    ("with_length", 0, words(512), 1.0),  # 512 / 512 = 1
    ("with_length", 0, words(1000), 1.0),  # 1000 / 512 = 1.953125 -> 1.95 -> capped at 1
    ("with_length", 0, "", 0.0),  # 0 words
    ("with_length", 0, "  a\n\nb\tc  ", 0.01),  # 3 words (any whitespace): 3 / 512 = 0.005859375 -> 0.01
    ("with_length", 300, words(100), 0.2),  # fixed target: the step does not matter
    ("with_length", 0, None, 0.0),  # no think tag -> min 0
    ("schedule_length", 0, words(384), 1.0),  # target 384
    # target(104) = 256 * 104 / 105 + 384 = 637.5619...; target(105) = 640; target(106) = 642.4380...
    ("schedule_length", 104, words(636), 1.0),  # 636 / 637.56 = 0.99755 -> 1.0
    ("schedule_length", 105, words(636), 0.99),  # 636 / 640 = 0.99375 -> 0.99
    ("schedule_length", 106, words(636), 0.99),  # 636 / 642.44 = 0.98998 -> 0.99
    ("schedule_length", 104, words(637), 1.0),  # 637 / 637.56 = 0.99912 -> 1.0
    ("schedule_length", 105, words(637), 1.0),  # 637 / 640 = 0.9953125 -> 1.0
    ("schedule_length", 106, words(637), 0.99),  # 637 / 642.44 = 0.99154 -> 0.99
    ("schedule_length", 105, words(100), 0.16),  # 100 / 640 = 0.15625, an exact tie -> 0.16 (even)
    # the schedule is not clipped at 105 steps: target(300) = 256 * 300 / 105 + 384 = 1115.43; 1000 / 1115.43 = 0.8965
    ("schedule_length", 300, words(1000), 0.9),
    ("schedule_length", 105, None, 0.0),
]


@pytest.mark.parametrize(("preset", "step", "think", "expected"), LENGTH_CASES)
def test_length_reward(preset: str, step: int, think: str | None, expected: float) -> None:
    exact_call = json.dumps(call("f", a=1, b=2))
    if think is None:
        response = f"<tool_call>\n{exact_call}\n</tool_call>"
        fmt = 0.0
    else:
        response = turn(call("f", a=1, b=2), think=think)
        fmt = 1.0
    result = compute_score(response, GOLD, step=step, preset=preset)
    # round() returns the double nearest the 2-place decimal, the same double as the literal: exact.
    assert result.length == expected
    assert (result.format, result.correctness) == (fmt, 3.0)
    assert result.total == pytest.approx(fmt + 3.0 + expected, rel=0, abs=1e-12)  # a sum of decimals: approx


LENGTH_TEXT_CASES = [
    # Only both tags are needed, not the format: the think text counts even when the shape is wrong.
    # 256 / 512 = 0.5; format 0 (space instead of newline); correctness 3 (exact call) -> 0 + 3 + 0.5
    ("<think>" + words(256) + "</think> <tool_call>\n" + json.dumps(call("f", a=1, b=2)) + "\n</tool_call>", 0.5),
    # The last <think> is read: 2 words / 512 = 0.0039 -> 0.0; the first think's 512 words do not count.
    (
        "<think>"
        + words(512)
        + "</think>\n<think>one two</think>\n<tool_call>\n"
        + json.dumps(call("f", a=1, b=2))
        + "\n</tool_call>",
        0.0,
    ),
    # An opening tag without a closing one is no think text: min 0.
    ("<think>" + words(512) + "\n<tool_call>\n" + json.dumps(call("f", a=1, b=2)) + "\n</tool_call>", 0.0),
]


@pytest.mark.parametrize(("response", "expected"), LENGTH_TEXT_CASES)
def test_length_reads_the_last_think_text(response: str, expected: float) -> None:
    assert compute_score(response, GOLD, preset="with_length").length == expected


def test_length_reward_on_a_gold_without_calls() -> None:
    response = "<think>" + words(100) + "</think>\n<response>r</response>"
    result = compute_score(response, GOLD_RESPONSE, preset="with_length")
    # format 1, correctness 0 (gold has no call), length 100 / 512 -> 0.2; total 1.2 (approx: 1 + 0.2)
    assert (result.format, result.correctness, result.length) == (1.0, 0.0, 0.2)
    assert result.total == pytest.approx(1.2, rel=0, abs=1e-12)


# ------------------------------------------------------------------------------------------ edge cases
# (gold, response, preset, (format, correctness, length, total), comparison)
EDGE_CASES = [
    # Empty parameters on both sides.
    (turn(call("f")), turn(call("f")), "default", (1.0, 3.0, 0.0, 4.0), E),  # P == G
    # names equal: 1; f: m([], []) = 1 (equal lists) + 0 values; g: m([x], [x]) = 1 + 0 (2 != 1)
    # S = 1 + 1 + 1 = 3; S_max = 1 + (1 + 0) + (1 + 1) = 4 -> 6 * 3 / 4 - 3 = 1.5
    (turn(call("f"), call("g", x=1)), turn(call("f"), call("g", x=2)), "default", (1.0, 1.5, 0.0, 2.5), E),
    # Empty on one side: m([], [a]) = 0, no gold values -> 0, not above 0: nothing added.
    # S = 1 (names); S_max = 1 + (1 + 0) = 2 -> 6 * 1 / 2 - 3 = 0
    (turn(call("f")), turn(call("f", a=1)), "default", (1.0, 0.0, 0.0, 1.0), E),
    # S = 1 (names) + m([a], []) = 0; S_max = 1 + (1 + 1) = 3 -> 6 * 1 / 3 - 3 = -1
    (turn(call("f", a=1)), turn(call("f")), "default", (1.0, -1.0, 0.0, 0.0), E),
    # Greedy first-best with duplicate names. Gold [f{a:1}, f{a:1,b:2}], prediction [f{a:1,b:2}, f{c:5}].
    # names [f, f] == [f, f]: 1. g1 f{a:1}: p0 scores m([a], [a, b]) = 1/2 + 1 (a) = 1.5, p1 scores 0 -> takes p0.
    # g2 f{a:1,b:2}: only p1 left: m([a, b], [c]) = 0 + 0 -> nothing. S = 1 + 1.5 = 2.5;
    # S_max = 1 + (1 + 1) + (1 + 2) = 6 -> 6 * 2.5 / 6 - 3 = -0.5.
    # (The optimal assignment g1 -> p1, g2 -> p0 would give S = 1 + 0 + 3 = 4 -> 1.0.)
    (
        turn(call("f", a=1), call("f", a=1, b=2)),
        turn(call("f", a=1, b=2), call("f", c=5)),
        "default",
        (1.0, -0.5, 0.0, 0.5),
        E,
    ),
    # The same calls with the gold in the other order: g1 f{a:1,b:2} takes p0 (1 + 2 = 3), g2 f{a:1} gets
    # nothing from p1 (0). S = 1 + 3 = 4 -> 6 * 4 / 6 - 3 = 1.0: gold order matters.
    (
        turn(call("f", a=1, b=2), call("f", a=1)),
        turn(call("f", a=1, b=2), call("f", c=5)),
        "default",
        (1.0, 1.0, 0.0, 2.0),
        E,
    ),
    # Ties go to the first unused candidate, so prediction order matters. Gold [f{a:1}, f{a:1,b:2}].
    # Prediction [f{a:1,b:2}, f{a:1,c:3}]: g1 ties 1/2 + 1 = 1.5 on both, takes p0; g2 gets p1:
    # m([a, b], [a, c]) = 1/3 + 1 = 4/3. S = 1 + 1.5 + 4/3 = 23/6 -> 6 * (23/6) / 6 - 3 = 5/6 (approx)
    (
        turn(call("f", a=1), call("f", a=1, b=2)),
        turn(call("f", a=1, b=2), call("f", a=1, c=3)),
        "default",
        (1.0, 5 / 6, 0.0, 11 / 6),
        A,
    ),
    # Prediction [f{a:1,c:3}, f{a:1,b:2}]: g1 ties, takes p0 = f{a:1,c:3}; g2 gets p1: 1 + 2 = 3.
    # S = 1 + 1.5 + 3 = 5.5 -> 6 * 5.5 / 6 - 3 = 33/6 - 3 = 2.5
    (
        turn(call("f", a=1), call("f", a=1, b=2)),
        turn(call("f", a=1, c=3), call("f", a=1, b=2)),
        "default",
        (1.0, 2.5, 0.0, 3.5),
        E,
    ),
    # Duplicate gold names, one prediction: names m([f, f], [f]) = 1 / (2 + 1 - 1) = 0.5. g1 f{a:1} takes p0
    # f{a:2} for m = 1 + 0 values = 1, leaving g2 f{a:2} (which would have scored 2) nothing.
    # S = 0.5 + 1 = 1.5; S_max = 1 + 2 + 2 = 5 -> 6 * 1.5 / 5 - 3 = 9/5 - 3 = -1.2 (approx)
    (turn(call("f", a=1), call("f", a=2)), turn(call("f", a=2)), "default", (1.0, -1.2, 0.0, -0.2), A),
    # Multiset names: [f, f, g] vs [f, g, g]: common min(2, 1) + min(1, 2) = 2, union 3 + 3 - 2 = 4 -> 0.5.
    # f{a:1} -> p0: 1 + 1 = 2; f{a:2}: no unused f; g{} -> p1: m([], []) = 1. S = 0.5 + 2 + 0 + 1 = 3.5;
    # S_max = 1 + (1 + 1) + (1 + 1) + (1 + 0) = 6 -> 6 * 3.5 / 6 - 3 = 0.5
    (
        turn(call("f", a=1), call("f", a=2), call("g")),
        turn(call("f", a=1), call("g"), call("g")),
        "default",
        (1.0, 0.5, 0.0, 1.5),
        E,
    ),
    # Reordered calls are not P == G, but score S = S_max: names m([f, g], [g, f]) = 2 / (2 + 2 - 2) = 1;
    # f: 1 + 1 = 2; g: 1 + 1 = 2. S = 5; S_max = 1 + 2 + 2 = 5 -> 6 * 5 / 5 - 3 = 3
    (turn(call("f", a=1), call("g", b=2)), turn(call("g", b=2), call("f", a=1)), "default", (1.0, 3.0, 0.0, 4.0), E),
    # Extra predicted call: names m([f], [f, g]) = 1 / (1 + 2 - 1) = 0.5; f: 2. S = 2.5; S_max = 3
    # -> 6 * 2.5 / 3 - 3 = 15/3 - 3 = 2
    (turn(call("f", a=1)), turn(call("f", a=1), call("g")), "default", (1.0, 2.0, 0.0, 3.0), E),
    # Missing call: names m([f, g], [f]) = 0.5; f: 2; g: none. S = 2.5; S_max = 1 + 2 + 2 = 5 -> 15/5 - 3 = 0
    (turn(call("f", a=1), call("g", b=2)), turn(call("f", a=1)), "default", (1.0, 0.0, 0.0, 1.0), E),
    # Wrong value type: "1" != 1. S = 1 + (1 + 1 (b)) = 3; S_max = 4 -> 6 * 3 / 4 - 3 = 1.5
    (turn(call("f", a=1, b="x")), turn(call("f", a="1", b="x")), "default", (1.0, 1.5, 0.0, 2.5), E),
    (turn(call("f", a=1, b="x")), turn(call("f", a="1", b="x")), "coarse", (1.0, -3.0, 0.0, -2.0), E),
    # Python equality quirks: true == 1, false == 0 and 1.0 == 1, so these predictions ARE the gold (P == G).
    (turn(call("f", a=1)), turn(call("f", a=True)), "default", (1.0, 3.0, 0.0, 4.0), E),
    (turn(call("f", a=0)), turn(call("f", a=False)), "coarse", (1.0, 3.0, 0.0, 4.0), E),
    (turn(call("f", a=1)), turn(call("f", a=1.0)), "intermediate", (1.0, 3.0, 0.0, 4.0), E),
    # ... and inside partial matching: a: true == 1 counts. S = 1 + (1 + 1) = 3 -> 1.5
    (GOLD, turn(call("f", a=True, b=3)), "default", (1.0, 1.5, 0.0, 2.5), E),
    # A line that is not JSON, alone or beside a good one, or an empty line between calls -> min_c.
    (GOLD, turn("not json"), "default", (1.0, -3.0, 0.0, -2.0), E),
    (GOLD, turn(call("f", a=1, b=2), "{oops"), "default", (1.0, -3.0, 0.0, -2.0), E),
    (GOLD, turn(call("f", a=1, b=2), "", call("g")), "default", (1.0, -3.0, 0.0, -2.0), E),
    # JSON that is not an object -> min_c (no error escapes).
    (GOLD, turn("[1, 2]"), "default", (1.0, -3.0, 0.0, -2.0), E),
    (GOLD, turn("5"), "default", (1.0, -3.0, 0.0, -2.0), E),
    (GOLD, turn('"f"'), "default", (1.0, -3.0, 0.0, -2.0), E),
    (GOLD, turn("null"), "default", (1.0, -3.0, 0.0, -2.0), E),
    (GOLD, turn("[" * 100_000), "default", (1.0, -3.0, 0.0, -2.0), E),  # too deep for json: still min_c
    (GOLD, turn('{"parameters": {"a": 1, "b": 2}}'), "default", (1.0, -3.0, 0.0, -2.0), E),  # no name
    # No "parameters" on a call whose name a gold call has: reading its parameters fails -> min_c.
    (GOLD, turn('{"name": "f"}'), "default", (1.0, -3.0, 0.0, -2.0), E),
    (GOLD, turn(call("f", a=1, b=2), '{"name": "f"}'), "default", (1.0, -3.0, 0.0, -2.0), E),
    (GOLD, turn('{"name": "f", "parameters": null}'), "default", (1.0, -3.0, 0.0, -2.0), E),
    (GOLD, turn('{"name": "f", "parameters": [1]}'), "default", (1.0, -3.0, 0.0, -2.0), E),
    # ... but with a name no gold call has, its parameters are never read (the name check comes first):
    # names m([f], [f, zzz]) = 0.5; f -> the real call: 1 + 2 = 3. S = 3.5; S_max = 4 -> 6 * 3.5 / 4 - 3 = 2.25
    (GOLD, turn(call("f", a=1, b=2), '{"name": "zzz"}'), "default", (1.0, 2.25, 0.0, 3.25), E),
    (GOLD, turn('{"name": "zzz"}', call("f", a=1, b=2)), "default", (1.0, 2.25, 0.0, 3.25), E),
    # names m([f], [zzz]) = 0, no candidate: S = 0 -> min_c, reached by arithmetic, not by an error
    (GOLD, turn('{"name": "zzz"}'), "default", (1.0, -3.0, 0.0, -2.0), E),
    # intermediate compares whole calls, so a same-name call without parameters raises nothing there:
    # names m([f], [f, f]) = 1 / (1 + 2 - 1) = 0.5; f: the exact one -> 1. S = 1.5; S_max = 1 + 1 = 2
    # -> 6 * 1.5 / 2 - 3 = 1.5
    (GOLD, turn(call("f", a=1, b=2), '{"name": "f"}'), "intermediate", (1.0, 1.5, 0.0, 2.5), E),
    (GOLD, turn('{"name": "f"}', call("f", a=1, b=2)), "intermediate", (1.0, 1.5, 0.0, 2.5), E),
    # An unhashable name: the multiset of names cannot be counted -> min_c under default ...
    (GOLD, turn(call("f", a=1, b=2), call(["x"])), "default", (1.0, -3.0, 0.0, -2.0), E),
    # ... but refined never counts (unequal lists -> 0): f -> 1 (keys equal) + 2 = 3; S = 0 + 3 = 3; S_max = 4
    # -> 6 * 3 / 4 - 3 = 1.5
    (GOLD, turn(call("f", a=1, b=2), call(["x"])), "refined", (1.0, 1.5, 0.0, 2.5), E),
    # An extra top-level key: P != G, yet S = 1 + (1 + 2) = 4 = S_max -> 6 * 4 / 4 - 3 = 3 under default,
    (GOLD, turn({"name": "f", "parameters": {"a": 1, "b": 2}, "id": 7}), "default", (1.0, 3.0, 0.0, 4.0), E),
    (GOLD, turn({"name": "f", "parameters": {"a": 1, "b": 2}, "id": 7}), "coarse", (1.0, -3.0, 0.0, -2.0), E),
    # intermediate: not an exact call: S = 1 (names) + 0; S_max = 2 -> 6 * 1 / 2 - 3 = 0
    (GOLD, turn({"name": "f", "parameters": {"a": 1, "b": 2}, "id": 7}), "intermediate", (1.0, 0.0, 0.0, 1.0), E),
    # Key order inside the call object does not matter for P == G (dict equality).
    (GOLD, turn({"parameters": {"b": 2, "a": 1}, "name": "f"}), "refined", (1.0, 3.0, 0.0, 4.0), E),
    # No <tool_call> (or only one of its tags) when the gold has one -> min_c, and the shape is wrong -> min_f.
    (GOLD, NO_CALL, "default", (0.0, -3.0, 0.0, -3.0), E),
    (GOLD, "<think>t</think>\n<tool_call>\n" + json.dumps(call("f", a=1, b=2)), "default", (0.0, -3.0, 0.0, -3.0), E),
    (GOLD, "<think>t</think>\n" + json.dumps(call("f", a=1, b=2)) + "\n</tool_call>", "default", (0.0, -3, 0, -3), E),
    (GOLD, "", "default", (0.0, -3.0, 0.0, -3.0), E),
    # A block on one line: the shape needs newlines (format 0) but the stripped block is the exact call (3).
    (
        GOLD,
        "<think>t</think>\n<tool_call>" + json.dumps(call("f", a=1, b=2)) + "</tool_call>",
        "default",
        (0, 3, 0, 3),
        E,
    ),
    # An empty block "<tool_call>\n\n</tool_call>" has the shape (format 1) but its one line "" is not JSON (-3).
    (GOLD, "<think>t</think>\n<tool_call>\n\n</tool_call>", "default", (1.0, -3.0, 0.0, -2.0), E),
    # Two <tool_call> blocks: format 0 (two opening tags); correctness reads the first block only.
    (GOLD, EXACT + "\n<tool_call>\n" + json.dumps(call("g")) + "\n</tool_call>", "default", (0, 3, 0, 3), E),
    # first block [g{}]: names m([f], [g]) = 0, no f candidate: S = 0 -> -3
    (
        GOLD,
        turn(call("g")) + "\n<tool_call>\n" + json.dumps(call("f", a=1, b=2)) + "\n</tool_call>",
        "default",
        (0.0, -3.0, 0.0, -3.0),
        E,
    ),
    # A second <tool_call> before the first closes ends the first block: it holds only the exact call.
    (
        GOLD,
        "<think>t</think>\n<tool_call>\n" + json.dumps(call("f", a=1, b=2)) + "\n<tool_call>\n{}\n</tool_call>",
        "default",
        (0.0, 3.0, 0.0, 3.0),
        E,
    ),
    # Stripping: outer whitespace is ignored, inner separators are not.
    (GOLD, "  \n\t" + EXACT + "\n\n  ", "default", (1.0, 3.0, 0.0, 4.0), E),
    (GOLD, EXACT + "\n", "default", (1.0, 3.0, 0.0, 4.0), E),
    (GOLD, EXACT.replace("</think>\n", "</think>\n\n"), "default", (0.0, 3.0, 0.0, 3.0), E),
    (GOLD, "x" + EXACT, "default", (0.0, 3.0, 0.0, 3.0), E),
    # Gold without a call: correctness 0 whatever the response; format needs think + response.
    (GOLD_RESPONSE, "<think>a</think>\n<response>b</response>", "default", (1.0, 0.0, 0.0, 1.0), E),
    (GOLD_RESPONSE, "<response>b</response>", "default", (0.0, 0.0, 0.0, 0.0), E),  # no think
    (GOLD_RESPONSE, "<think>a</think>\n<response>b</response>\n<response>c</response>", "default", (0, 0, 0, 0), E),
    (GOLD_RESPONSE, turn(call("f"), response="b"), "default", (0.0, 0.0, 0.0, 0.0), E),  # a call: wrong shape
    (GOLD_RESPONSE, EXACT, "default", (0.0, 0.0, 0.0, 0.0), E),
    (GOLD_RESPONSE, GARBAGE, "coarse", (0.0, 0.0, 0.0, 0.0), E),
    (GOLD_RESPONSE, "", "correct_max1", (0.0, 0.0, 0.0, 0.0), E),
    (GOLD_RESPONSE, GARBAGE, "schedule_reward", (-2.0, 0.0, 0.0, -2.0), E),  # step 0: format min -2
    # Gold with both a call and a response.
    (GOLD_BOTH, turn(call("f", a=1), response="anything"), "default", (1.0, 3.0, 0.0, 4.0), E),
    (GOLD_BOTH, turn(call("f", a=1)), "default", (0.0, 3.0, 0.0, 3.0), E),  # no response: shape wrong
    # S = 1 (names) + (1 (keys) + 0 (2 != 1)) = 2; S_max = 1 + (1 + 1) = 3 -> 6 * 2 / 3 - 3 = 1
    (GOLD_BOTH, turn(call("f", a=2), response="r"), "default", (1.0, 1.0, 0.0, 2.0), E),
    (GOLD_BOTH, "<think>a</think>\n<response>r</response>", "default", (0.0, -3.0, 0.0, -3.0), E),
    # Think-only gold: the pattern ^<think>.*?</think>$ checks only the start and the end, no tag counts.
    (GOLD_THINK, "<think>a</think>", "default", (1.0, 0.0, 0.0, 1.0), E),
    (GOLD_THINK, "<think>a</think>\n<response>b</response>", "default", (0.0, 0.0, 0.0, 0.0), E),
    (GOLD_THINK, "<think>a</think> junk <tool_call> <think>b</think>", "default", (1.0, 0.0, 0.0, 1.0), E),
    (GOLD_THINK, "<think>a", "default", (0.0, 0.0, 0.0, 0.0), E),
]


@pytest.mark.parametrize(("gold", "response", "preset", "expected", "comparison"), EDGE_CASES)
def test_edge_cases(gold: str, response: str, preset: str, expected: tuple[float, ...], comparison: str) -> None:
    result = scored(compute_score(response, gold, preset=preset))
    assert result == (expected if comparison == E else approx(expected))


@pytest.mark.parametrize("response", [None, b"<think>t</think>", 42])
def test_a_non_str_response_scores_as_empty(response: Any) -> None:
    assert scored(compute_score(response, GOLD)) == (0.0, -3.0, 0.0, -3.0)


@pytest.mark.parametrize(
    "gold",
    [
        "<think>t</think>\n<tool_call>\nnot json\n</tool_call>",
        "<think>t</think>\n<tool_call>\n\n</tool_call>",  # the one line "" is not JSON
        "<think>t</think>\n<tool_call>\n[1, 2]\n</tool_call>",
        '<think>t</think>\n<tool_call>\n{"name": "f"}\n</tool_call>',
        '<think>t</think>\n<tool_call>\n{"parameters": {}}\n</tool_call>',
        '<think>t</think>\n<tool_call>\n{"name": "f", "parameters": [1]}\n</tool_call>',
        turn(call("f", a=1), "{oops"),
    ],
)
@pytest.mark.parametrize("response", [EXACT, NO_CALL, ""])
def test_malformed_ground_truth_raises(gold: str, response: str) -> None:
    with pytest.raises(ValueError, match="ground truth"):
        compute_score(response, gold)


# ------------------------------------------------------------------------------------- custom configs
REFINED_INTERMEDIATE = RewardConfig(refined=True, intermediate=True)
MAX1_SCHEDULE = RewardConfig(correctness_max=1.0, correctness_min=-1.0, schedule_steps=150)
TWO_STAGE_SCHEDULE = RewardConfig(two_stage_step=30, schedule_steps=150)
SCALES = RewardConfig(format_max=2.0, format_min=-1.0, correctness_max=5.0, correctness_min=-5.0)
LENGTH_SCALES = RewardConfig(length_words=100, length_max=2.0, length_min=-1.0)
LENGTH_SCHEDULE_ONLY = RewardConfig(length_words_schedule=(384, 640, 105))  # length_words None: off

REORDERED_GOLD = turn(call("f", a=1), call("g", b=2))
REORDERED = turn(call("g", b=2), call("f", a=1))

# (config, step, gold, response, (format, correctness, length, total), comparison)
CUSTOM_CASES = [
    # Reordered calls. default: S = S_max = 5 -> 3 (see EDGE_CASES). intermediate: names 1, both calls exact:
    # S = 3; S_max = 1 + 2 = 3 -> 3. refined: names [f, g] != [g, f] -> 0; each call 1 + 1: S = 4; S_max = 5
    # -> 6 * 4 / 5 - 3 = 1.8 (approx). refined + intermediate: S = 0 + 1 + 1 = 2; S_max = 3 -> 12 / 3 - 3 = 1.
    (PRESETS["intermediate"], 0, REORDERED_GOLD, REORDERED, (1.0, 3.0, 0.0, 4.0), E),
    (PRESETS["refined"], 0, REORDERED_GOLD, REORDERED, (1.0, 1.8, 0.0, 2.8), A),
    (REFINED_INTERMEDIATE, 0, REORDERED_GOLD, REORDERED, (1.0, 1.0, 0.0, 2.0), E),
    (PRESETS["coarse"], 0, REORDERED_GOLD, REORDERED, (1.0, -3.0, 0.0, -2.0), E),
    # correct_max1 + schedule: correctness max (1 - 2) * s / 150 + 2, min (-1 + 2) * s / 150 - 2; the caps at
    # +-3 never bind, so the range shrinks to [0, 0] at step 300 (and would invert beyond it).
    (MAX1_SCHEDULE, 0, GOLD, EXACT, (2.0, 2.0, 0.0, 4.0), E),  # [-2, 2]
    # step 75: [-75/150 ... ] = [0.5 - 2, -0.5 + 2] = [-1.5, 1.5]; (1.5 - -1.5) * 3 / 4 + -1.5 = 2.25 - 1.5
    (MAX1_SCHEDULE, 75, GOLD, PARTIAL, (1.5, 0.75, 0.0, 2.25), E),
    (MAX1_SCHEDULE, 150, GOLD, EXACT, (1.0, 1.0, 0.0, 2.0), E),  # [-1, 1]
    (MAX1_SCHEDULE, 150, GOLD, NO_CALL, (-1.0, -1.0, 0.0, -2.0), E),
    (MAX1_SCHEDULE, 300, GOLD, EXACT, (1.0, 0.0, 0.0, 1.0), E),  # max -300/150 + 2 = 0
    (MAX1_SCHEDULE, 300, GOLD, NO_CALL, (-1.0, 0.0, 0.0, -1.0), E),  # min 300/150 - 2 = 0
    (MAX1_SCHEDULE, 450, GOLD, EXACT, (1.0, -1.0, 0.0, 0.0), E),  # max -450/150 + 2 = -1: inverted, as ToolRL
    (MAX1_SCHEDULE, 450, GOLD, NO_CALL, (-1.0, 1.0, 0.0, 0.0), E),  # min 450/150 - 2 = 1
    # two-stage + schedule, step 30: format [0/2, 1/2] = [0, 0.5], then max 2 - (2 - 0.5) * 30/150 = 1.7;
    # correctness [-3, 3] (no division from step 30), then max 30/150 + 2 = 2.2. Total 3.9 (approx).
    (TWO_STAGE_SCHEDULE, 30, GOLD, EXACT, (1.7, 2.2, 0.0, 3.9), A),
    # format min -2 + (2 + 0) * 30/150 = -1.6; correctness min -30/150 - 2 = -2.2
    (TWO_STAGE_SCHEDULE, 30, GOLD, NO_CALL, (-1.6, -2.2, 0.0, -3.8), A),
    # step 0: format [0, 1] -> [-2, 2]; correctness [-1, 1] -> max (1 - 2) * 0 + 2 = 2, min (-1 + 2) * 0 - 2 = -2
    (TWO_STAGE_SCHEDULE, 0, GOLD, EXACT, (2.0, 2.0, 0.0, 4.0), E),
    # Custom scales: (5 - -5) * 3 / 4 + -5 = 7.5 - 5 = 2.5; format 2
    (SCALES, 0, GOLD, PARTIAL, (2.0, 2.5, 0.0, 4.5), E),
    (SCALES, 0, GOLD, NO_CALL, (-1.0, -5.0, 0.0, -6.0), E),
    # Custom length scale: 50 / 100 = 0.5 -> 0.5 * (2 - -1) + -1 = 0.5; no think -> min -1
    (LENGTH_SCALES, 0, GOLD, turn(call("f", a=1, b=2), think=words(50)), (1.0, 3.0, 0.5, 4.5), E),
    (LENGTH_SCALES, 0, GOLD, GARBAGE, (0.0, -3.0, -1.0, -4.0), E),
    # A length schedule alone does not turn the length reward on.
    (LENGTH_SCHEDULE_ONLY, 0, GOLD, turn(call("f", a=1, b=2), think=words(384)), (1.0, 3.0, 0.0, 4.0), E),
]


@pytest.mark.parametrize(("config", "step", "gold", "response", "expected", "comparison"), CUSTOM_CASES)
def test_custom_configs(
    config: RewardConfig, step: int, gold: str, response: str, expected: tuple[float, ...], comparison: str
) -> None:
    result = scored(compute_score(response, gold, step=step, preset=config))
    assert result == (expected if comparison == E else approx(expected))


# ------------------------------------------------------------------------------------------- bounds
# (preset, steps, (lowest, highest)): min/max format + min/max(correctness range, 0) + min/max length.
BOUNDS = [
    ("default", (0, 30, 150, 300), (-3.0, 4.0)),  # 0 + -3, 1 + 3
    ("coarse", (0, 30, 150, 300), (-3.0, 4.0)),
    ("intermediate", (0, 30, 150, 300), (-3.0, 4.0)),
    ("refined", (0, 30, 150, 300), (-3.0, 4.0)),
    ("correct_max1", (0, 30, 150, 300), (-1.0, 2.0)),  # 0 + -1, 1 + 1
    ("max1_step30_max3", (0, 29), (-1.0, 2.0)),  # 0 + -1, 1 + 1
    ("max1_step30_max3", (30, 31, 300), (-3.0, 3.5)),  # 0 + -3, 0.5 + 3
    ("schedule_reward", (0,), (-4.0, 4.0)),  # -2 + -2, 2 + 2
    ("schedule_reward", (75,), (-3.5, 4.0)),  # -1 + -2.5, 1.5 + 2.5
    ("schedule_reward", (150, 151, 300), (-4.0, 4.0)),  # -1 + -3, 1 + 3
    ("with_length", (0, 105, 300), (-3.0, 5.0)),  # 0 + -3 + 0, 1 + 3 + 1
    ("schedule_length", (0, 104, 105, 106, 300), (-3.0, 5.0)),
]


@pytest.mark.parametrize(("preset", "steps", "expected"), BOUNDS)
def test_reward_bounds_are_tight(preset: str, steps: tuple[int, ...], expected: tuple[float, float]) -> None:
    # 2000 words reach the length target at every step here (target(300) = 1115.43 words).
    best = turn(call("f", a=1, b=2), think=words(2000))
    for step in steps:
        assert reward_bounds(PRESETS[preset], step) == expected
        assert compute_score(best, GOLD, step=step, preset=preset).total == expected[1]
        assert compute_score(GARBAGE, GOLD, step=step, preset=preset).total == expected[0]


@pytest.mark.parametrize(
    ("config", "step", "expected"),
    [
        # format [-1.6, 1.7], correctness [-2.2, 2.2] (see CUSTOM_CASES) -> (-1.6 + -2.2, 1.7 + 2.2)
        (TWO_STAGE_SCHEDULE, 30, (-3.8, 3.9)),
        # format [-1, 1]; correctness max -1, min 1 (inverted), and 0 -> (-1 + -1, 1 + 1)
        (MAX1_SCHEDULE, 450, (-2.0, 2.0)),
    ],
)
def test_reward_bounds_of_custom_schedules(config: RewardConfig, step: int, expected: tuple[float, float]) -> None:
    assert reward_bounds(config, step) == pytest.approx(expected, rel=0, abs=1e-12)


# --------------------------------------------------------------------------------------- hypothesis
TAGS = ["<think>", "</think>", "<tool_call>", "</tool_call>", "<response>", "</response>"]
NAMES = st.sampled_from(["f", "g", "h"])
KEYS = st.sampled_from(["a", "b", "c"]) | st.text(max_size=3)
JSON_SCALARS = (
    st.none() | st.booleans() | st.integers(-3, 3) | st.integers(-(10**30), 10**30) | st.floats() | st.text(max_size=8)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)
CALLISH = st.one_of(
    st.fixed_dictionaries({"name": NAMES, "parameters": st.dictionaries(KEYS, JSON_SCALARS, max_size=3)}),
    st.fixed_dictionaries(
        {"name": NAMES | JSON_VALUES, "parameters": st.dictionaries(KEYS, JSON_VALUES) | JSON_VALUES}
    ),
    st.fixed_dictionaries({"name": NAMES}),
    JSON_VALUES,
)
LINES = st.one_of(CALLISH.map(json.dumps), st.text(max_size=20), st.sampled_from(["", "{", "[" * 2000, "1" * 5000]))
SEPARATORS = st.sampled_from(["\n", "\n\n", " ", "", "\r\n"])


@st.composite
def near_tir(draw: st.DrawFn) -> str:
    """A turn assembled from the right parts, each part possibly missing, doubled or badly separated."""
    parts = []
    if draw(st.booleans()):
        parts.append(f"<think>{draw(st.text(max_size=30))}</think>")
    for _ in range(draw(st.integers(0, 2))):
        body = draw(SEPARATORS).join(draw(st.lists(LINES, min_size=1, max_size=4)))
        parts.append(f"<tool_call>{draw(SEPARATORS)}{body}{draw(SEPARATORS)}</tool_call>")
    if draw(st.booleans()):
        parts.append(f"<response>{draw(st.text(max_size=10))}</response>")
    return draw(st.sampled_from(["", " ", "\n"])) + draw(SEPARATORS).join(parts)


FUZZ_GOLDS = [
    GOLD,
    turn(call("f", a=1), call("f", a=1, b=2), call("g")),
    GOLD_BOTH,
    GOLD_RESPONSE,
    GOLD_THINK,
    turn(call("g")),
]
RESPONSES = st.one_of(
    st.text(),
    st.lists(st.sampled_from([*TAGS, "\n", " ", "a", "{", "}", '"name"', ":", '"f"'])).map("".join),
    st.lists(st.sampled_from([*TAGS, "\n", "x", json.dumps(call("f", a=1, b=2))])).map("".join),
    near_tir(),
    st.sampled_from(FUZZ_GOLDS),
)
CONFIGS = [*PRESET_NAMES, REFINED_INTERMEDIATE, MAX1_SCHEDULE, TWO_STAGE_SCHEDULE, SCALES, LENGTH_SCALES]


@settings(max_examples=400, deadline=None)
@given(
    response=RESPONSES,
    gold=st.sampled_from(FUZZ_GOLDS),
    preset=st.sampled_from(CONFIGS),
    step=st.integers(0, 300),
)
def test_score_never_raises_and_stays_within_bounds(
    response: str, gold: str, preset: str | RewardConfig, step: int
) -> None:
    config = PRESETS[preset] if isinstance(preset, str) else preset
    result = compute_score(response, gold, step=step, preset=preset)
    low, high = reward_bounds(config, step)
    assert low - 1e-9 <= result.total <= high + 1e-9
    assert result.total == result.format + result.correctness + result.length
    if "<tool_call>" not in gold:
        assert result.correctness == 0.0
