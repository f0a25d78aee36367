"""benchmarks/learning.py on a tiny model: every arm for two seeds, the table, the plot, the equal-compute warm-up's
size, and a re-run that redoes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import learning
import pytest
from pydantic import ValidationError


def test_every_arm_is_trained_scored_and_tabled_per_seed_and_a_rerun_redoes_nothing(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "shared.json"
    config.write_text(
        json.dumps({"group_size": 2, "batch_size": 4, "max_new_tokens": 8, "warmup": {"examples": 2, "batch_size": 2}})
    )
    out = tmp_path / "bench"
    argv = ["--model", str(tiny_model_dir), "--seeds", "0,1", "--steps", "2", "--tasks-per-category", "1",
            "--config", str(config), "--output-dir", str(out)]  # fmt: skip
    results = learning.main(argv)

    assert list(results) == list(learning.LABELS)
    assert list(results["untrained"]) == ["all"]
    for arm in list(learning.LABELS)[1:]:
        assert list(results[arm]) == ["0", "1"]
        for scores in results[arm].values():
            assert {"overall", "category_mean", "irrelevance", "category/live_simple"} <= set(scores)
    untrained = json.loads((out / "scores" / "untrained" / "config.json").read_text())
    assert untrained["max_new_tokens"] == 8
    assert untrained["envs"][0]["kwargs"]["category"][-1] == "live_simple"
    assert len(json.loads((out / "scores" / "untrained" / "results.json").read_text())) == 6  # 1 per category

    for seed in (0, 1):
        warm = json.loads((out / "runs" / "warmup" / f"seed-{seed}" / "config.json").read_text())
        assert warm["steps"] == 0 and warm["seed"] == seed and warm["warmup"]["examples"] == 2
        assert (out / "runs" / "warmup" / f"seed-{seed}" / "checkpoints" / "step-0").is_dir()
        for arm in learning.GRPO_ARMS:
            run = out / "runs" / arm / f"seed-{seed}"
            trained = json.loads((run / "config.json").read_text())
            assert trained["steps"] == 2 and trained["seed"] == seed and trained["warmup"]["enabled"] is False
            assert trained["policy"]["model"].endswith(f"warmup/seed-{seed}/checkpoints/step-0")
            assert not (run / "checkpoints").exists()  # deleted once scored
        assert (
            json.loads((out / "runs" / "gdpo" / f"seed-{seed}" / "config.json").read_text())["grpo"][
                "multi_objective_aggregation"
            ]
            == "normalize_then_sum"
        )
        assert (
            json.loads((out / "runs" / "grpo_coarse" / f"seed-{seed}" / "config.json").read_text())["reward_preset"]
            == "coarse"
        )
        equal = json.loads((out / "runs" / "warmup_equal_compute" / f"seed-{seed}" / "config.json").read_text())
        grpo_run = out / "runs" / "grpo_default" / f"seed-{seed}"
        assert equal["warmup"]["examples"] == learning.equal_compute_examples(
            out / "runs" / "warmup" / f"seed-{seed}", grpo_run
        )
        assert equal["warmup"]["examples"] > 2  # the GRPO steps' time, as more demonstrations

    table = (out / "table.md").read_text()
    assert "| untrained | — |" in table and "| GRPO default | 2 |" in table and "| GDPO | 2 |" in table
    assert "| warm-up, equal compute | 1 |" in table  # the per-seed lines
    assert (out / "learning.png").stat().st_size > 0

    metrics = out / "runs" / "gdpo" / "seed-1" / "metrics.jsonl"
    before = metrics.read_text()
    assert learning.main(argv) == json.loads((out / "results.json").read_text()) == results
    assert metrics.read_text() == before  # nothing trained or scored again


def test_the_equal_compute_warm_up_costs_what_the_grpo_steps_did(tmp_path: Path) -> None:
    warm, grpo = tmp_path / "warm", tmp_path / "grpo"
    for folder, records in (
        (warm, [{"kind": "warmup", "step": 0, "warmup/examples": 48, "warmup/seconds": 240.0}]),
        (grpo, [{"kind": "train", "step": s, "perf/step_s": 30.0} for s in (1, 2, 3, 4)]),
    ):
        folder.mkdir()
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert learning.equal_compute_examples(warm, grpo) == 48 + 24  # 120 s at 5 s per demonstration


def test_scoring_follows_the_shared_configs_evaluation_env_and_a_bad_one_fails_before_any_work(tmp_path: Path) -> None:
    default = learning.Benchmark(learning.LearningConfig(output_dir=tmp_path))
    assert default.eval_env_kwargs["category"][-1] == "live_simple" and default.max_new_tokens == 192
    shared = {"eval_env_kwargs": {"category": ["multiple", "live_multiple"]}, "max_new_tokens": 64}
    own = learning.Benchmark(learning.LearningConfig(train_config=shared, output_dir=tmp_path))
    assert own.eval_env_kwargs == {"category": ["multiple", "live_multiple"]} and own.max_new_tokens == 64
    with pytest.raises(ValidationError, match="eval_env_kwargs may not set 'split'"):
        learning.Benchmark(learning.LearningConfig(train_config={"eval_env_kwargs": {"split": "train"}}))
    assert not any(tmp_path.iterdir())  # nothing run


def test_bad_flags_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        learning.main(["--steps", "0"])
    assert "--steps: Input should be greater than or equal to 1" in capsys.readouterr().err
