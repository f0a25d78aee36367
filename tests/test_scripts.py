"""Every script's flags: each has a description, and a name means the same thing in every script that has it."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import sys
from collections import defaultdict
from pathlib import Path
from types import ModuleType

import pytest

from toolrl_env.cli import VOCABULARY, meaning

ROOT = Path(__file__).resolve().parents[1]
MODULES = (
    "agents.grpo_train",
    "agents.evaluate",
    "agents.sb3_train",
    "agents.trl_train",
    "toolrl_env.integrations.verl",
    "toolrl_env.integrations.openenv.__main__",
)
BENCHMARKS = sorted(
    p.stem for p in (ROOT / "benchmarks").glob("*.py") if "def build_parser" in p.read_text()
)  # fuzz_atheris takes atheris' own flags


def load(name: str) -> ModuleType:
    if "." in name:
        return importlib.import_module(name)
    sys.path.insert(0, str(ROOT / "benchmarks"))  # as when the benchmark runs as a script
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


SCRIPTS = {name: load(name).build_parser() for name in (*MODULES, *BENCHMARKS)}


def flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each long option string of the parser -> its help, without the default the parser appends."""
    return {
        option: meaning(action.help or "")
        for action in parser._actions
        if action.help != argparse.SUPPRESS and not isinstance(action, argparse._HelpAction)
        for option in action.option_strings
        if option.startswith("--") and not option.startswith("--no-")
    }


def test_the_scripts_are_all_here() -> None:
    assert len(BENCHMARKS) >= 9 and "reward_ablation" in BENCHMARKS and "soak" in BENCHMARKS


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_every_flag_has_a_description(name: str) -> None:
    for option, help_text in flags(SCRIPTS[name]).items():
        assert len(help_text) > 10, f"{name} {option} has no description"


def test_a_flag_name_means_the_same_in_every_script() -> None:
    by_flag: dict[str, dict[str, str]] = defaultdict(dict)
    for name, parser in SCRIPTS.items():
        for option, help_text in flags(parser).items():
            by_flag[option][name] = help_text
    shared = {option: helps for option, helps in by_flag.items() if len(helps) > 1}
    assert {"--env", "--env-kwargs", "--model", "--seed", "--output-dir", "--max-new-tokens", "--data-path"} <= set(
        shared
    )
    for option, helps in shared.items():
        word = option.removeprefix("--").replace("-", "_")
        if word in VOCABULARY:  # the vocabulary's meaning first, then what is particular to the script
            assert all(h.startswith(VOCABULARY[word]) for h in helps.values()), (option, helps)
        else:
            assert len(set(helps.values())) == 1, f"{option} means different things: {helps}"


def test_every_vocabulary_flag_is_used_and_in_the_readme_table() -> None:
    used = {option for parser in SCRIPTS.values() for option in flags(parser)}
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## One command-line vocabulary") :]
    for word in VOCABULARY:
        flag = "--" + word.replace("_", "-")
        assert flag in used, f"{flag} is in the vocabulary but no script has it"
        assert re.search(rf"^\| `{re.escape(flag)}\b", table, re.MULTILINE), f"README's table lacks {flag}"
