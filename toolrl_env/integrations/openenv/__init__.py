"""OpenEnv adapter: any ToolEnv id served with openenv-core's server, one env per client session.

    python -m toolrl_env.integrations.openenv serve ToolEnv-Calc-v0 --env-kwargs '{"split": "train"}' --port 8000

    from toolrl_env.integrations.openenv import ToolAction, ToolEnvClient

    with ToolEnvClient(base_url="http://127.0.0.1:8000").sync() as env:
        result = env.reset(task_id="calc-train-0")
        result = env.step(ToolAction(completion="<think> ... </think>\\n<tool_call>\\n...\\n</tool_call>"))
        print(result.reward, result.observation.info["reward_breakdown"])

The action is the model's completion for one turn; the observation is the conversation (the env's messages)
plus `terminated`, `truncated` and the env's `info`, with the reward and `done` as OpenEnv carries them. Each
WebSocket session (`EnvClient`) gets its own ToolEnv, closed when the session ends; OpenEnv's stateless HTTP
`/reset` and `/step` make a fresh env per request, so episodes go over the WebSocket. A step before `reset`, an
unknown task id or a malformed action is answered with an error message, and the session and server go on.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from openenv.core.client_types import StepResult
from openenv.core.env_client import EnvClient
from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import Action, Observation, State
from pydantic import Field

from toolrl_env.env import ToolEnv
from toolrl_env.registry import make_tool_env


class ToolAction(Action):
    """One assistant turn."""

    completion: str = Field(description="The model's completion, in the TIR format (<think>, <tool_call>, ...).")


class ToolObservation(Observation):
    """What the env returns after a reset or a step (OpenEnv adds `reward` and `done`)."""

    messages: list[dict[str, str]] = Field(description="The conversation: system and user messages, as the env's.")
    terminated: bool = Field(default=False, description="The episode ended: its last user turn is answered.")
    truncated: bool = Field(default=False, description="The episode was cut: max_turns or the length limit.")
    info: dict[str, Any] = Field(default_factory=dict, description="The env's info of the reset or step.")


class ToolState(State):
    """The session's episode (OpenEnv's `episode_id` and `step_count`, plus the task)."""

    task_id: str | None = Field(default=None, description="The task of the current episode.")


def _wire_safe(value: Any) -> Any:
    """`value` with every string UTF-8 can carry: a lone surrogate (a completion may hold one, and the env echoes
    it in the conversation) becomes U+FFFD, as JSON over the wire cannot encode it."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        return value
    if isinstance(value, dict):
        return {_wire_safe(k): _wire_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_wire_safe(v) for v in value]
    return value


class ToolEnvironment(Environment[ToolAction, ToolObservation, ToolState]):
    """A ToolEnv as an OpenEnv `Environment`: one per session."""

    SUPPORTS_CONCURRENT_SESSIONS = True  # every session has its own ToolEnv

    def __init__(self, env_id: str, env_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.env: ToolEnv = make_tool_env(env_id, **(env_kwargs or {}))
        self._state = ToolState()

    def reset(
        self,
        seed: int | None = None,
        episode_id: str | None = None,
        task_id: str | None = None,
        training_step: int | None = None,
        **kwargs: Any,
    ) -> ToolObservation:
        """Start an episode: the task `task_id` (else one drawn with `seed`), scored at `training_step`."""
        if kwargs:
            expected = "seed, episode_id, task_id, training_step"
            raise ValueError(f"unknown reset arguments {sorted(kwargs)}; expected {expected}")
        options: dict[str, Any] = {}
        if task_id is not None:
            options["task_id"] = task_id
        if training_step is not None:
            options["training_step"] = training_step
        messages, info = self.env.reset(seed=seed, options=options)
        self._state = ToolState(episode_id=episode_id, step_count=0, task_id=info["task_id"])
        return ToolObservation(messages=messages, info=info)

    def step(self, action: ToolAction, timeout_s: float | None = None, **kwargs: Any) -> ToolObservation:
        """One turn: the completion scored (and, multi-turn, its calls run) by the env."""
        messages, reward, terminated, truncated, info = self.env.step(action.completion)
        self._state.step_count += 1
        return ToolObservation(
            messages=_wire_safe(messages),
            reward=reward,
            done=terminated or truncated,
            terminated=terminated,
            truncated=truncated,
            info=_wire_safe(info),
        )

    @property
    def state(self) -> ToolState:
        return self._state

    def close(self) -> None:
        self.env.close()


class ToolEnvClient(EnvClient[ToolAction, ToolObservation, ToolState]):
    """OpenEnv's client for a served ToolEnv (async; `.sync()` for plain calls)."""

    def _step_payload(self, action: ToolAction) -> dict[str, Any]:
        return {"completion": action.completion}

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[ToolObservation]:
        observation = ToolObservation(**payload["observation"], reward=payload.get("reward"), done=payload["done"])
        return StepResult(observation=observation, reward=payload.get("reward"), done=payload["done"])

    def _parse_state(self, payload: dict[str, Any]) -> ToolState:
        return ToolState(**payload)


def make_app(env_id: str, env_kwargs: dict[str, Any] | None = None, max_sessions: int = 64) -> Any:
    """OpenEnv's FastAPI app serving `env_id` (made with `env_kwargs`) to at most `max_sessions` sessions at once.
    The env is made once here, so a bad id or kwargs fail now rather than at the first session."""
    from openenv.core.env_server.http_server import create_app

    env_kwargs = dict(env_kwargs or {})
    make_tool_env(env_id, **env_kwargs).close()
    json.dumps(env_kwargs)  # they travel to every session as given: plain JSON values
    # A partial of the class: OpenEnv reads SUPPORTS_CONCURRENT_SESSIONS from it instead of making an env to look.
    factory = functools.partial(ToolEnvironment, env_id, env_kwargs)
    return create_app(factory, ToolAction, ToolObservation, env_name=env_id, max_concurrent_envs=max_sessions)
