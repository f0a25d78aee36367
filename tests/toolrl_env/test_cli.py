"""The command-line vocabulary: configs as flags (pydantic-settings), --env / --env-kwargs pairs, usage errors."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from toolrl_env.cli import ConfigParser, add_env_arguments, described, env_list, meaning, merge, read_config_file


class Inner(BaseModel):
    rate: float = Field(default=0.1, gt=0, description="A rate.")
    on: bool = Field(default=True, description="Whether it is on.")


class Outer(BaseModel):
    env: str = Field(default="ToolEnv-Calc-v0", description=described("env"))
    inner: Inner = Field(default_factory=Inner, description="Nested settings.")
    limit: int | None = Field(default=3, description="A limit; None: none.")
    mode: Literal["a", "b"] = Field(default="a", description="A mode.")
    kwargs: dict[str, Any] | None = Field(default=None, description="A JSON object.")


def test_only_the_flags_given_come_back_nested_and_validate_once() -> None:
    parser = ConfigParser(Outer, "demo", {"inner.rate": "rate"})
    _, given = parser.parse_config(["--rate", "0.5", "--no-inner.on", "--limit", "null", "--kwargs", '{"a": 1}'])
    assert given == {"inner": {"rate": "0.5", "on": False}, "limit": None, "kwargs": {"a": 1}}
    config = parser.validated(merge({"mode": "b", "inner": {"rate": 9}}, given))  # a config file, flags on top
    assert config == Outer(mode="b", inner=Inner(rate=0.5, on=False), limit=None, kwargs={"a": 1})
    assert parser.parse_config([])[1] == {}


def test_each_field_is_a_flag_with_its_description_as_help() -> None:
    helps = {
        option: meaning(action.help or "")
        for action in ConfigParser(Outer, None)._actions
        for option in action.option_strings
    }
    assert helps["--inner.rate"] == "A rate." and helps["--limit"] == "A limit; None: none."
    assert helps["--env"].startswith("A registered ToolEnv id")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--inner.rate", "-1"], "--inner.rate: Input should be greater than 0"),
        (["--mode", "c"], "--mode: Input should be 'a' or 'b'"),
        (["--limit", "many"], "--limit: Input should be a valid integer"),
        (["--rat", "1"], "unrecognized arguments: --rat"),  # no prefix matching
    ],
)
def test_bad_values_are_usage_errors_naming_the_flag(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = ConfigParser(Outer, None, {"inner.rate": "rate"})
    with pytest.raises(SystemExit) as exit_info:
        parser.validated(parser.parse_config(argv)[1])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_env_pairs() -> None:
    parser = argparse.ArgumentParser()
    add_env_arguments(parser)
    args = parser.parse_args(["--env", "A", "--env-kwargs", '{"x": 1}', "--env", "B", "--env", "m:C"])
    assert env_list(args) == [("A", {"x": 1}), ("B", {}), ("m:C", {})]
    assert env_list(parser.parse_args([])) == []
    with_default = argparse.ArgumentParser()
    add_env_arguments(with_default, default="D")
    assert env_list(with_default.parse_args([])) == [("D", {})]
    assert env_list(with_default.parse_args(["--env", "E"])) == [("E", {})]  # the default only when none is given


def test_config_files_are_yaml_or_json_mappings(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("steps: 3\ngrpo:\n  lr: 0.5\n")
    (tmp_path / "a.json").write_text('{"steps": 3}')
    (tmp_path / "b.json").write_text("[1]")
    assert read_config_file(tmp_path / "a.yaml") == {"steps": 3, "grpo": {"lr": 0.5}}
    assert read_config_file(tmp_path / "a.json") == {"steps": 3}
    with pytest.raises(ValueError, match="must hold a mapping"):
        read_config_file(tmp_path / "b.json")
