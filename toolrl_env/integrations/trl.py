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

Multi-turn, with TRL's `environment_factory` (TRL runs the tools between the model's turns)::

    from toolrl_env.integrations.trl import environment_factory, reward_functions, trl_dataset, with_tool_chat_template

    trainer = GRPOTrainer(
        model=model,
        processing_class=with_tool_chat_template(tokenizer),
        reward_funcs=reward_functions("ToolEnv-Calc-v0"),
        train_dataset=trl_dataset("ToolEnv-Calc-v0", split="train", environment=True),
        environment_factory=environment_factory("ToolEnv-Calc-v0", split="train"),
        args=GRPOConfig(output_dir="runs/trl", max_tool_calling_iterations=4),
    )

Each TRL environment is one ToolEnv episode in multi-turn mode. Its public methods are the tools the
episode's task offers, built from their schemas, and each call runs through the env's suite (argument
validation, sandbox and timeouts apply; a failed call raises, which TRL shows the model as
`{"error": ...}`). The model calls them in its chat template's syntax, which TRL parses. TRL never shows
an environment the model's text, so the environment cannot score a turn by itself: the reward functions,
which TRL hands both the completion and its environment, replay each assistant message through the
episode in the TIR format (`<think>` from the parsed reasoning, the parsed calls, `<response>` from
the rest) and return the episode's reward (the sum of its steps', as our own learner trains on), one
function per component. The calls are not run twice: each replayed step takes the results of the calls
the model made. Tasks that offer different tool sets get one environment class each, so
`environment_factory` returns a dict of factories and `trl_dataset(..., environment=True)` names each
row's in an `environment` column (TRL routes rows by it). A rollout ends when the model answers without a
call, so a task's later user turns (BFCL multi-turn) are not reached: its reward covers the first turn.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import keyword
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Union

from toolrl_env.env import ToolEnv
from toolrl_env.prompt import ADDITIONAL_INSTRUCTIONS
from toolrl_env.registry import make_tool_env
from toolrl_env.rewards import RewardConfig
from tools.call import ToolCall
from tools.tool import Tool

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

# The system message of `trl_dataset(..., environment=True)` rows: the chat template lists the tools and says
# how to call them; ToolRL's format asks for reasoning first.
TOOL_CALLING_SYSTEM = "You are a helpful assistant. Think first, inside <think> </think>; then call tools or answer."


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
        environments: list[Any] | None = None,
        **kwargs: Any,
    ) -> list[float]:
        """TRL's signature: dataset columns (`task_id`), `trainer_state` and, with `environment_factory`, the
        rollouts' `environments` arrive as keyword arguments."""
        step = self.scorer.env.training_step if trainer_state is None else int(trainer_state.global_step)
        if environments is not None:
            return [
                self._episode(environment, completion, step)[self.component]
                for environment, completion in zip(environments, completions, strict=True)
            ]
        if task_id is None:
            raise ValueError(
                "the dataset has no 'task_id' column: build it with "
                f"toolrl_env.integrations.trl.trl_dataset({self.scorer.env_id!r}, ...)"
            )
        texts = [completion_text(c) for c in completions]
        return [scores[self.component] for scores in self.scorer(task_id, texts, step)]

    def _episode(self, environment: Any, completion: Any, step: int) -> dict[str, float]:
        if not isinstance(environment, ToolEnvironment):
            raise TypeError(
                f"expected environments from toolrl_env.integrations.trl.environment_factory, got {type(environment)}"
            )
        if environment._reward_config() != self.scorer.env.reward_config:
            raise ValueError(
                "the environments score with another reward than these reward functions: build both with the same "
                f"env kwargs (reward_functions({self.scorer.env_id!r}, preset=...) sets the reward of both)"
            )
        return environment._episode_reward(completion, step)


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


def trl_dataset(
    env_id: str, split: str | None = None, limit: int | None = None, environment: bool = False, **env_kwargs: Any
) -> Dataset:
    """A `datasets.Dataset` of `env_id`'s tasks for `GRPOTrainer`: columns `prompt` (the first observation's
    messages) and `task_id` (what the reward functions score against).

    `split` is the env's own split kwarg (Calc, BFCL, ...; None: the env's default); `limit` keeps the first
    tasks in the env's order. `environment`: rows for `environment_factory` (built with the same arguments):
    the prompt is `TOOL_CALLING_SYSTEM` (plus the task's own additional instructions, BFCL's) and the first
    observation's user message (the chat template lists the tools), and, when the tasks offer more than one tool
    set, an `environment` column names each row's.
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
    keys = _tool_set_keys(env) if environment else {}
    routed = len(set(keys.values())) > 1  # more than one environment class: rows name theirs
    rows = []
    for task in env.tasks[:limit]:
        observation, _ = env.reset(options={"task_id": task.id})
        row: dict[str, Any] = {"prompt": observation, "task_id": task.id}
        if environment:
            instructions = (task.system or "").partition(ADDITIONAL_INSTRUCTIONS)[2].strip()
            system = (
                f"{TOOL_CALLING_SYSTEM}\n\n{ADDITIONAL_INSTRUCTIONS}\n{instructions}"
                if instructions
                else TOOL_CALLING_SYSTEM
            )
            row["prompt"] = [{"role": "system", "content": system}, observation[-1]]
            if routed:
                row["environment"] = keys[task.id]
        rows.append(row)
    env.close()
    return Dataset.from_list(rows)


# -- multi-turn: TRL's environment_factory -----------------------------------------------------------------

_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
    "null": type(None),
}


def _python_type(schema: Any) -> Any:
    """The Python type hint for a JSON schema, as transformers turns hints back into schemas (Any if unknown)."""
    if not isinstance(schema, dict):
        return Any
    declared = schema.get("type")
    names = declared if isinstance(declared, list) else [declared]
    hints = [_JSON_TYPES[n] for n in names if isinstance(n, str) and n in _JSON_TYPES]
    if not hints or len(hints) != len(names):
        return Any
    if hints == [list] and isinstance(schema.get("items"), dict) and _python_type(schema["items"]) is not Any:
        return list[_python_type(schema["items"])]  # type: ignore[misc]
    return hints[0] if len(hints) == 1 else Union[tuple(hints)]  # noqa: UP007 (built at run time)


def _one_line(text: Any) -> str:
    """Text on one line: a docstring's `Args:` section ends an entry at a line break."""
    return " ".join(str(text or "").split())


def _tool_method(tool: Tool) -> Callable[..., str]:
    """A method that runs `tool` in the environment's episode, with the signature and Google-style docstring from
    which transformers writes the tool's schema into the chat template."""
    properties = tool.parameters.get("properties") or {}
    required = set(tool.parameters.get("required") or [])
    bad = [n for n in properties if not n.isidentifier() or keyword.iskeyword(n) or n == "self"]
    if bad:
        raise ValueError(
            f"tool {tool.name!r} has parameters {bad} that are not Python names: TRL builds tool schemas from method "
            "signatures, so this tool cannot be offered through environment_factory"
        )

    def method(self: ToolEnvironment, **arguments: Any) -> str:
        return self._call(tool.name, arguments)

    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}  # the schema's parameters only: transformers reads every hint as one
    lines = [_one_line(tool.description) or tool.name]
    if properties:
        lines += ["", "Args:"]
    for name, schema in properties.items():
        hint = _python_type(schema)
        default = inspect.Parameter.empty if name in required else None
        parameters.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=hint, default=default))
        annotations[name] = hint
        choices = schema.get("enum") if isinstance(schema, dict) else None
        described = _one_line(schema.get("description") if isinstance(schema, dict) else "") or name
        if isinstance(choices, list) and choices:
            described += f" (choices: {json.dumps(choices)})"
        lines.append(f"    {name}: {described}")
    method.__annotations__ = {**annotations, "return": str}
    method.__signature__ = inspect.Signature(parameters, return_annotation=str)  # type: ignore[attr-defined]
    method.__doc__ = "\n".join(lines)
    method.__name__ = method.__qualname__ = tool.name
    return method


def _tool_set_key(tools: Sequence[Tool]) -> str:
    """A short name for a set of tool schemas: equal sets, equal names."""
    schemas = json.dumps([t.model_dump() for t in tools], sort_keys=True, default=str)
    return "tools-" + hashlib.sha256(schemas.encode()).hexdigest()[:12]


def _tool_set_keys(env: ToolEnv) -> dict[str, str]:
    """Each task's tool-set name."""
    suite_tools = env.suite.tools if env.suite else []
    by_tools: dict[int, str] = {}
    keys = {}
    for task in env.tasks:
        tools = task.tools or suite_tools
        if id(tools) not in by_tools:
            by_tools[id(tools)] = _tool_set_key(tools)
        keys[task.id] = by_tools[id(tools)]
    return keys


def _assistant_text(message: Any) -> str:
    """One assistant message, as TRL parsed it, in the TIR format the env scores: `<think>` from its reasoning (if
    any), its calls in a `<tool_call>` block, the rest of its text as the `<response>`."""
    if isinstance(message, str):
        return message
    if not isinstance(message, dict):
        return ""
    parts = []
    if isinstance(message.get("reasoning_content"), str):
        parts.append(f"<think> {message['reasoning_content'].strip()} </think>")
    lines = []
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            lines.append(json.dumps({"name": function.get("name"), "parameters": function.get("arguments")}))
    if lines:
        parts.append("<tool_call>\n" + "\n".join(lines) + "\n</tool_call>")
    content = message.get("content")
    if isinstance(content, str) and content.strip():
        parts.append(f"<response> {content.strip()} </response>")
    return "\n".join(parts)


class ToolEnvironment:
    """One ToolEnv episode (multi-turn) as a TRL environment; `environment_factory` builds a subclass per tool
    set, whose public methods are the tools. Everything else is private: TRL offers every public method."""

    _env_id: ClassVar[str]
    _env_kwargs: ClassVar[dict[str, Any]]

    def __init__(self) -> None:
        self._env: ToolEnv | None = None  # made at the first reset: TRL makes an instance just to list the tools
        self._scored: tuple[Any, int, dict[str, float]] | None = None
        self._calls = 0

    def reset(self, **row: Any) -> None:
        """Start the episode of the row's `task_id` (TRL passes every column of the row)."""
        if "task_id" not in row:
            raise ValueError(
                "the dataset has no 'task_id' column: build it with "
                f"toolrl_env.integrations.trl.trl_dataset({self._env_id!r}, ..., environment=True)"
            )
        env = self._tool_env()
        try:
            env.reset(options={"task_id": row["task_id"]})
        except KeyError as exc:
            raise KeyError(
                f"{exc.args[0]}: build environment_factory with the env id and kwargs of the dataset "
                f"(here {self._env_id!r})"
            ) from None
        self._scored, self._calls = None, 0

    def _tool_env(self) -> ToolEnv:
        if self._env is None:
            self._env = make_tool_env(self._env_id, **{**self._env_kwargs, "mode": "multi_turn"})
        return self._env

    def _reward_config(self) -> RewardConfig:
        return self._tool_env().reward_config

    def _call(self, name: str, arguments: dict[str, Any]) -> str:
        """Run one call in the episode; its result as JSON, or an exception (TRL shows the model its message)."""
        env = self._tool_env()
        if self._calls >= env.config.max_calls * env.config.max_turns:
            raise RuntimeError(f"no more calls this episode: {self._calls} ran (max_calls x max_turns)")
        self._calls += 1
        result = env.execute(ToolCall(name=name, parameters=arguments))
        if not result.ok:
            error = result.content.get("error") if isinstance(result.content, dict) else result.content
            raise RuntimeError(str(error))
        return json.dumps(result.content, default=str)

    def _episode_reward(self, completion: Any, step: int) -> dict[str, float]:
        """The episode's reward per component (summed over its steps): each assistant message of the completion
        stepped through the episode, in order, at the training step `step`; scored once per rollout."""
        if self._scored is not None and self._scored[0] is completion and self._scored[1] == step:
            return self._scored[2]
        env = self._tool_env()
        env.set_training_step(step)
        messages = completion if isinstance(completion, list) else [completion]
        turns = [m for m in messages if isinstance(m, str) or (isinstance(m, dict) and m.get("role") == "assistant")]
        totals: dict[str, float] = {}
        for message in turns or [""]:
            _, _, terminated, truncated, info = env.step(_assistant_text(message))
            for component, value in info["reward_breakdown"].items():
                totals[component] = totals.get(component, 0.0) + value
            if terminated or truncated or not info["parsed"]["tool_calls"]:
                break  # the user turn (or the episode) ended: TRL's rollout ends there too
        self._scored = (completion, step, totals)
        return totals


def environment_factory(
    env_id: str, split: str | None = None, **env_kwargs: Any
) -> Callable[[], ToolEnvironment] | dict[str, Callable[[], ToolEnvironment]]:
    """TRL's `environment_factory` for `env_id`'s tasks (built with `split` and `env_kwargs`, as for
    `trl_dataset(..., environment=True)`): a class whose instances are episodes, or, when the tasks offer different
    tool sets, a dict of them keyed as the dataset's `environment` column."""
    if split is not None:
        env_kwargs["split"] = split
    env = make_tool_env(env_id, **env_kwargs)
    keys = _tool_set_keys(env)
    suite_tools = env.suite.tools if env.suite else []
    classes: dict[str, type[ToolEnvironment]] = {}
    for task in env.tasks:
        key = keys[task.id]
        if key not in classes:
            methods = {t.name: _tool_method(t) for t in task.tools or suite_tools}
            attributes: dict[str, Any] = {"_env_id": env_id, "_env_kwargs": dict(env_kwargs), **methods}
            name = env_id.rpartition(":")[2].replace("-", "") + "Environment"
            classes[key] = type(name, (ToolEnvironment,), attributes)
    env.close()
    if len(classes) == 1:
        return next(iter(classes.values()))
    return dict(classes)


def with_tool_chat_template(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """The tokenizer, given TRL's bundled Qwen2.5 chat template when its own cannot render tool calls and it speaks
    ChatML (`<|im_start|>`, `<|im_end|>`: SmolLM2, Qwen). TRL parses tool calls only with templates it knows."""
    from trl.chat_template_utils import supports_tool_calling

    if supports_tool_calling(tokenizer):
        return tokenizer
    vocabulary = tokenizer.get_vocab()
    if "<|im_start|>" not in vocabulary or "<|im_end|>" not in vocabulary:
        raise ValueError(
            "this tokenizer's chat template cannot render tool calls and it has no ChatML tokens: give it a "
            "tool-calling template TRL knows (trl/chat_templates: Qwen, Llama 3.1/3.2, ...)"
        )
    import trl

    tokenizer.chat_template = (Path(trl.__file__).parent / "chat_templates" / "qwen2_5.jinja").read_text()
    return tokenizer
