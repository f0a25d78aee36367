"""The reward-design study (benchmarks/reward_study.py) run through benchmarks/reward_ablation.py on a tiny model:
baselines, two presets, the table, the plot, and a re-run that redoes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import reward_ablation
from reward_study import StudyConfig, stretched, warmup_run_config

from toolrl_env.rewards import PRESETS

ROOT = Path(__file__).resolve().parents[2]


def test_schedules_are_stretched_to_the_budget() -> None:
    assert stretched("max1_step30_max3", 30).two_stage_step == 8  # 30 of ToolRL's ~117 steps
    assert stretched("schedule_reward", 117).schedule_steps == 150
    assert stretched("schedule_reward", 39).schedule_steps == pytest.approx(50)
    assert stretched("schedule_length", 39).length_words_schedule == pytest.approx((384, 640, 35))
    assert stretched("max1_step30_max3", 1).two_stage_step == 1
    for preset in ("default", "coarse", "with_length"):
        assert stretched(preset, 10) == PRESETS[preset]


def test_the_warm_up_takes_the_studys_count_unless_the_shared_config_names_one() -> None:
    api_bank = ROOT / "tests" / "fixtures" / "api_bank"
    assert warmup_run_config(StudyConfig(data_path=api_bank)) == {"steps": 0, "seed": 0, "warmup": {"examples": 96}}
    named = StudyConfig(data_path=api_bank, train_config={"warmup": {"examples": 2, "lr": 1e-3}})
    assert warmup_run_config(named)["warmup"] == {"examples": 2}
    other = StudyConfig(data_path=api_bank, train_config={"warmup": {"lr": 1e-3}})
    assert warmup_run_config(other)["warmup"] == {"examples": 96}


def test_the_study_scores_baselines_and_presets_and_continues_where_it_stopped(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "shared.json"
    config.write_text(json.dumps({"group_size": 2, "batch_size": 4, "warmup": {"examples": 2, "batch_size": 2}}))
    out = tmp_path / "study"
    argv = [
        "--model", str(tiny_model_dir), "--presets", "default,max1_step30_max3", "--seeds", "0", "--steps", "2",
        "--eval-limit", "1", "--tasks-per-category", "1", "--data-path", str(ROOT / "tests" / "fixtures" / "api_bank"),
        "--max-new-tokens", "8", "--config", str(config), "--output-dir", str(out),
    ]  # fmt: skip
    results = reward_ablation.main(argv)

    assert list(results["baselines"]) == ["untrained", "warm-up only"]
    for scores in results["baselines"].values():
        assert set(scores) == {"BFCL", "ToolEnv-APIBank-v0"}
        assert set(scores["ToolEnv-APIBank-v0"]) == {"level_1", "level_2", "level_3", "overall"}
    assert (out / "runs" / "warmup" / "checkpoints" / "step-0").is_dir()
    assert json.loads((out / "runs" / "warmup" / "config.json").read_text())["warmup"]["examples"] == 2
    for preset in ("default", "max1_step30_max3"):
        run = out / "runs" / preset / "seed-0"
        assert [p["step"] for p in results["presets"][preset]["0"]["curve"]] == [1, 2]
        assert not (run / "checkpoints").exists()  # deleted once scored
        trained = json.loads((run / "config.json").read_text())
        assert trained["warmup"]["enabled"] is False and trained["steps"] == 2 and trained["group_size"] == 2
        kinds = {json.loads(line)["kind"] for line in (run / "metrics.jsonl").read_text().splitlines()}
        assert kinds == {"train"}  # --eval-limit 0: the study scores with evaluate.py instead
    assert json.loads((out / "runs" / "default" / "seed-0" / "config.json").read_text())["reward_preset"] == "default"
    two_stage = json.loads((out / "runs" / "max1_step30_max3" / "seed-0" / "config.json").read_text())
    assert two_stage["reward_preset"] == "max1_step30_max3"
    assert two_stage["reward"]["two_stage_step"] == 1  # 30 of ~117 steps, stretched to 2

    table = (out / "table.md").read_text()
    assert "| untrained | — |" in table and "| warm-up only | — |" in table
    assert "| GRPO, default | 1 |" in table and "| GRPO, max1_step30_max3 | 1 |" in table
    assert (out / "ablation.png").stat().st_size > 0

    metrics = out / "runs" / "default" / "seed-0" / "metrics.jsonl"
    before = metrics.read_text()
    assert reward_ablation.main(argv) == json.loads((out / "results.json").read_text()) == results
    assert metrics.read_text() == before  # nothing trained or scored again


def test_bad_study_flags_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        reward_ablation.main(["--data-path", str(tmp_path / "missing")])
    assert "--data-path: " in (err := capsys.readouterr().err) and "missing does not exist" in err
    with pytest.raises(SystemExit):
        reward_ablation.main(["--steps", "0", "--data-path", str(tmp_path)])
    assert "--steps: Input should be greater than or equal to 1" in capsys.readouterr().err
