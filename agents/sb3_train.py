"""Train a Stable-Baselines3 agent to pick the gold tool call among K candidates of a ToolEnv.

    python agents/sb3_train.py --algo PPO --env ToolEnv-Calc-v0 --total-timesteps 20000 --num-candidates 4

The env is wrapped in `toolrl_env.wrappers.DiscreteToolChoice` (Discrete(K) actions, a featurised Box
observation, ToolRL's reward unchanged); the held-out split is evaluated every --eval-freq steps, and the
run folder gets config.json, curve.csv, curve.json and curve.png. The library side is agents/learners/sb3.py.
"""

from __future__ import annotations

from agents.learners.sb3 import SB3TrainConfig, curve_table, train
from toolrl_env.cli import ConfigParser, require_registered


def build_parser() -> ConfigParser:
    """Every SB3TrainConfig field as a flag."""
    return ConfigParser(SB3TrainConfig, __doc__)


def parse_args(argv: list[str] | None = None) -> SB3TrainConfig:
    parser = build_parser()
    _, fields = parser.parse_config(argv)
    config: SB3TrainConfig = parser.validated(fields)
    require_registered(parser, [config.env])
    return config


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    print(f"{config.algo} on {config.env} with K={config.num_candidates} candidates, {config.total_timesteps} steps")
    result = train(config)
    print(curve_table(result))
    final = result.curve[-1]["eval/success_rate"]
    print(
        f"held-out success rate {final:.3f} (chance {result.chance:.3f}) after {config.total_timesteps} steps; "
        f"wall time {result.wall_s:.1f} s; files in {result.output_dir}"
    )


if __name__ == "__main__":
    main()
