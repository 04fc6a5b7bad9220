"""The processes of one data-parallel run, as ``torchrun`` starts them: who this one is, and the
collective calls they make together."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

import torch
import torch.distributed as dist

# How long a collective call waits for the other replicas before it fails (a dead peer).
TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True)
class Replicas:
    """This process's ``rank`` among ``world_size`` replicas, its ``local_rank`` on its node, and
    the ``device`` it computes on (``cuda:<local rank>`` for a CUDA run)."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the one that writes the run's files."""
        return self.rank == 0

    def rows(self, total: int) -> tuple[int, int]:
        """(start, stop) of this replica's rows among ``total``: contiguous, as even as can be."""
        base, extra = divmod(total, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (self.rank < extra)

    def all_reduce_sum_(self, tensors: list[torch.Tensor]) -> None:
        """Sum each tensor over the replicas, in place, in one collective call per dtype."""
        for group in _by_dtype(tensors):
            flat = torch.cat([t.reshape(-1) for t in group])
            dist.all_reduce(flat)
            _unflatten(flat, group)

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every replica (a picklable object)."""
        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any] | None:
        """Every replica's ``value``, in rank order, on rank 0 (None elsewhere)."""
        values = [None] * self.world_size if self.is_main else None
        dist.gather_object(value, values, dst=0)
        return values

    def broadcast_tensors_(self, tensors: list[torch.Tensor]) -> None:
        """Overwrite each tensor with rank 0's, in place, in one collective call per dtype."""
        for group in _by_dtype(tensors):
            flat = torch.cat([t.reshape(-1) for t in group])
            dist.broadcast(flat, src=0)
            _unflatten(flat, group)

    def barrier(self) -> None:
        dist.barrier()


def _by_dtype(tensors: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    groups: dict[torch.dtype, list[torch.Tensor]] = {}
    for tensor in tensors:
        groups.setdefault(tensor.dtype, []).append(tensor)
    return list(groups.values())


def _unflatten(flat: torch.Tensor, tensors: list[torch.Tensor]) -> None:
    offset = 0
    for tensor in tensors:
        tensor.copy_(flat[offset : offset + tensor.numel()].view_as(tensor))
        offset += tensor.numel()


def launched_rank() -> int:
    """This process's rank as the launcher set it (0 for a single process)."""
    return int(os.environ.get("RANK", "0"))


def launched() -> bool:
    """Whether this process is one of several started by ``torchrun`` (or another launcher
    setting WORLD_SIZE, RANK and the rendezvous address)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device: str | torch.device = "cpu") -> Replicas | None:
    """Join the run's process group from the environment ``torchrun`` sets (gloo on the CPU,
    NCCL on CUDA); None for a single process. A CUDA replica computes on ``cuda:<local rank>``."""
    if not launched():
        return None
    device = torch.device(device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, init_method="env://", timeout=TIMEOUT)
    return Replicas(dist.get_rank(), dist.get_world_size(), local_rank, device)


def leave(finished: bool = True) -> None:
    """Leave the process group (at the end of a command). After a clean finish the ranks first
    meet at a barrier, so that none closes its connections while another still uses them (rank 0
    writing the last files, a slower node); after an error each rank leaves at once, since a peer
    may be gone."""
    if not dist.is_initialized():
        return
    if finished:
        dist.barrier()
    dist.destroy_process_group()


def exit_process(status: int) -> NoReturn:
    """End this process with ``status``, as ``sys.exit`` does; a replica that ``torchrun``
    started ends at once after flushing its output, without the interpreter's teardown.

    After a replica has left its process group, gloo's worker threads can still be releasing
    the tensors of a finished collective call, which takes the GIL; a thread that asks for the
    GIL while the interpreter finalizes is ended inside that destructor, and the process aborts
    (SIGABRT, "terminate called without an active exception"), so that ``torchrun`` reports a
    run that finished and wrote every file as failed (one 4-rank run in 3 to 20, on 2 cores).
    Every file a run writes is closed by then."""
    if launched():
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
