"""veRL agent loop `toolrl`: ToolEnv episodes inside veRL's multi-turn rollouts (verl 0.9.1).

Rows exported by `python -m toolrl_env.integrations.verl --agent-loop` carry `agent_name="toolrl"` and, in
`extra_info`, the env id, its kwargs and the task id, so veRL's agent-loop workers run each row as one episode:

    actor_rollout_ref.rollout.mode=async actor_rollout_ref.rollout.agent.agent_loop_config_path=toolrl_agent.yaml

with `toolrl_agent.yaml` holding `- {name: toolrl, _target_: toolrl_env.integrations.verl_agent_loop.ToolEnvAgentLoop}`
(the registry of a Ray worker only knows loops it has imported; the file makes it import this one).

An episode is one token sequence, as in our own rollouts (agents/rollout.py): the env's first observation rendered
with the tokenizer's chat template is the prompt; each model turn comes from veRL's server manager (response mask 1,
its log-probs); what the env adds to the dialogue after it (`<obs>` tool results, the next user message) follows as
plain text (mask 0, log-prob 0). The env scores every turn: `reward_score` is the episode's return (the sum, as our
learner trains on) and `extra_fields["turn_scores"]` the per-turn rewards. The episode ends when the env ends it or
the response budget (`rollout.response_length`) is spent. Envs are pooled per (id, kwargs) in each worker, since
veRL makes a loop object per trajectory. veRL passes no training step to agent loops: a scheduled reward preset
reads `extra_info["step"]` (0 when absent), so it stays at its start unless your data sets it.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from uuid import uuid4

from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopMetrics, AgentLoopOutput, register

from toolrl_env.env import ToolEnv
from toolrl_env.integrations.verl import AGENT_NAME
from toolrl_env.prompt import added_text
from toolrl_env.registry import make_tool_env

_POOL: dict[tuple[str, str], list[ToolEnv]] = {}


async def _acquire(env_id: str, env_kwargs: str) -> ToolEnv:
    """A free env of this id and kwargs (JSON), made (in a thread) when none is free."""
    free = _POOL.setdefault((env_id, env_kwargs), [])
    if free:  # taken on the event loop's thread, so two trajectories never take the same env
        return free.pop()
    return await asyncio.to_thread(make_tool_env, env_id, **json.loads(env_kwargs))


def _release(env_id: str, env_kwargs: str, env: ToolEnv) -> None:
    _POOL[(env_id, env_kwargs)].append(env)


@register(AGENT_NAME)
class ToolEnvAgentLoop(AgentLoopBase):
    """One ToolEnv episode per trajectory, generated through veRL's server manager."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.response_length = int(self.rollout_config.response_length)

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        """The episode of the row's `extra_info` (`env_id`, `env_kwargs` as JSON, `task_id`, optional `step`)."""
        extra = kwargs.get("extra_info") or {}
        missing = [key for key in ("env_id", "task_id") if not extra.get(key)]
        if missing:
            raise ValueError(
                f"row extra_info lacks {missing}: export the rows with `python -m toolrl_env.integrations.verl`"
            )
        env_id, env_kwargs = str(extra["env_id"]), str(extra.get("env_kwargs") or "{}")
        env = await _acquire(env_id, env_kwargs)
        try:
            return await self._episode(env, str(extra["task_id"]), int(extra.get("step") or 0), sampling_params)
        finally:
            _release(env_id, env_kwargs, env)

    async def _episode(self, env: ToolEnv, task_id: str, step: int, sampling_params: dict[str, Any]) -> AgentLoopOutput:
        tokenizer: Any = self.tokenizer  # a transformers tokenizer (veRL annotates it as the AutoTokenizer factory)
        messages, _ = await asyncio.to_thread(env.reset, options={"task_id": task_id, "training_step": step})
        rendered = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False, **self.apply_chat_template_kwargs
        )
        prompt_ids = list(tokenizer(rendered, add_special_tokens=False).input_ids)
        response_ids: list[int] = []
        mask: list[int] = []
        logprobs: list[float] = []
        turn_scores: list[float] = []
        user_text = messages[-1]["content"]
        request_id = uuid4().hex  # one id per trajectory: the server keeps its prefix cache
        timing = {"generate_sequences": 0.0, "tool_calls": 0.0}
        while len(mask) < self.response_length:
            start = time.perf_counter()
            output = await self.server_manager.generate(
                request_id=request_id, prompt_ids=prompt_ids + response_ids, sampling_params=sampling_params
            )
            timing["generate_sequences"] += time.perf_counter() - start
            response_ids += output.token_ids
            mask += [1] * len(output.token_ids)
            logprobs += output.log_probs or [0.0] * len(output.token_ids)
            text = tokenizer.decode(output.token_ids, skip_special_tokens=True)
            start = time.perf_counter()
            messages, reward, terminated, truncated, _ = await asyncio.to_thread(env.step, text)
            timing["tool_calls"] += time.perf_counter() - start
            turn_scores.append(float(reward))
            if terminated or truncated:
                break
            added = added_text(user_text, messages[-1]["content"], text)
            user_text = messages[-1]["content"]
            added_ids = list(tokenizer(added, add_special_tokens=False).input_ids)
            response_ids += added_ids
            mask += [0] * len(added_ids)
            logprobs += [0.0] * len(added_ids)
        cut = self.response_length
        return AgentLoopOutput(
            prompt_ids=prompt_ids,
            response_ids=response_ids[:cut],
            response_mask=mask[:cut],
            response_logprobs=logprobs[:cut] if sampling_params.get("logprobs") else None,
            reward_score=sum(turn_scores),
            num_turns=2 * len(turn_scores) + 1,
            metrics=AgentLoopMetrics(generate_sequences=timing["generate_sequences"], tool_calls=timing["tool_calls"]),
            extra_fields={"turn_scores": turn_scores, "tool_rewards": []},
        )
