"""ToolEnv-RLLA-v0: ToolRL's RLLA rows, single-turn by default, as ToolRL trained."""

from __future__ import annotations

from typing import Any

from toolrl_env.env import ToolEnv
from toolrl_env.envs.rlla.tasks import load_rlla


def make_rlla_env(data_path: str | None = None, **env_kwargs: Any) -> ToolEnv:
    """ToolEnv-RLLA-v0 over an RLLA file (`data_path`); `env_kwargs` are ToolEnv settings."""
    if data_path is None:
        raise ValueError(
            "ToolEnv-RLLA-v0 needs data_path=<file>: an RLLA .json (instruction/input/output) or .parquet "
            "(prompt, reward_model.ground_truth) from qiancheng0/ToolRL's dataset/ folder"
        )
    return ToolEnv(load_rlla(data_path), **env_kwargs)
