"""Task records and loaders: ToolRL's RLLA files and generated calculator tasks."""

from toolrl_env.tasks.calc import generate_calc_tasks
from toolrl_env.tasks.rlla import load_rlla
from toolrl_env.tasks.task import GoldStep, Task, Turn

__all__ = ["GoldStep", "Task", "Turn", "generate_calc_tasks", "load_rlla"]
