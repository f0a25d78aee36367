"""Soak: thousands of episodes through gymnasium's vector envs, watching throughput, memory, threads and files.

    nice -n 15 python benchmarks/soak.py [--total-episodes 10000] [--num-envs 4] [--vectorization sync|async]
        [--data-path tests/fixtures/api_bank] [--env ID [--env-kwargs JSON] ...] [--checkpoints 10] [--tracemalloc]
        [--json soak.json]

The episodes are split evenly over four ids, each run through `gymnasium.make_vec` with SAME_STEP autoreset
(a sub-env that ends an episode starts the next at once, so every sub-env always expects a step):
ToolEnv-Calc-v0 (multi-turn, the real calculator), ToolEnv-BFCL-v0 (single-turn, the official AST checker),
ToolEnv-BFCLMultiTurn-v0 (bfcl-eval's backends, the official multi-turn checker) and ToolEnv-APIBank-v0
(multi-turn, the offline APIs; `--data-path` is the fixture folder by default, or ToolRL's files in
../shared/data/toolrl). `--vectorization async` runs each sub-env in its own process; ToolEnv's text spaces
have no shared-memory layout, so the AsyncVectorEnv gets `shared_memory=False`.

A scripted policy plays each episode in one manner, drawn when it starts: the gold throughout (each step's
`current_gold()`, reached with `envs.call`), a mix per step of gold, hostile and random schema-valid calls, or
random calls only until `max_turns` truncates it. Hostile actions are NUL bytes, megabyte strings, nesting
100,000 deep, `9**9**9`, a 5,000-digit number, path traversal, `__import__`, unknown tools, wrong types and
non-strings, plus calls of an offered tool with such values. Values that make a backend compute without bound
(huge exponents, precisions or position ranges) are left out: the soak measures memory over time, not the
sandbox, and a stateful backend's call runs on a thread that no timeout can stop.

Resources are sampled (after a garbage collection and a heap trim, `agents.runtime.memory.release_free_memory`, so
free pages glibc keeps for reuse do not count) before the vector env is made, once it is made, after the
warm-up (the first 10 % of the env's episodes, in which caches, pools and the allocator's arenas fill), at
every further 10 %, at the end, and once it is closed: RSS and its high-water mark (VmRSS, VmHWM from
/proc/self/status), the RSS of child processes (the async workers), threads, open file descriptors, child
processes, and with `--tracemalloc` the traced Python allocations. Growth beyond noise, per env: RSS at the
end more than max(8 MiB, 2 %) above its value after the warm-up (the children's summed RSS: 8 MiB per child),
or any thread, file descriptor or child process more at the end than after the warm-up, or left over once the
env is closed.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import math
import os
import platform
import time
import tracemalloc
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from pydantic import BaseModel, Field, ValidationError, model_validator
from tqdm import tqdm

import toolrl_env  # noqa: F401  (registers the ids)
from agents.runtime.memory import release_free_memory
from toolrl_env.cli import add_argument, add_env_arguments, env_list
from toolrl_env.format import render_turn
from toolrl_env.task import GoldStep
from tools.call import ToolCall
from tools.mock import sample_arguments
from tools.tool import Tool

ROOT = Path(__file__).resolve().parent.parent
ENV_IDS = ("ToolEnv-Calc-v0", "ToolEnv-BFCL-v0", "ToolEnv-BFCLMultiTurn-v0", "ToolEnv-APIBank-v0")
Manner = Literal["gold", "mixed", "calls_only"]
ActionKind = Literal["gold", "hostile", "random"]
# A mixed episode's step: gold, hostile or random calls, with these odds.
MIXED_ODDS: dict[ActionKind, float] = {"gold": 0.4, "hostile": 0.3, "random": 0.3}


def _nested_list(depth: int) -> list[Any]:
    """A list nesting `depth` levels deep."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


_MEGABYTE = "x" * (1 << 20)
_CALL = "<think> hostile </think>\n<tool_call>\n{line}\n</tool_call>"
HOSTILE_ACTIONS: tuple[object, ...] = (
    "",
    "\x00" * 1024,
    _MEGABYTE,
    f"<think> {_MEGABYTE} </think>\n<response> {_MEGABYTE} </response>",
    _CALL.format(line='{"name": "x", "parameters": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    _CALL.format(line='{"name": "calculate", "parameters": {"expression": "9**9**9"}}'),
    _CALL.format(line='{"name": "convert_units", "parameters": {"value": ' + "9" * 5000 + "}}"),
    _CALL.format(line='{"name": "calculate", "parameters": {"expression": "__import__(\'os\').system(\'id\')"}}'),
    _CALL.format(line='{"name": "cat", "parameters": {"file_name": "../../../../etc/passwd"}}'),
    _CALL.format(line='{"name": "cd", "parameters": {"folder": "/"}}'),
    _CALL.format(line='{"name": "__import__", "parameters": {"name": "os"}}'),
    _CALL.format(line='{"name": 7, "parameters": []}'),
    _CALL.format(line='{"name": "calculate", "parameters": "2 + 2"}'),
    _CALL.format(line="{'name': broken"),
    "<think> <tool_call> <tool_call> </think>\n<response>",
    "<think> a </think>\n<tool_call>\n</tool_call>\n<tool_call>\n</tool_call>\n<response> b </response>",
    None,
    12345,
    b"<think> bytes </think>",
    ["<think> a list </think>"],
)
# Argument values for calls of offered tools (which really run in multi-turn mode): hostile to parsers,
# validators and file systems, but never a size or precision that a tool would compute with.
HOSTILE_VALUES: tuple[Any, ...] = (
    "\x00" * 32,
    "../../../../etc/passwd",
    "/etc/passwd",
    "__import__('os').system('id')",
    "9**9**9",
    "A" * 100_000,
    "",
    "'; DROP TABLE users; --",
    None,
    True,
    -1,
    0,
    1e-308,
    float("nan"),
    [],
    {},
    ["../"] * 3,
    {"__class__": "object"},
    _nested_list(60),  # under the parser's depth limit (64), so the call reaches the tool
)


class SoakConfig(BaseModel):
    """What the soak runs and how it judges growth."""

    total_episodes: int = Field(default=10_000, gt=0, description="Episodes in all, split evenly over `env_ids`.")
    env_ids: list[str] = Field(default_factory=lambda: list(ENV_IDS), min_length=1, description="Env ids, in order.")
    extra_kwargs: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Make kwargs per env id, over the soak's own (`env_kwargs`)."
    )
    num_envs: int = Field(default=4, gt=0, description="Sub-envs per vector env.")
    vectorization: Literal["sync", "async"] = Field(
        default="sync", description="SyncVectorEnv (one process) or AsyncVectorEnv (a process per sub-env)."
    )
    data_path: Path = Field(
        default=ROOT / "tests" / "fixtures" / "api_bank",
        description="ToolEnv-APIBank-v0's data_path: a level file or a folder of them.",
    )
    seed: int = Field(default=0, description="Seeds the envs' first reset and the scripted policy.")
    manners: dict[Manner, float] = Field(
        default_factory=lambda: {"gold": 0.4, "mixed": 0.4, "calls_only": 0.2},
        description="Odds of each episode manner: gold throughout, mixed per step, random calls only.",
    )
    warmup_fraction: float = Field(
        default=0.1, gt=0, lt=1, description="Share of each env's episodes before the reference sample."
    )
    checkpoints: int = Field(default=10, gt=0, description="Resource samples per env, evenly over its episodes.")
    rss_noise_mib: float = Field(default=8.0, ge=0, description="RSS growth after the warm-up that is noise, MiB.")
    rss_noise_fraction: float = Field(
        default=0.02, ge=0, description="RSS growth after the warm-up that is noise, as a share of that RSS."
    )
    tracemalloc: bool = Field(default=False, description="Trace Python allocations (several times slower).")

    @model_validator(mode="after")
    def _enough_episodes(self) -> SoakConfig:
        if self.total_episodes < len(self.env_ids):
            raise ValueError(
                f"total_episodes={self.total_episodes} is fewer than the {len(self.env_ids)} env ids; give more"
            )
        if not any(w > 0 for w in self.manners.values()) or any(w < 0 for w in self.manners.values()):
            raise ValueError(f"manners {self.manners} need non-negative odds, at least one positive")
        return self

    def env_kwargs(self, env_id: str) -> dict[str, Any]:
        """The make kwargs of one id: API-Bank reads `data_path` and runs its APIs (multi-turn); `extra_kwargs` go
        on top."""
        own = {"data_path": str(self.data_path), "mode": "multi_turn"} if env_id == "ToolEnv-APIBank-v0" else {}
        return {**own, **self.extra_kwargs.get(env_id, {})}


class ResourceSample(BaseModel):
    """The process's resources at one moment of an env's soak."""

    label: str = Field(description="start (before make), made, warm-up, checkpoint, end (before close), closed.")
    episodes: int = Field(description="Episodes of this env finished so far.")
    seconds: float = Field(description="Seconds since this env's start sample.")
    rss_mib: float = Field(description="VmRSS of this process, MiB.")
    hwm_mib: float = Field(description="VmHWM (peak RSS) of this process, MiB.")
    threads: int = Field(description="Threads of this process.")
    open_fds: int = Field(description="Open file descriptors of this process.")
    children: int = Field(description="Child processes (AsyncVectorEnv workers, tool servers).")
    children_rss_mib: float = Field(description="Sum of the children's VmRSS, MiB.")
    traced_mib: float | None = Field(default=None, description="Python allocations traced now (--tracemalloc), MiB.")


class EnvReport(BaseModel):
    """One env id's soak: what happened, how fast, and whether anything grew."""

    env_id: str = Field(description="The gymnasium id.")
    env_kwargs: dict[str, Any] = Field(description="Its make kwargs.")
    vectorization: str = Field(description="sync or async.")
    num_envs: int = Field(description="Sub-envs.")
    episodes: int = Field(description="Episodes finished.")
    steps: int = Field(description="Env steps taken (sub-env steps, summed).")
    terminated: int = Field(description="Episodes that terminated.")
    truncated: int = Field(description="Episodes truncated at max_turns.")
    actions: dict[str, int] = Field(description="Actions by kind: gold, hostile, random.")
    tool_results: int = Field(description="Tool calls executed (their results came back as <obs>).")
    call_errors: int = Field(description="Calls refused or failed (unknown tool, bad arguments, the tool raised).")
    make_s: float = Field(description="Seconds to make the vector env.")
    run_s: float = Field(description="Seconds from the first reset to the last episode's end, sampling excluded.")
    episodes_per_s: float = Field(description="Episodes per second over run_s.")
    steps_per_s: float = Field(description="Steps per second over run_s.")
    samples: list[ResourceSample] = Field(description="Resource samples, in time order.")
    rss_growth_mib: float = Field(description="RSS at the end minus RSS after the warm-up, MiB.")
    rss_limit_mib: float = Field(description="Largest RSS growth counted as noise, MiB.")
    children_rss_growth_mib: float = Field(description="The same for the children's summed RSS, MiB.")
    traced_growth_mib: float | None = Field(description="Traced allocations at the end minus after the warm-up.")
    top_growth: list[str] = Field(description="With --tracemalloc: the source lines whose allocations grew most.")
    growth: bool = Field(description="True when anything grew beyond noise (see `verdict`).")
    verdict: str = Field(description="The growth figures and the judgement, in words.")


class SoakReport(BaseModel):
    """The whole soak."""

    config: SoakConfig = Field(description="What ran.")
    date: str = Field(description="UTC time of the start, ISO 8601.")
    machine: str = Field(description="CPU, cores, Python and gymnasium versions.")
    envs: list[EnvReport] = Field(description="Per env id.")
    episodes: int = Field(description="Episodes finished, all envs.")
    steps: int = Field(description="Steps, all envs.")
    run_s: float = Field(description="Seconds stepping, all envs (make excluded).")
    episodes_per_s: float = Field(description="Overall episodes per second.")
    steps_per_s: float = Field(description="Overall steps per second.")
    rss_start_mib: float = Field(description="RSS before the first env was made.")
    rss_end_mib: float = Field(description="RSS after the last env was closed.")
    hwm_end_mib: float = Field(description="Peak RSS of the whole run.")
    growth: bool = Field(description="True when any env grew beyond noise.")
    verdict: str = Field(description="One line: growth beyond noise or not, and where.")


# -- resources -----------------------------------------------------------------------------------------------
def _status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS and VmHWM (KiB) and Threads of a process, from /proc; empty once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as f:
            lines = f.readlines()
    except OSError:
        return {}
    fields = {}
    for line in lines:
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            fields[key] = int(value.split()[0])
    return fields


def _children() -> list[int]:
    """Pids of this process's children (the parent pid is the 2nd field after the command's closing ')')."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:  # it ended meanwhile
            continue
        if int(stat.rpartition(")")[2].split()[1]) == me:
            found.append(int(entry))
    return found


def sample(label: str, episodes: int, start: float) -> ResourceSample:
    """The process's resources now, after a garbage collection and a heap trim (so only reachable objects count,
    not free pages the allocator keeps for reuse)."""
    if not os.path.exists("/proc/self/status"):
        raise RuntimeError("the soak reads /proc/self/status and /proc/self/fd: run it on Linux")
    gc.collect()
    release_free_memory()
    status = _status()
    children = _children()
    return ResourceSample(
        label=label,
        episodes=episodes,
        seconds=time.perf_counter() - start,
        rss_mib=status["VmRSS"] / 1024,
        hwm_mib=status["VmHWM"] / 1024,
        threads=status["Threads"],
        open_fds=len(os.listdir("/proc/self/fd")),
        children=len(children),
        children_rss_mib=sum(_status(pid).get("VmRSS", 0) for pid in children) / 1024,
        traced_mib=tracemalloc.get_traced_memory()[0] / 2**20 if tracemalloc.is_tracing() else None,
    )


def _settled(start: ResourceSample, episodes: int, t0: float, wait_s: float = 2.0) -> ResourceSample:
    """The 'closed' sample, taken once stopped worker threads and processes have had up to `wait_s` to end."""
    deadline = time.perf_counter() + wait_s
    while time.perf_counter() < deadline and (
        _status().get("Threads", 0) > start.threads or len(_children()) > start.children
    ):
        time.sleep(0.05)
    return sample("closed", episodes, t0)


def growth_verdict(samples: Sequence[ResourceSample], config: SoakConfig) -> tuple[bool, str, float, float, float]:
    """(grew, verdict, RSS growth, its noise limit, children's RSS growth) from an env's samples.

    Growth beyond noise: RSS at the end above the warm-up's by more than max(rss_noise_mib, rss_noise_fraction x
    that RSS), or the children's summed RSS by more than max(rss_noise_mib per child, the same fraction); any
    thread, file descriptor or child more at the end than after the warm-up; or more of them once closed than
    before the env was made."""
    by_label = {s.label: s for s in samples}  # the last sample of each label
    start, warm, end, closed = by_label["start"], by_label["warm-up"], by_label["end"], by_label["closed"]
    rss_growth = end.rss_mib - warm.rss_mib
    limit = max(config.rss_noise_mib, config.rss_noise_fraction * warm.rss_mib)
    children_growth = end.children_rss_mib - warm.children_rss_mib
    # Each child has an allocator of its own, so each brings its own noise.
    children_limit = max(config.rss_noise_mib * max(1, end.children), config.rss_noise_fraction * warm.children_rss_mib)
    counts = {
        "threads": (end.threads - warm.threads, closed.threads - start.threads),
        "fds": (end.open_fds - warm.open_fds, closed.open_fds - start.open_fds),
        "children": (end.children - warm.children, closed.children - start.children),
    }
    grew = rss_growth > limit or children_growth > children_limit or any(max(c) > 0 for c in counts.values())
    parts = [f"RSS {rss_growth:+.1f} MiB after warm-up (noise limit {limit:.1f})"]
    if warm.children or end.children:
        parts.append(f"children's RSS {children_growth:+.1f} MiB (limit {children_limit:.1f})")
    parts += [f"{name} {during:+d} (after close {left:+d})" for name, (during, left) in counts.items()]
    verdict = ("GROWTH beyond noise: " if grew else "no growth beyond noise: ") + ", ".join(parts)
    return grew, verdict, rss_growth, limit, children_growth


# -- the scripted policy ---------------------------------------------------------------------------------------
def random_calls(tools: Sequence[Tool], rng: np.random.Generator) -> str:
    """One or two schema-valid calls of offered tools with random arguments."""
    picks = rng.integers(len(tools), size=int(rng.integers(1, 3)))
    calls = [ToolCall(name=tools[i].name, parameters=sample_arguments(tools[i], rng)) for i in picks]
    return render_turn(think="random calls", tool_calls=calls)


def hostile_action(tools: Sequence[Tool], rng: np.random.Generator) -> object:
    """A fixed hostile action, or (half the time, when tools are offered) an offered tool called with hostile
    values for its parameters and an undeclared one."""
    if not tools or rng.random() < 0.5:
        return HOSTILE_ACTIONS[int(rng.integers(len(HOSTILE_ACTIONS)))]
    tool = tools[int(rng.integers(len(tools)))]
    properties = tool.parameters.get("properties")
    names = [*(properties if isinstance(properties, Mapping) else ()), "__class__"]
    parameters = {name: HOSTILE_VALUES[int(rng.integers(len(HOSTILE_VALUES)))] for name in names}
    return render_turn(think="hostile values", tool_calls=[ToolCall(name=tool.name, parameters=parameters)])


class ScriptedPolicy:
    """Plays every sub-env of a vector env; each episode's manner is drawn when it starts."""

    def __init__(self, num_envs: int, manners: Mapping[Manner, float], rng: np.random.Generator) -> None:
        self.rng = rng
        self._manners: list[Manner] = list(manners)
        odds = np.array([manners[m] for m in self._manners], dtype=float)
        self._odds = odds / odds.sum()
        self.manner = [self._draw() for _ in range(num_envs)]
        self.counts: Counter[str] = Counter()

    def _draw(self) -> Manner:
        return self._manners[int(self.rng.choice(len(self._manners), p=self._odds))]

    def new_episode(self, index: int) -> None:
        self.manner[index] = self._draw()

    def kinds(self) -> list[ActionKind]:
        """The kind of each sub-env's next action."""
        kinds: list[ActionKind] = []
        for manner in self.manner:
            if manner == "mixed":
                names = list(MIXED_ODDS)
                kinds.append(names[int(self.rng.choice(len(names), p=list(MIXED_ODDS.values())))])
            else:
                kinds.append("gold" if manner == "gold" else "random")
        return kinds

    def act(
        self, kinds: Sequence[ActionKind], golds: Sequence[GoldStep | None], tools: Sequence[Sequence[Tool]]
    ) -> tuple[object, ...]:
        actions: list[object] = []
        for kind, gold, offered in zip(kinds, golds, tools, strict=True):
            if kind == "random" and not offered:
                kind = "hostile"  # nothing to call
            self.counts[kind] += 1
            if kind == "gold":
                assert gold is not None
                actions.append(gold.text)
            elif kind == "random":
                actions.append(random_calls(offered, self.rng))
            else:
                actions.append(hostile_action(offered, self.rng))
        return tuple(actions)


def _info_item(infos: Mapping[str, Any], key: str, index: int) -> Any:
    """Sub-env `index`'s value of `key` in a vector env's batched info, or None when it has none."""
    mask = infos.get(f"_{key}")
    return infos[key][index] if mask is not None and mask[index] else None


# -- the soak ----------------------------------------------------------------------------------------------
def make_vector_env(env_id: str, config: SoakConfig) -> VectorEnv:
    """`gymnasium.make_vec` of one id with SAME_STEP autoreset (and no shared memory for async workers)."""
    vector_kwargs: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP}
    if config.vectorization == "async":
        vector_kwargs["shared_memory"] = False  # the text spaces have no shared-memory layout
    return gym.make_vec(
        env_id,
        num_envs=config.num_envs,
        vectorization_mode=config.vectorization,
        vector_kwargs=vector_kwargs,
        **config.env_kwargs(env_id),
    )


def soak_env(env_id: str, episodes: int, config: SoakConfig, seed: int, progress: tqdm[Any] | None = None) -> EnvReport:
    """Run `episodes` episodes of one id through a vector env and report what happened and what grew."""
    t0 = time.perf_counter()
    samples = [sample("start", 0, t0)]
    warm_snapshot: tracemalloc.Snapshot | None = None
    made_at = time.perf_counter()
    envs = make_vector_env(env_id, config)
    make_s = time.perf_counter() - made_at
    samples.append(sample("made", 0, t0))
    # What exists now (tasks, tools, caches) cannot be garbage yet; frozen, the collections before each sample
    # below skip it. Whatever the episodes allocate is still collected, and still counted when kept.
    gc.freeze()
    n = config.num_envs
    policy = ScriptedPolicy(n, config.manners, np.random.default_rng(seed))
    warmup = max(1, math.ceil(config.warmup_fraction * episodes))
    marks = sorted({warmup, *(math.ceil(k * episodes / config.checkpoints) for k in range(1, config.checkpoints))})
    marks = [m for m in marks if m >= warmup and m < episodes]
    done = steps = tool_results = call_errors = 0
    sampling_s = 0.0  # resource samples (a garbage collection each) are not the envs' time
    ends: Counter[str] = Counter()
    run_start = time.perf_counter()
    _, infos = envs.reset(seed=seed)
    task_ids = list(infos["task_id"])
    tools: list[Sequence[Tool]] = list(envs.call("offered_tools"))
    while done < episodes:
        kinds = policy.kinds()
        golds = envs.call("current_gold") if "gold" in kinds else (None,) * n
        _, _, terminated, truncated, infos = envs.step(policy.act(kinds, golds, tools))
        steps += n
        finished = 0
        for i in range(n):
            ended = bool(terminated[i] or truncated[i])
            step_info = infos["final_info"] if ended else infos
            tool_results += len(_info_item(step_info, "tool_results", i) or ())
            call_errors += len(_info_item(step_info, "call_errors", i) or ())
            if ended:
                ends["terminated" if terminated[i] else "truncated"] += 1
                policy.new_episode(i)
                finished += 1
        if list(infos["task_id"]) != task_ids:
            task_ids = list(infos["task_id"])
            tools = list(envs.call("offered_tools"))
        if progress is not None:
            progress.update(min(finished, episodes - done))
        done += finished
        while marks and done >= marks[0]:
            paused = time.perf_counter()
            label = "warm-up" if marks.pop(0) == warmup else "checkpoint"
            if tracemalloc.is_tracing() and label == "warm-up":
                # Taken first, so that the memory the snapshot holds is in every RSS sample from here on.
                warm_snapshot = tracemalloc.take_snapshot()
            samples.append(sample(label, done, t0))
            if progress is not None:
                progress.set_postfix_str(f"{env_id} RSS {samples[-1].rss_mib:.0f} MiB")
            sampling_s += time.perf_counter() - paused
    run_s = time.perf_counter() - run_start - sampling_s
    if warmup >= episodes:  # so few episodes that the warm-up is the whole run
        samples.append(sample("warm-up", done, t0))
    samples.append(sample("end", done, t0))
    top_growth: list[str] = []
    if warm_snapshot is not None:
        diff = tracemalloc.take_snapshot().compare_to(warm_snapshot, "lineno")
        top_growth = [str(stat) for stat in diff[:5]]
        del warm_snapshot
    envs.close()
    del envs
    gc.unfreeze()
    samples.append(_settled(samples[0], done, t0))
    grew, verdict, rss_growth, limit, children_growth = growth_verdict(samples, config)
    warm, end = next(s for s in samples if s.label == "warm-up"), samples[-2]
    return EnvReport(
        env_id=env_id,
        env_kwargs=config.env_kwargs(env_id),
        vectorization=config.vectorization,
        num_envs=n,
        episodes=done,
        steps=steps,
        terminated=ends["terminated"],
        truncated=ends["truncated"],
        actions={kind: policy.counts[kind] for kind in ("gold", "hostile", "random")},
        tool_results=tool_results,
        call_errors=call_errors,
        make_s=make_s,
        run_s=run_s,
        episodes_per_s=done / run_s,
        steps_per_s=steps / run_s,
        samples=samples,
        rss_growth_mib=rss_growth,
        rss_limit_mib=limit,
        children_rss_growth_mib=children_growth,
        traced_growth_mib=_difference(end.traced_mib, warm.traced_mib),
        top_growth=top_growth,
        growth=grew,
        verdict=verdict,
    )


def _difference(end: float | None, start: float | None) -> float | None:
    return None if end is None or start is None else end - start


def run_soak(config: SoakConfig, progress: bool = False) -> SoakReport:
    """The soak over every env id of `config`, in order, its episodes split evenly among them."""
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    share, extra = divmod(config.total_episodes, len(config.env_ids))
    if config.tracemalloc:
        tracemalloc.start()
    first = sample("start", 0, time.perf_counter())
    reports = []
    with tqdm(total=config.total_episodes, unit="ep", disable=not progress, dynamic_ncols=True) as bar:
        for index, env_id in enumerate(config.env_ids):
            episodes = share + (index < extra)
            reports.append(soak_env(env_id, episodes, config, config.seed + index, bar))
    last = sample("end", 0, time.perf_counter())
    if config.tracemalloc:
        tracemalloc.stop()
    episodes, steps = sum(r.episodes for r in reports), sum(r.steps for r in reports)
    run_s = sum(r.run_s for r in reports)
    grown = [r.env_id for r in reports if r.growth]
    return SoakReport(
        config=config,
        date=date,
        machine=machine(),
        envs=reports,
        episodes=episodes,
        steps=steps,
        run_s=run_s,
        episodes_per_s=episodes / run_s,
        steps_per_s=steps / run_s,
        rss_start_mib=first.rss_mib,
        rss_end_mib=last.rss_mib,
        hwm_end_mib=last.hwm_mib,
        growth=bool(grown),
        verdict=f"GROWTH beyond noise in {', '.join(grown)}" if grown else "no growth beyond noise in any env",
    )


def machine() -> str:
    """CPU model, cores, Python and gymnasium versions."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, gymnasium {gym.__version__}"


# -- the script ----------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--total-episodes", type=int, default=10_000, help="Episodes in all (default 10,000).")
    add_env_arguments(parser, choices=ENV_IDS)
    parser.add_argument("--num-envs", type=int, default=4, help="Sub-envs per vector env (default 4).")
    parser.add_argument(
        "--vectorization", choices=("sync", "async"), default="sync", help="One process, or one per sub-env."
    )
    add_argument(parser, "data_path", "Here: API-Bank's level files (default: tests/fixtures/api_bank).", type=Path)
    add_argument(parser, "seed", type=int, default=0)
    parser.add_argument("--checkpoints", type=int, default=10, help="Resource samples per env (default 10).")
    parser.add_argument("--tracemalloc", action="store_true", help="Trace Python allocations (slower).")
    parser.add_argument("--json", type=Path, help="Write the report here as JSON.")
    parser.add_argument("--no-progress", action="store_true", help="No progress bar.")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> tuple[SoakConfig, Path | None, bool]:
    """Flags over SoakConfig's defaults; also the --json path and whether to show the progress bar."""
    parser = build_parser()
    args = parser.parse_args(argv)
    fields: dict[str, Any] = {
        "total_episodes": args.total_episodes,
        "num_envs": args.num_envs,
        "vectorization": args.vectorization,
        "seed": args.seed,
        "checkpoints": args.checkpoints,
        "tracemalloc": args.tracemalloc,
    }
    envs = env_list(args)
    if envs:
        fields["env_ids"] = [env_id for env_id, _ in envs]
        fields["extra_kwargs"] = {env_id: kwargs for env_id, kwargs in envs if kwargs}
    if args.data_path is not None:
        fields["data_path"] = args.data_path
    try:
        return SoakConfig(**fields), args.json, not args.no_progress
    except ValidationError as exc:
        parser.error(str(exc))


def print_report(report: SoakReport) -> None:
    """The report as Markdown tables, as RESULTS.md takes them."""
    print(f"{report.date}: {report.machine}; {report.config.vectorization}, {report.config.num_envs} sub-envs")
    print("| env | episodes | steps | terminated / truncated | gold / hostile / random actions | calls run / refused "
          "| episodes/s | steps/s |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in report.envs:
        actions = " / ".join(f"{r.actions[k]:,}" for k in ("gold", "hostile", "random"))
        print(
            f"| {r.env_id} | {r.episodes:,} | {r.steps:,} | {r.terminated:,} / {r.truncated:,} | {actions} "
            f"| {r.tool_results:,} / {r.call_errors:,} | {r.episodes_per_s:,.0f} | {r.steps_per_s:,.0f} |"
        )
    print(f"| **all** | {report.episodes:,} | {report.steps:,} | | | | {report.episodes_per_s:,.0f} "
          f"| {report.steps_per_s:,.0f} |")  # fmt: skip
    print()
    print("| env | RSS MiB: start → made → warm-up → end → closed | peak | threads | fds | children | verdict |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in report.envs:
        by = {s.label: s for s in r.samples}
        rss = " → ".join(f"{by[k].rss_mib:.1f}" for k in ("start", "made", "warm-up", "end", "closed"))
        counts = [" → ".join(str(getattr(by[k], f)) for k in ("start", "warm-up", "end", "closed"))
                  for f in ("threads", "open_fds", "children")]  # fmt: skip
        print(f"| {r.env_id} | {rss} | {by['end'].hwm_mib:.1f} | {' | '.join(counts)} | {r.verdict} |")
    print()
    for r in report.envs:
        marks = [s for s in r.samples if s.label in ("warm-up", "checkpoint", "end")]
        curve = ", ".join(f"{s.episodes}: {s.rss_mib:.1f}" for s in marks)
        print(f"{r.env_id} RSS (MiB) by episode: {curve}")
        if r.traced_growth_mib is not None:
            print(f"  traced Python allocations {r.traced_growth_mib:+.2f} MiB after warm-up; most grown:")
            for line in r.top_growth:
                print(f"    {line}")
    print(f"\nRSS {report.rss_start_mib:.1f} MiB at start, {report.rss_end_mib:.1f} at the end, peak "
          f"{report.hwm_end_mib:.1f}; {report.verdict}")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> SoakReport:
    config, json_path, progress = parse_args(argv)
    report = run_soak(config, progress=progress)
    print_report(report)
    if json_path is not None:
        json_path.write_text(report.model_dump_json(indent=2))
    return report


if __name__ == "__main__":
    main()
