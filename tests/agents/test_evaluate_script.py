"""agents/evaluate.py end to end on a tiny model over real BFCL tasks: files, tables, resuming, env specs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from transformers import PreTrainedTokenizerBase

import agents.evaluate as script
from agents.run_folder import STATE_FILE
from tests.agents.conftest import tiny_policy


def test_env_specs() -> None:
    assert script.parse_env("ToolEnv-BFCL-v0") == ("ToolEnv-BFCL-v0", {})
    assert script.parse_env('ToolEnv-BFCL-v0:{"category": "multiple", "split": "test"}') == (
        "ToolEnv-BFCL-v0",
        {"category": "multiple", "split": "test"},
    )
    assert script.parse_env('X:category=["simple_python", "multiple"],split=test,level=2') == (
        "X",
        {"category": ["simple_python", "multiple"], "split": "test", "level": 2},
    )
    assert script.parse_env("X:data_path=../shared/data/toolrl") == ("X", {"data_path": "../shared/data/toolrl"})
    with pytest.raises(ValueError, match="key=value"):
        script.parse_env("X:simple_python")
    with pytest.raises(ValueError, match="not valid JSON"):
        script.parse_env("X:{category: 1}")


def test_bad_env_specs_and_models_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        script.main(["--env", "ToolEnv-BFCL-v0:simple_python"])
    assert "expected key=value pairs" in capsys.readouterr().err
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(SystemExit):
        script.main(["--model", str(tmp_path)])
    assert "no finished checkpoint" in capsys.readouterr().err


def test_a_run_folder_means_its_latest_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    with pytest.raises(ValueError, match="no finished checkpoint"):
        script.resolve_model(str(run))
    for step in (5, 10):
        (run / "checkpoints" / f"step-{step}").mkdir()
        (run / "checkpoints" / f"step-{step}" / STATE_FILE).write_bytes(b"")
    (run / "checkpoints" / ".step-15.tmp").mkdir()  # an unfinished one
    assert script.resolve_model(str(run)) == str(run / "checkpoints" / "step-10")
    assert script.resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"


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
        'ToolEnv-BFCL-v0:category=["simple_python","irrelevance"],split=test',
        "--limit",
        "2",
        "--max-new-tokens",
        "6",
        "--batch-size",
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
