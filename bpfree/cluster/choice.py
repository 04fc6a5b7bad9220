"""The executor a command's flags ask for: ``--jobs``, ``--ray``, ``--cpus-per-run``,
``--gpus-per-run``, shared by ``bpfree reproduce`` and ``bpfree sweep``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from bpfree.cluster.pool import GpuPlacement, LocalPool
from bpfree.cluster.ray_cluster import RayCluster
from bpfree.cluster.tasks import Executor, InProcess


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the executor flags to ``parser``."""
    parser.add_argument(
        "--jobs", type=int, default=1, help="runs trained at once, as local processes (1)"
    )
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="send each run to the Ray cluster at ADDRESS (auto, HOST:PORT, ray://HOST:PORT) "
        "or to a Ray instance started here (local); needs pip install 'bpfree[cluster]'",
    )
    parser.add_argument(
        "--cpus-per-run", type=float, default=1.0, help="CPUs a run asks Ray for (1)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads per run, recorded in its config (default: the cores divided by --jobs; "
        "with --ray, --cpus-per-run); with the same number, runs give the same weights wherever "
        "they execute",
    )
    parser.add_argument(
        "--gpus-per-run",
        type=float,
        help="GPUs a run asks for (Ray: default 0; local pool on a machine with several GPUs: "
        "default 1 with --device cuda, each run on its own)",
    )


def check(args: argparse.Namespace) -> None:
    """A ``ValueError`` naming the first executor flag out of its range or out of place."""
    if args.ray and args.jobs != 1:
        raise ValueError(
            "--jobs and --ray do not go together: on Ray, as many runs go at once as the "
            "cluster's resources hold (--cpus-per-run, --gpus-per-run)"
        )
    if args.gpus_per_run and not args.ray and args.device != "cuda":
        raise ValueError("--gpus-per-run needs --ray, or --device cuda for the local processes")
    if args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    if args.cpus_per_run <= 0:
        raise ValueError(f"--cpus-per-run must be positive, got {args.cpus_per_run}")
    if args.gpus_per_run is not None and args.gpus_per_run < 0:
        raise ValueError(f"--gpus-per-run must be at least 0, got {args.gpus_per_run}")


def threads_per_run(args: argparse.Namespace) -> int:
    """``--threads``, else the CPUs a Ray run asks for, else this machine's cores shared by the
    local runs."""
    if args.threads is not None:
        return args.threads
    if args.ray:
        return max(1, int(args.cpus_per_run))
    return max(1, (os.cpu_count() or 1) // args.jobs)


def executor_from(args: argparse.Namespace, device: str, log=print) -> Executor:
    """Ray when ``--ray`` is given; else local processes (``--jobs`` > 1, each run on GPUs of its
    own when ``device`` is ``cuda`` and the machine has several), else this process."""
    check(args)
    if args.ray:
        return RayCluster(
            args.ray,
            cpus_per_task=args.cpus_per_run,
            gpus_per_task=args.gpus_per_run or 0.0,
            log=log,
        )
    if args.jobs == 1:
        return InProcess(log=log)
    gpus = None
    count = torch.cuda.device_count() if device == "cuda" else 0
    if count > 1:
        gpus = GpuPlacement(count, int(args.gpus_per_run or 1))
    return LocalPool(args.jobs, gpus, log=log)


def shared_paths(
    args: argparse.Namespace, out: str, data_dir: str | None
) -> tuple[str, str | None]:
    """``out`` and ``data_dir`` as the runs should receive them: absolute for Ray, whose workers
    do not start in this folder (the paths must name places that every node sees)."""
    if not args.ray:
        return out, data_dir
    return str(Path(out).absolute()), str(Path(data_dir).absolute()) if data_dir else None
