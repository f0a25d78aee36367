"""ToolEnv-BFCLMultiTurn-v0: BFCL's executable multi-turn categories on bfcl-eval's own backends.

Tasks come from the pinned bfcl-eval wheel (`toolrl_env.envs.bfcl.multi_turn_tasks`); the model's calls run on
BFCL's backend classes (`toolrl_env.envs.bfcl.backends`) and come back as `<obs>`; every step is scored with ToolRL's
reward against its turn's gold; `info["metrics"]["success"]` at the end is the official multi-turn checker's
verdict (`toolrl_env.envs.bfcl.multi_turn_metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from toolrl_env.env import ToolEnv
from toolrl_env.envs.bfcl.backends import BFCLBackendSuite
from toolrl_env.envs.bfcl.multi_turn_metrics import bfcl_multi_turn_metrics
from toolrl_env.envs.bfcl.multi_turn_tasks import Split, load_bfcl_multi_turn

# Steps per episode before truncation: the gold needs at most 16 (8 turns of calls then an answer); the
# rest leaves room for turns done in several steps.
DEFAULT_MAX_TURNS = 40


def make_bfcl_multi_turn_env(
    category: str | Sequence[str] | None = None, split: Split = "all", **env_kwargs: Any
) -> ToolEnv:
    """ToolEnv-BFCLMultiTurn-v0 over the given multi-turn categories (a name or a list; all four by default)
    and split (`train` / `test`: a fixed 80/20 cut of each category by a hash of the task id; `all`)."""
    mode = env_kwargs.pop("mode", "multi_turn")
    if mode != "multi_turn":
        raise ValueError(f"ToolEnv-BFCLMultiTurn-v0 runs in mode='multi_turn' only (its calls must run), got {mode!r}")
    return ToolEnv(
        load_bfcl_multi_turn(category, split),
        suite=BFCLBackendSuite(),
        metrics=bfcl_multi_turn_metrics,
        mode="multi_turn",
        **{"max_turns": DEFAULT_MAX_TURNS, **env_kwargs},
    )
