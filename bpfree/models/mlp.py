"""The fully connected network of the PEPITA paper, of any depth."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from bpfree.models._common import INITS, initialize_
from bpfree.models.spec import LayerSpec

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}


class ActivityNorm(nn.Module):
    """Activation normalisation of deeper PEPITA (ICLR 2024 Sec. 4.1): h / ‖h‖.

    ``"frobenius"`` divides the whole (batch, units) activity by its Frobenius norm over the batch,
    as the ICLR reference code does; ``"per-sample"`` divides each sample's activity by its own
    L2 norm. Neither has parameters. The Frobenius form makes a layer's output scale depend on the
    batch size; with ReLU and no biases every later layer is positively homogeneous, so the
    predicted class does not.
    """

    KINDS = ("frobenius", "per-sample")

    def __init__(self, kind: str, eps: float = 1e-12) -> None:
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"normalization must be one of {', '.join(self.KINDS)}, got {kind!r}")
        self.kind, self.eps = kind, eps

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.kind == "frobenius":
            return h / torch.linalg.vector_norm(h).clamp_min(self.eps)
        return h / torch.linalg.vector_norm(h, dim=-1, keepdim=True).clamp_min(self.eps)

    def extra_repr(self) -> str:
        return repr(self.kind)


class MLP(nn.Module):
    """A stack of ``nn.Linear`` layers: ``len(sizes) - 1`` of them, the last one giving logits.

    Each hidden layer is a block ``Linear -> activation -> Dropout`` (``-> ActivityNorm`` with
    ``normalization``); the output layer is a bare
    ``Linear`` (its logits go to a softmax or sigmoid inside the learning rule's loss). Inputs of
    any shape are flattened to ``(batch, sizes[0])``. Weights are He-uniform, as in the PEPITA
    paper (ICML 2022, Table 2), biases, when enabled, zero; ``init="torch-default"`` draws
    both as ``nn.Linear`` does (see ``initialize_``).

    Args:
        sizes: layer widths, input first and number of classes last, e.g. ``(784, 1024, 10)``.
        activation: hidden non-linearity, one of ``relu``, ``tanh``, ``sigmoid``, ``identity``.
        dropout: drop probability after each hidden layer.
        input_dropout: drop probability of the input features (pixels) before the first layer,
            as in Frenkel et al.'s DRTP code, which drops every layer's input. Rules that walk
            the layer specs (the PEPITA family) refuse it.
        bias: whether the linear layers have biases (the papers use none).
        normalization: ``None``, ``"frobenius"`` or ``"per-sample"``: divide each hidden
            layer's activity by its norm (``ActivityNorm``; ICLR 2024 Sec. 4.1).
        init: ``"he-uniform"`` (default) or ``"torch-default"``.
        generator: random source of the initial weights (default: torch's global one).

    Example:
        >>> model = MLP((784, 1024, 10), dropout=0.1)
        >>> model(torch.zeros(64, 1, 28, 28)).shape
        torch.Size([64, 10])
    """

    def __init__(
        self,
        sizes: Sequence[int],
        *,
        activation: str = "relu",
        dropout: float = 0.0,
        bias: bool = False,
        normalization: str | None = None,
        input_dropout: float = 0.0,
        init: str = "he-uniform",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) < 2 or any(s < 1 for s in sizes):
            raise ValueError(f"sizes must hold at least two positive widths, got {sizes}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; valid: {sorted(ACTIVATIONS)}")
        for name, rate in (("dropout", dropout), ("input_dropout", input_dropout)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {rate}")
        if init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
        self.sizes = sizes
        self.activation = activation
        self.dropout = dropout
        norm = normalization is not None
        self.normalization = normalization
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Linear(n_in, n_out, bias=bias),
                ACTIVATIONS[activation](),
                nn.Dropout(dropout),
                *([ActivityNorm(normalization)] if norm else []),
            )
            for n_in, n_out in itertools.pairwise(sizes[:-1])
        )
        self.head = nn.Linear(sizes[-2], sizes[-1], bias=bias)
        self.input_dropout = nn.Dropout(input_dropout) if input_dropout else None
        for layer in self.linears:
            initialize_(layer, init, generator)

    @property
    def input_shape(self) -> tuple[int]:
        """The features of one input sample, (sizes[0],)."""
        return (self.sizes[0],)

    def layer_specs(self) -> list[LayerSpec]:
        """Each hidden block as (Linear, activation, dropout, normalisation), then the head."""
        if self.input_dropout is not None:
            raise ValueError(
                "a layer spec has no dropout of the inputs, so a rule that walks the layers "
                "cannot train an MLP with input_dropout; set input_dropout to 0"
            )
        hidden = [
            LayerSpec(block[0], block[1], block[2].p, block[3] if len(block) == 4 else None)
            for block in self.blocks
        ]
        return [*hidden, LayerSpec(self.head, nn.Identity())]

    @property
    def linears(self) -> list[nn.Linear]:
        """The linear layers, input side first."""
        return [block[0] for block in self.blocks] + [self.head]

    def flatten(self, x: torch.Tensor) -> torch.Tensor:
        """Reshape ``x`` to ``(batch, sizes[0])``, or say why it can't be."""
        if x.dim() < 2 or math.prod(x.shape[1:]) != self.sizes[0]:
            raise ValueError(
                f"MLP expects inputs of {self.sizes[0]} features per sample (any shape that "
                f"flattens to it), got a batch of shape {tuple(x.shape)}"
            )
        return x.reshape(x.shape[0], self.sizes[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.flatten(x)
        if self.input_dropout is not None:
            h = self.input_dropout(h)
        for block in self.blocks:
            h = block(h)
        return self.head(h)

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}" + (
            f", normalization={self.normalization!r}" if self.normalization else ""
        )
