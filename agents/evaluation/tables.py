"""Per-task evaluation results and the paper-shaped tables built from them.

`TaskResult` is one task's greedy episode as `agents/evaluate.py` writes it. The tables take one or more named
result sets (a row per model: "untrained", "warm-up", "GRPO", ...) and aggregate them the way each benchmark
does:

- **BFCL** (`ToolEnv-BFCL-v0`, `ToolEnv-BFCLMultiTurn-v0`): accuracy per category (`ast_match`, or the
  multi-turn checker's `success`), then the leaderboard's groups with bfcl-eval's own formulas
  (`bfcl_eval/eval_checker/eval_runner_helper.py`): non-live = unweighted mean of simple (itself the unweighted
  mean of simple_python, simple_java, simple_javascript), multiple, parallel, parallel_multiple; live = mean
  weighted by task count over live_simple, live_multiple, live_parallel, live_parallel_multiple; multi-turn =
  unweighted mean of its four categories; relevance = live_relevance; irrelevance = unweighted mean of
  irrelevance and live_irrelevance; overall = bfcl-eval's 10/10/10/30 weights on non-live, live, irrelevance
  and multi-turn (its agentic group, weight 40, is not supported here and is left out; the weights are
  renormalised). Where categories were not evaluated, each mean runs over those that were (bfcl-eval counts
  a missing category as 0); the table says how many of the 17 categories it covers. Beside them, the category
  mean: the unweighted mean over the evaluated categories, each counting once whatever its size.
- **API-Bank** (`ToolEnv-APIBank-v0`): `api_match` accuracy per level 1/2/3 and over all tasks, as ToolRL reports.
- **Bamboogle** (`ToolEnv-Bamboogle-v0`): exact match, token F1, tool calls per episode.
- Any other env: the mean reward and the mean of each numeric episode metric.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from toolrl_env.envs.bfcl.package import MULTI_TURN_CATEGORIES, SINGLE_TURN_CATEGORIES

Results = Mapping[str, Sequence["TaskResult"]]  # row name (a model or stage) -> its task results


__all__ = [
    "Results",
    "TaskResult",
    "api_bank_scores",
    "api_bank_table",
    "bamboogle_scores",
    "bamboogle_table",
    "benchmark_scores",
    "bfcl_score_tables",
    "bfcl_scores",
    "bfcl_tables",
    "canonical_kwargs",
    "generic_scores",
    "generic_table",
    "summary",
    "tables",
]


class TaskResult(BaseModel):
    """One task's episode under evaluation."""

    model_config = ConfigDict(extra="forbid")

    env: str = Field(description="The env id.")
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description="The kwargs the env was made with.")
    task_id: str
    group: str | None = Field(default=None, description="The task's category (BFCL) or level (API-Bank).")
    reward: float = Field(description="The episode's return under the env's reward.")
    tool_calls: int = Field(description="Tool calls the model made.")
    truncated: bool = Field(default=False, description="The episode was cut off (turn or token limit).")
    metrics: dict[str, Any] = Field(description="The env's episode metrics.")
    completions: list[str] = Field(description="The model's turns, decoded.")

    @property
    def key(self) -> tuple[str, str, str]:
        """What identifies a task across runs: env, its kwargs, task id."""
        return self.env, canonical_kwargs(self.env_kwargs), self.task_id


def canonical_kwargs(kwargs: Mapping[str, Any]) -> str:
    """A stable text form of env kwargs (sorted keys)."""
    return ", ".join(f"{k}={kwargs[k]!r}" for k in sorted(kwargs))


BFCL_NON_LIVE_SIMPLE = ("simple_python", "simple_java", "simple_javascript")
BFCL_NON_LIVE = ("multiple", "parallel", "parallel_multiple")
BFCL_LIVE = ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple")
BFCL_IRRELEVANCE = ("irrelevance", "live_irrelevance")
BFCL_CATEGORIES = SINGLE_TURN_CATEGORIES + MULTI_TURN_CATEGORIES
BFCL_WEIGHTS = {"non_live": 10, "live": 10, "irrelevance": 10, "multi_turn": 30}  # bfcl-eval's; agentic (40) left out


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _unweighted(groups: Sequence[float | None]) -> float | None:
    return _mean([g for g in groups if g is not None])


def bfcl_scores(results: Sequence[TaskResult]) -> tuple[dict[str, float], dict[str, int]]:
    """Accuracy of the leaderboard's groups (`overall`, `non_live`, ...) and of each evaluated category
    (`category/<name>`), and the task count of each category."""
    hits: dict[str, list[float]] = defaultdict(list)
    for result in results:
        metric = "success" if result.group in MULTI_TURN_CATEGORIES else "ast_match"
        if result.group is not None:
            hits[result.group].append(float(bool(result.metrics.get(metric, False))))
    accuracy = {category: sum(h) / len(h) for category, h in hits.items()}
    counts = {category: len(h) for category, h in hits.items()}
    scores: dict[str, float | None] = {f"category/{c}": a for c, a in accuracy.items()}
    simple = _unweighted([accuracy.get(c) for c in BFCL_NON_LIVE_SIMPLE])
    scores["non_live"] = _unweighted([simple, *(accuracy.get(c) for c in BFCL_NON_LIVE)])
    live = [c for c in BFCL_LIVE if c in accuracy]
    scores["live"] = sum(accuracy[c] * counts[c] for c in live) / sum(counts[c] for c in live) if live else None
    scores["multi_turn"] = _unweighted([accuracy.get(c) for c in MULTI_TURN_CATEGORIES])
    scores["relevance"] = accuracy.get("live_relevance")
    scores["irrelevance"] = _unweighted([accuracy.get(c) for c in BFCL_IRRELEVANCE])
    weights = {group: w for group, w in BFCL_WEIGHTS.items() if scores[group] is not None}
    if weights:
        scores["overall"] = sum((scores[g] or 0.0) * w for g, w in weights.items()) / sum(weights.values())
    scores["category_mean"] = _mean(list(accuracy.values()))
    return {k: v for k, v in scores.items() if v is not None}, counts


def api_bank_scores(results: Sequence[TaskResult]) -> dict[str, float]:
    """`api_match` accuracy per level and over all tasks."""
    by_level: dict[str, list[float]] = defaultdict(list)
    for result in results:
        by_level[f"level_{result.group}"].append(float(bool(result.metrics.get("api_match", False))))
    scores = {level: sum(h) / len(h) for level, h in sorted(by_level.items())}
    every = [h for level in by_level.values() for h in level]
    if every:
        scores["overall"] = sum(every) / len(every)
    return scores


def bamboogle_scores(results: Sequence[TaskResult]) -> dict[str, float]:
    """Mean exact match, token F1 and tool calls per episode."""
    n = max(len(results), 1)
    return {
        "em": sum(float(r.metrics.get("em", 0.0)) for r in results) / n,
        "f1": sum(float(r.metrics.get("f1", 0.0)) for r in results) / n,
        "tool_calls": sum(r.tool_calls for r in results) / n,
    }


def generic_scores(results: Sequence[TaskResult]) -> dict[str, float]:
    """Mean reward, tool calls and every numeric episode metric."""
    n = max(len(results), 1)
    scores = {"reward": sum(r.reward for r in results) / n, "tool_calls": sum(r.tool_calls for r in results) / n}
    names = sorted({k for r in results for k, v in r.metrics.items() if isinstance(v, (bool, int, float))})
    for name in names:
        values = [float(r.metrics[name]) for r in results if isinstance(r.metrics.get(name), (bool, int, float))]
        scores[name] = sum(values) / len(values)
    return scores


def _percent(key: str, value: float) -> str:
    return f"{100 * value:.1f}"


def _markdown(
    heading: str,
    columns: Sequence[tuple[str, str]],
    rows: Mapping[str, Mapping[str, float]],
    cell: Callable[[str, float], str] = _percent,
) -> str:
    """A Markdown table under `heading`: one line per row name, one column per (key, header), each value
    written by `cell(key, value)` (percentages with one decimal by default), "—" where a row lacks the key."""
    lines = [
        heading,
        "",
        "| | " + " | ".join(header for _, header in columns) + " |",
        "| --- |" + " ---: |" * len(columns),
    ]
    for name, scores in rows.items():
        cells = [cell(key, scores[key]) if key in scores else "—" for key, _ in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


BFCL_GROUPS = (
    ("overall", "Overall"),
    ("non_live", "Non-live"),
    ("live", "Live"),
    ("multi_turn", "Multi-turn"),
    ("relevance", "Relevance"),
    ("irrelevance", "Irrelevance"),
    ("category_mean", "Category mean"),
)


def bfcl_tables(results: Results) -> str:
    """The leaderboard groups (as ToolRL's BFCL table) and the category mean, then every evaluated category."""
    scored = {name: bfcl_scores(rs) for name, rs in results.items()}
    covered = {c for _, counts in scored.values() for c in counts}
    tasks = sum(max(counts.get(c, 0) for _, counts in scored.values()) for c in covered)
    return bfcl_score_tables({name: scores for name, (scores, _) in scored.items()}, tasks)


def bfcl_score_tables(rows: Mapping[str, Mapping[str, float]], tasks: int) -> str:
    """`bfcl_tables` from `bfcl_scores`'s scores of each row (e.g. logged by a training run) over `tasks` tasks."""
    covered = sorted(
        {key.removeprefix("category/") for scores in rows.values() for key in scores if key.startswith("category/")},
        key=BFCL_CATEGORIES.index,
    )
    title = f"BFCL accuracy (%), {len(covered)} of {len(BFCL_CATEGORIES)} categories, {tasks} tasks"
    return "\n\n".join(
        [
            _markdown(f"**{title}**", BFCL_GROUPS, rows),
            _markdown("**BFCL accuracy (%) per category**", [(f"category/{c}", c) for c in covered], rows),
        ]
    )


def api_bank_table(results: Results) -> str:
    rows = {name: api_bank_scores(rs) for name, rs in results.items()}
    levels = sorted({k for r in rows.values() for k in r if k.startswith("level_")})
    columns = [(level, level.replace("_", " ").capitalize()) for level in levels] + [("overall", "Overall")]
    return _markdown("**API-Bank accuracy (%)**", columns, rows)


def bamboogle_table(results: Results) -> str:
    rows = {name: bamboogle_scores(rs) for name, rs in results.items()}
    columns = [("em", "Exact match"), ("f1", "F1"), ("tool_calls", "Tool calls")]
    return _markdown(
        "**Bamboogle (%)**",
        columns,
        rows,
        lambda key, value: f"{value:.2f}" if key == "tool_calls" else _percent(key, value),
    )


def generic_table(env: str, results: Results) -> str:
    rows = {name: generic_scores(rs) for name, rs in results.items()}
    names = sorted({k for r in rows.values() for k in r})
    return _markdown(f"**{env}** (means)", [(k, k) for k in names], rows, lambda key, value: f"{value:.3f}")


_BFCL_ENVS = ("ToolEnv-BFCL-v0", "ToolEnv-BFCLMultiTurn-v0")
_TABLES: dict[str, Callable[[Results], str]] = {
    "BFCL": bfcl_tables,
    "ToolEnv-APIBank-v0": api_bank_table,
    "ToolEnv-Bamboogle-v0": bamboogle_table,
}
_SCORES: dict[str, Callable[[Sequence[TaskResult]], dict[str, float]]] = {
    "BFCL": lambda results: bfcl_scores(results)[0],
    "ToolEnv-APIBank-v0": api_bank_scores,
    "ToolEnv-Bamboogle-v0": bamboogle_scores,
}


_PREFIXES = {"BFCL": "bfcl", "ToolEnv-APIBank-v0": "api_bank", "ToolEnv-Bamboogle-v0": "bamboogle"}


def benchmark_scores(results: Sequence[TaskResult]) -> dict[str, float]:
    """The benchmarks' own aggregations of `results` as flat metrics (`bfcl/overall`, `bfcl/category_mean`,
    `bfcl/category/simple_python`, `api_bank/overall`, `bamboogle/em`, ...); nothing for other envs."""
    return {
        f"{_PREFIXES[benchmark]}/{key}": value
        for benchmark, scores in summary(results).items()
        if benchmark in _PREFIXES
        for key, value in scores.items()
    }


def _benchmark(env: str) -> str:
    """The table an env's results go to: both BFCL envs share one."""
    return "BFCL" if env in _BFCL_ENVS else env


def tables(results: Results) -> str:
    """Markdown tables for every benchmark in `results`, a row per result set."""
    by_benchmark: dict[str, dict[str, list[TaskResult]]] = defaultdict(lambda: defaultdict(list))
    for name, rs in results.items():
        for result in rs:
            by_benchmark[_benchmark(result.env)][name].append(result)
    parts = []
    for benchmark, rows in by_benchmark.items():
        table = _TABLES.get(benchmark)
        parts.append(table(rows) if table is not None else generic_table(benchmark, rows))
    return "\n\n".join(parts)


def summary(results: Sequence[TaskResult]) -> dict[str, dict[str, float]]:
    """The numbers behind `tables` for one result set, by benchmark."""
    by_benchmark: dict[str, list[TaskResult]] = defaultdict(list)
    for result in results:
        by_benchmark[_benchmark(result.env)].append(result)
    return {b: _SCORES.get(b, generic_scores)(rs) for b, rs in by_benchmark.items()}
