"""ToolRL's reward, reproduced to the last float from their released `verl/utils/reward_score/rlla.py`.

total = format + correctness + length + answer, where

* format is `format_max` if the response has the shape of the gold turn (think, then tool_call and/or
  response, each once) and `format_min` otherwise;
* correctness is 0 when the gold makes no call; otherwise it maps a match score S in [0, S_max] (tool names,
  then for each gold call the best unused same-name prediction's parameter-name and parameter-value matches)
  linearly onto [correctness_min, correctness_max]; an unparsable prediction gets `correctness_min`;
* length (off by default) is the share of `length_words` words in the think text, rounded to 2 places;
* answer (off by default; not in ToolRL's reward) scores the `<response>` text against the gold's with QA
  exact match or token F1 (`toolrl_env.qa`), for question-answering suites such as Bamboogle.

ToolRL switched variants with environment variables; here each is a field of `RewardConfig`, the paper's
variants are named presets in `PRESETS`, and any combination of fields is allowed.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat

from toolrl_env.format import decode_json, matches_shape, text_between, tool_call_lines
from toolrl_env.qa import exact_match, f1_score


class RewardConfig(BaseModel):
    """The reward's scales, variants and schedules. Defaults are ToolRL's default (fine-grained) reward.

    Every number must be finite, and the step counts and word targets the reward divides by positive, so a
    config that could not score is refused when it is made, naming the field.
    """

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    format_max: float = Field(default=1.0, description="Format reward for a well-formed turn.")
    format_min: float = Field(default=0.0, description="Format reward otherwise.")
    correctness_max: float = Field(default=3.0, description="Correctness reward for calls equal to the gold.")
    correctness_min: float = Field(
        default=-3.0,
        description="Correctness reward for no score, a missing <tool_call> or an unparsable line.",
    )
    coarse: bool = Field(
        default=False,
        description="Exact match or nothing: any other call list gets correctness_min (COARSEREWARD).",
    )
    intermediate: bool = Field(
        default=False,
        description="A gold call scores 1 only if an unused prediction equals it exactly; S_max = 1 + number of "
        "gold calls (INTERMEDIATEREWARD).",
    )
    refined: bool = Field(
        default=False,
        description="Name and parameter-name lists score 1 only when equal, else 0, instead of their multiset "
        "overlap (REFINEDREWARD, the paper's 'fine-grained' ablation).",
    )
    two_stage_step: int | None = Field(
        default=None,
        description="Two-stage scales (MAX1STEP30MAX3): before this training step the correctness range is "
        "divided by 3, from it on the format range is halved. None: off; ToolRL used 30.",
    )
    schedule_steps: PositiveFloat | None = Field(
        default=None,
        description="Dynamic scales (SCHEDULEREWARD): over this many steps the format range moves from [-2, 2] "
        "towards the configured one (max floored at 1, min capped at -1) and the correctness range from [-2, 2] "
        "towards it (capped at [-3, 3]). None: off; ToolRL used 150.",
    )
    length_words: PositiveFloat | None = Field(
        default=None,
        description="Length reward on (WITHLENGTH): think-text words that earn the full length reward; ToolRL "
        "used 512. None: no length reward.",
    )
    length_words_schedule: tuple[PositiveFloat, PositiveFloat, PositiveFloat] | None = Field(
        default=None,
        description="(start, end, steps): the word target moves linearly from start to end over steps, "
        "unclipped (SCHEDULELENGTH used (384, 640, 105)); overrides length_words when the length reward is on. "
        "A falling target that the extrapolation takes to 0 words or below is met by any think text.",
    )
    length_max: float = Field(default=1.0, description="Length reward for a think text at or over the target.")
    length_min: float = Field(default=0.0, description="Length reward for no think text.")
    answer: Literal["em", "f1"] | None = Field(
        default=None,
        description="Answer reward on: when the gold turn has a <response>, the model's <response> text is "
        "scored against it with SQuAD-normalised exact match ('em') or token F1 ('f1'), a score in [0, 1]; "
        "a missing <response> scores 0. None: off, as in ToolRL's reward. Unaffected by the schedules.",
    )
    answer_max: float = Field(default=1.0, description="Answer reward for a score of 1 (an exact answer).")
    answer_min: float = Field(
        default=0.0, description="Answer reward for a score of 0; scores in between map linearly onto the range."
    )


PRESETS: dict[str, RewardConfig] = {
    "default": RewardConfig(),
    "coarse": RewardConfig(coarse=True),
    "intermediate": RewardConfig(intermediate=True),
    "refined": RewardConfig(refined=True),
    "correct_max1": RewardConfig(correctness_max=1.0, correctness_min=-1.0),
    "max1_step30_max3": RewardConfig(two_stage_step=30),
    "schedule_reward": RewardConfig(schedule_steps=150),
    "with_length": RewardConfig(length_words=512),
    "schedule_length": RewardConfig(length_words=512, length_words_schedule=(384, 640, 105)),
}


class RewardBreakdown(BaseModel):
    """Each component of one turn's reward and their sum."""

    format: float = Field(description="Format component.")
    correctness: float = Field(description="Tool-call correctness component.")
    length: float = Field(description="Length component (0 unless the config turns it on).")
    answer: float = Field(default=0.0, description="Answer component (0 unless the config turns it on).")
    total: float = Field(description="format + correctness + length + answer.")


def resolve_config(preset: str | RewardConfig) -> RewardConfig:
    """A RewardConfig from a preset name or itself."""
    if isinstance(preset, RewardConfig):
        return preset
    try:
        return PRESETS[preset]
    except (KeyError, TypeError):
        raise ValueError(f"unknown reward preset {preset!r}; presets: {', '.join(PRESETS)}") from None


def component_bounds(config: RewardConfig, step: int = 0) -> dict[str, tuple[float, float]]:
    """The lowest and highest value of each component (format, correctness, length, answer) at `step`."""
    values = {
        "format": _format_range(config, step),
        "correctness": (*_correctness_range(config, step), 0.0),  # 0 when the gold makes no call
        "length": (config.length_min, config.length_max) if config.length_words is not None else (0.0,),
        # 0 when the gold has no <response>
        "answer": (config.answer_min, config.answer_max, 0.0) if config.answer is not None else (0.0,),
    }
    return {name: (min(range_), max(range_)) for name, range_ in values.items()}


def reward_bounds(config: RewardConfig, step: int = 0) -> tuple[float, float]:
    """The lowest and highest total reward `config` can give at `step`."""
    bounds = component_bounds(config, step).values()
    return sum(low for low, _ in bounds), sum(high for _, high in bounds)


def _format_range(config: RewardConfig, step: int) -> tuple[float, float]:
    low, high = config.format_min, config.format_max
    if config.two_stage_step is not None and step >= config.two_stage_step:
        high, low = high / 2, low / 2
    if config.schedule_steps is not None:
        # ToolRL's expressions and constants, in their order of operations, so floats match exactly.
        high = 2 - (2 - high) * step / config.schedule_steps
        low = -2 + (2 + low) * step / config.schedule_steps
        high, low = max(high, 1.0), min(low, -1.0)
    return low, high


def _correctness_range(config: RewardConfig, step: int) -> tuple[float, float]:
    low, high = config.correctness_min, config.correctness_max
    if config.two_stage_step is not None and step < config.two_stage_step:
        high, low = high / 3, low / 3
    if config.schedule_steps is not None:
        high = (high - 2) * step / config.schedule_steps + 2
        low = (low + 2) * step / config.schedule_steps - 2
        high, low = min(high, 3.0), max(low, -3.0)
    return low, high


def format_reward(response: str, ground_truth: str, config: RewardConfig, step: int = 0) -> float:
    """`format_max` if the response has the shape of the gold turn, else `format_min`."""
    low, high = _format_range(config, step)
    has_call, has_response = "<tool_call>" in ground_truth, "<response>" in ground_truth
    return high if matches_shape(response, has_call, has_response) else low


def length_reward(response: str, config: RewardConfig, step: int = 0) -> float:
    """Share of the target word count in the last think text, rounded to 2 places and capped at 1."""
    if config.length_words is None:
        return 0.0
    if "<think>" not in response or "</think>" not in response:
        return config.length_min
    target = config.length_words
    if config.length_words_schedule is not None:
        start, end, steps = config.length_words_schedule
        target = (end - start) * step / steps + start
    if target <= 0:  # a falling schedule extrapolated past its end: no words are needed
        return config.length_max
    think = response.rpartition("<think>")[2].partition("</think>")[0].strip()
    share = min(round(len(think.split()) / target, 2), 1.0)
    return share * (config.length_max - config.length_min) + config.length_min


def answer_reward(response: str, ground_truth: str, config: RewardConfig) -> float:
    """The answer component: 0 when off or when the gold has no <response>; otherwise the EM or F1 of the
    response's <response> text against the gold's, mapped onto [answer_min, answer_max]."""
    if config.answer is None:
        return 0.0
    gold = text_between(ground_truth, "<response>", "</response>")
    if gold is None:
        return 0.0
    predicted = text_between(response, "<response>", "</response>")
    gold, predicted = gold.strip(), None if predicted is None else predicted.strip()
    score = exact_match(predicted, gold) if config.answer == "em" else f1_score(predicted, gold)
    return (config.answer_max - config.answer_min) * score + config.answer_min


@lru_cache(maxsize=8192)
def gold_calls(ground_truth: str) -> list[dict[str, Any]]:
    """The gold's calls as decoded JSON objects (do not mutate: cached); a malformed gold raises ValueError."""
    if "<tool_call>" not in ground_truth:
        return []
    calls = []
    for line in tool_call_lines(ground_truth):
        try:
            call = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"ground truth has an unparsable <tool_call> line {line!r}: {exc}") from None
        if not (isinstance(call, dict) and "name" in call and isinstance(call.get("parameters"), dict)):
            raise ValueError(f"ground truth call {line!r} needs a 'name' and a 'parameters' object")
        calls.append(call)
    return calls


def _counts(items: list[Any]) -> dict[Any, int]:
    """Multiplicities (a Counter without its overhead; unhashable items raise TypeError as Counter does)."""
    counts: dict[Any, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


def _list_match(a: list[Any], b: list[Any], strict: bool) -> float:
    """1 if equal; else 0 when strict or either is empty; else multiset intersection over union."""
    if a == b:
        return 1.0
    if strict or not a or not b:
        return 0.0
    count_a, count_b = _counts(a), _counts(b)
    common = 0
    for item, n in count_a.items():
        if item in count_b:
            common += min(n, count_b[item])
    union = len(a) + len(b) - common
    return common / union if union > 0 else 0.0


def _calls_score(gold: list[dict[str, Any]], pred: list[Any], config: RewardConfig) -> tuple[float, float]:
    """(S, S_max) of ToolRL's matching; raises TypeError/KeyError/AttributeError on malformed predictions."""
    score = _list_match([g["name"] for g in gold], [p["name"] for p in pred], config.refined)
    score_max = 1.0
    used: set[int] = set()
    for g in gold:
        g_params = g["parameters"]
        score_max += 1.0 if config.intermediate else 1.0 + len(g_params)
        best, best_score = -1, 0.0
        for i, p in enumerate(pred):
            if i in used or p["name"] != g["name"]:
                continue
            if config.intermediate:
                if g == p:
                    best, best_score = i, 1.0
                    break
                continue
            p_params = p["parameters"]
            names = _list_match(list(g_params.keys()), list(p_params.keys()), config.refined)
            values = 0.0
            for k, v in g_params.items():
                if k in p_params and p_params[k] == v:
                    values += 1.0
            total = names + values
            if total > best_score:
                best, best_score = i, total
        if best >= 0:
            used.add(best)
            score += best_score
    return score, score_max


def correctness_reward(response: str, ground_truth: str, config: RewardConfig, step: int = 0) -> float:
    """ToolRL's tool-call correctness: 0 without gold calls, else the match score mapped onto the range."""
    if "<tool_call>" not in ground_truth:
        return 0.0
    gold = gold_calls(ground_truth)
    low, high = _correctness_range(config, step)
    if "<tool_call>" not in response or "</tool_call>" not in response:
        return low
    try:
        pred = [decode_json(line) for line in tool_call_lines(response)]
        if gold == pred:
            return high
        if config.coarse:
            return low
        score, score_max = _calls_score(gold, pred, config)
    except Exception:
        # As in ToolRL (a bare except): a prediction that cannot be decoded or matched
        # (bad JSON, a line that is not an object, no name or parameters) gets the minimum.
        return low
    return (high - low) * score / score_max + low


def compute_score(
    response: str, ground_truth: str, step: int = 0, preset: str | RewardConfig = "default"
) -> RewardBreakdown:
    """Score one model turn against the gold turn (both TIR text) at training `step`.

    The response is stripped first, as ToolRL's extraction of the assistant turn did. A malformed
    `ground_truth` raises ValueError; any `response` is scored.
    """
    config = resolve_config(preset)
    if not isinstance(response, str):
        response = ""
    response = response.strip()
    fmt = format_reward(response, ground_truth, config, step)
    correct = correctness_reward(response, ground_truth, config, step)
    length = length_reward(response, config, step)
    if config.answer is None:
        return RewardBreakdown(format=fmt, correctness=correct, length=length, total=fmt + correct + length)
    answer = answer_reward(response, ground_truth, config)
    return RewardBreakdown(
        format=fmt, correctness=correct, length=length, answer=answer, total=fmt + correct + length + answer
    )
