"""Forward-Forward rules: each hidden layer learns from its own goodness, with no backward pass."""

from bpfree.rules.forward_forward.ff import FF
from bpfree.rules.forward_forward.topdown import FFTopDown

__all__ = ["FF", "FFTopDown"]
