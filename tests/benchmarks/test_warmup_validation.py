"""benchmarks/warmup_validation.py: the validation slice comes from the training split and is never demonstrated,
each setting is scored and tabled, and a re-run redoes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import warmup_validation

import toolrl_env  # noqa: F401  (registers the env ids)
from agents.evaluation.episodes import make_tool_env, task_group
from agents.train_config import BFCL_TRAIN_CATEGORIES


def test_the_slice_is_per_category_from_the_training_split_and_apart_from_the_rest() -> None:
    env = make_tool_env("ToolEnv-BFCL-v0", category=BFCL_TRAIN_CATEGORIES, split="train")
    held, rest = warmup_validation.validation_split(env, 3)
    assert sorted([task_group(env, i) for i in held]) == sorted(BFCL_TRAIN_CATEGORIES * 3)
    assert not set(held) & set(rest) and len(held) + len(rest) == len(env.tasks)
    test_ids = {t.id for t in make_tool_env("ToolEnv-BFCL-v0", category=BFCL_TRAIN_CATEGORIES, split="test").tasks}
    assert not set(held) & test_ids
    assert warmup_validation.validation_split(env, 3) == (held, rest)  # fixed, whatever else runs


def test_a_setting_is_scored_tabled_and_not_redone(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "val"
    argv = ["--name", "tiny", "--policy.model", str(tiny_model_dir), "--val-per-category", "1",
            "--warmup.examples", "2", "--warmup.batch-size", "2", "--warmup.no-call-share", "0.5",
            "--max-new-tokens", "8", "--output-dir", str(out)]  # fmt: skip
    table = warmup_validation.main(argv)
    record = json.loads((out / "tiny" / "seed-0.json").read_text())
    assert record["warmup"]["no_call_share"] == 0.5 and record["seed"] == 0
    assert {f"category/{c}" for c in [*BFCL_TRAIN_CATEGORIES, "live_simple"]} <= set(record["scores"])
    assert table.splitlines()[2].startswith("| tiny | 1 | ")
    assert (out / "table.md").read_text() == table + "\n"
    written = (out / "tiny" / "seed-0.json").stat().st_mtime_ns
    warmup_validation.main(argv)
    assert (out / "tiny" / "seed-0.json").stat().st_mtime_ns == written


def test_without_the_warm_up_the_model_is_scored_as_loaded(tiny_model_dir: Path, tmp_path: Path) -> None:
    argv = ["--name", "as-loaded", "--policy.model", str(tiny_model_dir), "--val-per-category", "1",
            "--no-warmup.enabled", "--max-new-tokens", "4", "--output-dir", str(tmp_path)]  # fmt: skip
    warmup_validation.main(argv)
    record = json.loads((tmp_path / "as-loaded" / "seed-0.json").read_text())
    assert record["warmup"]["enabled"] is False
    assert record["loss_first"] is None and record["loss_last"] is None
    assert "category_mean" in record["scores"]
