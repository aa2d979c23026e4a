"""Data-parallel training under ``torchrun``: one process per rank, one global batch.

``torchrun --nproc_per_node=N -m embeddings.train ...`` starts N copies of the command;
each finds its rank in the environment torchrun sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) and joins the process group: gloo on
the CPU, NCCL on CUDA (rank r uses ``cuda:LOCAL_RANK``).  Every rank reads and vectorizes
the same data and builds the same model; ``--batch-size`` stays the *global* batch:

* each global batch is cut into N contiguous shards, one per rank (:func:`shard`);
* each rank's loss is its shard's mean scaled by ``shard / batch``, so the gradients
  summed over the ranks (:func:`reduce_gradients`) are the global batch's mean gradient,
  and each token occurrence's gradient, hence the squared-occurrence sums Adam's second
  moment takes (``PARITY.md`` section 7), is the one-process value: the sums only change
  order.  Dense gradients travel in one flat all-reduce; a table with sparse gradients
  (``MeanEmbedding(sparse=True)``: large tables) exchanges only its touched rows;
* every rank then applies the same update, so the weights stay equal on all ranks;
* the running loss and the correct predictions are summed over the ranks at each
  epoch's end (and in checkpoints), so the printed metrics are the global batch's;
* validation runs whole on every rank (the same weights give the same figures);
* rank 0 alone writes the run directory and prints.

Signals: torchrun passes SIGINT/SIGTERM to every rank, and each could stop at another
step, leaving the others waiting in a collective.  So while the ranks train, a signal is
only recorded; a flag in each step's gradient all-reduce tells every rank whether any
got one, and all stop after the same step (:func:`reduce_gradients` returns the flag).
:func:`launched` and :func:`env_rank` import no torch, so the command line can ask them
before anything heavy loads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: launched() needs none of it
    import torch


def launched() -> bool:
    """Whether this process is one of several started by ``torchrun``."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def env_rank() -> int:
    """This process's rank as ``torchrun`` set it (0 when not launched by it)."""
    return int(os.environ.get("RANK", "0"))


def local_device(device: torch.device) -> torch.device:
    """``device`` for this rank: its own GPU (``cuda:LOCAL_RANK``) under torchrun."""
    import torch

    if device.type == "cuda" and launched():
        index = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return device


@dataclass(frozen=True)
class World:
    """The ranks training together.

    Args:
        rank (int): this process's rank.
        size (int): the number of ranks.
    """

    rank: int
    size: int


def start(device: torch.device) -> World | None:
    """Join the process group when launched by torchrun (gloo on the CPU, NCCL on CUDA);
    ``None`` for a single process."""
    import torch.distributed as dist

    if not launched():
        return None
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size())


def shard(part: slice, world: World) -> slice:
    """Rank ``world.rank``'s contiguous share of the global batch ``part`` (sizes differ
    by at most one; a batch smaller than the world leaves some ranks an empty share)."""
    start, stop = part.start, part.stop
    n = stop - start
    return slice(start + n * world.rank // world.size, start + n * (world.rank + 1) // world.size)


def reduce_gradients(params: list[torch.nn.Parameter], stop: bool, world: World) -> bool:
    """Sum every parameter's gradient over the ranks, in place; returns whether any rank
    asked to ``stop``.

    Dense gradients (and the stop flag) go in one flat all-reduce; a sparse gradient is
    exchanged as its touched rows (an all-gather of each rank's rows and values), then
    summed (coalesced in rank order).  A parameter without a gradient takes zeros.
    """
    import torch
    import torch.distributed as dist

    dense = [p for p in params if p.grad is None or not p.grad.is_sparse]
    flags = torch.tensor([1.0 if stop else 0.0], device=params[0].device)
    bucket = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                        for p in dense] + [flags])
    dist.all_reduce(bucket)
    offset = 0
    for p in dense:
        p.grad = bucket[offset:offset + p.numel()].view_as(p)  # a view: no second copy
        offset += p.numel()
    for p in params:
        if p.grad is not None and p.grad.is_sparse:
            p.grad = _sum_rows(p.grad, world)
    return bool(bucket[-1] > 0)


def _sum_rows(grad: torch.Tensor, world: World) -> torch.Tensor:
    """A sparse gradient summed over the ranks, by exchanging the touched rows only."""
    import torch
    import torch.distributed as dist

    grad = grad.coalesce()
    rows, values = grad.indices()[0], grad.values()
    counts = [torch.zeros(1, dtype=torch.int64, device=rows.device) for _ in range(world.size)]
    dist.all_gather(counts, torch.tensor([len(rows)], device=rows.device))
    most = int(max(c.item() for c in counts))
    padded_rows = torch.zeros(most, dtype=rows.dtype, device=rows.device)
    padded_values = values.new_zeros((most, *values.shape[1:]))
    padded_rows[:len(rows)], padded_values[:len(rows)] = rows, values
    all_rows = [torch.empty_like(padded_rows) for _ in range(world.size)]
    all_values = [torch.empty_like(padded_values) for _ in range(world.size)]
    dist.all_gather(all_rows, padded_rows)
    dist.all_gather(all_values, padded_values)
    kept = [int(c.item()) for c in counts]
    merged_rows = torch.cat([r[:k] for r, k in zip(all_rows, kept, strict=True)])
    merged_values = torch.cat([v[:k] for v, k in zip(all_values, kept, strict=True)])
    return torch.sparse_coo_tensor(merged_rows.unsqueeze(0), merged_values,
                                   grad.shape).coalesce()


def finish(world: World | None) -> None:
    """Leave the process group once every rank is done (a gloo peer torn down while another
    still talks can abort it), so no rank exits with its group alive."""
    import torch.distributed as dist

    if world is not None and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def sum_over_ranks(tensor: torch.Tensor, world: World | None) -> torch.Tensor:
    """``tensor`` summed over the ranks (a copy; ``tensor`` itself without a world)."""
    import torch.distributed as dist

    if world is None:
        return tensor
    total = tensor.clone()
    dist.all_reduce(total)
    return total
