"""The BFCL wheel loader: categories, unsupported ones, and the official checker importable without model SDKs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from toolrl_env.envs.bfcl.package import (
    MULTI_TURN_CATEGORIES,
    SINGLE_TURN_CATEGORIES,
    UNSUPPORTED_CATEGORIES,
    load_entries,
    load_possible_answers,
)


@pytest.mark.parametrize("category", UNSUPPORTED_CATEGORIES)
def test_network_and_memory_categories_are_refused_clearly(category: str) -> None:
    with pytest.raises(ValueError, match="not supported offline"):
        load_entries(category)


def test_an_unknown_category_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="simple_python"):
        load_possible_answers("simple_pyhton")


@pytest.mark.parametrize("category", SINGLE_TURN_CATEGORIES + MULTI_TURN_CATEGORIES)
def test_every_entry_with_a_possible_answer_has_one(category: str) -> None:
    entries, answers = load_entries(category), load_possible_answers(category)
    assert entries and len({e["id"] for e in entries}) == len(entries)
    if "relevance" not in category:  # (ir)relevance entries have no possible answer
        assert set(answers) == {e["id"] for e in entries}


def test_the_official_checkers_import_without_any_model_sdk() -> None:
    code = (
        "import sys\n"
        "from toolrl_env.envs.bfcl.package import import_bfcl\n"
        "import_bfcl('eval_checker.ast_eval.ast_checker')\n"
        "import_bfcl('eval_checker.multi_turn_eval.multi_turn_checker')\n"
        "sdks = ('openai', 'anthropic', 'google', 'mistralai', 'cohere', 'boto3')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in sdks))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
