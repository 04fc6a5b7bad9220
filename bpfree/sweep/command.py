"""``bpfree sweep``: search a rule's settings with Optuna on a validation split, then re-train
the best over the final seeds.

bpfree sweep sweep.yaml                                # trials one after the other, here
bpfree sweep sweep.yaml --jobs 2                       # two trials at once, as processes
bpfree sweep sweep.yaml --ray auto --gpus-per-run 1    # each trial a task on a Ray cluster
bpfree sweep sweep.yaml --storage postgresql://u@db/sweeps   # workers on many machines
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from tqdm.auto import tqdm

from bpfree.cluster import choice as cluster_choice
from bpfree.core.extras import require
from bpfree.core.files import write_text
from bpfree.core.locks import exclusive_lock
from bpfree.core.signals import sigterm_as_interrupt
from bpfree.sweep.report import write_report
from bpfree.sweep.run import CLAIMS_LOCK, sweep
from bpfree.sweep.space import SpecError
from bpfree.sweep.spec import load_spec, shipped_specs
from bpfree.sweep.storage import default_url, open_storage, open_study


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``bpfree sweep`` to ``parser``."""
    parser.add_argument(
        "spec",
        help="the sweep's YAML spec (base, space, objective, ...), or a shipped one: "
        f"{', '.join(shipped_specs())}",
    )
    parser.add_argument(
        "--out",
        default="runs/sweeps",
        help="folder of the sweeps (runs/sweeps); this one goes to OUT/<name>, on a path "
        "every worker sees when trials run elsewhere",
    )
    parser.add_argument(
        "--storage",
        help="database URL of the study (default: sqlite in the sweep folder); the same URL "
        "lets commands on many machines share one study",
    )
    parser.add_argument("--data-dir", help="folder holding the datasets")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--report-only", action="store_true", help="run nothing; report the study as it is"
    )
    cluster_choice.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the sweep's missing trials and final seeds, then write its report."""
    try:
        cluster_choice.check(args)
    except ValueError as error:
        raise SpecError(str(error)) from None
    optuna = require("optuna", extra="cluster", needed_for="bpfree sweep")
    spec = load_spec(args.spec)
    folder = Path(args.out).absolute() / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    url = args.storage or default_url(folder)
    with exclusive_lock(folder / CLAIMS_LOCK, wait=True):
        storage = open_storage(optuna, url)  # a bad URL or driver fails here, before any trial
    _, data_dir = cluster_choice.shared_paths(args, args.out, args.data_dir)
    overrides = {
        "data_dir": data_dir,
        "device": args.device,
        "threads": cluster_choice.threads_per_run(args),
    }
    try:
        with sigterm_as_interrupt():
            if args.report_only:
                study = open_study(optuna, storage, spec.name, spec.fingerprint, None, None)
            else:
                executor = cluster_choice.executor_from(args, args.device, log=tqdm.write)
                write_text(folder / "spec.yaml", spec.source)
                study = sweep(
                    spec,
                    folder,
                    storage=url,
                    executor=executor,
                    overrides=overrides,
                    log=tqdm.write,
                )
    except KeyboardInterrupt:
        print(
            f"interrupted: finished trials are in the study; a trial cut short resumes from "
            f"its checkpoint under {folder}/trials when the same command runs again",
            file=sys.stderr,
        )
        return 130
    command = f"bpfree sweep {shlex.quote(args.spec)} --out {shlex.quote(args.out)}"
    written = write_report(study, spec, folder, command)
    print(written[0].read_text())
    for path in written:
        print(f"wrote {path}")
    return 0
