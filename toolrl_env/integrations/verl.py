"""veRL adapter: ToolRL's reward as a veRL custom reward function, and ToolEnv tasks as veRL's RL parquet.

    python -m toolrl_env.integrations.verl --env ToolEnv-Calc-v0 --env-kwargs '{"split": "train"}' calc_train.parquet
    python -m verl.trainer.main_ppo data.train_files=calc_train.parquet ... \\
        custom_reward_function.path=<this file> custom_reward_function.name=compute_score

`export_parquet` writes veRL's RL dataset layout, one row per assistant step (ToolRL's single-step rows):

* `data_source`: the env id (veRL groups validation metrics by it);
* `prompt`: the env's observation, `[{"role": "system", ...}, {"role": "user", ...}]`, which veRL renders with
  the model's chat template;
* `ability`: "tool_use";
* `agent_name` (with `agent_loop=True`, `--agent-loop`): "toolrl", the agent loop that plays the row as an
  episode of the env (`toolrl_env.integrations.verl_agent_loop`); without it veRL runs its default loop;
* `reward_model`: `{"style": "rule", "ground_truth": <the step's gold TIR text>}`;
* `extra_info`: `{"split", "index", "task_id", "turn", "turn_step", "reward_preset", "env_id", "env_kwargs"}`
  (`env_kwargs`: the kwargs the env was made with, as JSON, for the agent loop to make it again).

`compute_score` reads two keys of `extra_info`:

* `reward_preset`: a name in `toolrl_env.rewards.PRESETS`, or a `RewardConfig` as JSON (what the exporter writes
  for an env built with a RewardConfig, such as Bamboogle's); default "default";
* `step`: the learner's step for the scheduled presets (`max1_step30_max3`, `schedule_reward`, `schedule_length`);
  default 0. veRL's stock reward managers pass no step: set `extra_info["step"]` in your reward manager, or the
  schedule stays at its start.

`custom_reward_function.reward_kwargs` may set `reward_preset` or `step` for a whole run; they win over `extra_info`.
"""

from __future__ import annotations

import argparse
import json
import operator
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from toolrl_env.cli import add_argument, json_object
from toolrl_env.env import ToolEnv
from toolrl_env.format import render_turn
from toolrl_env.rewards import PRESETS, RewardBreakdown, RewardConfig, resolve_config
from toolrl_env.rewards import compute_score as toolrl_score

Steps = Literal["first", "all"]
ABILITY = "tool_use"
AGENT_NAME = "toolrl"  # the agent loop of toolrl_env.integrations.verl_agent_loop
COMPONENTS = ("format", "correctness", "length", "answer")

SCHEMA = pa.schema(
    [
        ("data_source", pa.string()),
        ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ("ability", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
        (
            "extra_info",
            pa.struct(
                [
                    ("split", pa.string()),
                    ("index", pa.int64()),
                    ("task_id", pa.string()),
                    ("turn", pa.int64()),
                    ("turn_step", pa.int64()),
                    ("reward_preset", pa.string()),
                    ("env_id", pa.string()),
                    ("env_kwargs", pa.string()),
                ]
            ),
        ),
    ]
)

# Against a gold that both calls and answers, the empty completion earns every component's minimum, so its
# breakdown is the lowest reward a config gives (the low end of `reward_bounds`), split into components.
_GOLD_WITH_EVERY_COMPONENT = render_turn("", [{"name": "tool", "parameters": {}}], "answer")


def compute_score(
    data_source: Any,
    solution_str: Any,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    *,
    reward_preset: str | Mapping[str, Any] | RewardConfig | None = None,
    step: int | None = None,
    **verl_kwargs: Any,
) -> dict[str, float]:
    """ToolRL's reward of one completion, as a veRL custom reward function.

    Returns `{"score": total, "format", "correctness", "length", "answer"}`: veRL trains on "score" and logs the
    rest. Data never raises: a non-string completion scores as empty, and a non-string or malformed ground truth
    gets the config's lowest reward. A bad preset or step (a configuration error) raises ValueError.
    `data_source` is not read (one reward for every source); other keyword arguments veRL may pass (such as
    `reward_router_address`) are ignored.
    """
    extra = extra_info if isinstance(extra_info, Mapping) else {}
    config = _config(reward_preset if reward_preset is not None else extra.get("reward_preset"))
    breakdown = _score(solution_str, ground_truth, config, _step(step if step is not None else extra.get("step")))
    return {"score": breakdown.total, **{name: getattr(breakdown, name) for name in COMPONENTS}}


def _score(solution: Any, ground_truth: Any, config: RewardConfig, step: int) -> RewardBreakdown:
    if isinstance(ground_truth, str):
        try:
            return toolrl_score(solution, ground_truth, step, config)
        except (ValueError, RecursionError):
            pass  # a malformed gold: a <tool_call> line that is not a JSON call (the completion side never raises)
    return toolrl_score("", _GOLD_WITH_EVERY_COMPONENT, step, config)


def _config(preset: Any) -> RewardConfig:
    """The RewardConfig of a preset name, a RewardConfig, its fields as a mapping or as a JSON object."""
    if preset is None:
        return PRESETS["default"]
    if isinstance(preset, RewardConfig):
        return preset
    if isinstance(preset, Mapping):
        return _config_from_fields(dict(preset))
    if isinstance(preset, str) and preset.lstrip().startswith("{"):
        return _config_from_json(preset)
    return resolve_config(preset)


@lru_cache(maxsize=256)
def _config_from_json(text: str) -> RewardConfig:
    try:
        fields = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"reward_preset {text!r} is not a JSON object of RewardConfig fields: {exc}") from None
    return _config_from_fields(fields)  # JSON text starting with "{" is an object


def _config_from_fields(fields: dict[str, Any]) -> RewardConfig:
    unknown = sorted(set(fields) - set(RewardConfig.model_fields))
    if unknown:
        raise ValueError(
            f"unknown RewardConfig fields {unknown} in reward_preset; fields: {', '.join(RewardConfig.model_fields)}"
        )
    return RewardConfig.model_validate(fields)


def _step(value: Any) -> int:
    if value is None:
        return 0
    try:
        step = operator.index(value)
    except TypeError:
        step = -1
    if step < 0:
        raise ValueError(
            f"training step must be an integer >= 0, got {value!r}; set extra_info['step'] to the learner's step"
        )
    return step


def _json_model(value: Any) -> Any:
    """json.dumps' fallback for env kwargs: a pydantic model (a RewardConfig) as its fields."""
    if isinstance(value, BaseModel):
        return value.model_dump()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _preset_text(reward: str | RewardConfig) -> str:
    """What `extra_info["reward_preset"]` holds for an env's reward setting."""
    return reward if isinstance(reward, str) else reward.model_dump_json(exclude_defaults=True)


def verl_rows(
    env: gym.Env[Any, Any],
    *,
    split: str = "train",
    steps: Steps = "first",
    data_source: str | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    agent_loop: bool = False,
) -> list[dict[str, Any]]:
    """veRL RL-dataset rows for every task of `env` (see the module docstring for the columns).

    steps="first": one row per task, its first step, prompted with the env's first observation, as ToolRL's
    single-turn training and our single-turn mode do; later steps of a multi-turn task are left out.
    steps="all": one row per gold step; the gold trajectory is replayed through the env (mode="multi_turn"), so
    each prompt holds the history before the step, real tool `<obs>` results included; a task longer than the
    env's `max_turns` stops there. The ground truth is the step's gold text; an env that re-aligns the gold to
    the completion (BFCL, where any value its checker accepts counts) scores more leniently than the row does.
    `env_kwargs`: what the env was made with (JSON values), written for the `toolrl` agent loop.
    `agent_loop`: rows for that loop (`agent_name`), one per task (the loop plays the whole episode); it needs
    `env_kwargs` to make the env again, as an id's `export_parquet` passes them.
    """
    tool_env = env.unwrapped
    if not isinstance(tool_env, ToolEnv):
        raise TypeError(f"expected a ToolEnv (or a wrapper of one), got {type(tool_env).__name__}")
    if steps not in ("first", "all"):
        raise ValueError(f"unknown steps {steps!r}; use 'first' or 'all'")
    if agent_loop and (steps != "first" or env_kwargs is None):
        raise ValueError(
            "agent-loop rows are one per task (steps='first') and carry the kwargs the env was made with: "
            "export by env id, or pass env_kwargs"
        )
    if steps == "all" and tool_env.config.mode != "multi_turn":
        raise ValueError("steps='all' replays the gold through the tools: make the env with mode='multi_turn'")
    env_id = tool_env.spec.id if tool_env.spec is not None else ""
    source = data_source or env_id or "toolrl"
    preset = _preset_text(tool_env.config.reward)
    try:
        kwargs_text = json.dumps(dict(env_kwargs or {}), sort_keys=True, default=_json_model)
    except TypeError as exc:
        raise ValueError(f"env_kwargs must be JSON values for the agent loop to remake the env: {exc}") from None
    rows: list[dict[str, Any]] = []
    for i, task in enumerate(tool_env.tasks):
        obs, _ = tool_env.reset(seed=i, options={"task_id": task.id})
        positions = [(t, s) for t, turn in enumerate(task.turns) for s in range(len(turn.steps))]
        for k, (turn, turn_step) in enumerate(positions[:1] if steps == "first" else positions):
            gold = task.turns[turn].steps[turn_step]
            if tool_env.current_gold() is not gold:
                raise ValueError(
                    f"task {task.id!r}: after its gold steps the env expects another step than turn {turn} step "
                    f"{turn_step} (a turn ending in a tool call?); export it with steps='first'"
                )
            rows.append(
                {
                    "data_source": source,
                    "prompt": obs,
                    "ability": ABILITY,
                    **({"agent_name": AGENT_NAME} if agent_loop else {}),
                    "reward_model": {"style": "rule", "ground_truth": gold.text or ""},
                    "extra_info": {
                        "split": split,
                        "index": len(rows),
                        "task_id": task.id,
                        "turn": turn,
                        "turn_step": turn_step,
                        "reward_preset": preset,
                        "env_id": env_id,
                        "env_kwargs": kwargs_text,
                    },
                }
            )
            if steps == "all" and k + 1 < len(positions):
                obs, _, terminated, truncated, _ = tool_env.step(gold.text or "")
                if terminated or truncated:
                    break
    return rows


def export_parquet(
    env: str | gym.Env[Any, Any],
    path: str | Path,
    *,
    split: str = "train",
    steps: Steps = "first",
    data_source: str | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    agent_loop: bool = False,
) -> int:
    """Write the tasks of `env` (an env, or a registered id made with `env_kwargs`) as a veRL RL parquet.

    `split` only labels the rows (`extra_info["split"]`); pick an env's own split with `env_kwargs`, e.g.
    `{"split": "test"}`. `agent_loop`: rows for the `toolrl` agent loop (see `verl_rows`). Returns the number of
    rows written.
    """
    if isinstance(env, str):
        env_kwargs = dict(env_kwargs or {})
        made = gym.make(env, **env_kwargs)
        try:
            rows = verl_rows(
                made, split=split, steps=steps, data_source=data_source, env_kwargs=env_kwargs, agent_loop=agent_loop
            )
        finally:
            made.close()
    elif env_kwargs:
        raise ValueError(f"env_kwargs {dict(env_kwargs)} apply to an env id; this env is already made")
    else:
        rows = verl_rows(env, split=split, steps=steps, data_source=data_source, agent_loop=agent_loop)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = SCHEMA.insert(3, pa.field("agent_name", pa.string())) if agent_loop else SCHEMA
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return len(rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m toolrl_env.integrations.verl",
        description="Write a ToolEnv id's tasks as a veRL RL dataset (parquet).",
    )
    add_argument(parser, "env", required=True, metavar="ID")
    add_argument(parser, "env_kwargs", type=json_object, default={}, metavar="JSON")
    parser.add_argument("path", help="The parquet file to write.")
    parser.add_argument(
        "--split-label", default="train", help="The extra_info['split'] label of every row (default: train)."
    )
    parser.add_argument(
        "--gold-steps",
        choices=("first", "all"),
        default="first",
        help="Export each task's first gold step, or every one (replayed through the tools; default: first).",
    )
    parser.add_argument(
        "--agent-loop",
        action="store_true",
        help="Rows for veRL's `toolrl` agent loop (agent_name column), which plays each task as a whole episode.",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m toolrl_env.integrations.verl --env ID PATH`: export an env id's tasks for veRL."""
    args = build_parser().parse_args(argv)
    count = export_parquet(
        args.env,
        args.path,
        split=args.split_label,
        steps=args.gold_steps,
        env_kwargs=args.env_kwargs,
        agent_loop=args.agent_loop,
    )
    print(f"wrote {count} rows to {args.path}")


if __name__ == "__main__":
    main()
