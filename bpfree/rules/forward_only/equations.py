"""The two-pass rules' updates written as the papers write them (ICML 2022 eqs. 1-5, ICLR 2024
eq. 6 and Sec. 5.1): both passes run in full, every activity is kept, every term is one outer
product. It is the definition that ``fast.py`` is tested against, and it runs as the rules'
``implementation="equations"``: slower and hungrier for memory, on purpose plain.

Index letters: n batch, i inputs of a layer, o outputs of a layer, c classes.
"""

from __future__ import annotations

import torch

from bpfree.rules.base import StepResult
from bpfree.rules.common.activations import activation_of
from bpfree.rules.common.losses import cross_entropy_error, one_hot
from bpfree.rules.common.walk import ConvLayer, LayerStack, WalkLayer
from bpfree.rules.forward_only.mechanism import ModulatedInputRule, Term

# ``rule`` below is a TwoPassRule (two_pass.py, which imports this module): its terms,
# modulation and options are read here.

Update = tuple[torch.Tensor, torch.Tensor | None]  # (ΔW, Δb)


def step(rule: ModulatedInputRule, x: torch.Tensor, y: torch.Tensor) -> StepResult:
    """One step of ``rule`` on a checked batch, its updates written into ``.grad``."""
    updates, loss, logits = two_pass_updates(rule, x, y)
    for layer, (weight, bias) in zip(rule.stack.layers, updates, strict=True):
        rule.grads(layer.weight).copy_(weight)
        if bias is not None:
            rule.grads(_bias(layer)).copy_(bias)
    return StepResult(loss.detach(), logits)


def two_pass_updates(
    rule: ModulatedInputRule, x: torch.Tensor, y: torch.Tensor
) -> tuple[list[Update], torch.Tensor, torch.Tensor]:
    """(ΔW_l, Δb_l) of every layer, the loss and the clean logits, for one batch."""
    stack = rule.stack
    x = stack.inputs(x)
    n, t = x.shape[0], one_hot(y, rule.num_classes, x.dtype)
    masks = stack.dropout_masks(n, x)  # one mask per layer, shared by both passes

    h, a, logits = forward_pass(stack, x, masks)  # eq. 1: h_0 = x, ..., h_{L−1}; logits h_L
    loss, y_hat, e = cross_entropy_error(logits, t, y)  # e = softmax(h_L) − t
    x_err = x + modulation(rule, x, e)  # eq. 2: h_0^err = x + s F e

    if rule.modulation == "exact":
        h_err, _, logits_err = forward_pass(stack, x_err, masks)
        difference = [h_l - h_err_l for h_l, h_err_l in zip(h, h_err, strict=True)]
        e_err = torch.softmax(logits_err, dim=1) - t
    else:  # first order: h_l − h_l^err = σ′(a_l) ⊙ W_l (h_{l−1} − h_{l−1}^err) (ICLR eq. 6)
        difference = linearised_differences(rule, stack, x - x_err, a, masks)
        h_err, e_err = None, None

    updates = []
    for l, layer in enumerate(stack.hidden, start=1):  # eqs. 3-4
        symbols = {
            "h - h_err": lambda l=l: difference[l],
            "h": lambda l=l: h[l],
            "-h_err": lambda l=l: -h_err[l],
            "h_prev": lambda l=l: h[l - 1],
            "h_prev_err": lambda l=l: h_err[l - 1],
        }
        updates.append(layer_update(layer, rule.terms.hidden, symbols, n))
    symbols = {  # eq. 5 and its variants
        "e": lambda: e,
        "e_err": lambda: e_err,
        "y": lambda: y_hat,
        "-t": lambda: -t,
        "h_prev": lambda: h[-1],
        "h_prev_err": lambda: h_err[-1],
    }
    updates.append(layer_update(stack.output, rule.terms.output, symbols, n))
    return updates, loss, logits


def forward_pass(
    stack: LayerStack, h_0: torch.Tensor, masks: list[torch.Tensor | None]
) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """h_l = σ_l(W_l P(h_{l−1}) + b_l) ⊙ m_l for every hidden layer: ([h_0, ..., h_{L−1}],
    [a_1, ..., a_{L−1}] the pre-activations, the logits)."""
    h, a = [h_0], []
    for layer, mask in zip(stack.hidden, masks, strict=True):
        a.append(layer.add_bias(layer.linear_map(h[-1])))
        h.append(layer.activate(a[-1], mask))
    output = stack.output
    return h, a, output.add_bias(output.linear_map(h[-1]))


def modulation(rule: ModulatedInputRule, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """What is added to the input: s F e, or the ICML App. D ablations s F (k r), k r."""
    n, c = e.shape
    if rule.perturbation == "random":  # x + k r, r uniform in [−1, 1)^i
        return torch.empty_like(x).uniform_(-1.0, 1.0).mul_(rule.amplitude)
    if rule.perturbation == "projected-random":  # x + s F (k r), r uniform in [0, 1)^c
        e = torch.rand(n, c, dtype=x.dtype, device=x.device).mul_(rule.amplitude)
    return rule.sign * (e @ rule.F.T).view_as(x)


def linearised_differences(
    rule: ModulatedInputRule,
    stack: LayerStack,
    difference_0: torch.Tensor,
    a: list[torch.Tensor],
    masks: list[torch.Tensor | None],
) -> list[torch.Tensor]:
    """[h_0 − h_0^err, ..., h_{L−1} − h_{L−1}^err] to first order in the modulation."""
    differences = [difference_0]
    for l, (layer, a_l, mask) in enumerate(zip(stack.hidden, a, masks, strict=True)):
        slope = activation_of(layer.activation, rule.name, f"hidden layer {l}").slope(a_l)
        slope = slope if mask is None else slope * mask
        differences.append(slope * layer.linear_map(differences[-1]))
    return differences


def layer_update(layer: WalkLayer, terms: tuple[Term, ...], symbols, n: int) -> Update:
    """ΔW = (1/n) Σ_k post_kᵀ P(pre_k), Δb = (1/n) Σ_k Σ_samples post_k (a convolution: the
    correlation of each filter with its inputs, divided and signed as its ``divisor`` says)."""
    weight = bias = None
    for term in terms:
        post, pre = symbols[term.post](), layer.inputs(symbols[term.pre]())
        if isinstance(layer, ConvLayer):
            c = layer.conv
            divisor = layer.divisor(n, post.shape[-2] * post.shape[-1])
            dw = torch.nn.grad.conv2d_weight(
                pre, c.weight.shape, post, c.stride, c.padding, c.dilation, c.groups
            )
            dw, db = dw / divisor, post.sum(dim=(0, 2, 3)) / divisor
        else:
            dw, db = post.T @ pre / n, post.sum(dim=0) / n
        weight = dw if weight is None else weight + dw
        bias = db if bias is None else bias + db
    return weight, (bias if _bias(layer) is not None else None)


def _bias(layer: WalkLayer) -> torch.nn.Parameter | None:
    return layer.conv.bias if isinstance(layer, ConvLayer) else layer.linear.bias
