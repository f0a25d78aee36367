"""Moved to `agents.learners.grpo`: this alias re-exports it with a warning, for one release."""

import warnings

from agents.learners.grpo import *  # noqa: F403
from agents.learners.grpo import __all__ as __all__

warnings.warn(
    "agents.grpo moved to agents.learners.grpo; import from there (this alias goes in the next release)",
    FutureWarning,
    stacklevel=2,
)
