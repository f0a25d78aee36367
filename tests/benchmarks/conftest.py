"""Benchmarks are scripts, not a package: their folder goes on sys.path, as when they run as scripts. The tiny
model fixtures come from the agents' tests."""

import sys
from pathlib import Path

from tests.agents.conftest import tiny_model_dir, tokenizer

__all__ = ["tiny_model_dir", "tokenizer"]

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))
