"""ToolEnv-Calc-v0: generated calculator and unit-conversion tasks on the real calculator suite, multi-turn."""

from __future__ import annotations

from typing import Any

from toolrl_env.env import ToolEnv
from toolrl_env.envs.calc.tasks import Split, generate_calc_tasks
from tools.calculator import CalculatorSuite


def make_calc_env(
    num_tasks: int = 1000, seed: int = 0, split: Split = "train", mode: str = "multi_turn", **env_kwargs: Any
) -> ToolEnv:
    """ToolEnv-Calc-v0: `num_tasks` generated tasks of `split` (train / test are disjoint by question; all)."""
    tasks = generate_calc_tasks(num_tasks=num_tasks, seed=seed, split=split)
    return ToolEnv(tasks, suite=CalculatorSuite(), mode=mode, **env_kwargs)
