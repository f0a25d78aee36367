"""The reward-design study behind benchmarks/reward_ablation.py: the main job once per reward preset and seed,
all from one warmed-up model, each scored with agents/evaluate.py on held-out BFCL and API-Bank, beside the
untrained model and the warm-up alone. Every stage is skipped when its results exist, so a study continues
where it stopped.

<out>/runs/warmup/               grpo_train.py --steps 0: the warm-up alone (its checkpoint starts every run)
<out>/runs/<preset>/seed-<s>/    grpo_train.py from that checkpoint with the preset's reward
<out>/scores/<name>/{bfcl,api_bank}/   evaluate.py's folders (results, summary, table)
<out>/results.json, table.md, ablation.png
"""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import CliSuppress

from agents import evaluate as evaluate_script
from agents import grpo_train
from agents.protocols import MAX_NEW_TOKENS
from agents.runtime.run_folder import RunFolder, latest_checkpoint
from toolrl_env.cli import described, merge
from toolrl_env.rewards import PRESETS, RewardConfig

STUDY_PRESETS = ("default", "coarse", "intermediate", "refined", "schedule_reward", "max1_step30_max3", "with_length")
TOOLRL_STEPS = 117  # 4,000 training tasks / batch 512 x 15 epochs (ToolRL's Table 8)
BFCL = "ToolEnv-BFCL-v0"
API_BANK = "ToolEnv-APIBank-v0"
BFCL_TRAIN = {"category": "simple_python"}  # what every run trains on: the category the study scores


class StudyConfig(BaseModel):
    """What the study runs and where its results go."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(default="embedded", description=described("model", "Every run starts from it."))
    presets: list[str] = Field(default=list(STUDY_PRESETS), min_length=1, description="Reward presets compared.")
    seeds: list[int] = Field(
        default=[0, 1, 2], min_length=1, description=described("seeds", "Here: each preset's GRPO run.")
    )
    steps: int = Field(default=30, ge=1, description=described("steps", "Of each preset's run."))
    warmup_examples: int = Field(
        default=96,
        ge=1,
        description="Demonstrations in the shared warm-up that every preset's run starts from, unless train_config "
        "sets warmup.examples.",
    )
    eval_limit: int = Field(
        default=80, ge=1, description=described("eval_limit", "Of BFCL simple_python's held-out split (80: all).")
    )
    data_path: Path = Field(
        default=Path("../shared/data/toolrl"), description=described("data_path", "Its API-Bank level files.")
    )
    tasks_per_category: int = Field(
        default=20, ge=1, description=described("tasks_per_category", "Here: of API-Bank's levels.")
    )
    max_new_tokens: int = Field(
        default=MAX_NEW_TOKENS, ge=1, description=described("max_new_tokens", "In training and scoring.")
    )
    train_config: CliSuppress[dict[str, Any]] = Field(
        default_factory=dict, description="TrainConfig fields every training run shares (from --config)."
    )
    paper_schedules: bool = Field(default=False, description="Keep ToolRL's schedule step counts unstretched.")
    keep_run_checkpoints: bool = Field(default=False, description="Keep each preset run's final checkpoint.")
    output_dir: Path = Field(default=Path("runs/reward_ablation"), description=described("output_dir"))

    @field_validator("presets")
    @classmethod
    def _known(cls, presets: list[str]) -> list[str]:
        unknown = [p for p in presets if p not in PRESETS]
        if unknown:
            raise ValueError(f"unknown reward presets {unknown}; presets: {', '.join(PRESETS)}")
        return presets

    @field_validator("data_path")
    @classmethod
    def _exists(cls, path: Path) -> Path:
        if not path.exists():
            raise ValueError(f"{path} does not exist; give the folder holding ToolRL's API-Bank level files")
        return path


def stretched(preset: str, steps: int) -> RewardConfig:
    """A preset with its schedule points moved from ToolRL's ~117-step run to a run of `steps`."""
    config = PRESETS[preset]
    scale = steps / TOOLRL_STEPS
    update: dict[str, Any] = {}
    if config.two_stage_step is not None:
        update["two_stage_step"] = max(1, round(config.two_stage_step * scale))
    if config.schedule_steps is not None:
        update["schedule_steps"] = config.schedule_steps * scale
    if config.length_words_schedule is not None:
        start, end, over = config.length_words_schedule
        update["length_words_schedule"] = (start, end, over * scale)
    return config.model_copy(update=update)


class Study:
    """The study's folder and the commands that fill it."""

    def __init__(self, config: StudyConfig):
        self.config = config
        self.out = config.output_dir

    def evaluations(self, name: str) -> list[tuple[Path, list[str], int]]:
        """Where each of a model's scores goes, with evaluate.py's env flags and tasks per category for it."""
        folder = self.out / "scores" / name
        study, bfcl = self.config, {"category": "simple_python", "split": "test"}
        api_bank = {"data_path": str(study.data_path)}
        return [
            (folder / "bfcl", ["--env", BFCL, "--env-kwargs", json.dumps(bfcl)], study.eval_limit),
            (folder / "api_bank", ["--env", API_BANK, "--env-kwargs", json.dumps(api_bank)], study.tasks_per_category),
        ]

    def score(self, name: str, model: str) -> dict[str, dict[str, float]]:
        """Score `model` on BFCL and API-Bank into scores/<name>/ (what is already there is kept)."""
        for results, env_flags, limit in self.evaluations(name):
            if not (results / "summary.json").is_file():
                evaluate_script.main(
                    ["--model", model, *env_flags, "--tasks-per-category", str(limit),
                     "--max-new-tokens", str(self.config.max_new_tokens), "--output-dir", str(results)]
                )  # fmt: skip
        return self.scores(name)

    def scores(self, name: str) -> dict[str, dict[str, float]]:
        """The finished scores of scores/<name>/, by benchmark (evaluate.py's summary.json files)."""
        summaries: dict[str, dict[str, float]] = {}
        for results, _, _ in self.evaluations(name):
            if (results / "summary.json").is_file():
                summaries.update(json.loads((results / "summary.json").read_text()))
        return summaries

    def scored(self, name: str) -> bool:
        return all((results / "summary.json").is_file() for results, _, _ in self.evaluations(name))

    def train(self, run: Path, config: dict[str, Any], extra: list[str]) -> Path:
        """Run grpo_train.py into `run` on simple_python (from scratch unless it already finished); its final
        checkpoint."""
        flags = ["--env-kwargs", json.dumps(BFCL_TRAIN), "--max-new-tokens", str(self.config.max_new_tokens), *extra]
        return train_run(run, merge(self.config.train_config, config), flags)

    def run(self) -> dict[str, Any]:
        study = self.config
        results: dict[str, Any] = {"baselines": {}, "presets": {}}
        results["baselines"]["untrained"] = self.score("untrained", study.model)
        warm = self.train(self.out / "runs" / "warmup", warmup_run_config(study), ["--model", study.model])
        results["baselines"]["warm-up only"] = self.score("warmup", str(warm))
        for preset in study.presets:
            reward = PRESETS[preset] if study.paper_schedules else stretched(preset, study.steps)
            named = {"reward_preset": preset} | ({} if reward == PRESETS[preset] else {"reward": reward.model_dump()})
            for seed in study.seeds:
                name = f"{preset}/seed-{seed}"
                run = self.out / "runs" / preset / f"seed-{seed}"
                if not self.scored(name):
                    run_config = {"steps": study.steps, "seed": seed, **named}
                    checkpoint = self.train(run, run_config, ["--model", str(warm), "--no-warmup.enabled"])
                    self.score(name, str(checkpoint))
                    if not study.keep_run_checkpoints:
                        shutil.rmtree(run / "checkpoints")
                entry = {"scores": self.scores(name), "curve": training_curve(run)}
                results["presets"].setdefault(preset, {})[str(seed)] = entry
        (self.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
        table = results_table(results)
        (self.out / "table.md").write_text(table + "\n")
        plot(results, self.out / "ablation.png")
        print(f"\n{table}\n\nstudy folder: {self.out}")
        return results


def train_run(run: Path, config: dict[str, Any], flags: list[str]) -> Path:
    """`grpo_train.py --env ToolEnv-BFCL-v0` into `run` with `config` (TrainConfig fields, as its --config file
    beside the run) and then `flags`, scoring nothing (--eval-limit 0); from scratch unless the run already reached
    config's steps. Its final checkpoint."""
    final = latest_checkpoint(run)
    if final is not None and final.name == f"step-{config['steps']}":
        return final
    shutil.rmtree(run, ignore_errors=True)  # an unfinished run starts again
    run.mkdir(parents=True)
    config_file = run.parent / f"{run.name}.config.json"
    config_file.write_text(json.dumps(config, indent=2) + "\n")
    grpo_train.main(
        ["--env", BFCL, "--config", str(config_file), "--output-dir", str(run), "--eval-limit", "0", *flags]
    )
    final = latest_checkpoint(run)
    if final is None:
        raise RuntimeError(f"{run} finished without a checkpoint")
    return final


def warmup_run_config(study: StudyConfig) -> dict[str, Any]:
    """The shared warm-up run's own fields: no GRPO steps, seed 0, and `warmup_examples` demonstrations unless the
    shared train_config names its own number."""
    shared = study.train_config.get("warmup")
    examples = shared.get("examples", study.warmup_examples) if isinstance(shared, dict) else study.warmup_examples
    return {"steps": 0, "seed": 0, "warmup": {"examples": examples}}


def training_curve(run: Path) -> list[dict[str, float]]:
    """Per training step: mean reward and exact-match rate of the sampled episodes (metrics.jsonl)."""
    steps = {
        r["step"]: {"step": r["step"], "reward": r["rollout/reward_mean"], "exact_match": r.get("env/exact_match", 0.0)}
        for r in RunFolder(run, write=False).records()
        if r.get("kind") == "train"
    }
    return [steps[s] for s in sorted(steps)]


COLUMNS = (
    ("BFCL simple_python", "BFCL", "category/simple_python"),
    ("API-Bank L1", API_BANK, "level_1"),
    ("API-Bank L2", API_BANK, "level_2"),
    ("API-Bank L3", API_BANK, "level_3"),
    ("API-Bank overall", API_BANK, "overall"),
)


def _cell(values: list[float]) -> str:
    """Percent, with the spread over seeds when there are several."""
    if not values:
        return "—"
    mean = 100 * statistics.fmean(values)
    return f"{mean:.1f} ± {100 * statistics.stdev(values):.1f}" if len(values) > 1 else f"{mean:.1f}"


def results_table(results: dict[str, Any]) -> str:
    """Held-out accuracy (%) per baseline and preset, mean ± sd over seeds, and the training reward's change."""
    header = ["model", "seeds", *(c[0] for c in COLUMNS), "train reward first→last 5 steps"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for name, scores in results["baselines"].items():
        cells = [_cell([scores[b][k]] if k in scores.get(b, {}) else []) for _, b, k in COLUMNS]
        lines.append(f"| {name} | — | " + " | ".join(cells) + " | — |")
    for preset, seeds in results["presets"].items():
        runs = list(seeds.values())
        cells = [_cell([r["scores"][b][k] for r in runs if k in r["scores"].get(b, {})]) for _, b, k in COLUMNS]
        firsts = [statistics.fmean(p["reward"] for p in r["curve"][:5]) for r in runs if r["curve"]]
        lasts = [statistics.fmean(p["reward"] for p in r["curve"][-5:]) for r in runs if r["curve"]]
        change = f"{statistics.fmean(firsts):.2f} → {statistics.fmean(lasts):.2f}" if firsts else "—"
        lines.append(f"| GRPO, {preset} | {len(runs)} | " + " | ".join(cells) + f" | {change} |")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    """Training exact match and reward per step (mean over seeds) and held-out accuracy, per preset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (em_axis, reward_axis, bar_axis) = plt.subplots(1, 3, figsize=(16, 4.5))
    for preset, seeds in results["presets"].items():
        curves = [r["curve"] for r in seeds.values() if r["curve"]]
        if not curves:
            continue
        length = min(len(c) for c in curves)
        steps = [curves[0][i]["step"] for i in range(length)]
        for axis, key in ((em_axis, "exact_match"), (reward_axis, "reward")):
            axis.plot(steps, [statistics.fmean(c[i][key] for c in curves) for i in range(length)], label=preset)
    em_axis.set(xlabel="GRPO step", ylabel="exact match of sampled episodes", title="Training: exact match")
    reward_axis.set(xlabel="GRPO step", ylabel="mean episode reward (own scale)", title="Training: reward")
    em_axis.legend(fontsize=8)
    names = list(results["baselines"]) + [f"GRPO {p}" for p in results["presets"]]
    entries = list(results["baselines"].values()) + [
        [r["scores"] for r in seeds.values()] for seeds in results["presets"].values()
    ]
    width = 0.4
    for offset, (label, benchmark, key) in ((-width / 2, COLUMNS[0]), (width / 2, COLUMNS[4])):
        heights = []
        for entry in entries:
            runs = entry if isinstance(entry, list) else [entry]
            values = [r[benchmark][key] for r in runs if key in r.get(benchmark, {})]
            heights.append(100 * statistics.fmean(values) if values else 0.0)
        bar_axis.bar([i + offset for i in range(len(names))], heights, width, label=label)
    bar_axis.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)
    bar_axis.set(ylabel="held-out accuracy (%)", title="Held-out accuracy (greedy)")
    bar_axis.legend(fontsize=8)
    for axis in (em_axis, reward_axis, bar_axis):
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def run_study(config: StudyConfig) -> dict[str, Any]:
    """Run (or continue) the study; its results by baseline and by preset and seed."""
    return Study(config).run()
