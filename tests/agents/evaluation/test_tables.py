"""The benchmark tables: BFCL's groups against bfcl-eval's own aggregation code, API-Bank and Bamboogle by hand."""

from __future__ import annotations

import ast
import random
from typing import Any

import pytest

from agents.evaluation.tables import (
    BFCL_CATEGORIES,
    TaskResult,
    api_bank_scores,
    bamboogle_scores,
    benchmark_scores,
    bfcl_score_tables,
    bfcl_scores,
    bfcl_tables,
    summary,
    tables,
)
from toolrl_env.envs.bfcl.package import MULTI_TURN_CATEGORIES, bfcl_root


def official_helpers() -> dict[str, Any]:
    """bfcl-eval's three accuracy aggregators, taken from its eval_runner_helper.py source (the module itself
    imports pandas, which this project does not need)."""
    path = bfcl_root() / "eval_checker" / "eval_runner_helper.py"
    tree = ast.parse(path.read_text())
    wanted = {"calculate_weighted_accuracy", "calculate_unweighted_accuracy", "calculate_percentage_weighted_accuracy"}
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in wanted]
    assert {f.name for f in functions} == wanted
    namespace: dict[str, Any] = {}
    exec(compile(ast.Module(body=functions, type_ignores=[]), str(path), "exec"), namespace)
    return namespace


def bfcl_results(accuracy: dict[str, tuple[int, int]], env: str = "ToolEnv-BFCL-v0") -> list[TaskResult]:
    """Results with `hits` of `total` correct per category."""
    results = []
    for category, (hits, total) in accuracy.items():
        metric = "success" if category in MULTI_TURN_CATEGORIES else "ast_match"
        for i in range(total):
            results.append(
                TaskResult(
                    env="ToolEnv-BFCLMultiTurn-v0" if category in MULTI_TURN_CATEGORIES else env,
                    task_id=f"{category}_{i}",
                    group=category,
                    reward=0.0,
                    tool_calls=1,
                    metrics={metric: i < hits},
                    completions=[""],
                )
            )
    return results


def test_bfcl_groups_equal_bfcl_evals_own_aggregation() -> None:
    rng = random.Random(0)
    counts = {c: (rng.randint(0, n), n) for c in BFCL_CATEGORIES for n in [rng.randint(3, 40)]}
    scores, task_counts = bfcl_scores(bfcl_results(counts))
    assert task_counts == {c: n for c, (_, n) in counts.items()}

    official = official_helpers()
    unweighted, weighted = official["calculate_unweighted_accuracy"], official["calculate_weighted_accuracy"]

    def cat(name: str) -> dict[str, Any]:
        hits, total = counts[name]
        return {"accuracy": hits / total, "total_count": total, "display_accuracy": hits / total}

    simple = unweighted([cat("simple_python"), cat("simple_java"), cat("simple_javascript")])
    non_live = unweighted([simple, cat("multiple"), cat("parallel"), cat("parallel_multiple")])
    live = weighted([cat(c) for c in ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple")])
    multi_turn = unweighted([cat(c) for c in MULTI_TURN_CATEGORIES])
    irrelevance = unweighted([cat("irrelevance"), cat("live_irrelevance")])
    overall = official["calculate_percentage_weighted_accuracy"](
        [non_live, live, irrelevance, multi_turn], [10, 10, 10, 30]
    )
    expected = {
        "non_live": non_live["accuracy"],
        "live": live["accuracy"],
        "multi_turn": multi_turn["accuracy"],
        "irrelevance": irrelevance["accuracy"],
        "relevance": cat("live_relevance")["accuracy"],
        "overall": overall["accuracy"],
    }
    assert {k: scores[k] for k in expected} == pytest.approx(expected, abs=1e-12)
    for category, (hits, total) in counts.items():
        assert scores[f"category/{category}"] == pytest.approx(hits / total)


def test_bfcl_groups_over_partial_coverage_use_what_was_evaluated() -> None:
    scores, _ = bfcl_scores(bfcl_results({"simple_python": (3, 4), "live_simple": (1, 4), "live_multiple": (4, 4)}))
    assert scores["non_live"] == pytest.approx(0.75)
    assert scores["live"] == pytest.approx(5 / 8)  # weighted by task count
    assert scores["overall"] == pytest.approx((0.75 + 5 / 8) / 2)  # equal weights of the two groups present
    assert "multi_turn" not in scores and "irrelevance" not in scores and "relevance" not in scores
    assert scores["category_mean"] == pytest.approx((3 / 4 + 1 / 4 + 4 / 4) / 3)  # each category once


def test_the_category_mean_and_benchmark_scores_reach_the_tables_and_flat_metrics() -> None:
    results = bfcl_results({"irrelevance": (4, 4), "simple_python": (0, 4), "live_simple": (1, 2)})
    flat = benchmark_scores(results)
    assert flat["bfcl/category_mean"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert flat["bfcl/irrelevance"] == 1.0 and flat["bfcl/category/live_simple"] == 0.5
    assert benchmark_scores([r.model_copy(update={"env": "ToolEnv-Calc-v0"}) for r in results]) == {}
    scores = {k.removeprefix("bfcl/"): v for k, v in flat.items()}
    shown = bfcl_score_tables({"before": scores}, 10)
    assert "| | Overall | Non-live | Live | Multi-turn | Relevance | Irrelevance | Category mean |" in shown
    assert "| before | 50.0 | 0.0 | 50.0 | — | — | 100.0 | 50.0 |" in shown
    assert "| | simple_python | irrelevance | live_simple |" in shown and "3 of 17 categories, 10 tasks" in shown
    assert shown == bfcl_tables({"before": results})  # the same table from the logged scores as from the results


def test_api_bank_levels_and_overall_over_all_tasks() -> None:
    results = [
        TaskResult(env="ToolEnv-APIBank-v0", task_id=f"{level}-{i}", group=str(level), reward=0, tool_calls=1,
                   metrics={"api_match": ok}, completions=[""])
        for level, oks in ((1, [True, True, False, False]), (2, [True]), (3, [False, True]))
        for i, ok in enumerate(oks)
    ]  # fmt: skip
    assert api_bank_scores(results) == pytest.approx({"level_1": 0.5, "level_2": 1.0, "level_3": 0.5, "overall": 4 / 7})


def test_bamboogle_means() -> None:
    results = [
        TaskResult(env="ToolEnv-Bamboogle-v0", task_id=str(i), reward=0, tool_calls=calls,
                   metrics={"em": em, "f1": f1}, completions=[""])
        for i, (em, f1, calls) in enumerate([(1.0, 1.0, 2), (0.0, 0.5, 0), (0.0, 0.0, 1)])
    ]  # fmt: skip
    assert bamboogle_scores(results) == pytest.approx({"em": 1 / 3, "f1": 0.5, "tool_calls": 1.0})
    assert "| run | 33.3 | 50.0 | 1.00 |" in tables({"run": results})


def test_tables_put_each_result_set_on_a_row_and_both_bfcl_envs_in_one_table() -> None:
    before = bfcl_results({"simple_python": (0, 4), "multi_turn_base": (0, 4)})
    after = bfcl_results({"simple_python": (3, 4), "multi_turn_base": (1, 4)})
    calc = [
        TaskResult(env="ToolEnv-Calc-v0", task_id="t", reward=2.5, tool_calls=1, metrics={"format_ok": 1.0},
                   completions=[""])
    ]  # fmt: skip
    text = tables({"untrained": before + calc, "GRPO": after})
    assert text.count("BFCL accuracy (%), 2 of 17 categories, 8 tasks") == 1
    assert "| untrained | 0.0 | 0.0 | — | 0.0 | — | — |" in text
    assert "| GRPO | 37.5 | 75.0 | — | 25.0 | — | — |" in text  # overall: (10 * 75 + 30 * 25) / 40
    assert "| simple_python | multi_turn_base |" in text
    assert "**ToolEnv-Calc-v0** (means)" in text and "| untrained | 1.000 | 2.500 | 1.000 |" in text
    assert summary(after)["BFCL"]["overall"] == pytest.approx(0.375)
