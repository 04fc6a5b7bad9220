"""The activations a walking rule knows, each with its in-place form and its derivative σ′.

One table serves every rule that computes without autograd (the forward-only family, AFA's
linearised pass, Forward-Forward's goodness gradient); an activation missing from it is an
error naming it, never a silent guess.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

Fn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Activation:
    """σ written over its argument (``forward_``) and σ′(a) (``slope``).

    ``slope_is_indicator``: σ′ is 1 where σ(a) ≠ 0 and 0 where σ(a) = 0 (ReLU, identity), so
    that h ⊙ σ′(a) = h and the product can be skipped.
    """

    forward_: Fn
    slope: Fn
    slope_is_indicator: bool = False


def _relu_slope(a: torch.Tensor) -> torch.Tensor:
    return (a > 0).to(a.dtype)


def _tanh_slope(a: torch.Tensor) -> torch.Tensor:
    return 1.0 - torch.tanh(a).square()


def _sigmoid_slope(a: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(a) * torch.sigmoid(-a)  # σ(a)(1 − σ(a)), accurate where σ saturates


ACTIVATIONS: dict[type[nn.Module], Activation] = {
    nn.ReLU: Activation(torch.relu_, _relu_slope, slope_is_indicator=True),
    nn.Tanh: Activation(torch.tanh_, _tanh_slope),
    nn.Sigmoid: Activation(torch.sigmoid_, _sigmoid_slope),
    nn.Identity: Activation(lambda a: a, torch.ones_like, slope_is_indicator=True),
}


def activation_of(module: nn.Module, rule_name: str, where: str) -> Activation:
    """The table's entry for ``module``, or a ``ValueError`` naming the rule, the place and the
    activations it knows."""
    try:
        return ACTIVATIONS[type(module)]
    except KeyError:
        known = ", ".join(sorted(t.__name__ for t in ACTIVATIONS))
        raise ValueError(
            f"{rule_name} cannot train {where}: activation {type(module).__name__} is not one of "
            f"{known}"
        ) from None
