"""Train a Stable-Baselines3 agent to pick the gold tool call among K candidates of a ToolEnv.

    python agents/sb3_train.py --algo PPO --env ToolEnv-Calc-v0 --steps 20000 --num-candidates 4

The env is wrapped in `toolrl_env.wrappers.DiscreteToolChoice` (Discrete(K) actions, a featurised Box
observation, ToolRL's reward unchanged); the held-out split is evaluated every --eval-every steps, and the
run folder gets config.json, curve.csv, curve.json and curve.png. The library side is agents/sb3_training.py.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pydantic import ValidationError

from agents.sb3_training import SB3TrainConfig, curve_table, train


def parse_args(argv: list[str] | None = None) -> SB3TrainConfig:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=["PPO", "A2C", "DQN"], help="default PPO")
    parser.add_argument("--env", help="a registered ToolEnv id (default ToolEnv-Calc-v0)")
    parser.add_argument("--env-kwargs", type=json.loads, help="env kwargs as JSON, e.g. '{\"num_tasks\": 500}'")
    parser.add_argument("--steps", type=int, help="training steps (decisions), default 20000")
    parser.add_argument("--num-candidates", type=int, help="K, candidates per decision (default 4; chance 1/K)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--eval-every", type=int, help="steps between held-out evaluations (default 2000)")
    parser.add_argument("--eval-episodes", type=int, help="held-out tasks per evaluation (default 100)")
    parser.add_argument("--algo-kwargs", type=json.loads, help="algorithm arguments as JSON, e.g. '{\"gamma\": 0.9}'")
    parser.add_argument("--output-dir", type=Path)
    args = parser.parse_args(argv)
    given = {key: value for key, value in vars(args).items() if value is not None}
    try:
        return SB3TrainConfig.model_validate(given)
    except ValidationError as exc:
        parser.error(str(exc))


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    print(f"{config.algo} on {config.env} with K={config.num_candidates} candidates, {config.steps} steps")
    result = train(config)
    print(curve_table(result))
    final = result.curve[-1]["eval/success_rate"]
    print(
        f"held-out success rate {final:.3f} (chance {result.chance:.3f}) after {config.steps} steps; "
        f"wall time {result.wall_s:.1f} s; files in {result.output_dir}"
    )


if __name__ == "__main__":
    main()
