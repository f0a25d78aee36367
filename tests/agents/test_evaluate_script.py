"""agents/evaluate.py end to end on a tiny model over real BFCL tasks: files, tables, resuming, its flags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from transformers import PreTrainedTokenizerBase

import agents.evaluate as script
from agents.evaluation.episodes import make_tool_env
from agents.runtime.run_folder import STATE_FILE, resolve_model
from tests.agents.conftest import tiny_policy


def test_each_env_kwargs_belongs_to_the_env_before_it() -> None:
    config = script.parse_args(
        ["--env", "ToolEnv-BFCL-v0", "--env-kwargs", '{"category": "multiple", "split": "test"}',
         "--env", "toolrl_env:ToolEnv-Calc-v0", "--env", "ToolEnv-APIBank-v0", "--env-kwargs", '{"level": 2}']
    )  # fmt: skip
    assert [(e.id, e.kwargs) for e in config.envs] == [
        ("ToolEnv-BFCL-v0", {"category": "multiple", "split": "test"}),
        ("toolrl_env:ToolEnv-Calc-v0", {}),  # gymnasium's module:Id form is an id like any other
        ("ToolEnv-APIBank-v0", {"level": 2}),
    ]
    assert [(e.id, e.kwargs) for e in script.parse_args([]).envs] == [("ToolEnv-BFCL-v0", {})]
    assert make_tool_env("toolrl_env:ToolEnv-Calc-v0", num_tasks=3).tasks


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--env-kwargs", "{}"], "must follow the --env it is for"),
        (["--env", "ToolEnv-BFCL-v0", "--env-kwargs", "{}", "--env-kwargs", "{}"], "must follow the --env it is for"),
        (["--env", "ToolEnv-BFCL-v0", "--env-kwargs", "{category: 1}"], "is not valid JSON"),
        (["--env", "ToolEnv-BFCL-v0", "--env-kwargs", "[1]"], "must be a JSON object"),
        (["--tasks-per-category", "0"], "--tasks-per-category: Input should be greater than or equal to 1"),
        (["--env", "ToolEnv-BFCX-v0"], "'ToolEnv-BFCX-v0' is not a registered env id"),
        (["--env", "no_such_module:ToolEnv-BFCL-v0"], "is not a registered env id (No module named"),
    ],
)
def test_bad_flags_are_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        script.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_a_run_folder_means_its_newest_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    with pytest.raises(SystemExit):
        script.main(["--model", str(run)])
    assert "no finished checkpoint" in capsys.readouterr().err
    for step in (5, 10):
        (run / "checkpoints" / f"step-{step}").mkdir()
        (run / "checkpoints" / f"step-{step}" / STATE_FILE).write_bytes(b"")
    (run / "checkpoints" / ".step-15.tmp").mkdir()  # an unfinished one
    assert script.parse_args(["--model", str(run)]).policy.model == str(run / "checkpoints" / "step-10")
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_evaluate_writes_results_and_tables_and_resumes(
    tmp_path: Path, tokenizer: PreTrainedTokenizerBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "tiny"
    tiny_policy(tokenizer).save(model)
    out = tmp_path / "eval"
    argv = [
        "--model",
        str(model),
        "--env",
        "ToolEnv-BFCL-v0",
        "--env-kwargs",
        '{"category": ["simple_python", "irrelevance"], "split": "test"}',
        "--tasks-per-category",
        "2",
        "--max-new-tokens",
        "6",
        "--eval-batch-size",
        "3",
        "--output-dir",
        str(out),
    ]
    results = script.main(argv)
    assert [r.group for r in results] == ["irrelevance", "irrelevance", "simple_python", "simple_python"]
    assert all(r.env_kwargs == {"category": ["simple_python", "irrelevance"], "split": "test"} for r in results)
    assert all(len(r.completions) == 1 and "ast_match" in r.metrics for r in results)
    summary = json.loads((out / "summary.json").read_text())["BFCL"]
    for category in ("irrelevance", "simple_python"):
        hits = [r.metrics["ast_match"] for r in results if r.group == category]
        assert summary[f"category/{category}"] == sum(hits) / 2
    assert "BFCL accuracy (%), 2 of 17 categories, 4 tasks" in (out / "table.md").read_text()
    assert len(json.loads((out / "results.json").read_text())) == 4

    # Interrupted: the last task's line is lost and a torn line is left; only that task runs again.
    lines = (out / script.RESULTS).read_text().splitlines()
    (out / script.RESULTS).write_text("\n".join(lines[:-1]) + '\n{"env": "ToolEnv-BF')
    ran: list[list[str]] = []
    evaluate = script.evaluate

    def spy(*args: Any, **kwargs: Any) -> Any:
        ran.append(list(args[3]))
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(script, "evaluate", spy)
    again = script.main(argv)
    assert ran == [[json.loads(lines[-1])["task_id"]]]
    assert [r.task_id for r in again] == [r.task_id for r in results]
    assert script.main(argv) == again and len(ran) == 1  # all done: nothing runs

    with pytest.raises(SystemExit, match="other settings"):
        script.main([*argv, "--temperature", "0.7"])
