"""Differential check of our reward against ToolRL's released code, preset by preset.

    python benchmarks/compare_toolrl_reward.py --toolrl PATH/TO/rlla.py [--data-path ../shared/data/toolrl]

`--toolrl` is ToolRL's `verl/utils/reward_score/rlla.py` from a checkout of qiancheng0/ToolRL (not shipped
here). Golds are the RLLA rows in `--data-path` (the parquet test split and the SFT json, as our loader reads
them); each is answered by mutated predictions (reordered, dropped, extra and duplicated calls,
changed values and types, renamed keys, missing or non-object parameters, bad JSON, response-only, no think,
extra whitespace) at steps around every schedule boundary. ToolRL's variants are switched with its own
environment variables; every component of every score must be equal as floats.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import random
from pathlib import Path
from typing import Any

from toolrl_env.cli import add_argument
from toolrl_env.envs.rlla.tasks import load_rlla
from toolrl_env.rewards import PRESETS, RewardConfig, compute_score

SWITCHES = {
    "default": {},
    "coarse": {"COARSEREWARD": "1"},
    "intermediate": {"INTERMEDIATEREWARD": "1"},
    "refined": {"REFINEDREWARD": "1"},
    "correct_max1": {"CORRECTMAX1": "1"},
    "max1_step30_max3": {"MAX1STEP30MAX3": "1"},
    "schedule_reward": {"SCHEDULEREWARD": "1"},
    "with_length": {"WITHLENGTH": "1"},
    "schedule_length": {"WITHLENGTH": "1", "SCHEDULELENGTH": "1"},
}
COMBINATIONS: dict[str, tuple[RewardConfig, dict[str, str]]] = {
    "intermediate+refined+two-stage+schedule+max1+length": (
        RewardConfig(
            intermediate=True,
            refined=True,
            two_stage_step=30,
            schedule_steps=150,
            correctness_max=1,
            correctness_min=-1,
            length_words=512,
        ),
        {
            "INTERMEDIATEREWARD": "1",
            "REFINEDREWARD": "1",
            "MAX1STEP30MAX3": "1",
            "SCHEDULEREWARD": "1",
            "CORRECTMAX1": "1",
            "WITHLENGTH": "1",
        },
    ),
    "coarse+two-stage+max1": (
        RewardConfig(coarse=True, two_stage_step=30, correctness_max=1, correctness_min=-1),
        {"COARSEREWARD": "1", "MAX1STEP30MAX3": "1", "CORRECTMAX1": "1"},
    ),
}
STEPS = [0, 29, 30, 31, 75, 104, 105, 106, 149, 150, 151, 300]
ALL_SWITCHES = {name for switches in SWITCHES.values() for name in switches}


def _load_toolrl(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("toolrl_rlla", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load ToolRL's reward from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _calls(gold: str) -> list[dict[str, Any]]:
    if "<tool_call>" not in gold:
        return []
    block = gold.split("<tool_call>")[1].split("</tool_call>")[0].strip()
    return [json.loads(line) for line in block.split("\n")]


def _turn(think: str, calls: list[Any] | None, response: str | None, sep: str = "\n") -> str:
    text = f"<think> {think} </think>"
    if calls is not None:
        lines = (c if isinstance(c, str) else json.dumps(c) for c in calls)
        text += sep + "<tool_call>\n" + "\n".join(lines) + "\n</tool_call>"
    if response is not None:
        text += sep + f"<response> {response} </response>"
    return text


def _mutate(calls: list[dict[str, Any]], rng: random.Random) -> list[Any]:
    out: list[Any] = json.loads(json.dumps(calls))
    call = rng.choice(out)
    keys = list(call["parameters"])
    kind = rng.randrange(9)
    if kind == 0 and keys:
        call["parameters"][rng.choice(keys)] = rng.choice(["1", 1, 1.0, True, None, [1], {"a": 1}, "x"])
    elif kind == 1 and keys:
        call["parameters"].pop(rng.choice(keys))
    elif kind == 2:
        call["parameters"]["new_key"] = 5
    elif kind == 3:
        call["name"] += "_x"
    elif kind == 4:
        del call["parameters"]
    elif kind == 5:
        call["parameters"] = list(call["parameters"].items())
    elif kind == 6 and keys:
        key = rng.choice(keys)
        call["parameters"][key.upper() + "z"] = call["parameters"].pop(key)
    elif kind == 7:
        out[out.index(call)] = rng.choice([1, "str", None, [1, 2], {"nm": 1}, {"name": ["a"], "parameters": {}}])
    else:
        out.append("{not json")
    return out


def predictions(gold: str, rng: random.Random) -> list[str]:
    """Mutated answers to one gold."""
    calls = _calls(gold)
    think = " ".join(rng.choice(["a", "word", "tool"]) for _ in range(rng.choice([0, 3, 300, 600, 900])))
    out = [gold, gold + "\n", " " + gold, _turn(think, calls or None, None), _turn(think, None, "ok")]
    out += [
        "",
        "garbage",
        "<think></think>",
        "<tool_call>\n\n</tool_call>",
        "<think>a</think>\n<tool_call>\n[]\n</tool_call>",
    ]
    if calls:
        out += [
            _turn(think, calls[::-1], None),
            _turn(think, calls[:-1] or [{"name": "zzz", "parameters": {}}], None),
            _turn(think, [*calls, calls[0]], None),
            _turn(think, [*calls, {"name": "extra", "parameters": {"a": 1}}], None),
            _turn(think, calls, None, sep="\n\n"),
            _turn(think, calls, "done"),
            _turn(think, calls, None) + "<tool_call>",
            _turn(think, calls, None).replace("</think>", "</think></think>"),
        ]
        out += [_turn(think, _mutate(calls, rng), rng.choice([None, None, "r"])) for _ in range(6)]
    return out


def compare(
    toolrl: Any, golds: list[str], config: RewardConfig | str, switches: dict[str, str], seed: int
) -> tuple[int, int]:
    """(comparisons, mismatches) of every component for these golds under one variant."""
    for name in ALL_SWITCHES | set(switches):
        os.environ.pop(name, None)
    os.environ.update(switches, EXPERIMENT_NAME="qwen")  # ToolRL cuts the reply at Qwen's chat markers
    rng = random.Random(seed)
    count = mismatches = 0
    for gold in golds:
        for response in predictions(gold, rng):
            for step in STEPS:
                with contextlib.redirect_stdout(io.StringIO()):  # ToolRL prints every score
                    theirs = toolrl.compute_score("<|im_start|>assistant" + response, gold, step)
                ours = compute_score(response, gold, step, config)
                count += 1
                if [float(x) for x in theirs] != [ours.total, ours.format, ours.correctness, ours.length]:
                    mismatches += 1
    return count, mismatches


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--toolrl", type=Path, required=True, help="ToolRL's verl/utils/reward_score/rlla.py.")
    add_argument(
        parser, "data_path", "Here: the folder with its RLLA files.", type=Path, default=Path("../shared/data/toolrl")
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    toolrl = _load_toolrl(args.toolrl)
    golds = [
        task.turns[0].steps[0].text or ""
        for name in ("rlla_4k__test.parquet", "rlla_4k_raw__rlla_sft.json")
        for task in load_rlla(args.data_path / name)
    ]
    print(f"golds: {len(golds)}")
    variants = {name: (name, switches) for name, switches in SWITCHES.items()}
    variants.update(COMBINATIONS)
    total = bad = 0
    for name, (config, switches) in variants.items():
        count, mismatches = compare(toolrl, golds, config, switches, seed=len(name))
        total, bad = total + count, bad + mismatches
        print(f"{name:55s} comparisons {count:>7,}  mismatches {mismatches}")
    print(f"all variants: {total:,} comparisons, {bad} mismatches")
    count, mismatches = compare(toolrl, golds[:100], "default", SWITCHES["coarse"], seed=0)
    print(f"control, ours 'default' against their coarse switch: {mismatches:,} of {count:,} differ (must be > 0)")
    assert set(SWITCHES) == set(PRESETS), "every preset is compared"


if __name__ == "__main__":
    main()
