"""Reset and step latency of the benchmark envs, with no model in the loop.

    python benchmarks/bench_envs.py [--episodes 300] [--data-path ../shared/data/toolrl] [--env ID ...]

Each episode is played by the gold policy (every step's gold completion, so tools run and the episode
ends normally) and, for a second row, by a completion that breaks the format. Timed separately: `reset`,
each `step` before the last, and the last `step` (which computes the episode's official metric, e.g.
BFCL's AST or multi-turn checker). ToolEnv-APIBank-v0 and ToolEnv-Bamboogle-v0 read ToolRL's files from
`--data-path`; Bamboogle searches the test corpus in tests/fixtures. Targets: BFCL single-turn reset+step
median under 1 ms; a multi-turn step median under 5 ms.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import toolrl_env  # noqa: F401  (registers the ids)
from toolrl_env.cli import add_argument, add_env_arguments, env_list
from toolrl_env.env import ToolEnv

ROOT = Path(__file__).resolve().parent.parent
BROKEN = "<think>hm</think>\n<tool_call>\n{'name': broken\n</tool_call>"


def env_specs(data: Path) -> dict[str, dict[str, Any]]:
    """The ids to time and their kwargs."""
    return {
        "ToolEnv-BFCL-v0": {},
        "ToolEnv-BFCLMultiTurn-v0": {},
        "ToolEnv-APIBank-v0": {"data_path": str(data)},
        "ToolEnv-Bamboogle-v0": {
            "data_path": str(data / "Bamboogle__data.json"),
            "corpus_path": str(ROOT / "tests" / "fixtures" / "bamboogle_corpus.jsonl"),
        },
    }


def time_episodes(env: ToolEnv, task_ids: list[str], gold: bool) -> dict[str, list[float]]:
    """Seconds per reset, per inner step and per last step, over one episode of each task."""
    times: dict[str, list[float]] = {"reset": [], "step": [], "last step": []}
    for task_id in task_ids:
        start = time.perf_counter()
        env.reset(seed=0, options={"task_id": task_id})
        times["reset"].append(time.perf_counter() - start)
        done = False
        while not done:
            action = (env.current_gold().text or "") if gold else BROKEN
            start = time.perf_counter()
            _, _, terminated, truncated, _ = env.step(action)
            elapsed = time.perf_counter() - start
            done = terminated or truncated
            times["last step" if done else "step"].append(elapsed)
    return times


def summary(values: list[float]) -> str:
    if not values:
        return "—"
    micro = np.asarray(values) * 1e6
    return f"{statistics.median(micro):,.0f} µs (p99 {np.percentile(micro, 99):,.0f})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=300, help="Episodes per env and policy (default 300).")
    add_argument(
        parser,
        "data_path",
        "Here: API-Bank's and Bamboogle's files.",
        type=Path,
        default=ROOT.parent / "shared" / "data" / "toolrl",
    )
    add_env_arguments(parser, choices=list(env_specs(Path())))
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    chosen_envs = dict(env_list(args))
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}")
    print("| env | policy | make | reset | step (not last) | last step (metric) |")
    print("| --- | --- | --- | --- | --- | --- |")
    rng = np.random.default_rng(0)
    for env_id, kwargs in env_specs(args.data_path).items():
        if chosen_envs and env_id not in chosen_envs:
            continue
        start = time.perf_counter()
        env = gym.make(env_id, **{**kwargs, **chosen_envs.get(env_id, {})}).unwrapped
        made = time.perf_counter() - start
        assert isinstance(env, ToolEnv)
        ids = [t.id for t in env.tasks]
        chosen = [ids[i] for i in rng.choice(len(ids), size=min(args.episodes, len(ids)), replace=False)]
        for gold in (True, False):
            times = time_episodes(env, chosen, gold)
            row = [env_id, "gold" if gold else "broken", f"{made:.1f} s"]
            row += [summary(times["reset"]), summary(times["step"]), summary(times["last step"])]
            print("| " + " | ".join(row) + " |", flush=True)
        env.close()


if __name__ == "__main__":
    main()
