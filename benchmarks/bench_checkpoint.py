"""What a main-job checkpoint of the embedded model costs: seconds to write it (model, AdamW state, RNGs; every file
and folder fsynced, then renamed into place), the resident memory it adds (Linux: the high-water mark is reset just
before the saves through /proc/self/clear_refs), seconds to load its trainer state, and its size on disk.

    python benchmarks/bench_checkpoint.py [--repeats 3] [--output-dir /tmp/bench-checkpoint]

AdamW's state is created by one optimiser step on zero gradients (its moments then have their real size). The
folder is deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

from toolrl_env.cli import add_argument


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="Checkpoints written, timed one by one (default 3).")
    add_argument(
        parser,
        "output_dir",
        "Here: where they are written, deleted at the end.",
        type=Path,
        default=Path("/tmp/bench-checkpoint"),
    )
    return parser


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = build_parser().parse_args(argv)
    import torch

    from agents.learners.grpo import GRPOLearner
    from agents.policy import Policy
    from agents.runtime.memory import status_kib
    from agents.runtime.run_folder import DataPosition, RunFolder, load_trainer_state

    policy = Policy.load()
    learner = GRPOLearner(policy)
    for param in policy.model.parameters():
        param.grad = torch.zeros_like(param)
    learner.optimizer.step()
    learner.optimizer.zero_grad(set_to_none=True)
    run = RunFolder(args.output_dir, keep=1)
    data = DataPosition.of(["task"], next_step=0, seed=0, tasks_per_step=2, world_size=1)
    Path("/proc/self/clear_refs").write_text("5\n")  # reset VmHWM to the current RSS
    rss_before = status_kib("VmRSS")
    seconds = []
    for step in range(1, args.repeats + 1):
        started = time.perf_counter()
        path = run.save_checkpoint(step, policy, learner, data)
        seconds.append(time.perf_counter() - started)
    peak = status_kib("VmHWM")
    started = time.perf_counter()
    load_trainer_state(path)
    load_seconds = time.perf_counter() - started
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    shutil.rmtree(args.output_dir)
    result = {
        "save_s_median": statistics.median(seconds),
        "save_s_max": max(seconds),
        "load_state_s": load_seconds,
        "checkpoint_gb": size / 1e9,
        "rss_before_gb": rss_before * 1024 / 1e9,
        "peak_rss_during_saves_gb": peak * 1024 / 1e9,
    }
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
