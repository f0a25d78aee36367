"""SB3 on DiscreteToolChoice: a short real PPO run that learns to pick the gold well above chance, the
held-out evaluation, and the script's files and errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents.learners.sb3 import SB3TrainConfig, evaluate_choices, make_choice_env, train
from agents.sb3_train import main
from toolrl_env.env import ToolEnv
from toolrl_env.wrappers import DiscreteToolChoice


def held_out(env: DiscreteToolChoice, count: int) -> list[str]:
    tool_env = env.unwrapped
    assert isinstance(tool_env, ToolEnv)
    return [t.id for t in tool_env.tasks[:count]]


class Always:
    """A stand-in model that always picks one index, or the gold when told to cheat."""

    def __init__(self, env: DiscreteToolChoice, index: int | None) -> None:
        self.env, self.index = env, index

    def predict(
        self, observation: np.ndarray, state: Any = None, episode_start: Any = None, deterministic: bool = False
    ) -> tuple[Any, Any]:
        if self.index is None:
            return np.int64([c.kind for c in self.env.candidates].index("gold")), None
        return np.int64(self.index), None


def test_evaluation_counts_the_decisions_that_chose_the_gold() -> None:
    env = make_choice_env("ToolEnv-Calc-v0", "test", 4, {"num_tasks": 30})
    tasks = held_out(env, 30)
    oracle = evaluate_choices(Always(env, None), env, tasks)
    assert oracle["eval/success_rate"] == oracle["eval/episode_success_rate"] == 1.0
    assert oracle["eval/decisions"] >= 2 * len(tasks)  # calls, then the answer, in every turn
    fixed = evaluate_choices(Always(env, 0), env, tasks)
    assert 0.1 < fixed["eval/success_rate"] < 0.45 and fixed["eval/return_mean"] < oracle["eval/return_mean"]
    assert fixed == evaluate_choices(Always(env, 0), env, tasks)  # seeded: the same candidates every time


def test_ppo_learns_to_choose_the_gold_well_above_chance(tmp_path: Path) -> None:
    # Like SB3's test_identity: a real run, held-out tasks, and a margin chance cannot reach (chance is 0.25).
    config = SB3TrainConfig(total_timesteps=3_000, eval_freq=3_000, n_eval_episodes=60, output_dir=tmp_path, seed=0)
    result = train(config)
    first, last = result.curve[0], result.curve[-1]
    assert first["step"] == 0 and last["step"] >= 3_000  # PPO finishes its last rollout of 256 steps
    assert first["eval/success_rate"] < 0.45 and last["eval/success_rate"] > 0.55, result.curve
    assert last["eval/return_mean"] > first["eval/return_mean"]


@pytest.mark.parametrize("algo", ["A2C", "DQN"])
def test_the_script_writes_the_curve_and_prints_the_table(
    algo: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["--algo", algo, "--total-timesteps", "192", "--eval-freq", "96", "--n-eval-episodes", "4",
          "--num-candidates", "3", "--seed", "1", "--env-kwargs", '{"num_tasks": 50}',
          "--output-dir", str(tmp_path)])  # fmt: skip
    printed = capsys.readouterr().out
    assert "| step | success rate |" in printed and "(chance 0.333)" in printed
    with (tmp_path / "curve.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(float(r["step"])) for r in rows] == [0, 96, 192]  # A2C rolls out 32 steps at a time
    curve = json.loads((tmp_path / "curve.json").read_text())
    assert curve["chance"] == pytest.approx(1 / 3) and len(curve["records"]) == 3
    assert (tmp_path / "curve.png").read_bytes().startswith(b"\x89PNG")
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["algo"] == algo and config["num_candidates"] == 3


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--num-candidates", "1"], "--num-candidates"),
        (["--algo", "SAC"], "--algo: Input should be 'PPO', 'A2C' or 'DQN'"),
    ],
)
def test_bad_flags_are_usage_errors(flags: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(flags)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
