"""The main job end to end: its run folder, resuming with identical state, and two real steps on the embedded model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM

from agents.grpo_train import main


def records(run: Path, kind: str) -> list[dict[str, Any]]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("kind") == kind]


def without_timings(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("perf/")}


def tiny_args(model: Path, out: Path, config: Path, steps: int) -> list[str]:
    return [
        "--env", "ToolEnv-BFCL-v0", "--model", str(model), "--steps", str(steps), "--group-size", "2",
        "--batch-size", "4", "--max-new-tokens", "8", "--eval-limit", "1", "--no-warmup.enabled",
        "--config", str(config), "--output-dir", str(out),
    ]  # fmt: skip


@pytest.mark.parametrize(("algo", "resample_rounds"), [("grpo", 0), ("ppo", 0), ("grpo", 1)])
def test_resuming_continues_exactly_where_the_run_stopped(
    tiny_model_dir: Path, tmp_path: Path, algo: str, resample_rounds: int
) -> None:
    # An entropy bonus makes every update move the weights even when a random model's rewards are all equal,
    # so the comparison covers weights, optimiser state and the sampling RNG.
    config = tmp_path / "config.json"
    settings = {"grpo": {"entropy_coef": 0.05, "lr": 1e-3}, "save_every": 1, "resample_rounds": resample_rounds}
    config.write_text(json.dumps(settings))
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    main([*tiny_args(tiny_model_dir, straight, config, steps=2), "--algo", algo])
    main([*tiny_args(tiny_model_dir, interrupted, config, steps=1), "--algo", algo])
    main(["--resume", str(interrupted), "--steps", "2"])
    first, second = records(straight, "train"), records(interrupted, "train")
    assert [r["step"] for r in first] == [r["step"] for r in second] == [1, 2]
    assert [without_timings(r) for r in first] == [without_timings(r) for r in second]
    assert first[0]["losses/grad_norm"] > 0
    if resample_rounds:  # the random model's groups are all equal: each step drew fresh tasks once, in vain
        assert all(r["rollout/dropped_groups_frac"] == 1.0 and r["rollout/resample_rounds"] == 1 for r in first)
    a = AutoModelForCausalLM.from_pretrained(straight / "checkpoints" / "step-2")
    b = AutoModelForCausalLM.from_pretrained(interrupted / "checkpoints" / "step-2")
    start = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    for x, y in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(x, y)
    assert any(not torch.equal(x, s) for x, s in zip(a.parameters(), start.parameters(), strict=True))


@pytest.mark.slow
def test_two_real_steps_of_the_main_job_on_the_embedded_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("warmup:\n  examples: 4\nmax_new_tokens: 96\n")
    out = tmp_path / "run"
    main(["--env", "ToolEnv-BFCL-v0", "--steps", "2", "--eval-limit", "6", "--eval-after-warmup", "--config",
          str(config), "--output-dir", str(out)])  # fmt: skip
    printed = capsys.readouterr().out
    assert "| metric | before | after warm-up | after |" in printed and "env/ast_match" in printed
    # The broad default: one held-out task of each trained category and of live_simple, as bfcl-eval aggregates them.
    assert "**BFCL accuracy (%), 6 of 17 categories, 6 tasks**" in printed
    assert "| | Overall | Non-live | Live | Multi-turn | Relevance | Irrelevance | Category mean |" in printed
    assert "| before | 33.3 | 0.0 | 0.0 | — | — | 100.0 | 16.7 |" in printed  # the untrained model never calls
    assert "| | simple_python | multiple | parallel | parallel_multiple | irrelevance | live_simple |" in printed
    steps = records(out, "train")
    assert [r["step"] for r in steps] == [1, 2]
    for key in ("rollout/reward_mean", "rollout/frac_zero_std_groups", "reward/format", "reward/correctness",
                "losses/policy", "losses/clip_frac", "losses/entropy", "losses/nonfinite_skipped", "optim/lr",
                "rollout/completion_tokens", "tools/calls_per_episode", "perf/tokens_per_s"):  # fmt: skip
        assert key in steps[0], key
    assert [r["name"] for r in records(out, "eval")] == ["before", "after warm-up", "after"]
    assert json.loads((out / "config.json").read_text())["env"] == "ToolEnv-BFCL-v0"
    assert (out / "reward_curve.png").stat().st_size > 1000
    model = AutoModelForCausalLM.from_pretrained(out / "checkpoints" / "step-2")
    assert model.num_parameters() == 134_515_008
    assert steps[-1]["losses/nonfinite_skipped"] == 0 and steps[-1]["optim/lr"] == 1e-5
