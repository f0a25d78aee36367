"""Peak resident memory and time of one GRPO update of the embedded model, with and without recomputing the
decoder layers of each prompt pass (`GRPOConfig.gradient_checkpointing`), each in its own process.

    python benchmarks/bench_update_memory.py

The batch is the main job's worst case on BFCL simple_python: its two longest training prompts (about 700
tokens in the chat template), 4 episodes each, 96 new tokens per episode (the main job's limit; random
tokens, so the figures do not depend on a trained model). The first update creates AdamW's state and is not
counted; the second is measured: peak RSS (Linux: the high-water mark is reset just before it, through
/proc/self/clear_refs) and seconds. The process sets the allocator up as the main job does.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

GROUP, NEW_TOKENS = 4, 96


def measure(recompute: bool) -> dict[str, float]:
    from agents.runtime.memory import configure_allocator, release_free_memory, status_kib

    configure_allocator()
    import torch

    import toolrl_env  # noqa: F401  (registers the env ids)
    from agents.evaluation.episodes import make_tool_env
    from agents.learners.grpo import GRPOConfig, GRPOLearner
    from agents.policy import Policy
    from agents.protocols import Episode

    policy = Policy.load()
    env = make_tool_env("ToolEnv-BFCL-v0", category="simple_python", split="train")
    prompts = sorted((policy.prompt_ids(env.reset(options={"task_id": t.id})[0]) for t in env.tasks), key=len)[-2:]
    generator = torch.Generator().manual_seed(0)
    episodes = []
    for group, prompt in enumerate(prompts):
        for k in range(GROUP):
            completion = torch.randint(100, 40_000, (NEW_TOKENS,), generator=generator).tolist()
            episodes.append(
                Episode(
                    task_id=str(group),
                    group=group,
                    token_ids=prompt + completion,
                    prompt_length=len(prompt),
                    action_mask=[0] * len(prompt) + [1] * NEW_TOKENS,
                    sampling_logprobs=[0.0] * (len(prompt) + NEW_TOKENS),
                    step_rewards=[float(k)],
                    reward_components=[{}],
                )
            )
    learner = GRPOLearner(policy, GRPOConfig(gradient_checkpointing=recompute))
    learner.update(episodes)
    release_free_memory()
    before = status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak
    started = time.perf_counter()
    learner.update(episodes)
    seconds = time.perf_counter() - started
    return {
        "prompt_tokens": max(len(p) for p in prompts),
        "rss_before_gb": before / 1e6,
        "peak_gb": status_kib("VmHWM") / 1e6,
        "seconds": seconds,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)  # the script runs itself per mode
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.child is not None:
        print(json.dumps(measure(args.child == "on")))
        return
    print("| gradient_checkpointing | RSS before | peak RSS during the update | update seconds |")
    print("| --- | --- | --- | --- |")
    for mode in ("off", "on"):
        out = subprocess.run(
            [sys.executable, __file__, "--child", mode], check=True, capture_output=True, text=True
        ).stdout
        row = json.loads(out.strip().splitlines()[-1])
        print(f"| {mode} | {row['rss_before_gb']:.2f} GB | {row['peak_gb']:.2f} GB | {row['seconds']:.1f} s |")
    print(f"\n(prompts of up to {row['prompt_tokens']} tokens, {GROUP} x 2 episodes of {NEW_TOKENS} new tokens)")


if __name__ == "__main__":
    main()
