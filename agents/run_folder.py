"""A training run's folder: resolved config, metrics.jsonl, reward curve, TensorBoard events, checkpoints.

<run>/config.json            the resolved TrainConfig
<run>/metrics.jsonl          one JSON object per step (and per evaluation)
<run>/reward_curve.png       reward per step (matplotlib)
<run>/tb/                    TensorBoard events, when tensorboard is installed
<run>/checkpoints/step-N/    Hugging Face model folder (from_pretrained) + trainer_state.pt
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch

from agents.policy import Policy

STATE_FILE = "trainer_state.pt"


class RunFolder:
    """Writes a run's files; checkpoints are written to a temporary folder and renamed into place. With
    `write=False` (every process but the first under torchrun) it reads the folder and writes nothing."""

    def __init__(self, path: Path, write: bool = True):
        self.path = path
        self.write = write
        self._tb: Any = None
        if not write:
            return
        path.mkdir(parents=True, exist_ok=True)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(path / "tb"))
        except ImportError:  # tensorboard is optional
            self._tb = None

    def write_config(self, config: dict[str, Any]) -> None:
        if not self.write:
            return
        (self.path / "config.json").write_text(json.dumps(config, indent=2, default=str) + "\n")

    def log(self, record: dict[str, Any]) -> None:
        """Append one record to metrics.jsonl (and its numbers to TensorBoard at record['step'])."""
        if not self.write:
            return
        with (self.path / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(record, default=float) + "\n")
        if self._tb is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "step":
                    self._tb.add_scalar(key, value, record.get("step", 0))
            self._tb.flush()

    def records(self) -> list[dict[str, Any]]:
        path = self.path / "metrics.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def plot_rewards(self) -> Path | None:
        """reward_curve.png from metrics.jsonl (None when matplotlib is missing or nothing was logged)."""
        steps = [r for r in self.records() if r.get("kind") == "train"]
        if not steps or not self.write:
            return None
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return None
        figure, axis = plt.subplots(figsize=(6, 3.5))
        axis.plot([r["step"] for r in steps], [r["rollout/reward_mean"] for r in steps], marker="o", ms=3)
        axis.set_xlabel("step")
        axis.set_ylabel("mean episode reward")
        axis.grid(alpha=0.3)
        figure.tight_layout()
        out = self.path / "reward_curve.png"
        figure.savefig(out, dpi=120)
        plt.close(figure)
        return out

    def save_checkpoint(self, step: int, policy: Policy, learner_state: dict[str, Any]) -> Path:
        """checkpoints/step-<step>: the model (Hugging Face format) and the trainer's state, atomically."""
        final = self.path / "checkpoints" / f"step-{step}"
        if not self.write:
            return final
        staging = final.with_name(f".{final.name}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        policy.save(staging)
        state = {
            "step": step,
            "learner": learner_state,
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
        }
        torch.save(state, staging / STATE_FILE)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        return final

    def latest_checkpoint(self) -> Path | None:
        return latest_checkpoint(self.path)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def latest_checkpoint(run: Path) -> Path | None:
    """A run folder's newest complete checkpoint (None when it has none)."""
    folder = run / "checkpoints"
    found = [p for p in folder.glob("step-*") if (p / STATE_FILE).is_file()] if folder.is_dir() else []
    return max(found, key=lambda p: int(p.name.split("-")[1]), default=None)


def load_trainer_state(checkpoint: Path) -> dict[str, Any]:
    """The trainer state saved beside a checkpoint's model; restores the RNGs."""
    state: dict[str, Any] = torch.load(checkpoint / STATE_FILE, weights_only=False)
    torch.set_rng_state(state["torch_rng"])
    random.setstate(state["python_rng"])
    return state
