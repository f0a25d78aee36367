"""Moved to `agents.evaluation.tables`: this alias re-exports it with a warning, for one release."""

import warnings

from agents.evaluation.tables import *  # noqa: F403
from agents.evaluation.tables import __all__ as __all__

warnings.warn(
    "agents.score_tables moved to agents.evaluation.tables; import from there (this alias goes in the next release)",
    FutureWarning,
    stacklevel=2,
)
