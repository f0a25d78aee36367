"""The main job: train a language model to call tools with GRPO on a ToolEnv id.

    python agents/grpo_train.py --env ToolEnv-BFCL-v0

Order of work, top to bottom: load the policy (the embedded SmolLM2-135M-Instruct by default), evaluate it
greedily on the env's held-out split, warm it up on gold-format demonstrations from the training split
(switch off with --no-warmup.enabled; --eval-after-warmup scores it again), then for each step: sample
`group_size` episodes of `batch_size / group_size` training tasks through the env (which scores every turn),
update the policy with the learner (GRPO; RLOO or PPO with --algo rloo|ppo), log, and every `save_every` steps
(10) and after the last, checkpoint; finally evaluate again and print the evaluations side by side (on BFCL also
as bfcl-eval aggregates them, and the mean over the evaluated categories).

Everything lands in the run folder (see agents/runtime/run_folder.py). A crash (even SIGKILL) loses at most the steps
since the last checkpoint: `--resume <run>` reloads its weights, learner state (optimisers, schedule), RNG states
and data position, drops the records logged after it, and continues as if the run had never stopped: the same
metrics and the same final weights as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

import toolrl_env  # noqa: F401  (registers the env ids)
from agents.evaluation.episodes import (
    evaluate,
    evaluation_ids,
    make_tool_env,
    summarise,
    table,
    takes_split,
    task_result,
)
from agents.evaluation.tables import benchmark_scores, bfcl_score_tables
from agents.learners.grpo import frac_zero_std_groups
from agents.learners.warmup import demonstration_ids, demonstrations, warm_up
from agents.policy import Policy
from agents.protocols import Episode, Sampler, SamplingParams
from agents.rollout import dynamic_sampling, rollout
from agents.runtime import distributed
from agents.runtime.memory import configure_allocator, release_free_memory
from agents.runtime.run_folder import DataPosition, RunFolder, load_trainer_state, restore_rng
from agents.sampling import make_sampler
from agents.train_config import TrainConfig, build_learner
from toolrl_env.cli import ConfigParser, add_argument, merge, read_config_file, require_registered

# `--model` means the same in every script that loads a model.
SHORTCUTS = {"policy.model": "model"}


def build_parser() -> ConfigParser:
    """Every TrainConfig field as a flag, plus --config and --resume."""
    parser = ConfigParser(TrainConfig, __doc__, SHORTCUTS)
    add_argument(parser, "config", type=Path, metavar="FILE")
    parser.add_argument(
        "--resume",
        type=Path,
        metavar="RUN",
        help="A run folder to continue from its newest checkpoint; its config.json is the base for --config and "
        "flags, which may not change the data the run draws.",
    )
    return parser


def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, Path | None]:
    """The run's config (a resumed run's, then --config, then flags) and the run folder to resume, if any."""
    parser = build_parser()
    args, flags = parser.parse_config(argv)
    data: dict[str, Any] = {}
    if args.resume is not None:
        if not (args.resume / "config.json").is_file():
            parser.error(f"--resume {args.resume}: no config.json there; give a run folder written by grpo_train.py")
        data = json.loads((args.resume / "config.json").read_text())
        data["output_dir"] = str(args.resume)
    if args.config is not None:
        data = merge(data, read_config_file(args.config))
    config: TrainConfig = parser.validated(merge(data, flags))
    require_registered(parser, [config.env])
    return config, args.resume


def step_record(
    step: int, episodes: list[Episode], learner_metrics: dict[str, float], seconds: float
) -> dict[str, Any]:
    """One training step's metrics, namespaced."""
    record: dict[str, Any] = {"kind": "train", "step": step}
    rewards = [e.reward for e in episodes]
    record["rollout/reward_mean"] = sum(rewards) / len(rewards)
    record["rollout/frac_zero_std_groups"] = frac_zero_std_groups(rewards, [e.group for e in episodes])
    for name in sorted({k for e in episodes for c in e.reward_components for k in c}):
        values = [c.get(name, 0.0) for e in episodes for c in e.reward_components]
        record[f"reward/{name}"] = sum(values) / len(values)
    generated = sum(sum(e.action_mask) for e in episodes)
    record["rollout/completion_tokens"] = generated / len(episodes)
    for key, value in summarise(episodes).items():
        if key != "reward":
            record[key] = value
    record.update(learner_metrics)
    record["perf/step_s"] = seconds
    record["perf/tokens_per_s"] = generated / seconds if seconds > 0 else 0.0
    return record


def main(argv: list[str] | None = None) -> None:
    configure_allocator()
    config, resume = parse_args(argv)
    rank, world = distributed.start()  # several processes under torchrun: see agents/runtime/distributed.py
    out = distributed.from_main(config.output_dir or Path("runs") / f"{config.env}-{time.strftime('%Y%m%d-%H%M%S')}")
    config = config.model_copy(update={"output_dir": out})
    run = RunFolder(out, write=distributed.is_main(), keep=config.keep_checkpoints)
    with contextlib.redirect_stdout(sys.stdout if rank == 0 else io.StringIO()):  # one process prints
        train(config, resume, run, rank, world)
    distributed.finish()


def train(config: TrainConfig, resume: Path | None, run: RunFolder, rank: int, world: int) -> None:
    """The main job's work, on this process's share of each step's tasks (all of them when run alone)."""
    out = run.path
    checkpoint = run.latest_checkpoint()
    if checkpoint is not None and resume is None:
        raise ValueError(
            f"{out} already holds checkpoints of a run (newest: {checkpoint.name}); continue it with --resume {out}, "
            "or give a new --output-dir"
        )
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    print(f"run folder: {out}")

    env_kwargs = config.resolved_env_kwargs()
    split = takes_split(config.env)
    train_env = make_tool_env(config.env, **env_kwargs, **({"split": "train"} if split else {}))
    eval_kwargs = config.resolved_eval_env_kwargs()
    eval_env = make_tool_env(config.env, **eval_kwargs, **({"split": "test"} if split else {}))
    envs = [train_env] + [
        make_tool_env(config.env, **env_kwargs, **({"split": "train"} if split else {}))
        for _ in range(config.batch_size - 1)
    ]
    eval_ids = evaluation_ids(eval_env, config.eval_limit)
    train_ids = sorted(t.id for t in train_env.tasks)
    print(f"env {config.env} {env_kwargs}: {len(train_ids)} training tasks")
    print(f"held-out evaluation {eval_kwargs}: {len(eval_ids)} tasks")
    tasks_per_step = config.batch_size // config.group_size

    def position(step: int) -> DataPosition:
        """Where the stream of training tasks stands before `step`: what a checkpoint records and a resume checks."""
        return DataPosition.of(
            train_ids,
            next_step=step,
            seed=config.seed,
            tasks_per_step=tasks_per_step,
            world_size=world,
            resample_rounds=config.resample_rounds,
        )

    state = None if checkpoint is None else load_trainer_state(checkpoint)
    if state is not None and checkpoint is not None:  # before the model loads: a mismatch fails at once
        position(state.step).check_continues(state.data, checkpoint)
    run.write_config(config.model_dump(mode="json"))  # after the check: a refused resume leaves the folder as it was

    started = time.perf_counter()
    policy = Policy.load(config.policy)
    distributed.broadcast_parameters(policy.model)  # identical replicas (LoRA adapters start random)
    learner = build_learner(config, policy)
    if state is not None and checkpoint is not None:
        loaded = type(policy.model).from_pretrained(checkpoint, dtype=next(policy.model.parameters()).dtype)
        policy.model.load_state_dict(loaded.state_dict())
        del loaded
    sampler = make_sampler(config.sampler, policy, config.vllm, config.seed)  # a vLLM engine takes these weights
    print(
        f"model {config.policy.model} on {policy.device} (bf16 autocast in generation: {policy.autocast_bf16}), "
        f"sampler {type(sampler).__name__}, ready in {time.perf_counter() - started:.1f} s"
    )

    first_step, evaluations = 0, {}
    if state is not None and checkpoint is not None:
        learner.load_state_dict(state.learner)
        first_step = state.step
        dropped = run.rewind(first_step)  # what was logged after the checkpoint is done again below
        evaluations = {r["name"]: r["summary"] for r in run.records() if r.get("kind") == "eval"}
        print(f"resumed from {checkpoint} at step {first_step}; records logged after it, dropped: {dropped}")
    else:
        if run.rewind(None):  # a run that crashed before its first checkpoint starts over
            print(f"no checkpoint in {out}: starting over")
        evaluations["before"] = run_evaluation(run, "before", policy, sampler, eval_env, eval_ids, config, 0)
        if config.warmup.enabled:
            ids = demonstration_ids(train_env, train_ids, config.warmup, config.seed)
            demos = demonstrations(train_env, ids, policy)
            bar = tqdm(
                total=config.warmup.epochs * -(-len(demos) // config.warmup.batch_size),
                desc="warm-up",
                disable=rank != 0,
            )

            def on_step(step: int, total: int, loss: float) -> None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}")

            warmup_started = time.perf_counter()
            losses = warm_up(policy, demos, config.warmup, config.seed, on_step)
            bar.close()
            sampler.sync(policy.model)
            release_free_memory()
            run.log(
                {
                    "kind": "warmup",
                    "step": 0,
                    "warmup/loss_first": losses[0],
                    "warmup/loss_last": losses[-1],
                    "warmup/examples": len(demos),
                    "warmup/seconds": time.perf_counter() - warmup_started,
                }
            )
            if config.eval_after_warmup:
                evaluations["after warm-up"] = run_evaluation(
                    run, "after warm-up", policy, sampler, eval_env, eval_ids, config, 0
                )
    if state is not None:
        restore_rng(state.rng)  # last, so that nothing above moves the streams the steps draw from

    params = SamplingParams(max_new_tokens=config.max_new_tokens, temperature=config.temperature)
    bar = tqdm(
        range(first_step, config.steps),
        initial=first_step,
        total=config.steps,
        desc=config.algo.upper() if config.algo in ("grpo", "rloo", "ppo") else "train",
        disable=rank != 0,
    )
    for step in bar:
        started = time.perf_counter()
        episodes, dynamic = step_episodes(config, step, rank, world, train_ids, envs, policy, sampler, params)
        release_free_memory()  # the sampler's caches, before the update's peak
        learner_metrics = learner.update(episodes) | dynamic
        sampler.sync(policy.model)
        release_free_memory()
        record = step_record(step + 1, episodes, learner_metrics, time.perf_counter() - started)
        run.log(record)
        bar.set_postfix(
            reward=f"{record['rollout/reward_mean']:.2f}", zero_std=f"{record['rollout/frac_zero_std_groups']:.2f}"
        )
        done = step + 1
        if config.eval_every and done % config.eval_every == 0 and done < config.steps:
            run_evaluation(run, f"step {done}", policy, sampler, eval_env, eval_ids, config, done)
        # After the step's evaluation, so that a resumed run starts from exactly the state the next step sees.
        if done == config.steps or (config.save_every and done % config.save_every == 0):
            run.save_checkpoint(done, policy, learner, position(done))
    bar.close()

    if config.steps == 0 and checkpoint is None:  # no training steps: the (warmed-up) model is the run's result
        run.save_checkpoint(0, policy, learner, position(0))
    # With no steps, the last evaluation already scored these weights; a resumed run that had finished its steps
    # evaluates only if the crash came before the final evaluation was logged.
    after = [r for r in run.records() if r.get("kind") == "eval" and r.get("name") == "after"]
    if config.steps > 0 and first_step <= config.steps and all(r["step"] != config.steps for r in after):
        evaluations["after"] = run_evaluation(run, "after", policy, sampler, eval_env, eval_ids, config, config.steps)
    sampler.close()
    run.plot_rewards()
    run.close()
    evaluations = {name: summary for name, summary in evaluations.items() if summary}
    if evaluations:
        print(f"\nheld-out evaluation on {config.env} ({len(eval_ids)} tasks, greedy):\n")
        print(table({name: {k: v for k, v in s.items() if "/category/" not in k} for name, s in evaluations.items()}))
        bfcl = {
            n: {k.removeprefix("bfcl/"): v for k, v in s.items() if k.startswith("bfcl/")}
            for n, s in evaluations.items()
        }
        if any(bfcl.values()):
            print(f"\n{bfcl_score_tables(bfcl, len(eval_ids))}")
    train = [r for r in run.records() if r.get("kind") == "train"]
    if len(train) >= 2:
        k = max(1, len(train) // 4)
        first = sum(r["rollout/reward_mean"] for r in train[:k]) / k
        last = sum(r["rollout/reward_mean"] for r in train[-k:]) / k
        print(f"\nmean training reward, first {k} steps: {first:.3f}; last {k} steps: {last:.3f}")
    print(f"\nrun folder: {out}")


def step_episodes(
    config: TrainConfig,
    step: int,
    rank: int,
    world: int,
    train_ids: list[str],
    envs: list[Any],
    policy: Policy,
    sampler: Sampler,
    params: SamplingParams,
) -> tuple[list[Episode], dict[str, float]]:
    """This process's episodes of `step`, and dynamic sampling's metrics (none when it is off). The tasks depend
    only on (seed, step, rank), so a resumed run draws the same ones; each process takes its share."""
    tasks_per_step = config.batch_size // config.group_size
    drawn = random.Random(config.seed * 1_000_003 + step).sample(train_ids, tasks_per_step * world)
    used = set(drawn)

    def run_rollout(task_ids: list[str], round_: int) -> list[Episode]:
        seed = config.seed * 1_000_003 + (step * world + rank) * 1000 + round_ * 1_000_000_007
        return rollout(envs, task_ids, config.group_size, policy, sampler, params, seed=seed, training_step=step)

    def fresh(round_: int, count: int) -> list[Episode]:
        """Dynamic sampling's round `round_`: `count` training tasks this step has not drawn yet."""
        rest = [task for task in train_ids if task not in used]
        tasks = random.Random(f"{config.seed}/{step}/{rank}/{round_}").sample(rest, min(count, len(rest)))
        used.update(tasks)
        return run_rollout(tasks, round_) if tasks else []

    episodes = run_rollout(drawn[rank::world], 0)
    if not config.resample_rounds:
        return episodes, {}
    return dynamic_sampling(episodes, fresh, config.resample_rounds)


def run_evaluation(
    run: RunFolder,
    name: str,
    policy: Policy,
    sampler: Sampler,
    env: Any,
    ids: list[str],
    config: TrainConfig,
    step: int,
) -> dict[str, float]:
    """Score the policy on `ids` greedily and log it, with the benchmark's own aggregates (`bfcl/overall`, ...);
    an empty summary when there is nothing to evaluate, and on every process but the first under torchrun (the
    others wait at their next all-reduce)."""
    if not ids or not distributed.is_main():
        return {}
    started = time.perf_counter()
    summary, episodes = evaluate(policy, sampler, env, ids, config.max_new_tokens, config.eval_batch_size)
    kwargs = config.resolved_eval_env_kwargs()
    summary |= benchmark_scores([task_result(e, config.env, kwargs, env, policy) for e in episodes])
    release_free_memory()
    run.log({"kind": "eval", "name": name, "step": step, "summary": summary, "seconds": time.perf_counter() - started})
    shown = ", ".join(f"{k}={v:.3f}" for k, v in summary.items() if "/category/" not in k)
    print(f"eval [{name}] {shown} ({time.perf_counter() - started:.0f} s)")
    return summary


if __name__ == "__main__":
    main()
