"""Choose the main job's warm-up on a validation slice of BFCL's training split (never the held-out test split):
warm the model up with one setting, score it greedily on the slice, and tabulate every setting tried so far.

    python benchmarks/warmup_validation.py --name default
    python benchmarks/warmup_validation.py --name no-call-40 --warmup.no-call-share 0.4

The slice is the first `--val-per-category` tasks of each training category of the main job (a seeded shuffle of
BFCL's training split), plus as many of `--unseen-category`'s training split, a category the main job never
trains on; demonstrations are drawn from the rest of the training tasks, as the main job draws them. Each setting's
scores land in <out>/<name>/seed-<s>.json (skipped when there), and <out>/table.md has them all.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from agents.evaluation.episodes import evaluate, make_tool_env, task_group, task_result
from agents.evaluation.tables import benchmark_scores
from agents.learners.warmup import WarmupConfig, demonstration_ids, demonstrations, warm_up
from agents.policy import Policy, PolicyConfig
from agents.protocols import MAX_NEW_TOKENS
from agents.sampling import make_sampler
from agents.train_config import BFCL_TRAIN_CATEGORIES
from toolrl_env.cli import ConfigParser, described
from toolrl_env.env import ToolEnv

BFCL = "ToolEnv-BFCL-v0"
COLUMNS = ("category_mean", "irrelevance", "non_live", "live", "overall")


class ValidationConfig(BaseModel):
    """One warm-up setting, scored on the validation slice."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The setting's name: its folder under output_dir and its row in the table.")
    warmup: WarmupConfig = Field(default_factory=WarmupConfig, description="The warm-up setting tried.")
    policy: PolicyConfig = Field(default_factory=PolicyConfig, description="The model and where it runs.")
    seeds: list[int] = Field(default=[0], min_length=1, description=described("seeds", "Here: the demonstrations."))
    val_per_category: int = Field(default=16, ge=1, description="Validation tasks per category.")
    unseen_category: str = Field(
        default="live_simple", description="A BFCL category the main job does not train on, validated too."
    )
    max_new_tokens: int = Field(default=MAX_NEW_TOKENS, gt=0, description=described("max_new_tokens"))
    output_dir: Path = Field(default=Path("runs/warmup-validation"), description=described("output_dir"))


def validation_split(env: ToolEnv, per_category: int) -> tuple[list[str], list[str]]:
    """(validation ids, the rest): the first `per_category` of each category in a fixed shuffle of the env's tasks."""
    ids = sorted(t.id for t in env.tasks)
    random.Random(0).shuffle(ids)
    chosen: dict[str | None, list[str]] = {}
    for task_id in ids:
        group = chosen.setdefault(task_group(env, task_id), [])
        if len(group) < per_category:
            group.append(task_id)
    held = {i for group in chosen.values() for i in group}
    return sorted(held), [i for i in sorted(ids) if i not in held]


def run(config: ValidationConfig, seed: int) -> dict[str, float]:
    """Warm up with `config.warmup` on `seed`'s demonstrations and score the validation slice."""
    path = config.output_dir / config.name / f"seed-{seed}.json"
    if path.is_file():
        return dict(json.loads(path.read_text())["scores"])
    train_env = make_tool_env(BFCL, category=BFCL_TRAIN_CATEGORIES, split="train", reward="default")
    val_ids, pool = validation_split(train_env, config.val_per_category)
    unseen_env = make_tool_env(BFCL, category=config.unseen_category, split="train", reward="default")
    unseen_ids, _ = validation_split(unseen_env, config.val_per_category)
    policy = Policy.load(config.policy)
    started = time.perf_counter()
    losses: list[float] = []
    if config.warmup.enabled:
        demos = demonstrations(train_env, demonstration_ids(train_env, pool, config.warmup, seed), policy)
        losses = warm_up(policy, demos, config.warmup, seed)
    warmup_seconds = time.perf_counter() - started
    sampler = make_sampler("hf", policy, seed=seed)
    results = []
    for env, ids in ((train_env, val_ids), (unseen_env, unseen_ids)):
        _, episodes = evaluate(policy, sampler, env, ids, config.max_new_tokens, 16)
        kwargs = {"category": BFCL_TRAIN_CATEGORIES if env is train_env else config.unseen_category}
        results += [task_result(e, BFCL, kwargs, env, policy) for e in episodes]
    scores = {k.removeprefix("bfcl/"): v for k, v in benchmark_scores(results).items() if k.startswith("bfcl/")}
    record = {
        "warmup": config.warmup.model_dump(),
        "seed": seed,
        "scores": scores,
        "warmup_seconds": warmup_seconds,
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return scores


def results_table(out: Path) -> str:
    """Every setting under `out`: validation accuracy (%), mean over its seeds, and its warm-up seconds."""
    lines = [
        "| setting | seeds | " + " | ".join(COLUMNS) + " | categories | warm-up s |",
        "| --- | ---: |" + " ---: |" * (len(COLUMNS) + 2),
    ]
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        records = [json.loads(f.read_text()) for f in sorted(folder.glob("seed-*.json"))]
        if not records:
            continue
        cells = [f"{100 * statistics.fmean(r['scores'].get(k, 0.0) for r in records):.1f}" for k in COLUMNS]
        categories = ", ".join(
            f"{k.removeprefix('category/')} {100 * statistics.fmean(r['scores'][k] for r in records):.0f}"
            for k in sorted(records[0]["scores"])
            if k.startswith("category/")
        )
        seconds = statistics.fmean(r["warmup_seconds"] for r in records)
        lines.append(f"| {folder.name} | {len(records)} | " + " | ".join(cells) + f" | {categories} | {seconds:.0f} |")
    return "\n".join(lines)


def build_parser() -> ConfigParser:
    """Every ValidationConfig field as a flag."""
    return ConfigParser(ValidationConfig, __doc__)


def main(argv: Sequence[str] | None = None) -> str:
    parser = build_parser()
    _, fields = parser.parse_config(argv)
    config: ValidationConfig = parser.validated(fields)
    for seed in config.seeds:
        run(config, seed)
    table = results_table(config.output_dir)
    (config.output_dir / "table.md").write_text(table + "\n")
    print(table)
    return table


if __name__ == "__main__":
    main()
