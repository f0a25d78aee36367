"""ToolEnv-BFCL-v0: BFCL's single-turn categories, scored with ToolRL's reward, measured with BFCL's AST checker.

Tasks come from the pinned bfcl-eval wheel (`toolrl_env.envs.bfcl.tasks`); `info["metrics"]["ast_match"]` at the end
of an episode is the official checker's verdict and the reward counts every value that checker accepts
(`toolrl_env.envs.bfcl.metrics`). Single-turn by default, as ToolRL evaluated: one scored step, nothing executed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from toolrl_env.env import ToolEnv
from toolrl_env.envs.bfcl.metrics import align_bfcl_gold, bfcl_metrics
from toolrl_env.envs.bfcl.tasks import BFCLSplit, load_bfcl_tasks


def make_bfcl_env(category: str | Sequence[str] | None = None, split: BFCLSplit = "all", **env_kwargs: Any) -> ToolEnv:
    """ToolEnv-BFCL-v0 over the given single-turn categories (a name or a list; all by default) and split
    (`train` / `test`: a fixed 80/20 cut of each category by a hash of the task id; `all`)."""
    return ToolEnv(
        load_bfcl_tasks(category, split),
        metrics=bfcl_metrics,
        align_gold=align_bfcl_gold,
        **{"mode": "single_turn", **env_kwargs},
    )
