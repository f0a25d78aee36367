"""Score a model on one or more ToolEnv benchmarks and print paper-shaped tables.

    python agents/evaluate.py --env ToolEnv-BFCL-v0 --limit 10
    python agents/evaluate.py --model runs/my-run --env ToolEnv-BFCL-v0:split=test,category=simple_python \\
        --env ToolEnv-APIBank-v0:data_path=../shared/data/toolrl

`--env` takes an id, optionally followed by `:` and its kwargs, either as `key=value,...` (each value read as
JSON when it parses, else as text: `category=["simple_python","multiple"]`, `level=1`) or as one JSON object.
`--model` is 'embedded' (default), a hub id, a model folder, or a training run folder (its latest checkpoint).
`--limit N` takes the first N tasks (sorted ids) of each category or level, so every category is represented.

Each task gets one episode, greedy unless --temperature says otherwise. The output folder holds config.json,
results.jsonl (one line per finished task, written as batches finish), results.json, summary.json and
table.md. Running again with the same folder and settings skips the finished tasks: an interrupted run
continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

import toolrl_env  # noqa: F401  (registers the env ids)
from agents.evaluation import evaluate, make_tool_env, task_group, task_result
from agents.memory import configure_allocator, release_free_memory
from agents.policy import EMBEDDED, Policy, PolicyConfig
from agents.protocols import Episode
from agents.run_folder import latest_checkpoint
from agents.sampling import HFSampler
from agents.score_tables import TaskResult, canonical_kwargs, summary, tables
from toolrl_env.env import ToolEnv

RESULTS = "results.jsonl"


def parse_env(spec: str) -> tuple[str, dict[str, Any]]:
    """'ID', 'ID:key=value,...' or 'ID:{json}' -> (id, kwargs)."""
    env_id, _, rest = spec.partition(":")
    rest = rest.strip()
    if not rest:
        return env_id, {}
    if rest.startswith("{"):
        try:
            kwargs = json.loads(rest)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--env {spec!r}: the kwargs after ':' are not valid JSON ({exc})") from None
        if not isinstance(kwargs, dict):
            raise ValueError(f"--env {spec!r}: the kwargs after ':' must be a JSON object")
        return env_id, kwargs
    kwargs = {}
    # split on commas that start a new key=value (commas inside JSON lists stay)
    for item in re.split(r",(?=\s*[A-Za-z_]\w*\s*=)", rest):
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"--env {spec!r}: expected key=value pairs after ':', got {item!r}")
        try:
            kwargs[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key.strip()] = value.strip()
    return env_id, kwargs


def resolve_model(model: str) -> str:
    """A training run folder becomes its latest checkpoint; anything else is passed on as is."""
    path = Path(model)
    if (path / "checkpoints").is_dir():
        checkpoint = latest_checkpoint(path)
        if checkpoint is None:
            raise ValueError(f"{model} is a run folder with no finished checkpoint yet")
        return str(checkpoint)
    return model


def select_tasks(env: ToolEnv, limit: int | None) -> list[str]:
    """All task ids (sorted), or the first `limit` of each category or level."""
    ids = sorted(t.id for t in env.tasks)
    if limit is None:
        return ids
    taken: dict[str | None, int] = defaultdict(int)
    chosen = []
    for task_id in ids:
        group = task_group(env, task_id)
        if taken[group] < limit:
            taken[group] += 1
            chosen.append(task_id)
    return chosen


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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=EMBEDDED, help="'embedded', a hub id, a model folder or a run folder")
    parser.add_argument(
        "--env", action="append", help="ID or ID:kwargs; repeat for several (default ToolEnv-BFCL-v0, every category)"
    )
    parser.add_argument("--limit", type=int, help="first N tasks of each category or level (default: all)")
    parser.add_argument("--batch-size", type=int, default=8, help="tasks generated together (default 8)")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="most tokens per model turn (default 256)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 (default) decodes greedily")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed when temperature > 0")
    parser.add_argument("--output-dir", type=Path, help="results folder (default evals/<model>-<time>)")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    if args.batch_size < 1 or args.max_new_tokens < 1:
        parser.error("--batch-size and --max-new-tokens must be at least 1")
    try:
        args.env = [parse_env(spec) for spec in args.env or ["ToolEnv-BFCL-v0"]]
        args.model = resolve_model(args.model)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def main(argv: Sequence[str] | None = None) -> list[TaskResult]:
    configure_allocator()
    args = parse_args(argv)
    envs, model = args.env, args.model
    settings = {
        "model": model,
        "envs": [{"id": env_id, "kwargs": kwargs} for env_id, kwargs in envs],
        "limit": args.limit,
        "max_new_tokens": args.max_new_tokens,
        "temperature": args.temperature,
        "seed": args.seed,
    }
    name = re.sub(r"[^\w.-]+", "_", Path(model).name or model)
    out = args.output_dir or Path("evals") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
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
    plans = [(env_id, kwargs, env, select_tasks(env, args.limit)) for env_id, kwargs, env in made]
    keys = [(env_id, canonical_kwargs(kwargs), t) for env_id, kwargs, _, ids in plans for t in ids]
    pending = sum(key not in done for key in keys)
    print(f"{len(keys)} tasks over {len(plans)} env(s); {len(keys) - pending} already done in {out}")

    policy = Policy.load(PolicyConfig(model=model))
    sampler = HFSampler(policy)
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
                    args.max_new_tokens,
                    args.batch_size,
                    args.temperature,
                    args.seed,
                    on_batch=save,
                )
                release_free_memory()
    bar.close()

    results = [done[key] for key in keys]
    (out / "results.json").write_text(json.dumps([r.model_dump() for r in results], indent=1) + "\n")
    (out / "summary.json").write_text(json.dumps(summary(results), indent=2) + "\n")
    table = tables({name: results})
    (out / "table.md").write_text(table + "\n")
    print(f"\n{table}\n\nresults: {out}")
    return results


if __name__ == "__main__":
    main()
