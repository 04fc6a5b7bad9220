"""bpfree: training neural networks without backpropagation."""

from bpfree import models, rules
from bpfree.rules import build, optimizer

__version__ = "0.1.0"

__all__ = ["__version__", "build", "models", "optimizer", "rules"]
