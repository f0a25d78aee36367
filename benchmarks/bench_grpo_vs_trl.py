"""Seconds per GRPO step: our learner against TRL's GRPOTrainer, one after the other in one run.

    pip install trl==1.16.0
    python benchmarks/bench_grpo_vs_trl.py [--steps 4]

Both train the embedded SmolLM2-135M-Instruct in fp32 throughout (ours with `cpu_bf16_autocast=False`, so
generation is fp32 too; TRL with `bf16=False`) on the same BFCL simple_python training prompts (ToolRL's system
prompt with the tools, then the question, in the model's chat template), 2 prompts x 4 completions per step, at
most 96 new tokens, temperature 1.0, lr 1e-5, no KL, one update per batch, scored by the same reward (ToolRL's
default, through `toolrl_env.rewards.compute_score` against the task's gold). The first step of each is a warm-up
and is not counted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

import toolrl_env  # noqa: F401  (registers the env ids)
from agents.evaluation import make_tool_env
from agents.grpo import GRPOConfig, GRPOLearner
from agents.policy import Policy, PolicyConfig
from agents.protocols import SamplingParams
from agents.rollout import rollout
from agents.sampling import HFSampler
from toolrl_env.rewards import compute_score

GROUP, BATCH, MAX_NEW, LR = 4, 8, 96, 1e-5


def ours(steps: int, task_ids: list[str]) -> list[float]:
    policy = Policy.load(PolicyConfig(cpu_bf16_autocast=False))
    sampler = HFSampler(policy)
    learner = GRPOLearner(policy, GRPOConfig(lr=LR))
    envs = [make_tool_env("ToolEnv-BFCL-v0", category="simple_python", split="train") for _ in range(BATCH)]
    params = SamplingParams(max_new_tokens=MAX_NEW, temperature=1.0)
    times = []
    for step in range(steps):
        start = time.perf_counter()
        chosen = task_ids[2 * step : 2 * step + BATCH // GROUP]
        episodes = rollout(envs, chosen, GROUP, policy, sampler, params, seed=step)
        learner.update(episodes)
        times.append(time.perf_counter() - start)
        print(f"ours step {step}: {times[-1]:.1f} s", flush=True)
    return times


def trl(steps: int, task_ids: list[str]) -> list[float]:
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

    class Timer(TrainerCallback):  # type: ignore[misc]
        def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
            self.start = time.perf_counter()

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            times.append(time.perf_counter() - self.start)
            print(f"trl step {len(times) - 1}: {times[-1]:.1f} s", flush=True)

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
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4, help="steps per trainer (the first is not counted)")
    args = parser.parse_args()
    env = make_tool_env("ToolEnv-BFCL-v0", category="simple_python", split="train")
    task_ids = sorted(t.id for t in env.tasks)
    ours_s = statistics.median(ours(args.steps, task_ids)[1:])
    trl_s = statistics.median(trl(args.steps, task_ids)[1:])
    print(
        f"\nseconds per step (median of {args.steps - 1}): ours {ours_s:.1f}, TRL {trl_s:.1f}, "
        f"ratio {ours_s / trl_s:.2f}"
    )


if __name__ == "__main__":
    main()
