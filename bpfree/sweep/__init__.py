"""Searching a rule's settings with Optuna: a validation split selects, the test set only
reports; trials run here, in local processes or on a Ray cluster, and resume after a crash.

from bpfree.sweep import load_spec, sweep
study = sweep(load_spec("sweep.yaml"), "runs/sweeps/mine")
"""

from bpfree.sweep.run import sweep
from bpfree.sweep.space import Parameter, SpecError
from bpfree.sweep.spec import SweepSpec, load_spec

__all__ = ["Parameter", "SpecError", "SweepSpec", "load_spec", "sweep"]
