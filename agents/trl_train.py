"""Train with TRL's `GRPOTrainer` on any ToolEnv id, multi-turn: TRL samples, runs our tools between the model's
turns, and trains on our reward (toolrl_env.integrations.trl).

    python agents/trl_train.py --env ToolEnv-Calc-v0 --steps 2                     # CPU, the embedded model
    python agents/trl_train.py --env ToolEnv-BFCLMultiTurn-v0 --model Qwen/Qwen2.5-1.5B-Instruct --vllm colocate
    accelerate launch --num-processes 4 agents/trl_train.py --env ToolEnv-APIBank-v0 --env-kwargs '{"data_path": ..}' \\
        --output-dir runs/trl-apibank

A tokenizer whose chat template cannot render tool calls (the embedded SmolLM2's) gets TRL's Qwen2.5 template
(`with_tool_chat_template`). The run folder gets TRL's checkpoints, the final model and log_history.json.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from toolrl_env.cli import ConfigParser, described, require_registered


class TRLTrainConfig(BaseModel):
    """One TRL GRPO run on a ToolEnv id's training tasks."""

    model_config = ConfigDict(extra="forbid")

    env: str = Field(default="ToolEnv-Calc-v0", description=described("env"))
    env_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description=described("env_kwargs", "`split` is set to train when the id takes one and it is not given."),
    )
    model: str = Field(default="embedded", description=described("model"))
    reward: str = Field(default="default", description="The reward preset (toolrl_env.rewards.PRESETS).")
    steps: int = Field(default=200, gt=0, description=described("steps", "TRL's max_steps."))
    batch_size: int = Field(
        default=8, gt=0, description=described("batch_size", "Here: per device (TRL's per_device_train_batch_size).")
    )
    group_size: int = Field(default=4, ge=2, description=described("group_size", "TRL's num_generations."))
    max_completion_tokens: int = Field(
        default=1024,
        gt=0,
        description="TRL's max_completion_length: the tokens of all the model's turns and the tool results between.",
    )
    max_tool_rounds: int = Field(
        default=4, gt=0, description="Rounds of tool calls per rollout (TRL's max_tool_calling_iterations)."
    )
    learning_rate: float = Field(default=1e-6, gt=0, description="AdamW's learning rate (ToolRL used 1e-6).")
    vllm: Literal["off", "colocate", "server"] = Field(
        default="off",
        description="Sampling: 'off' (transformers generate), 'colocate' (a vLLM engine in each training process), "
        "'server' (a `trl vllm-serve` server on other GPUs).",
    )
    seed: int = Field(default=0, description=described("seed"))
    output_dir: Path | None = Field(default=None, description=described("output_dir", "None: runs/trl-<env>-<time>."))


def build_parser() -> ConfigParser:
    """Every TRLTrainConfig field as a flag."""
    return ConfigParser(TRLTrainConfig, __doc__)


def parse_args(argv: list[str] | None = None) -> TRLTrainConfig:
    parser = build_parser()
    _, fields = parser.parse_config(argv)
    config: TRLTrainConfig = parser.validated(fields)
    require_registered(parser, [config.env])
    return config


def train(config: TRLTrainConfig) -> list[dict[str, Any]]:
    """Run TRL's GRPOTrainer as configured; its log history (one entry per step, then a summary)."""
    import torch
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from agents.embedded_model import embedded_model_dir
    from toolrl_env.integrations.trl import environment_factory, reward_functions, trl_dataset, with_tool_chat_template
    from toolrl_env.registry import takes_split

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # environment_factory is marked experimental in TRL 1.16
    env_kwargs = dict(config.env_kwargs)
    if takes_split(config.env):
        env_kwargs.setdefault("split", "train")
    model = str(embedded_model_dir()) if config.model == "embedded" else config.model
    tokenizer = with_tool_chat_template(AutoTokenizer.from_pretrained(model))
    gpu = torch.cuda.is_available()
    if config.output_dir is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("give --output-dir when training in several processes, so that they share one run folder")
    output_dir = config.output_dir or Path("runs") / f"trl-{config.env}-{time.strftime('%Y%m%d-%H%M%S')}"
    args = GRPOConfig(
        output_dir=str(output_dir),
        max_steps=config.steps,
        per_device_train_batch_size=config.batch_size,
        num_generations=config.group_size,
        max_completion_length=config.max_completion_tokens,
        max_tool_calling_iterations=config.max_tool_rounds,
        learning_rate=config.learning_rate,
        use_vllm=config.vllm != "off",
        vllm_mode="server" if config.vllm == "server" else "colocate",
        use_cpu=not gpu,
        bf16=gpu and torch.cuda.is_bf16_supported(),
        gradient_checkpointing=gpu,
        logging_steps=1,
        report_to="none",
        seed=config.seed,
    )
    # TRL types these as invariant lists and dicts of its own protocols; ours satisfy them.
    rewards: list[Any] = list(reward_functions(config.env, preset=config.reward, **env_kwargs))
    factory: Any = environment_factory(config.env, reward=config.reward, **env_kwargs)
    trainer = GRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=rewards,
        train_dataset=trl_dataset(config.env, environment=True, **env_kwargs),
        environment_factory=factory,
        args=args,
    )
    try:
        trainer.train()
    finally:
        rewards[0].scorer.env.close()
    trainer.save_model(str(output_dir / "final"))
    history: list[dict[str, Any]] = trainer.state.log_history
    if trainer.is_world_process_zero():
        (output_dir / "log_history.json").write_text(json.dumps(history, indent=1))
    return history


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    print(f"TRL GRPO on {config.env}, model {config.model}, {config.steps} steps")
    history = train(config)
    print("step  reward  format  correctness  tool calls/rollout")
    for entry in history:
        if "reward" in entry:
            print(
                f"{entry['step']:>4}  {entry['reward']:6.3f}  {entry.get('rewards/format/mean', float('nan')):6.3f}"
                f"  {entry.get('rewards/correctness/mean', float('nan')):11.3f}"
                f"  {entry.get('tools/call_frequency', 0.0):.2f}"
            )


if __name__ == "__main__":
    main()
