"""ToolEnv: tool-integrated reasoning as a Gymnasium environment."""

from __future__ import annotations

import copy
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Literal

import gymnasium as gym
from pydantic import BaseModel, ConfigDict, Field

from toolrl_env.format import ParsedTurn, parse, render_observation, render_user
from toolrl_env.prompt import HISTORY_HEADER, join_records, render_system
from toolrl_env.rewards import RewardBreakdown, RewardConfig, compute_score, resolve_config
from toolrl_env.spaces import Conversation, TIRAction
from toolrl_env.task import GoldStep, Task
from tools.call import ToolCall, ToolResult
from tools.suite import ToolSuite
from tools.tool import Tool


class ToolEnvConfig(BaseModel):
    """Settings of a ToolEnv; `gymnasium.make(id, **fields)` sets them."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    mode: Literal["single_turn", "multi_turn"] = Field(
        default="single_turn",
        description="single_turn: one scored step per episode, nothing executed (ToolRL's training). "
        "multi_turn: calls are executed and answered with <obs>, every step is scored against its gold.",
    )
    reward: str | RewardConfig = Field(default="default", description="A reward preset name or a RewardConfig.")
    max_turns: int = Field(
        default=8, gt=0, description="Assistant steps after which a multi-turn episode is truncated."
    )
    max_action_chars: int = Field(default=100_000, gt=0, description="Longest completion the action space holds.")
    max_calls: int = Field(
        default=128,
        gt=0,
        description="Calls of one step that are checked (single_turn) or run (multi_turn); any more are reported "
        "in call_errors and not run, so one completion's work stays bounded (100,000 call lines took seconds).",
    )
    training_step: int = Field(default=0, ge=0, description="Learner step for scheduled rewards at start.")


class StepRecord(BaseModel):
    """What happened at one step of an episode; episode metrics are computed from these."""

    turn: int = Field(description="Index of the user turn this step answered.")
    action: str = Field(description="The completion, stripped.")
    parsed: ParsedTurn = Field(description="The completion split into its parts.")
    gold: GoldStep = Field(description="The gold it was scored against.")
    reward: RewardBreakdown = Field(description="Its reward, per component.")
    results: list[ToolResult] = Field(default_factory=list, description="Results of the calls it made.")


EpisodeMetrics = Callable[[Task, Sequence[StepRecord]], dict[str, Any]]
# Given the task, the step's gold and the parsed completion, the gold to score against (BFCL uses it to
# score any value its checker accepts as correct; the default is the gold itself).
GoldAligner = Callable[[Task, GoldStep, ParsedTurn], GoldStep]


def _same_calls(predicted: Sequence[ToolCall], gold: Sequence[ToolCall]) -> bool:
    """The same calls in any order (values compared with Python's ==, as the reward does)."""
    remaining = [(c.name, c.parameters) for c in gold]
    for call in predicted:
        try:
            remaining.remove((call.name, call.parameters))
        except ValueError:
            return False
    return not remaining


# Ends a history cut at the observation space's length.
_CUT = " [... cut: the conversation reached the length limit of the observation space]"
# System prompts kept rendered per env (the oldest goes first): a group's episodes share one.
_SYSTEMS_KEPT = 64
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def answer_matches(response: str | None, answer: str) -> bool:
    """True if the response states the answer: the same text after normalising case and spacing, or,
    for a numeric answer, the last number in the response equal to it within 1e-4 relative."""
    if response is None:
        return False
    if " ".join(response.lower().split()).strip(" .") == " ".join(answer.lower().split()).strip(" ."):
        return True
    numbers = _NUMBER.findall(response.replace(",", ""))
    try:
        return bool(numbers) and math.isclose(float(numbers[-1]), float(answer), rel_tol=1e-4, abs_tol=1e-9)
    except ValueError:
        return False


def tool_call_metrics(task: Task, steps: Sequence[StepRecord]) -> dict[str, Any]:
    """Default episode metrics: exact calls, format, answer, and tool usage."""
    scored = [s for s in steps if s.gold.calls or s.gold.answer is not None]
    answered = [s for s in steps if s.gold.answer is not None]
    results = [r for s in steps for r in s.results]
    metrics: dict[str, Any] = {
        "exact_match": bool(scored) and all(_same_calls(s.parsed.tool_calls, s.gold.calls) for s in scored),
        "format_ok": sum(s.parsed.format_ok for s in steps) / max(len(steps), 1),
        "tool_calls": sum(len(s.parsed.tool_calls) for s in steps),
        "tool_errors": sum(not r.ok for r in results),
        "steps": len(steps),
    }
    if answered:
        metrics["answer_match"] = answer_matches(answered[-1].parsed.response, answered[-1].gold.answer or "")
    return metrics


class ToolEnv(gym.Env[list[dict[str, str]], str]):
    """Tool-integrated reasoning (TIR) as an MDP, scored with ToolRL's reward.

    ## Description
    Each episode is one `Task`: tools offered, a dialogue so far, and user turns with gold assistant steps.
    The policy answers in the TIR format (`<think>`, then `<tool_call>` lines and/or `<response>`).

    ## Action Space
    `TIRAction`: the completion for one assistant step, any string up to `max_action_chars`.

    ## Observation Space
    `Conversation`: `[{"role": "system", ...}, {"role": "user", ...}]`, ToolRL's layout: the system prompt
    lists the tools; the user message holds the "**Dialogue Records History**" (`<user>`, assistant turns,
    `<obs>` tool results). Render it with the policy's chat template.

    ## Rewards
    Every step: ToolRL's reward (format + correctness [+ length]) of the completion against that step's gold,
    at the training step set by `set_training_step` or `reset(options={"training_step": n})`.

    ## Starting State
    `reset(seed=…, options={"task_id": …})` picks that task, or a task drawn with the env's seeded RNG.

    ## Episode End
    single_turn: after one step. multi_turn: a step without a call ends the user turn; the episode
    terminates after the last user turn and is truncated after `max_turns` steps, or when the conversation
    outgrows the observation space (a megabyte completion or tool result: the history is cut there).

    ## Info
    `task_id`, `turn`, `reward_breakdown`, `parsed` (with `errors` explaining a bad format),
    `tool_results`, `call_errors` (unknown tools, invalid arguments, failed calls), and `metrics`
    (empty until the episode ends).
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 4}  # noqa: RUF012 (as gymnasium.Env declares it)

    def __init__(
        self,
        tasks: Sequence[Task],
        suite: ToolSuite | None = None,
        metrics: EpisodeMetrics = tool_call_metrics,
        align_gold: GoldAligner | None = None,
        render_mode: str | None = None,
        **config: Any,
    ):
        if not tasks:
            raise ValueError("ToolEnv needs at least one task")
        self.config = ToolEnvConfig(**config)
        self.reward_config = resolve_config(self.config.reward)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unknown render_mode {render_mode!r}; supported: {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.tasks = list(tasks)
        self._by_id = {t.id: i for i, t in enumerate(self.tasks)}
        if len(self._by_id) != len(self.tasks):
            dupes = [k for k, n in Counter(t.id for t in self.tasks).items() if n > 1]
            raise ValueError(f"duplicate task ids: {dupes[:5]}")
        self.suite = suite
        self.metrics_fn = metrics
        self.align_gold = align_gold
        self.training_step = self.config.training_step
        known: dict[str, Tool] = {t.name: t for t in (suite.tools if suite else [])}
        for task in self.tasks:
            known.update((t.name, t) for t in task.tools)
        self.action_space = TIRAction(list(known.values()), max_length=self.config.max_action_chars)
        observation_space = Conversation(max_messages=2)
        self.observation_space = observation_space
        self._history_limit = observation_space.max_length - len(HISTORY_HEADER)  # what `_append` keeps
        self._systems: dict[str, str] = {}
        self._task: Task | None = None
        self._episode_suite: ToolSuite | None = None

    def task(self, task_id: str) -> Task:
        """The task with this id (KeyError naming the count when there is none)."""
        if task_id not in self._by_id:
            raise KeyError(f"unknown task_id {task_id!r}; this env has {len(self.tasks)} tasks")
        return self.tasks[self._by_id[task_id]]

    def current_gold(self) -> GoldStep:
        """The gold of the step the env expects next (for demonstrations and expert policies)."""
        if self._task is None or self._done:
            raise RuntimeError("no step is expected: call reset() first, or the episode has ended")
        golds = self._task.turns[self._turn].steps
        return golds[min(self._turn_step, len(golds) - 1)]

    # -- the learner's step, for scheduled rewards --------------------------------------------------------
    def set_training_step(self, step: int) -> None:
        """Set the learner's step that scheduled rewards read (reach it through vector envs with `call`)."""
        if step < 0:
            raise ValueError(f"training step must be >= 0, got {step}")
        self.training_step = step

    def score(self, action: str) -> RewardBreakdown:
        """The reward `step(action)` would give now, without taking the step or running any tool."""
        return self._score(action)[2]

    def execute(self, call: ToolCall) -> ToolResult:
        """Run one call of the step to come, now, in the episode's suite (multi_turn), for trainers that run each
        call as the model makes it (TRL). `step` then takes this result for the same call rather than run it again."""
        if self._task is None or self._done:
            raise RuntimeError("no step is expected: call reset() first, or the episode has ended")
        if self.config.mode != "multi_turn":
            raise RuntimeError("execute() runs calls only in multi_turn mode; single_turn runs nothing")
        result = self._execute(call)
        self._ran.append((call, result))
        return result

    def offered_tools(self) -> list[Tool]:
        """The tools offered in the current episode: the task's own, else the suite's."""
        if self._task is None:
            raise RuntimeError("no episode: call reset() before offered_tools()")
        return self._offered(self._task)

    # -- MDP -------------------------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[list[dict[str, str]], dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        if "training_step" in options:
            self.set_training_step(int(options["training_step"]))
        if "task_id" in options:
            task = self.task(options["task_id"])
        else:
            task = self.tasks[int(self.np_random.integers(len(self.tasks)))]
        self._task = task
        self._turn = 0
        self._turn_step = 0
        self._steps: list[StepRecord] = []
        self._ran: list[tuple[ToolCall, ToolResult]] = []
        self._done = False
        self._system = self._system_prompt(task)
        self._history = task.history
        self._start_turn()
        self._episode_suite = self._suite_for(task) if self.config.mode == "multi_turn" else None
        if self._episode_suite is not None:
            self._episode_suite.reset(seed=int(self.np_random.integers(2**31)), options=task.suite_options)
        return self._observation(), {"task_id": task.id, "turn": 0}

    def step(self, action: str) -> tuple[list[dict[str, str]], float, bool, bool, dict[str, Any]]:
        if self._task is None or self._done:
            raise RuntimeError("call reset() before step(): the episode has not started or has ended")
        task = self._task
        text = action.strip() if isinstance(action, str) else ""
        parsed, gold, reward = self._score(action)
        results: list[ToolResult] = []
        turn, terminated = self._turn, False
        calls = parsed.tool_calls[: self.config.max_calls]
        skipped = len(parsed.tool_calls) - len(calls)
        over = [f"{skipped:,} calls past the first {len(calls)} were not run (max_calls)"] if skipped else []
        if self.config.mode == "single_turn":
            terminated = True
            call_errors = [e for e in map(self._call_error, calls) if e is not None] + over
        else:
            self._append(text)
            if parsed.tool_calls:
                results = [self._already_ran(call) or self._execute(call) for call in calls]
                self._append(render_observation(results), gap="\n")
                self._turn_step += 1
            else:
                self._turn += 1
                self._turn_step = 0
                terminated = self._turn >= len(task.turns)
                if not terminated:
                    self._start_turn()
            call_errors = [str(r.content["error"]) for r in results if not r.ok] + over
        self._ran.clear()  # what `execute` ran for this step and it did not make is not another step's
        self._steps.append(StepRecord(turn=turn, action=text, parsed=parsed, gold=gold, reward=reward, results=results))
        # A history cut at the observation space's length (see `_append`) ends the episode too: what follows
        # could no longer be shown.
        truncated = not terminated and (len(self._steps) >= self.config.max_turns or self._history.endswith(_CUT))
        self._done = terminated or truncated
        info = {
            "task_id": task.id,
            "turn": turn,
            "reward_breakdown": reward.model_dump(),
            "parsed": parsed.model_dump(),
            "tool_results": [r.model_dump() for r in results],
            "call_errors": call_errors,
            "metrics": self.metrics_fn(task, self._steps) if self._done else {},
        }
        return self._observation(), reward.total, terminated, truncated, info

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self._task is None:
            return None
        return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in self._observation())

    def close(self) -> None:
        if self._episode_suite is not None:
            self._episode_suite.close()
        if self.suite is not None:
            self.suite.close()

    # -- snapshots -------------------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """A deep copy of the episode state (tool-suite state and RNG included), for `set_state`."""
        if self._task is None:
            raise RuntimeError("call reset() before get_state()")
        return copy.deepcopy(
            {
                "task_id": self._task.id,
                "turn": self._turn,
                "turn_step": self._turn_step,
                "steps": self._steps,
                "ran": self._ran,
                "done": self._done,
                "system": self._system,
                "history": self._history,
                "training_step": self.training_step,
                "rng": self.np_random.bit_generator.state,
                "suite": self._episode_suite.get_state() if self._episode_suite else None,
            }
        )

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a state from `get_state`, so several envs can continue one episode differently."""
        state = copy.deepcopy(state)
        self._task = self.tasks[self._by_id[state["task_id"]]]
        self._turn, self._turn_step, self._steps = state["turn"], state["turn_step"], state["steps"]
        self._ran = state["ran"]
        self._done, self._system, self._history = state["done"], state["system"], state["history"]
        self.training_step = state["training_step"]
        self.np_random.bit_generator.state = state["rng"]
        self._episode_suite = self._suite_for(self._task) if self.config.mode == "multi_turn" else None
        if self._episode_suite is not None:
            self._episode_suite.set_state(state["suite"])

    # -- helpers ---------------------------------------------------------------------------------------
    def _score(self, action: str) -> tuple[ParsedTurn, GoldStep, RewardBreakdown]:
        """The parsed action, the gold it is scored against, and its reward at the current step."""
        gold = self.current_gold()  # raises before reset() and after the episode's end
        assert self._task is not None
        text = action.strip() if isinstance(action, str) else ""
        parsed = parse(action)
        if self.align_gold is not None:
            gold = self.align_gold(self._task, gold, parsed)
        return parsed, gold, compute_score(text, gold.text or "", self.training_step, self.reward_config)

    def _system_prompt(self, task: Task) -> str:
        if task.system is not None:
            return task.system
        system = self._systems.get(task.id)
        if system is None:
            if len(self._systems) >= _SYSTEMS_KEPT:  # bounded, so a long run over many tasks stays flat
                del self._systems[next(iter(self._systems))]
            system = self._systems[task.id] = render_system(self._offered(task))
        return system

    def _offered(self, task: Task) -> list[Tool]:
        return task.tools or (self.suite.tools if self.suite else [])

    def _suite_for(self, task: Task) -> ToolSuite:
        """The env's suite, or a schema-mock suite of the task's own tools."""
        if self.suite is not None:
            return self.suite
        if self._episode_suite is not None and self._episode_suite.name == task.id:
            return self._episode_suite
        return ToolSuite(task.id, task.tools)

    def _offered_tool(self, call: ToolCall) -> Tool | str:
        """The offered tool a call names, or why there is none."""
        assert self._task is not None
        offered = self._offered(self._task)
        tool = next((t for t in offered if t.name == call.name), None)
        if tool is None:
            return f"unknown tool {call.name!r}; offered: {', '.join(t.name for t in offered) or 'none'}"
        return tool

    def _call_error(self, call: ToolCall) -> str | None:
        """Why a call could not run (unknown tool, invalid arguments), without running it."""
        tool = self._offered_tool(call)
        return tool if isinstance(tool, str) else tool.validate_arguments(call.parameters)

    def _execute(self, call: ToolCall) -> ToolResult:
        assert self._episode_suite is not None
        tool = self._offered_tool(call)
        if isinstance(tool, str):
            return ToolResult(name=call.name, ok=False, content={"error": tool})
        return self._episode_suite.call(call)  # validates the arguments itself

    def _already_ran(self, call: ToolCall) -> ToolResult | None:
        """The result of this call if `execute` ran it for this step (taken, so it serves once), else None."""
        for i, (ran, result) in enumerate(self._ran):
            if ran.name == call.name and ran.parameters == call.parameters:
                del self._ran[i]
                return result
        return None

    def _start_turn(self) -> None:
        assert self._task is not None
        user = self._task.turns[self._turn].user
        if user is not None:
            self._append(render_user(user))

    def _append(self, record: str, gap: str = "\n\n") -> None:
        """Add a record to the dialogue history, cut (ending with `_CUT`, which truncates the episode) where the
        user message would outgrow the observation space."""
        history = join_records(self._history, record, gap)
        if len(history) > self._history_limit:
            room = self._history_limit - len(_CUT)
            history = history[:room] + _CUT if len(self._history) <= room else self._history
        self._history = history

    def _observation(self) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": self._system},
            {"role": "user", "content": HISTORY_HEADER + self._history},
        ]
