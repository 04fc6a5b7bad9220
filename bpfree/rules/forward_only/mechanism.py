"""The forward-only family's mechanism: a clean pass, a pass on the error-modulated input, and
updates that are sums of outer products of what the two passes computed.

Every rule of the family runs the model twice on a batch, with autograd off and one dropout mask
per layer shared by both passes (``common.walk``):

    clean pass:      h_0 = x,             h_l = σ_l(W_l h_{l−1}),        y = softmax(h_L)
    modulated pass:  h_0^err = x + s F e, h_l^err = σ_l(W_l h_{l−1}^err),  e = y − t

and writes, for each layer, ΔW_l = (1/n) Σ_k post_kᵀ pre_k over the terms the rule names
(``TwoPassTerms``): PEPITA's (h_l − h_l^err) (h_{l−1}^err)ᵀ, PEPITA-Hebbian's h_l h_{l−1}ᵀ −
h_l^err (h_{l−1}^err)ᵀ. AFA is the same rule on the first-order (linear) modulated pass,
h_l − h_l^err ≈ σ′(a_l) ⊙ W_l (h_{l−1} − h_{l−1}^err); PEPITA time-local applies Hebbian's
terms as each pass reaches them (``time_local``).

``TwoPassRule`` (``two_pass.py``) computes a rule from its terms by one of two implementations:
``equations`` (``equations.py``), the passes and the terms written as plainly as the papers
write them, and ``fast`` (``fast.py``), which reuses the clean pass in the modulated one's first
layer and holds as little as it can. A test holds them equal for every rule and option.

Index letters: n batch, i inputs of a layer, o outputs of a layer, c classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from bpfree.core.checks import NON_NEGATIVE, SEED, SIGN
from bpfree.rules.base import Rule
from bpfree.rules.common.alignment import alignment_of
from bpfree.rules.common.init import uniform_feedback
from bpfree.rules.common.options import Option
from bpfree.rules.common.streams import seeded_generator
from bpfree.rules.common.walk import LayerStack

# What a term's post- and presynaptic factors may be, for a hidden layer l and the output layer.
HIDDEN_POSTS = ("h - h_err", "h", "-h_err")
OUTPUT_POSTS = ("e", "e_err", "y", "-t")
PRES = ("h_prev", "h_prev_err")


@dataclass(frozen=True)
class Term:
    """One outer product post ⊗ pre of a layer's update, named by the symbols of the passes:
    ``h``, ``h_err`` (the layer's clean and modulated activity), ``h_prev``, ``h_prev_err``
    (its input in either pass: x and x + s F e at the first layer), ``e`` = y − t (``e_err``
    from the modulated pass), ``y`` the clean output and ``t`` the target."""

    post: str
    pre: str


@dataclass(frozen=True)
class TwoPassTerms:
    """ΔW_l = (1/n) Σ_k post_kᵀ pre_k: the terms of every hidden layer and of the output layer."""

    hidden: tuple[Term, ...]
    output: tuple[Term, ...]

    def __post_init__(self) -> None:
        for terms, posts in ((self.hidden, HIDDEN_POSTS), (self.output, OUTPUT_POSTS)):
            for term in terms:
                if term.post not in posts or term.pre not in PRES:
                    raise ValueError(f"unknown symbol in {term}: posts {posts}, pres {PRES}")

    @property
    def reads_clean_inputs(self) -> bool:
        """Whether some term multiplies the clean pass's input h_{l−1}."""
        return any(term.pre == "h_prev" for term in (*self.hidden, *self.output))


class ModulatedInputRule(Rule):
    """A forward-only rule whose second pass runs on the input modulated by the output error,
    x + s F e, through a fixed random F (i, c) drawn uniform in ±f_scale·√(6 / i).

    It walks the layers the model describes (``self.stack``, ``common.walk``) with autograd
    off; ``walks_conv_nets`` says whether its update is defined on convolutions too.
    ``feedback_stream`` names the seeded stream F is drawn from (default: the rule's name; AFA
    draws PEPITA's F)."""

    walks_conv_nets: ClassVar[bool] = False
    feedback_stream: ClassVar[str | None] = None

    sign = Option(1, SIGN)
    f_scale = Option(0.05, NON_NEGATIVE)
    seed = Option(0, SEED)

    def __init__(self, model: nn.Module, **options: Any) -> None:
        super().__init__(model, **options)
        stack = LayerStack(model, self.name, self.grads, conv=self.walks_conv_nets)
        object.__setattr__(self, "stack", stack)
        self.init_feedback()

    def init_feedback(self) -> None:
        """Register the feedback state; ``self.F`` must then be the (i, c) matrix."""
        generator = seeded_generator(self.seed, self.feedback_stream or self.name)
        first = self.stack.layers[0].weight
        F = uniform_feedback(
            self.stack.input_features, self.num_classes, self.f_scale, generator, first
        )
        self.register_buffer("F", F)

    def forward_product(self) -> torch.Tensor:
        """(W_L ⋯ W_1)ᵀ, shaped (i, c) like F."""
        product = self.stack.layers[0].weight.T
        for layer in self.stack.layers[1:]:
            product = product @ layer.weight.T
        return product

    def alignment(self) -> dict[str, dict[str, float]]:
        """Angle between F and the product of the forward weights (W_L ⋯ W_1)ᵀ (ICML Fig. 3b:
        near 90° at the start, growing toward 120° with + F e), and their norm ratio; nothing
        for a conv net, whose layers have no such product."""
        if self.stack.conv:
            return {}
        with torch.no_grad():
            return {"F": alignment_of(self.F, self.forward_product())}
