"""Networks the learning rules train: ordinary ``nn.Module`` s."""

from bpfree.models.mlp import ACTIVATIONS, MLP, he_uniform_

__all__ = ["ACTIVATIONS", "MLP", "he_uniform_"]
