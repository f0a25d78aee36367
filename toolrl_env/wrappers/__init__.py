"""Wrappers that give a ToolEnv the spaces classic RL libraries (Stable-Baselines3 and the like) expect."""

from toolrl_env.wrappers.candidates import Candidate, build_candidates
from toolrl_env.wrappers.discrete_tool_choice import DiscreteToolChoice, DiscreteToolChoiceConfig
from toolrl_env.wrappers.features import ChoiceFeaturiser

__all__ = ["Candidate", "ChoiceFeaturiser", "DiscreteToolChoice", "DiscreteToolChoiceConfig", "build_candidates"]
