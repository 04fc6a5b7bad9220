"""How a model describes itself: its weighted layers, for rules that compute without autograd.

A rule of the forward-only family never calls the model's ``forward``: it walks the model's
layers itself, twice or more per batch, sharing dropout masks between passes. A model tells it
what to walk through ``layer_specs()`` (and its ``input_shape``):

    h_l = N_l(σ_l(W_l P_l(h_{l−1}) + b_l) ⊙ m_l),     h_0 = x,  the last layer giving the logits

with W_l, b_l the ``module`` (``nn.Linear`` or ``nn.Conv2d``), σ_l the ``activation``, m_l a
dropout mask of rate ``dropout``, N_l an optional ``normalization`` and P_l the ``pooling`` of
the previous layer's maps (optionally flattened) that this layer reads. ``MLP`` and
``PepitaConvNet`` describe themselves so; a user's model can do the same to be trained by PEPITA.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class LayerSpec:
    """One weighted layer of a model, as a walking rule computes it (see the module's docs)."""

    module: nn.Linear | nn.Conv2d
    activation: nn.Module
    dropout: float = 0.0
    normalization: nn.Module | None = None
    pooling: nn.Module | None = None
    flatten: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.module, nn.Linear | nn.Conv2d):
            raise ValueError(
                f"a layer spec's module must be nn.Linear or nn.Conv2d, got "
                f"{type(self.module).__name__}"
            )
        if isinstance(self.module, nn.Conv2d) and self.dropout:
            raise ValueError("dropout after a convolution is not supported in a layer spec")
