"""A training run's folder: resolved config, metrics.jsonl, reward curve, TensorBoard events, checkpoints.

<run>/config.json                the resolved TrainConfig (replaced atomically)
<run>/metrics.jsonl              one JSON object per line: each training step, evaluation and the warm-up
<run>/reward_curve.png           reward per step (matplotlib)
<run>/tb/                        TensorBoard events, when tensorboard is installed
<run>/checkpoints/step-N/        after N training steps: the model as a Hugging Face folder (`from_pretrained`
                                 loads it) and trainer_state.pt (see `save_checkpoint`)
<run>/checkpoints/.step-N.tmp/   a checkpoint being written, or left half-written by a crash: never read as a
                                 checkpoint, removed by the next save

What a crash can and cannot do. A checkpoint is written into .step-N.tmp; its files and the folder are fsynced,
then it is renamed to step-N (atomic on POSIX) and the checkpoints folder is fsynced, so a step-N folder is always
complete; only the newest `keep` are kept. Weights or learner state holding a NaN or inf are refused. metrics.jsonl
is appended and fsynced record by record; on resume `rewind(step)` drops a torn last line and the records of the
steps after the checkpoint, rewriting the file atomically, so the continued log has each step once.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from agents.protocols import Learner

if TYPE_CHECKING:
    from agents.policy import Policy

STATE_FILE = "trainer_state.pt"
STATE_FORMAT = 2  # trainer_state.pt's layout; 1 (no "format" key) had no data position, schedule or numpy RNG


class DataPosition(BaseModel):
    """Where a run is in its stream of training tasks. The tasks of step `next_step` are drawn from (seed, next_step)
    among the training tasks, `tasks_per_step` for each of `world_size` processes; a resumed run must agree on all
    of it, or it would train on other data than the run it continues."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    next_step: int = Field(description="The step whose tasks are drawn next (= training steps completed).")
    seed: int = Field(description="TrainConfig.seed, which seeds every step's draw.")
    tasks_per_step: int = Field(description="Tasks each process draws per step (batch_size / group_size).")
    world_size: int = Field(description="Processes training together (1 when run alone).")
    task_set_sha256: str = Field(description="SHA-256 of the sorted training task ids, one per line.")
    resample_rounds: int = Field(
        default=0, description="TrainConfig.resample_rounds: dynamic sampling's extra draws per step (0: off)."
    )

    @classmethod
    def of(cls, task_ids: Sequence[str], **fields: Any) -> DataPosition:
        digest = hashlib.sha256("\n".join(sorted(task_ids)).encode()).hexdigest()
        return cls(task_set_sha256=digest, **fields)

    def check_continues(self, saved: DataPosition, checkpoint: Path) -> None:
        """Raise unless this run's position is the one `checkpoint` saved."""
        differ = [
            f"{name}={getattr(saved, name)!r} there, {getattr(self, name)!r} here"
            for name in type(self).model_fields
            if getattr(saved, name) != getattr(self, name)
        ]
        if differ:
            raise ValueError(
                f"cannot resume from {checkpoint}: its data position differs ({'; '.join(differ)}), so the run would "
                "not continue on the same tasks. Resume with the settings it was saved with (seed, batch_size, "
                "group_size, resample_rounds, env, processes), or start a new run from its weights with "
                f"--model {checkpoint}"
            )


class TrainerState(BaseModel):
    """What trainer_state.pt holds besides the model: everything a resumed run needs to continue exactly."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    step: int = Field(description="Training steps completed.")
    data: DataPosition = Field(description="The position in the stream of training tasks.")
    learner: dict[str, Any] = Field(
        description="The learner's state_dict(): optimiser(s), learning-rate schedule, KL reference, PPO's critic."
    )
    rng: dict[str, Any] = Field(
        description="The global RNG states of torch, CUDA, Python and numpy (`rng_states`). The sampler and the envs "
        "need none: they draw from generators seeded per call from (seed, step)."
    )


class RunFolder:
    """Writes a run's files (see the module docstring for the layout and its crash guarantees). With `write=False`
    (every process but the first under torchrun) it reads the folder and writes nothing."""

    def __init__(self, path: Path, write: bool = True, keep: int = 2):
        self.path = path
        self.write = write
        self.keep = keep
        self._tb: Any = None
        self._purge_step: int | None = None
        if write:
            path.mkdir(parents=True, exist_ok=True)

    def write_config(self, config: dict[str, Any]) -> None:
        if self.write:
            write_atomically(self.path / "config.json", json.dumps(config, indent=2, default=str) + "\n")

    def log(self, record: dict[str, Any]) -> None:
        """Append one record to metrics.jsonl, on disk before this returns (and its numbers to TensorBoard at
        record['step'])."""
        if not self.write:
            return
        with (self.path / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(record, default=float) + "\n")
            f.flush()
            os.fsync(f.fileno())
        tb = self._tensorboard()
        if tb is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "step":
                    tb.add_scalar(key, value, record.get("step", 0))
            tb.flush()

    def _tensorboard(self) -> Any:
        """The TensorBoard writer, opened on first use (after any `rewind`, whose steps it then hides)."""
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                self._tb = False
            else:
                self._tb = SummaryWriter(str(self.path / "tb"), purge_step=self._purge_step)
        return self._tb or None

    def records(self) -> list[dict[str, Any]]:
        """metrics.jsonl's records; a torn last line (a crash mid-write) is left out."""
        path = self.path / "metrics.jsonl"
        if not path.is_file():
            return []
        lines = path.read_text().splitlines()
        out = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                if number == len(lines):
                    break
                raise ValueError(
                    f"{path}, line {number}, is not a JSON record ({exc}); repair or delete that line"
                ) from None
        return out

    def rewind(self, step: int | None) -> int:
        """Keep only the records of steps up to `step` (None: none, the run starts over), dropping a torn last
        line; metrics.jsonl is replaced atomically. Returns how many records were removed."""
        if not self.write:
            return 0
        records = self.records()
        kept = [] if step is None else [r for r in records if r.get("step", 0) <= step]
        path = self.path / "metrics.jsonl"
        if path.is_file():
            write_atomically(path, "".join(json.dumps(r, default=float) + "\n" for r in kept))
        self._purge_step = 0 if step is None else step + 1
        return len(records) - len(kept)

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

    def save_checkpoint(self, step: int, policy: Policy, learner: Learner, data: DataPosition) -> Path:
        """checkpoints/step-<step>, atomically: the model (Hugging Face format), then trainer_state.pt holding a
        `TrainerState` (loadable with torch.load(weights_only=True)) and the format number. Refuses (ValueError)
        weights or learner state with a NaN or inf. Leftovers of crashed saves are removed; the newest `keep`
        checkpoints are kept."""
        folder = self.path / "checkpoints"
        final = folder / f"step-{step}"
        if not self.write:
            return final
        bad = list(nonfinite_tensors(policy.model.state_dict()))
        if bad:
            raise ValueError(self._refusal(step, "the weights hold", bad))
        folder.mkdir(parents=True, exist_ok=True)
        for leftover in [*folder.glob(".step-*.tmp"), *folder.glob(".step-*.old")]:
            shutil.rmtree(leftover, ignore_errors=True)
        staging = folder / f".{final.name}.tmp"
        try:
            policy.save(staging)
            learner_state = learner.state_dict()
            bad = list(nonfinite_tensors(learner_state))
            if bad:
                raise ValueError(self._refusal(step, "the learner state holds", bad))
            state = {"format": STATE_FORMAT, "step": step, "data": data.model_dump(), "learner": learner_state}
            torch.save(state | {"rng": rng_states()}, staging / STATE_FILE)
            _fsync_tree(staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        old = folder / f".{final.name}.old"
        if final.exists():  # the same step saved again: set the old copy aside, never delete before replacing
            os.replace(final, old)
        os.replace(staging, final)
        _fsync(folder)
        shutil.rmtree(old, ignore_errors=True)
        for stale in checkpoints(self.path)[: -self.keep]:
            shutil.rmtree(stale, ignore_errors=True)
        return final

    def _refusal(self, step: int, what: str, names: list[str]) -> str:
        latest = self.latest_checkpoint()
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        return (
            f"refusing to save checkpoint step-{step}: {what} NaN or inf ({shown}), so training has "
            f"diverged. The newest good checkpoint is {latest or 'none'}; "
            + (f"continue from it with --resume {self.path} and a lower --grpo.lr." if latest else "lower --grpo.lr.")
        )

    def latest_checkpoint(self) -> Path | None:
        return latest_checkpoint(self.path)

    def close(self) -> None:
        if self._tb:
            self._tb.close()


def checkpoints(run: Path) -> list[Path]:
    """A run folder's complete checkpoints (step-N folders with their trainer state), oldest first."""
    folder = run / "checkpoints"
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob("step-*") if p.name[5:].isdigit() and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name[5:]))


def latest_checkpoint(run: Path) -> Path | None:
    """A run folder's newest complete checkpoint (None when it has none)."""
    found = checkpoints(run)
    return found[-1] if found else None


def resolve_model(model: str) -> str:
    """A training run folder becomes its newest checkpoint; any other model name is returned as it is."""
    path = Path(model)
    if not (path / "checkpoints").is_dir():
        return model
    checkpoint = latest_checkpoint(path)
    if checkpoint is None:
        raise ValueError(f"{model} is a training run folder with no finished checkpoint yet")
    return str(checkpoint)


def load_trainer_state(checkpoint: Path) -> TrainerState:
    """The trainer state saved beside a checkpoint's model (restore its RNGs with `restore_rng`)."""
    state = torch.load(checkpoint / STATE_FILE, weights_only=True)
    if state.get("format") != STATE_FORMAT:
        raise ValueError(
            f"{checkpoint / STATE_FILE} has trainer-state format {state.get('format', 1)}, this toolrl reads "
            f"{STATE_FORMAT}; it cannot be resumed exactly, but its weights load: start a new run with --model "
            f"{checkpoint}"
        )
    del state["format"]
    return TrainerState.model_validate(state)


def rng_states() -> dict[str, Any]:
    """The global RNG states of torch (and CUDA's, when present), Python's `random` and numpy, as plain values."""
    name, keys, position, has_gauss, gauss = np.random.get_state()  # type: ignore[misc]
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), position, has_gauss, gauss],
    }


def restore_rng(states: dict[str, Any]) -> None:
    """Set the global RNGs to `rng_states()`'s output."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    name, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, gauss))


def nonfinite_tensors(state: Any, prefix: str = "") -> Iterator[str]:
    """The names (dotted paths) of the floating-point tensors in a nested state that hold a NaN or inf."""
    if isinstance(state, torch.Tensor):
        # A sum is one pass with no copy (about 10x faster than isfinite over 1.6 GB) and is NaN or inf whenever an
        # element is; the exact test runs only then, so a sum that merely overflowed refuses nothing.
        if state.is_floating_point() and not bool(state.sum().isfinite()) and not bool(state.isfinite().all()):
            yield prefix or "tensor"
    elif isinstance(state, dict):
        for key, value in state.items():
            yield from nonfinite_tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(state, (list, tuple)):
        for index, value in enumerate(state):
            yield from nonfinite_tensors(value, f"{prefix}.{index}" if prefix else str(index))


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` so that a crash leaves the old file or the new one, never a mix."""
    staging = path.with_name(f".{path.name}.tmp")
    with staging.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(staging, path)
    _fsync(path.parent)


def _fsync(path: Path) -> None:
    """Flush a file's (or a folder's entries') writes to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):  # files before their folders
        _fsync(path)
    _fsync(folder)
