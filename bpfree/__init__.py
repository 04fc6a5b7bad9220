"""bpfree: training neural networks without backpropagation."""

from bpfree import models, rules
from bpfree.rules import build, compiled_step, optimizer

__version__ = "0.1.0"

__all__ = ["__version__", "build", "compiled_step", "models", "optimizer", "rules"]
