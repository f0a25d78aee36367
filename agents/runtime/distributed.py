"""Data-parallel training across processes (DDP's maths, written out): every process holds the whole model,
samples its own share of the step's tasks, and averages its gradients with the others' before each optimiser
step, so the replicas stay identical.

    torchrun --nproc_per_node 2 agents/grpo_train.py --env ToolEnv-BFCL-v0        # or: accelerate launch ...

torchrun (and accelerate) set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; `start()` joins the group they
describe (NCCL on GPUs, gloo on CPUs). Gradients are averaged with one all-reduce of a flat buffer per step
rather than by `DistributedDataParallel`'s bucketed hooks: the learner runs several forward passes per step
(a shared prompt, then its continuations), which DDP's one-forward-one-backward bookkeeping does not fit.
For models too large for one device, FSDP (`torch.distributed.fsdp.fully_shard`) shards weights and
optimiser state instead; it is not wired in here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")
# Rank 0 evaluates alone while the others wait at their next all-reduce, so the group waits longer than
# torch's default before calling a silent peer dead.
_TIMEOUT = timedelta(hours=2)


def start() -> tuple[int, int]:
    """Join the process group torchrun described (a no-op when run alone); returns (rank, world size)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo", timeout=_TIMEOUT)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return rank(), world_size()


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """True on the process that writes files and evaluates (rank 0, or the only one)."""
    return rank() == 0


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Replace each gradient by its mean over the processes (one all-reduce); a no-op when run alone.
    A parameter without a gradient on this process counts as a zero gradient."""
    if world_size() == 1:
        return
    params = [p for p in parameters if p.requires_grad]
    grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world_size()
    offset = 0
    for param, grad in zip(params, grads, strict=True):
        param.grad = flat[offset : offset + grad.numel()].view_as(grad)  # views of one buffer: no second copy
        offset += grad.numel()


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Copy rank 0's weights to every process (a no-op when run alone)."""
    if world_size() == 1:
        return
    for tensor in module.state_dict().values():
        dist.broadcast(tensor, src=0)


def from_main(value: T) -> T:
    """Rank 0's `value` on every process (a run folder named by the clock, say)."""
    if world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def finish() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_initialized():
        dist.destroy_process_group()
