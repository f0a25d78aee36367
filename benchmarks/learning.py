"""What the warm-up contributes and what GRPO adds, over seeds: the main job's stages as separate arms, each scored
on the main job's held-out BFCL evaluation (bfcl-eval's aggregates, the category mean, irrelevance).

    python benchmarks/learning.py                                   # 3 seeds, the main job's sizes
    python benchmarks/learning.py --seeds 0,1,2,3,4 --steps 32 --tasks-per-category 20   # larger

Arms, per seed (the untrained model is scored once: greedy decoding makes it the same for every seed):

- `untrained`: the model as loaded;
- `warm-up`: the main job's warm-up alone (`grpo_train.py --steps 0`), the start of the three GRPO arms;
- `warm-up, equal compute`: the warm-up alone, on as many more demonstrations as fit in the time the default
  GRPO arm of the same seed spent on its steps (measured: its steps' seconds over the warm-up's seconds per
  demonstration), so that it costs what warm-up + GRPO costs;
- `GRPO default`, `GRPO coarse`: `--steps` GRPO steps from the seed's warm-up with ToolRL's default reward and
  with the coarse (exact match or nothing) reward;
- `GDPO`: the default reward with each component group-normalised on its own
  (`--grpo.multi-objective-aggregation normalize_then_sum`).

Training uses the main job's defaults (`agents/train_config.py`: BFCL's training split of simple_python, multiple,
parallel, parallel_multiple and irrelevance) with the shared `--config` on top; scoring is `agents/evaluate.py`
(greedy) on the first `--tasks-per-category` held-out tasks of each category of the main job's evaluation env
(by default those five and live_simple, which no arm trains on). Every run and score is skipped when its results
exist, so an interrupted benchmark continues where it stopped; each finished arm's checkpoint is deleted once
scored (the warm-ups' are kept, as the GRPO arms start from them).

<out>/runs/<arm>/seed-<s>/        grpo_train.py's run folders
<out>/scores/<arm>/seed-<s>/      evaluate.py's folders (results, summary, table)
<out>/results.json, table.md, learning.png
"""

from __future__ import annotations

import json
import shutil
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import CliSuppress
from reward_study import train_run

from agents import evaluate as evaluate_script
from agents.runtime.run_folder import RunFolder
from agents.train_config import TrainConfig
from toolrl_env.cli import ConfigParser, described, merge, parse_study, study_parser

BFCL = "ToolEnv-BFCL-v0"
GRPO_ARMS: dict[str, list[str]] = {
    "grpo_default": [],
    "gdpo": ["--grpo.multi-objective-aggregation", "normalize_then_sum"],
    "grpo_coarse": ["--reward-preset", "coarse"],
}
LABELS = {
    "untrained": "untrained",
    "warmup": "warm-up",
    "warmup_equal_compute": "warm-up, equal compute",
    "grpo_default": "GRPO default",
    "gdpo": "GDPO",
    "grpo_coarse": "GRPO coarse",
}
COLUMNS = (
    ("overall", "Overall"),
    ("non_live", "Non-live"),
    ("live", "Live"),
    ("irrelevance", "Irrelevance"),
    ("category_mean", "Category mean"),
)


class LearningConfig(BaseModel):
    """What the benchmark runs and where its results go."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(default="embedded", description=described("model", "Every arm starts from it."))
    seeds: list[int] = Field(
        default=[0, 1, 2], min_length=1, description=described("seeds", "Here: every arm but the untrained model.")
    )
    steps: int = Field(
        default=TrainConfig.model_fields["steps"].default,
        ge=1,
        description=described("steps", "Of each GRPO arm (default: the main job's)."),
    )
    tasks_per_category: int = Field(
        default=8, ge=1, description=described("tasks_per_category", "Here: held-out tasks scored per category.")
    )
    train_config: CliSuppress[dict[str, Any]] = Field(
        default_factory=dict, description="TrainConfig fields every training run shares (from --config)."
    )
    output_dir: Path = Field(default=Path("runs/learning"), description=described("output_dir"))


class Benchmark:
    """The benchmark's folder and the commands that fill it."""

    def __init__(self, config: LearningConfig):
        self.config = config
        self.out = config.output_dir
        # The shared fields as the main job reads them (a bad --config fails here, before hours of work): scoring
        # uses its held-out evaluation env and turn length.
        trained = TrainConfig.model_validate(config.train_config)
        self.eval_env_kwargs = {k: v for k, v in trained.resolved_eval_env_kwargs().items() if k != "reward"}
        self.max_new_tokens = trained.max_new_tokens

    def score(self, name: str, model: str) -> dict[str, float]:
        """BFCL scores of `model` into scores/<name>/ (evaluate.py's summary; kept when already there)."""
        folder = self.out / "scores" / name
        if not self.scored(name):
            kwargs = {**self.eval_env_kwargs, "split": "test"}
            evaluate_script.main(
                ["--model", model, "--env", BFCL, "--env-kwargs", json.dumps(kwargs),
                 "--tasks-per-category", str(self.config.tasks_per_category),
                 "--max-new-tokens", str(self.max_new_tokens), "--output-dir", str(folder)]
            )  # fmt: skip
        return self.scores(name)

    def scores(self, name: str) -> dict[str, float]:
        """The finished BFCL scores in scores/<name>/."""
        scores: dict[str, float] = json.loads((self.out / "scores" / name / "summary.json").read_text())["BFCL"]
        return scores

    def scored(self, name: str) -> bool:
        return (self.out / "scores" / name / "summary.json").is_file()

    def arm(self, arm: str, seed: int, fields: dict[str, Any], flags: list[str]) -> dict[str, float]:
        """Train one arm's run for `seed` unless it is already scored, score it, drop its checkpoints."""
        name, run = f"{arm}/seed-{seed}", self.out / "runs" / arm / f"seed-{seed}"
        if not self.scored(name):
            checkpoint = train_run(run, merge(self.config.train_config, {"seed": seed, **fields}), flags)
            self.score(name, str(checkpoint))
            shutil.rmtree(run / "checkpoints")
        return self.scores(name)

    def run(self) -> dict[str, Any]:
        config = self.config
        results: dict[str, Any] = {"untrained": {"all": self.score("untrained", config.model)}}
        for seed in config.seeds:
            warm_run = self.out / "runs" / "warmup" / f"seed-{seed}"
            warm = train_run(
                warm_run, merge(config.train_config, {"seed": seed, "steps": 0}), ["--model", config.model]
            )
            results.setdefault("warmup", {})[str(seed)] = self.score(f"warmup/seed-{seed}", str(warm))
            grpo = {"steps": config.steps, "warmup": {"enabled": False}}
            for arm, flags in GRPO_ARMS.items():
                scores = self.arm(arm, seed, grpo, ["--model", str(warm), *flags])
                results.setdefault(arm, {})[str(seed)] = scores
            examples = equal_compute_examples(warm_run, self.out / "runs" / "grpo_default" / f"seed-{seed}")
            scores = self.arm("warmup_equal_compute", seed, {"steps": 0, "warmup": {"examples": examples}},
                              ["--model", config.model])  # fmt: skip
            results.setdefault("warmup_equal_compute", {})[str(seed)] = scores
        results = {arm: results[arm] for arm in LABELS if arm in results}
        (self.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
        table = results_table(results)
        (self.out / "table.md").write_text(table + "\n")
        plot(results, self.out / "learning.png")
        print(f"\n{table}\n\nbenchmark folder: {self.out}")
        return results


def equal_compute_examples(warmup_run: Path, grpo_run: Path) -> int:
    """Demonstrations that cost what the warm-up's did plus what the GRPO run's steps did, at the warm-up's
    measured seconds per demonstration (both runs' metrics.jsonl, kept after their checkpoints go)."""
    warm = next(r for r in RunFolder(warmup_run, write=False).records() if r.get("kind") == "warmup")
    grpo_seconds = sum(r["perf/step_s"] for r in RunFolder(grpo_run, write=False).records() if r.get("kind") == "train")
    per_example = warm["warmup/seconds"] / warm["warmup/examples"]
    return int(warm["warmup/examples"] + round(grpo_seconds / per_example))


def _cell(values: Sequence[float]) -> str:
    """Percent, mean ± sample standard deviation when there are several."""
    mean = 100 * statistics.fmean(values)
    return f"{mean:.1f} ± {100 * statistics.stdev(values):.1f}" if len(values) > 1 else f"{mean:.1f}"


def results_table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """Held-out BFCL accuracy (%) per arm, mean ± std over seeds, then the category mean and irrelevance per seed."""
    header = ["arm", "seeds", *(title for _, title in COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" + " ---: |" * (len(header) - 1)]
    for arm, seeds in results.items():
        runs = list(seeds.values())
        cells = [_cell([r[key] for r in runs]) if all(key in r for r in runs) else "—" for key, _ in COLUMNS]
        count = "—" if arm == "untrained" else str(len(runs))
        lines.append(f"| {LABELS[arm]} | {count} | " + " | ".join(cells) + " |")
    lines += ["", "| arm | seed | Category mean | Irrelevance | Overall |", "| --- | --- | ---: | ---: | ---: |"]
    for arm, seeds in results.items():
        for seed, r in seeds.items():
            cells = [f"{100 * r[key]:.1f}" for key in ("category_mean", "irrelevance", "overall")]
            lines.append(f"| {LABELS[arm]} | {seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: dict[str, dict[str, dict[str, float]]], path: Path) -> None:
    """Per arm, the category mean, irrelevance and overall: a bar at the mean over seeds, a dot per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(15, 4.5), sharey=True)
    arms = list(results)
    for axis, key, title in zip(axes, ("category_mean", "irrelevance", "overall"), ("Category mean", "Irrelevance",
                                                                                  "Overall"), strict=True):  # fmt: skip
        for x, arm in enumerate(arms):
            values = [100 * r[key] for r in results[arm].values()]
            axis.bar(x, statistics.fmean(values), color="tab:blue", alpha=0.4)
            axis.scatter([x] * len(values), values, color="black", s=14, zorder=3)
        axis.set_xticks(range(len(arms)), [LABELS[a] for a in arms], rotation=35, ha="right", fontsize=8)
        axis.set(title=f"Held-out BFCL: {title}", ylim=(0, 100))
        axis.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel("accuracy (%): bar = mean, dots = seeds")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def build_parser() -> ConfigParser:
    """Every LearningConfig field as a flag, plus --config."""
    return study_parser(LearningConfig, __doc__)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    config: LearningConfig = parse_study(build_parser(), argv)
    return Benchmark(config).run()


if __name__ == "__main__":
    main()
