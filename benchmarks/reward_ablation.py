"""The reward-design study: the main job once per reward preset and seed, all from one warmed-up model, each
scored on held-out BFCL and API-Bank, beside the untrained model and the warm-up alone.

    python benchmarks/reward_ablation.py                                   # 7 presets x seeds 0 1 2, 30 steps
    python benchmarks/reward_ablation.py --seeds 0 --api-bank-limit 10     # a smaller study

Stages, each skipped when its results already exist, so an interrupted study continues where it stopped:

1. baselines: the untrained model scored; `grpo_train.py --steps 0` (the warm-up alone) and its weights scored;
2. per preset and seed: `grpo_train.py` from the warm-up's weights (`--no-warmup`) with that reward, then its
   final weights scored (the checkpoint is deleted afterwards unless --keep-checkpoints);
3. `table.md`, `results.json` and `ablation.png` (training curves and held-out accuracy per preset).

Scores come from `agents/evaluate.py` (greedy): BFCL `simple_python`, the main job's held-out split (its first
--eval-limit tasks), and API-Bank levels 1-3 (the first --api-bank-limit tasks of each level) from
--api-bank-path, by default ToolRL's files in ../shared/data/toolrl.

Scheduled rewards are stretched to the budget: ToolRL trained about 117 steps (4K tasks, batch 512, 15 epochs),
switching the two-stage scale at step 30 and moving the dynamic scale over 150 steps; here those points become
30/117 and 150/117 of --steps. `--paper-schedules` keeps ToolRL's step counts instead.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agents.reward_study import STUDY_PRESETS, StudyConfig, run_study
from agents.train_config import read_config_file
from toolrl_env.rewards import PRESETS


def parse_args(argv: Sequence[str] | None = None) -> StudyConfig:
    """Flags over StudyConfig's defaults (agents/reward_study.py documents each field)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="the starting model (default: the embedded one)")
    parser.add_argument("--presets", nargs="+", choices=sorted(PRESETS), help=f"default: {' '.join(STUDY_PRESETS)}")
    parser.add_argument("--seeds", nargs="+", type=int, help="GRPO seeds (default 0 1 2)")
    parser.add_argument("--steps", type=int, help="GRPO steps per run (default 30)")
    parser.add_argument("--eval-limit", type=int, help="held-out BFCL tasks (default 80: all)")
    parser.add_argument("--api-bank-path", type=Path, help="ToolRL's API-Bank files (default ../shared/data/toolrl)")
    parser.add_argument("--api-bank-limit", type=int, help="API-Bank tasks per level (default 20)")
    parser.add_argument("--max-new-tokens", type=int, help="per turn, in training and scoring (default 96)")
    parser.add_argument("--config", type=Path, help="TrainConfig fields every run shares (YAML or JSON)")
    parser.add_argument("--paper-schedules", action="store_true", default=None, help="keep ToolRL's schedule steps")
    parser.add_argument("--keep-checkpoints", action="store_true", default=None, help="keep each run's checkpoint")
    parser.add_argument("--output-dir", type=Path, help="the study folder (default runs/reward_ablation)")
    args = parser.parse_args(argv)
    fields = {k: v for k, v in vars(args).items() if v is not None and k != "config"}
    if args.config is not None:
        fields["train_config"] = read_config_file(args.config)
    try:
        return StudyConfig(**fields)
    except ValidationError as exc:
        parser.error(str(exc))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    return run_study(parse_args(argv))


if __name__ == "__main__":
    main()
