"""Replicas of a data-parallel run started inside a test: real processes, joined by
``torch.distributed`` (gloo on 127.0.0.1) from the environment ``torchrun`` would set.

The processes come from a forkserver that imported bpfree once, so a group of replicas costs a
few forks. ``run_replicas(target, world_size, *args)`` runs ``target(replicas, *args)`` on each
rank and returns what each returned, in rank order.
"""

import io
import multiprocessing
import os
import socket
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))  # the forkserver finds this module by name


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _replica(target, rank, world_size, port, args, results):
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
    )
    import torch

    from bpfree.parallel import join, leave

    torch.set_num_threads(1)
    replicas = join("cpu")
    finished = False
    try:
        buffer = io.BytesIO()  # bytes, not tensors: the queue would share memory this exit frees
        torch.save(target(replicas, *args), buffer)
        results.put((rank, buffer.getvalue()))
        finished = True
    finally:
        leave(finished)


def run_replicas(target, world_size: int, *args) -> list:
    """``target(replicas, *args)`` on ``world_size`` ranks; their results in rank order."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["bpfree.cli", "torch._dynamo", "replicas"])
    results, port = context.Queue(), free_port()
    processes = [
        context.Process(target=_replica, args=(target, rank, world_size, port, args, results))
        for rank in range(world_size)
    ]
    for process in processes:
        process.start()
    gathered = dict(results.get(timeout=300) for _ in processes)
    gathered = {
        rank: torch.load(io.BytesIO(data), weights_only=True) for rank, data in gathered.items()
    }
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0, f"a replica ended with status {process.exitcode}"
    return [gathered[rank] for rank in range(world_size)]
