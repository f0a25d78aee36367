"""Seconds per GRPO step: our learner against TRL's GRPOTrainer, one after the other in one run.

    pip install trl==1.16.0
    python benchmarks/bench_grpo_vs_trl.py [--steps 4]

Both train the embedded SmolLM2-135M-Instruct in fp32 throughout (ours with `cpu_bf16_autocast=False`, so
generation is fp32 too; TRL with `bf16=False`) on the same BFCL simple_python training prompts (ToolRL's system
prompt with the tools, then the question, in the model's chat template), 2 prompts x 4 completions per step, at
most 96 new tokens, temperature 1.0, lr 1e-5, no KL, one update per batch, scored by the same reward (ToolRL's
default, through `toolrl_env.rewards.compute_score` against the task's gold). The first step of each is a warm-up
and is not counted.

Both print each step's completion tokens (ours: the tokens the sampler generated; TRL's: its
`completions/mean_length` times the step's completions), so a reader can check that they did comparable work:
ours ends a turn at `</tool_call>` / `</response>`, TRL only at EOS or the length limit. The summary gives seconds
per step and per 1,000 completion tokens.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

import toolrl_env  # noqa: F401  (registers the env ids)
from agents.evaluation.episodes import make_tool_env
from agents.learners.grpo import GRPOConfig, GRPOLearner
from agents.policy import Policy, PolicyConfig
from agents.protocols import SamplingParams
from agents.rollout import rollout
from agents.sampling import HFSampler
from toolrl_env.cli import add_argument
from toolrl_env.rewards import compute_score

GROUP, BATCH, MAX_NEW, LR = 4, 8, 96, 1e-5


Step = tuple[float, int]  # seconds, completion tokens


def ours(steps: int, task_ids: list[str]) -> list[Step]:
    policy = Policy.load(PolicyConfig(cpu_bf16_autocast=False))
    sampler = HFSampler(policy)
    learner = GRPOLearner(policy, GRPOConfig(lr=LR))
    envs = [make_tool_env("ToolEnv-BFCL-v0", category="simple_python", split="train") for _ in range(BATCH)]
    params = SamplingParams(max_new_tokens=MAX_NEW, temperature=1.0)
    done: list[Step] = []
    for step in range(steps):
        start = time.perf_counter()
        chosen = task_ids[2 * step : 2 * step + BATCH // GROUP]
        episodes = rollout(envs, chosen, GROUP, policy, sampler, params, seed=step)
        learner.update(episodes)
        done.append((time.perf_counter() - start, sum(sum(e.action_mask) for e in episodes)))
        print(f"ours step {step}: {done[-1][0]:.1f} s, {done[-1][1]} completion tokens", flush=True)
    return done


def trl(steps: int, task_ids: list[str]) -> list[Step]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig as TRLConfig
    from trl import GRPOTrainer

    from agents.embedded_model import embedded_model_dir

    env = make_tool_env("ToolEnv-BFCL-v0", category="simple_python", split="train")
    rows = []
    for task_id in task_ids[: 2 * steps]:
        obs, _ = env.reset(options={"task_id": task_id})
        rows.append({"prompt": obs, "gold": env.current_gold().text or ""})

    def reward(completions: list[Any], gold: list[str], **_: Any) -> list[float]:
        return [compute_score(c[0]["content"], g).total for c, g in zip(completions, gold, strict=True)]

    times: list[float] = []
    tokens: list[int] = []

    class Timer(TrainerCallback):  # type: ignore[misc]
        def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
            self.start = time.perf_counter()

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            times.append(time.perf_counter() - self.start)

        def on_log(self, *args: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
            if logs and "completions/mean_length" in logs:  # logged after each step (logging_steps=1)
                tokens.append(round(logs["completions/mean_length"] * BATCH))
                print(f"trl step {len(tokens) - 1}: {times[-1]:.1f} s, {tokens[-1]} completion tokens", flush=True)

    folder = embedded_model_dir()
    config = TRLConfig(
        output_dir="/tmp/trl_bench",
        per_device_train_batch_size=BATCH,
        num_generations=GROUP,
        max_completion_length=MAX_NEW,
        learning_rate=LR,
        beta=0.0,
        max_steps=steps,
        bf16=False,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        temperature=1.0,
        shuffle_dataset=False,
        gradient_checkpointing=False,  # on by default in TRL; off is faster here and memory is no issue at 135M
    )
    trainer = GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32),
        processing_class=AutoTokenizer.from_pretrained(folder, padding_side="left"),
        reward_funcs=reward,
        args=config,
        train_dataset=Dataset.from_list(rows),
        callbacks=[Timer()],
    )
    trainer.train()
    return list(zip(times, tokens, strict=True))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_argument(parser, "steps", "Here: per trainer, the first not counted (default 4).", type=int, default=4)
    return parser


def summary(name: str, steps: list[Step]) -> tuple[float, str]:
    """Median seconds per step over the counted steps, and a line saying so with the tokens behind it."""
    seconds = statistics.median(s for s, _ in steps)
    tokens = statistics.fmean(n for _, n in steps)
    per_k = statistics.median(1000 * s / max(n, 1) for s, n in steps)
    return seconds, f"{name}: {seconds:.1f} s per step, {tokens:.0f} completion tokens per step, {per_k:.1f} s per 1k"


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    env = make_tool_env("ToolEnv-BFCL-v0", category="simple_python", split="train")
    task_ids = sorted(t.id for t in env.tasks)
    ours_s, ours_line = summary("ours", ours(args.steps, task_ids)[1:])
    trl_s, trl_line = summary("TRL", trl(args.steps, task_ids)[1:])
    print(f"\nmedians over {args.steps - 1} steps each:\n{ours_line}\n{trl_line}\nratio {ours_s / trl_s:.2f} per step")


if __name__ == "__main__":
    main()
