"""Score a model on one or more ToolEnv benchmarks and print paper-shaped tables.

    python agents/evaluate.py --env ToolEnv-BFCL-v0 --tasks-per-category 10
    python agents/evaluate.py --model runs/my-run \\
        --env ToolEnv-BFCL-v0 --env-kwargs '{"split": "test", "category": "simple_python"}' \\
        --env ToolEnv-APIBank-v0 --env-kwargs '{"data_path": "../shared/data/toolrl"}'

`--env ID` repeats, each optionally followed by the `--env-kwargs JSON` of that env. `--model` is 'embedded'
(default), a hub id, a model folder, or a training run folder (its newest checkpoint). `--tasks-per-category N`
takes the first N tasks (sorted ids) of each category or level, so every category is represented.

Each task gets one episode, greedy unless --temperature says otherwise. The output folder holds config.json,
results.jsonl (one line per finished task, written as batches finish), results.json, summary.json and
table.md. Running again with the same folder and settings skips the finished tasks: an interrupted run
continues where it stopped.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

import toolrl_env  # noqa: F401  (registers the env ids)
from agents.evaluation.episodes import EvalConfig, evaluate, make_tool_env, select_tasks, task_result
from agents.evaluation.tables import TaskResult, canonical_kwargs, summary, tables
from agents.policy import Policy
from agents.protocols import Episode
from agents.runtime.memory import configure_allocator, release_free_memory
from agents.runtime.run_folder import resolve_model
from agents.sampling import make_sampler
from toolrl_env.cli import ConfigParser, add_env_arguments, env_list, require_registered
from toolrl_env.env import ToolEnv

RESULTS = "results.jsonl"


def read_results(folder: Path) -> list[TaskResult]:
    """The finished tasks in a results folder (a torn last line from a killed run is ignored)."""
    path = folder / RESULTS
    if not path.is_file():
        return []
    results = []
    for line in path.read_text().splitlines():
        try:
            results.append(TaskResult.model_validate_json(line))
        except ValueError:
            continue
    return results


def build_parser() -> ConfigParser:
    """Every EvalConfig field as a flag, and the repeatable --env / --env-kwargs pairs."""
    parser = ConfigParser(EvalConfig, __doc__, {"policy.model": "model"})
    add_env_arguments(parser, default="ToolEnv-BFCL-v0", detail="Without --env-kwargs: every category of the env.")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> EvalConfig:
    parser = build_parser()
    args, fields = parser.parse_config(argv)
    fields["envs"] = [{"id": env_id, "kwargs": kwargs} for env_id, kwargs in env_list(args)]
    config: EvalConfig = parser.validated(fields)
    require_registered(parser, [spec.id for spec in config.envs])
    try:  # a run folder means its newest checkpoint, fixed here so that a resumed evaluation scores the same one
        model = resolve_model(config.policy.model)
    except ValueError as exc:
        parser.error(str(exc))
    return config.model_copy(update={"policy": config.policy.model_copy(update={"model": model})})


def main(argv: Sequence[str] | None = None) -> list[TaskResult]:
    configure_allocator()
    config = parse_args(argv)
    envs, model = [(spec.id, spec.kwargs) for spec in config.envs], config.policy.model
    # What decides the results: a folder holding results of other settings is not continued.
    settings = config.model_dump(mode="json", exclude={"output_dir", "eval_batch_size"})
    name = re.sub(r"[^\w.-]+", "_", Path(model).name or model)
    out = config.output_dir or Path("evals") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "config.json"
    if config_path.is_file() and json.loads(config_path.read_text()) != json.loads(json.dumps(settings)):
        raise SystemExit(
            f"{out} holds an evaluation with other settings ({config_path}); give another --output-dir "
            "or the same settings to continue it"
        )
    config_path.write_text(json.dumps(settings, indent=2) + "\n")
    done = {r.key: r for r in read_results(out)}
    # Rewrite the finished lines (dropping a torn last line a killed run left) before appending more.
    staging = out / f".{RESULTS}.tmp"
    staging.write_text("".join(r.model_dump_json() + "\n" for r in done.values()))
    os.replace(staging, out / RESULTS)

    made = [(env_id, kwargs, make_tool_env(env_id, **kwargs)) for env_id, kwargs in envs]
    plans = [(env_id, kwargs, env, select_tasks(env, config.tasks_per_category)) for env_id, kwargs, env in made]
    keys = [(env_id, canonical_kwargs(kwargs), t) for env_id, kwargs, _, ids in plans for t in ids]
    pending = sum(key not in done for key in keys)
    print(f"{len(keys)} tasks over {len(plans)} env(s); {len(keys) - pending} already done in {out}")

    policy = Policy.load(config.policy)
    sampler = make_sampler(config.sampler, policy, config.vllm, config.seed)
    bar = tqdm(total=len(keys), initial=len(keys) - pending, desc="evaluating", unit="task")
    with (out / RESULTS).open("a") as log:
        for env_id, kwargs, env, ids in plans:
            todo = [t for t in ids if (env_id, canonical_kwargs(kwargs), t) not in done]

            def save(
                episodes: list[Episode], env_id: str = env_id, kwargs: dict[str, Any] = kwargs, env: ToolEnv = env
            ) -> None:
                for episode in episodes:
                    result = task_result(episode, env_id, kwargs, env, policy)
                    log.write(result.model_dump_json() + "\n")
                    done[result.key] = result
                log.flush()
                os.fsync(log.fileno())
                bar.update(len(episodes))

            if todo:
                evaluate(
                    policy,
                    sampler,
                    env,
                    todo,
                    config.max_new_tokens,
                    config.eval_batch_size,
                    config.temperature,
                    config.seed,
                    on_batch=save,
                )
                release_free_memory()
    bar.close()
    sampler.close()

    results = [done[key] for key in keys]
    (out / "results.json").write_text(json.dumps([r.model_dump() for r in results], indent=1) + "\n")
    (out / "summary.json").write_text(json.dumps(summary(results), indent=2) + "\n")
    table = tables({name: results})
    (out / "table.md").write_text(table + "\n")
    print(f"\n{table}\n\nresults: {out}")
    return results


if __name__ == "__main__":
    main()
