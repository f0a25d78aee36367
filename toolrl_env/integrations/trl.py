"""TRL adapter: a ToolEnv id's tasks as a `GRPOTrainer` dataset, and its reward as TRL reward functions.

    from trl import GRPOConfig, GRPOTrainer
    from toolrl_env.integrations.trl import reward_functions, trl_dataset

    trainer = GRPOTrainer(
        model="HuggingFaceTB/SmolLM2-135M-Instruct",
        reward_funcs=reward_functions("ToolEnv-Calc-v0", preset="default"),
        train_dataset=trl_dataset("ToolEnv-Calc-v0", split="train", limit=256),
        args=GRPOConfig(output_dir="runs/trl"),
    )

A row is one task's first step: `prompt` is the env's first observation (system and user messages, which
TRL renders with the model's chat template) and `task_id` names the task. TRL samples one completion per
prompt; the reward functions score it exactly as the env scores that step (reset to the task, step with
the completion; in multi-turn mode its calls run, as in the env), so every preset and the suites' own gold
alignment (BFCL's accepted values, Bamboogle's answers) apply unchanged. There is one function per reward
component that is on (`format`, `correctness`, and `length` / `answer` when the preset adds them): TRL
trains on their sum, which is the total, and logs each as `rewards/<component>/mean`. Scheduled presets
read the training step from the `trainer_state` that TRL passes to reward functions (its `global_step`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from toolrl_env.env import ToolEnv
from toolrl_env.registry import make_tool_env
from toolrl_env.rewards import RewardConfig

if TYPE_CHECKING:
    from datasets import Dataset


def completion_text(completion: Any) -> str:
    """The text of a TRL completion: a string (standard format) or, for a message list (conversational), the
    content of its first assistant message; anything else is '' (which the reward scores at its lowest)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        for message in completion:
            if isinstance(message, dict) and message.get("role") == "assistant":
                content = message.get("content")
                return content if isinstance(content, str) else ""
    return ""


class EnvScorer:
    """Scores completions as the first step of their task in one env.

    TRL calls the component functions one after another on the same batch, so the last batch's scores
    are kept and each completion is stepped once.
    """

    def __init__(self, env_id: str, env: ToolEnv) -> None:
        self.env_id = env_id
        self.env = env
        self._key: tuple[int, tuple[str, ...], tuple[str, ...]] | None = None
        self._scores: list[dict[str, float]] = []

    def __call__(self, task_ids: Sequence[str], texts: Sequence[str], step: int) -> list[dict[str, float]]:
        """Each completion's reward breakdown (`format`, `correctness`, `length`, `answer`, `total`) at `step`."""
        key = (step, tuple(task_ids), tuple(texts))
        if key != self._key:
            self._scores = [self._score(task_id, text, step) for task_id, text in zip(task_ids, texts, strict=True)]
            self._key = key
        return self._scores

    def _score(self, task_id: str, text: str, step: int) -> dict[str, float]:
        try:
            self.env.reset(options={"task_id": task_id, "training_step": step})
        except KeyError as exc:
            raise KeyError(
                f"{exc.args[0]}: build reward_functions with the env id and kwargs of the dataset "
                f"(here {self.env_id!r})"
            ) from None
        info = self.env.step(text)[4]
        breakdown: dict[str, float] = info["reward_breakdown"]
        return breakdown


class EnvReward:
    """A TRL reward function: one component of the env's reward (or its total) for each completion."""

    def __init__(self, scorer: EnvScorer, component: str) -> None:
        self.scorer = scorer
        self.component = component
        self.__name__ = component  # TRL logs rewards/<__name__>/mean

    def __call__(
        self,
        prompts: list[Any],
        completions: list[Any],
        task_id: list[str] | None = None,
        trainer_state: Any = None,
        **kwargs: Any,
    ) -> list[float]:
        """TRL's signature: dataset columns (`task_id`) and `trainer_state` arrive as keyword arguments."""
        if task_id is None:
            raise ValueError(
                "the dataset has no 'task_id' column: build it with "
                f"toolrl_env.integrations.trl.trl_dataset({self.scorer.env_id!r}, ...)"
            )
        step = self.scorer.env.training_step if trainer_state is None else int(trainer_state.global_step)
        texts = [completion_text(c) for c in completions]
        return [scores[self.component] for scores in self.scorer(task_id, texts, step)]


def reward_functions(
    env_id: str, preset: str | RewardConfig | None = None, components: bool = True, **env_kwargs: Any
) -> list[EnvReward]:
    """TRL reward functions for `env_id` (built with `env_kwargs`, as for `trl_dataset`).

    `preset`: a reward preset name or `RewardConfig` (None: the env's own). `components`: one function per
    component that is on, whose sum is the total; False: one function, `total`.
    """
    if "reward" in env_kwargs:
        raise ValueError(f"pass the reward as preset={env_kwargs['reward']!r}, not reward=")
    if preset is not None:
        env_kwargs["reward"] = preset
    env = make_tool_env(env_id, **env_kwargs)
    scorer = EnvScorer(env_id, env)
    if not components:
        return [EnvReward(scorer, "total")]
    config = env.reward_config
    names = ["format", "correctness"]
    if config.length_words is not None:
        names.append("length")
    if config.answer is not None:
        names.append("answer")
    return [EnvReward(scorer, name) for name in names]


def trl_dataset(env_id: str, split: str | None = None, limit: int | None = None, **env_kwargs: Any) -> Dataset:
    """A `datasets.Dataset` of `env_id`'s tasks for `GRPOTrainer`: columns `prompt` (the first observation's
    messages) and `task_id` (what the reward functions score against).

    `split` is the env's own split kwarg (Calc, BFCL, ...; None: the env's default); `limit` keeps the first
    tasks in the env's order.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    try:
        from datasets import Dataset
    except ImportError:
        raise ImportError("trl_dataset needs the `datasets` package: pip install -e '.[trl]'") from None
    if split is not None:
        env_kwargs["split"] = split
    env = make_tool_env(env_id, **env_kwargs)
    rows = []
    for task in env.tasks[:limit]:
        observation, _ = env.reset(options={"task_id": task.id})
        rows.append({"prompt": observation, "task_id": task.id})
    env.close()
    return Dataset.from_list(rows)
