"""Coverage-guided fuzzing with atheris: bytes become a completion for parse, compute_score and env steps.

atheris (libFuzzer for Python, from PyPI) is not a toolrl dependency; install it into the venv first:

    pip install atheris
    mkdir -p corpus
    python benchmarks/fuzz_atheris.py -max_total_time=3600 -timeout=10 -rss_limit_mb=4096 corpus/

That runs for an hour (any -max_total_time works: 36000 for ten hours), keeps every input that reaches new code
in corpus/ so the next run goes on from there, and treats an input that runs over 10 s as a hang. `-jobs=N
-workers=N` runs N processes; run it under `nice` on a shared machine. A failure leaves `crash-<sha1>` (or
`timeout-…`, `oom-…`) in the working folder; replay one with `python benchmarks/fuzz_atheris.py crash-<sha1>`.

Each input picks an env (ToolEnv-Calc-v0 multi-turn, ToolEnv-BFCL-v0 single-turn on the Python, Java and
JavaScript categories, ToolEnv-BFCLMultiTurn-v0 on file-system and math tasks), a task, a reward preset and a
training step, then one or two completions: raw text, or a TIR template whose calls name an offered tool with
JSON built from the bytes. A failure is any exception out of `parse`, `compute_score` or `step`, a reward that
is not finite or outside the preset's bounds, or an observation outside the env's observation space.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import atheris

with atheris.instrument_imports(include=["toolrl_env", "tools"]):
    import gymnasium as gym

    import toolrl_env  # noqa: F401  (registers the ids)
    from toolrl_env.env import ToolEnv
    from toolrl_env.envs.bfcl.backends import BFCLBackendSuite
    from toolrl_env.envs.bfcl.multi_turn_metrics import bfcl_multi_turn_metrics
    from toolrl_env.envs.bfcl.multi_turn_tasks import load_bfcl_multi_turn
    from toolrl_env.format import parse
    from toolrl_env.rewards import PRESETS, compute_score, reward_bounds

PRESET_NAMES = sorted(PRESETS)
TAGS = ("<think>", "</think>", "<tool_call>", "</tool_call>", "<response>", "</response>", "\n")
ENV_NAMES = ("calc", "bfcl", "bfcl_multi_turn")
_ENVS: dict[tuple[str, str], ToolEnv] = {}


def _env(name: str, preset: str) -> ToolEnv:
    """The env `name` scored with `preset`, made on first use."""
    if (name, preset) not in _ENVS:
        if name == "calc":
            env = gym.make("ToolEnv-Calc-v0", num_tasks=20, mode="multi_turn", reward=preset).unwrapped
        elif name == "bfcl":
            categories = ["simple_python", "simple_java", "simple_javascript", "parallel_multiple"]
            env = gym.make("ToolEnv-BFCL-v0", category=categories, reward=preset).unwrapped
        else:  # the file-system and math backends
            tasks = [
                t
                for t in load_bfcl_multi_turn("multi_turn_base")
                if set(t.suite_options["involved_classes"]) <= {"GorillaFileSystem", "MathAPI"}
            ]
            env = ToolEnv(
                tasks, suite=BFCLBackendSuite(), metrics=bfcl_multi_turn_metrics, mode="multi_turn", reward=preset
            )
        assert isinstance(env, ToolEnv)
        _ENVS[name, preset] = env
    return _ENVS[name, preset]


def _json_value(data: atheris.FuzzedDataProvider, depth: int = 0) -> Any:
    kind = data.ConsumeIntInRange(0, 7)
    if kind == 0 and depth < 4:
        return [_json_value(data, depth + 1) for _ in range(data.ConsumeIntInRange(0, 3))]
    if kind == 1 and depth < 4:
        return {data.ConsumeUnicode(4): _json_value(data, depth + 1) for _ in range(data.ConsumeIntInRange(0, 3))}
    if kind == 2:
        return data.ConsumeInt(8)
    if kind == 3:
        return data.ConsumeFloat()
    if kind == 4:
        return data.ConsumeBool()
    if kind == 5:
        return None
    return data.ConsumeUnicode(data.ConsumeIntInRange(0, 40))


def _key(data: atheris.FuzzedDataProvider, properties: list[str]) -> str:
    """Mostly a parameter the tool declares, sometimes any text."""
    if properties and data.ConsumeIntInRange(0, 3):
        return properties[data.ConsumeIntInRange(0, len(properties) - 1)]
    return data.ConsumeUnicode(6)


def _completion(data: atheris.FuzzedDataProvider, env: ToolEnv) -> Any:
    """Raw text, a TIR template over the offered tools, or a string of tags and text, as the bytes choose."""
    kind = data.ConsumeIntInRange(0, 3)
    if kind == 0:
        return data.ConsumeUnicode(data.ConsumeIntInRange(0, 4096))
    if kind == 1:
        return "".join(
            TAGS[data.ConsumeIntInRange(0, len(TAGS) - 1)] if data.ConsumeBool() else data.ConsumeUnicode(8)
            for _ in range(data.ConsumeIntInRange(0, 24))
        )
    tools = env.offered_tools()
    lines = []
    for _ in range(data.ConsumeIntInRange(1, 3)):
        tool = tools[data.ConsumeIntInRange(0, len(tools) - 1)]
        properties = list(tool.parameters.get("properties", {}))
        arguments = {_key(data, properties): _json_value(data) for _ in range(data.ConsumeIntInRange(0, 4))}
        lines.append(json.dumps({"name": tool.name, "parameters": arguments}))
    think = data.ConsumeUnicode(data.ConsumeIntInRange(0, 64))
    text = f"<think>{think}</think>\n<tool_call>\n" + "\n".join(lines) + "\n</tool_call>"
    return text + (f"\n<response>{data.ConsumeUnicode(16)}</response>" if kind == 3 else "")


def _check(env: ToolEnv, result: tuple[Any, ...], step: int) -> None:
    obs, reward, _, _, info = result
    low, high = reward_bounds(env.reward_config, step)
    if not (math.isfinite(reward) and low - 1e-9 <= reward <= high + 1e-9):
        raise AssertionError(f"reward {reward} outside [{low}, {high}]: {info['reward_breakdown']}")
    if not env.observation_space.contains(obs):
        raise AssertionError("observation outside the observation space")


def test_one_input(raw: bytes) -> None:
    data = atheris.FuzzedDataProvider(raw)
    name = ENV_NAMES[data.ConsumeIntInRange(0, len(ENV_NAMES) - 1)]
    preset = PRESET_NAMES[data.ConsumeIntInRange(0, len(PRESET_NAMES) - 1)]
    env = _env(name, preset)
    step = data.ConsumeIntInRange(0, 300)
    task = env.tasks[data.ConsumeIntInRange(0, len(env.tasks) - 1)]
    env.reset(seed=0, options={"task_id": task.id, "training_step": step})
    for _ in range(data.ConsumeIntInRange(1, 2)):
        action = _completion(data, env)
        parse(action)
        score = compute_score(action, env.current_gold().text or "", step=step, preset=preset)
        if not all(math.isfinite(v) for v in score.model_dump().values()):
            raise AssertionError(f"non-finite score {score}")
        result = env.step(action)
        _check(env, result, step)
        if result[2] or result[3]:
            break


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
