"""Data parallel on two CPU processes (gloo): gradients averaged, replicas identical after two updates on different
data, and the main job under torchrun."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(command: list[str], world: int = 2) -> list[str]:
    """Start `command` once per rank with torchrun's variables, wait for all of them, and return their output."""
    port = free_port()
    procs = []
    for rank in range(world):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}  # fmt: skip
        procs.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outputs = [p.communicate(timeout=600)[0].decode() for p in procs]
    for rank, (proc, output) in enumerate(zip(procs, outputs, strict=True)):
        assert proc.returncode == 0, f"rank {rank} failed:\n{output[-3000:]}"
    return outputs


def test_two_processes_average_gradients_and_stay_identical(tiny_model_dir: Path, tmp_path: Path) -> None:
    launch([sys.executable, str(ROOT / "tests" / "fixtures" / "ddp_worker.py"), str(tiny_model_dir), str(tmp_path)])
    first, second = (torch.load(tmp_path / f"rank-{r}.pt") for r in range(2))
    for name, value in first.items():
        assert torch.equal(value, second[name]), name  # different episodes, one averaged update
    initial = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    assert any(not torch.equal(value, initial[name]) for name, value in first.items())


def test_the_main_job_under_torchrun_writes_one_run_folder(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    launch([
        sys.executable, "agents/grpo_train.py", "--env", "ToolEnv-Calc-v0", "--model", str(tiny_model_dir),
        "--steps", "2", "--group-size", "2", "--batch-size", "2", "--max-new-tokens", "4", "--eval-limit", "1",
        "--no-warmup.enabled", "--output-dir", str(out),
    ])  # fmt: skip
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2]  # written once, by rank 0
    assert [r["name"] for r in records if r["kind"] == "eval"] == ["before", "after"]
    assert (out / "checkpoints" / "step-2").is_dir()


def test_the_main_job_under_torchrun_runs_a_vllm_engine_per_rank(vllm_model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("vllm", reason="needs vLLM (README: the test command installs it)")
    out = tmp_path / "run"
    outputs = launch([
        sys.executable, "agents/grpo_train.py", "--env", "ToolEnv-Calc-v0", "--model", str(vllm_model_dir),
        "--sampler", "vllm", "--vllm.kv-cache-gib", "0.25", "--steps", "2", "--group-size", "2", "--batch-size", "2",
        "--max-new-tokens", "4", "--eval-limit", "1", "--no-warmup.enabled", "--output-dir", str(out),
    ])  # fmt: skip
    assert "sampler VLLMSampler" in outputs[0]  # rank 0 prints
    assert all("(EngineCore pid=" in output for output in outputs)  # each rank its own engine (vLLM's log)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2]
