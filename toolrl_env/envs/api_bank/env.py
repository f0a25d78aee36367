"""ToolEnv-APIBank-v0: API-Bank levels 1-3 in ToolRL's processed format, scored with ToolRL's reward and
`api_match`; single-turn by default, as ToolRL evaluated. In multi-turn mode the offline APIs of
`toolrl_env.envs.api_bank.apis` really run, the others answer with the schema mock."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from toolrl_env.env import ToolEnv
from toolrl_env.envs.api_bank.apis import ApiBankSuite
from toolrl_env.envs.api_bank.metrics import api_bank_metrics
from toolrl_env.envs.api_bank.tasks import SOURCE, load_api_bank


def make_api_bank_env(
    data_path: str | Path | None = None, level: int | Sequence[int] | None = None, **env_kwargs: Any
) -> ToolEnv:
    """API-Bank tasks from `data_path` (a level file, or a folder of them) at `level` (1, 2, 3, a list, or every
    level found); `env_kwargs` are ToolEnv settings."""
    if data_path is None:
        raise ValueError(
            f"ToolEnv-APIBank-v0 needs data_path=<file or folder>: {SOURCE} (the folder may hold them with or "
            "without the 'API-Bank__' prefix)"
        )
    return ToolEnv(load_api_bank(data_path, level), suite=ApiBankSuite(), metrics=api_bank_metrics, **env_kwargs)
