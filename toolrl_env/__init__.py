"""toolrl_env: ToolRL's tool-call reward as Gymnasium environments.

import gymnasium as gym
import toolrl_env

env = gym.make("ToolEnv-Calc-v0")
obs, info = env.reset(seed=0)
"""

from toolrl_env.env import ToolEnv, ToolEnvConfig
from toolrl_env.format import ParsedTurn, parse, render_observation, render_turn
from toolrl_env.registry import load_suite_plugins, register_builtin_envs, register_suite
from toolrl_env.rewards import PRESETS, RewardBreakdown, RewardConfig, compute_score
from toolrl_env.task import GoldStep, Task, Turn

register_builtin_envs()
load_suite_plugins()

__all__ = [
    "PRESETS",
    "GoldStep",
    "ParsedTurn",
    "RewardBreakdown",
    "RewardConfig",
    "Task",
    "ToolEnv",
    "ToolEnvConfig",
    "Turn",
    "compute_score",
    "load_suite_plugins",
    "parse",
    "register_suite",
    "render_observation",
    "render_turn",
]
