"""Import paths README examples used before the layout moved them still work, with a FutureWarning, for a release."""

from __future__ import annotations

import importlib
import sys

import pytest

import agents.evaluation
from agents.evaluation import episodes


@pytest.mark.parametrize(
    ("old", "new", "name"),
    [
        ("agents.grpo", "agents.learners.grpo", "PolicyGradientLearner"),
        ("agents.score_tables", "agents.evaluation.tables", "tables"),
    ],
)
def test_a_moved_module_still_imports_with_a_warning(old: str, new: str, name: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(FutureWarning, match=f"{old} moved to {new}"):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)


def test_a_moved_function_of_agents_evaluation_still_resolves_with_a_warning() -> None:
    with pytest.warns(FutureWarning, match="agents.evaluation.evaluate moved to agents.evaluation.episodes.evaluate"):
        moved = agents.evaluation.evaluate
    assert moved is episodes.evaluate
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = agents.evaluation.nothing
