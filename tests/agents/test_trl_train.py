"""agents/trl_train.py: TRL's GRPOTrainer on a ToolEnv id, multi-turn, end to end on a tiny model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from agents import trl_train

pytestmark = pytest.mark.skipif(sys.version_info < (3, 11), reason="trl 1.16 needs Python >= 3.11")


def test_a_short_run_trains_and_writes_its_folder(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    trl_train.main(
        [
            *("--model", str(tiny_model_dir), "--env", "ToolEnv-Calc-v0", "--env-kwargs", '{"num_tasks": 4}'),
            *("--steps", "1", "--batch-size", "2", "--group-size", "2", "--max-completion-tokens", "8"),
            *("--output-dir", str(out)),
        ]
    )
    history = json.loads((out / "log_history.json").read_text())
    step = next(entry for entry in history if "reward" in entry)
    # Eight tokens of a random model are never a turn in the format: each rollout's one step scores the lowest.
    assert step["rewards/format/mean"] == 0.0 and step["rewards/correctness/mean"] == -3.0
    assert (out / "final" / "config.json").exists()
    assert "step  reward  format  correctness" in capsys.readouterr().out


def test_bad_flags_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        trl_train.parse_args(["--env", "ToolEnv-Nope-v0"])
    with pytest.raises(SystemExit):
        trl_train.parse_args(["--group-size", "1"])
    assert "ToolEnv-Nope-v0" in capsys.readouterr().err
