"""The reward-design study: the main job once per reward preset and seed, all from one warmed-up model, each
scored on held-out BFCL and API-Bank, beside the untrained model and the warm-up alone.

    python benchmarks/reward_ablation.py                                   # 7 presets x seeds 0 1 2, 30 steps
    python benchmarks/reward_ablation.py --seeds 0 --tasks-per-category 10   # a smaller study

Stages, each skipped when its results already exist, so an interrupted study continues where it stopped:

1. baselines: the untrained model scored; `grpo_train.py --steps 0` (the warm-up alone) and its weights scored;
2. per preset and seed: `grpo_train.py` from the warm-up's weights (`--no-warmup.enabled`) with that reward, then its
   final weights scored (the checkpoint is deleted afterwards unless --keep-run-checkpoints);
3. `table.md`, `results.json` and `ablation.png` (training curves and held-out accuracy per preset).

Scores come from `agents/evaluate.py` (greedy): BFCL `simple_python`, the one category every run trains on, on
its held-out split (its first --eval-limit tasks), and API-Bank levels 1-3 (the first --tasks-per-category tasks
of each level) from --data-path, by default ToolRL's files in ../shared/data/toolrl.

Scheduled rewards are stretched to the budget: ToolRL trained about 117 steps (4K tasks, batch 512, 15 epochs),
switching the two-stage scale at step 30 and moving the dynamic scale over 150 steps; here those points become
30/117 and 150/117 of --steps. `--paper-schedules` keeps ToolRL's step counts instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reward_study import StudyConfig, run_study

from toolrl_env.cli import ConfigParser, parse_study, study_parser


def build_parser() -> ConfigParser:
    """Every StudyConfig field as a flag (benchmarks/reward_study.py documents them), plus --config."""
    return study_parser(StudyConfig, __doc__)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    config: StudyConfig = parse_study(build_parser(), argv)
    return run_study(config)


if __name__ == "__main__":
    main()
