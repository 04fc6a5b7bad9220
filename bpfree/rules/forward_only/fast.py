"""The fast form of the two-pass rules: the updates of ``equations.py``, computed in less time
and memory.

What it does that the equations do not:

- The first layer is linear in its input, so W_1 (x + s F e) = W_1 x + s (W_1 F) e: the
  modulated pass reuses the clean pre-activation and costs one (o, c) product there.
- Its update Σ_k post_kᵀ pre_k, with pre_k ∈ {x, x + s F e}, is (Σ_k post_k)ᵀ x +
  s ((Σ_{k: x + s F e} post_k)ᵀ e) Fᵀ, which never forms the modulated input (n, i); taken
  when the batch is at least as wide as the layer, or when there are several terms.
- h_1 is not held through the clean pass (it is recomputed from a_1, which the modulated pass
  needs anyway); each clean activity is freed once the layers reading it are done; differences
  are formed in place where nothing reads the clean activity again; the two passes' dropout
  masks are held as one byte per unit between them (``SharedMasks``).
- AFA's linear pass chains δ_l = σ′(a_l) ⊙ W_l δ_{l−1} with the slopes of the clean pass.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from bpfree.rules.base import StepResult
from bpfree.rules.common.activations import activation_of
from bpfree.rules.common.buffers import addmm_into
from bpfree.rules.common.losses import cross_entropy_error, one_hot
from bpfree.rules.common.walk import WalkLayer, first_layer_maps
from bpfree.rules.forward_only.mechanism import ModulatedInputRule, Term

# ``rule`` below is a TwoPassRule (two_pass.py, which imports this module): its terms,
# modulation and options are read here.

Lazy = Callable[[], torch.Tensor]


def step(rule: ModulatedInputRule, x: torch.Tensor, y: torch.Tensor) -> StepResult:
    """One step of ``rule`` on a checked batch, its updates written into ``.grad``."""
    if rule.modulation == "linear":
        return _linear_step(rule, x, y)
    return _exact_step(rule, x, y)


def write_terms(layer: WalkLayer, terms: tuple[Term, ...], values: dict[str, Lazy], n: int) -> None:
    """ΔW = (1/n) Σ_k post_kᵀ pre_k from the lazily computed symbols; several terms go through
    one product over their stacked rows."""
    posts = [values[term.post]() for term in terms]
    pres = [values[term.pre]() for term in terms]
    if len(terms) == 1:
        layer.write_grad(posts[0], pres[0], n)
    else:
        layer.write_grad(torch.cat(posts), torch.cat(pres), n)


def _hidden_values(
    h: torch.Tensor, h_err: torch.Tensor, pre, pre_err, keep_clean: bool
) -> dict[str, Lazy]:
    """The symbols of a hidden layer's terms; h − h^err is formed in h's place unless the
    clean activity is read again as a presynaptic term."""
    return {
        "h - h_err": lambda: h - h_err if keep_clean else h.sub_(h_err),
        "h": lambda: h,
        "-h_err": lambda: -h_err,
        "h_prev": lambda: pre,
        "h_prev_err": lambda: pre_err,
    }


def _exact_step(rule: ModulatedInputRule, x: torch.Tensor, y: torch.Tensor) -> StepResult:
    stack, terms = rule.stack, rule.terms
    x = stack.inputs(x)
    n, c, s, F = x.shape[0], rule.num_classes, rule.sign, rule.F
    first, *hidden = stack.hidden
    keep_clean = terms.reads_clean_inputs
    masks = stack.shared_masks(n, x)  # the same mask per layer in both passes
    t = one_hot(y, c, x.dtype)

    # Clean pass (eq. 1), and W_1 F (F's columns shaped like inputs) for the modulated pass.
    through_F = rule.perturbation != "random"
    if through_F:
        a_1, W1_F = first_layer_maps(first, x, F.T.reshape(c, *x.shape[1:]))
    else:
        a_1 = first.add_bias(first.linear_map(x))
    clean_masks = masks.first_pass()
    h, clean = first.activate(a_1, next(clean_masks)), [None]
    for layer in hidden:  # next(): no loop variable holds a mask beyond its layer
        h = layer.forward(h, next(clean_masks))
        clean.append(h)
    logits = stack.output.forward(h, None)
    del h
    loss, p, e = cross_entropy_error(logits, t, y)
    if rule.perturbation == "projected-random":  # ICML eq. 11: F (k r) in F e's place
        projected = torch.rand(n, c, dtype=x.dtype, device=x.device).mul_(rule.amplitude)
    else:
        projected = e  # what F projects onto the input: the error

    # Modulated pass (eq. 2): W_1 (x + s F e) = W_1 x + s (W_1 F) e, formed in a_1's place
    # (once h_1 is recomputed from it, and unless h_1 is a_1 itself).
    modulated_masks = masks.second_pass()
    mask = next(modulated_masks)
    clean[0] = first.activate(a_1, mask)
    if clean[0] is a_1:  # an identity σ without dropout: h_1 is a_1 itself
        a_1 = a_1.clone()
    if through_F:
        a_1.view(n, -1).addmm_(projected, W1_F.view(c, -1), alpha=s)  # 'nc,c...->n...'
    else:  # ICML App. D: x + k r
        kr = torch.empty_like(x).uniform_(-1.0, 1.0).mul_(rule.amplitude)
        a_1.add_(first.linear_map(kr))
    h_err = first.activate_(a_1, mask)
    del a_1, mask
    width = h_err.shape[1]
    if through_F and not stack.conv and (n >= width or len(terms.hidden) > 1):
        _write_first_layer_split(rule, clean[0], h_err, x, projected, n)
    else:
        x_err = x + (projected.mm(F.T).view_as(x).mul_(s) if through_F else kr)
        write_terms(first, terms.hidden, _hidden_values(clean[0], h_err, x, x_err, keep_clean), n)
    for l, layer in enumerate(hidden, start=1):
        pre = clean[l - 1] if keep_clean else None
        clean[l - 1] = None  # each clean activity is freed once its layers are done
        h_prev_err, h_err = h_err, layer.forward(h_err, next(modulated_masks))
        values = _hidden_values(clean[l], h_err, pre, h_prev_err, keep_clean)
        write_terms(layer, terms.hidden, values, n)  # eq. 4
        del pre, h_prev_err, values
    _write_output(rule, p, t, clean[-1], h_err, n)  # eq. 5
    return StepResult(loss.detach(), logits)


def _write_first_layer_split(
    rule: ModulatedInputRule,
    h: torch.Tensor,
    h_err: torch.Tensor,
    x: torch.Tensor,
    projected: torch.Tensor,
    n: int,
) -> None:
    """Eq. 3 without forming x + s F e (n, i): Σ_k post_kᵀ pre_k = (Σ_k post_k)ᵀ x +
    s ((Σ_{k: pre_k = x + s F e} post_k)ᵀ e) Fᵀ."""
    first, terms = rule.stack.hidden[0], rule.terms.hidden
    values = _hidden_values(h, h_err, None, None, rule.terms.reads_clean_inputs)
    posts = [values[term.post]() for term in terms]
    modulated = [post for post, term in zip(posts, terms, strict=True) if term.pre == "h_prev_err"]
    first.write_grad(_sum(posts), x, n)
    if modulated:
        sums = _sum(modulated).T.mm(projected)  # (o, c)
        addmm_into(first.weight.grad, sums, rule.F.T, beta=1.0, alpha=rule.sign / n)


def _sum(tensors: list[torch.Tensor]) -> torch.Tensor:
    total = tensors[0]
    for tensor in tensors[1:]:
        total = total + tensor
    return total


def _write_output(
    rule: ModulatedInputRule,
    p: torch.Tensor,
    t: torch.Tensor,
    h: torch.Tensor,
    h_err: torch.Tensor,
    n,
) -> None:
    """Eq. 5 and its variants: the output layer's terms."""
    output = rule.stack.output
    values = {
        "e": lambda: p - t,
        "e_err": lambda: torch.softmax(output.forward(h_err, None), dim=1).sub_(t),
        "y": lambda: p,
        "-t": lambda: -t,
        "h_prev": lambda: h,
        "h_prev_err": lambda: h_err,
    }
    write_terms(output, rule.terms.output, values, n)


def _linear_step(rule: ModulatedInputRule, x: torch.Tensor, y: torch.Tensor) -> StepResult:
    """The first-order modulated pass (AFA): δ_1 = −s σ′(a_1) ⊙ (W_1 F e), δ_l = σ′(a_l) ⊙
    (W_l δ_{l−1}), written as the terms δ_l h_{l−1}ᵀ and e h_{L−1}ᵀ."""
    stack = rule.stack
    x = stack.inputs(x)
    n, c = x.shape[0], rule.num_classes
    masks = stack.dropout_masks(n, x)
    first = stack.hidden[0]
    a_1, W1_F = first_layer_maps(first, x, rule.F.T)  # W_1 x + b_1 and (W_1 F)ᵀ (c, o)
    h, slopes, inputs = x, [], []
    for l, (layer, mask) in enumerate(zip(stack.hidden, masks, strict=True)):
        a = a_1 if l == 0 else layer.add_bias(layer.linear_map(h))
        slope = activation_of(layer.activation, rule.name, f"hidden layer {l}").slope(a)
        inputs.append(h)
        slopes.append(slope if mask is None else slope * mask)  # σ′(a_l) ⊙ mask
        h = layer.activate(a, mask)
    logits = stack.output.forward(h, None)
    loss, _, e = cross_entropy_error(logits, one_hot(y, c, x.dtype), y)

    delta = e.mm(W1_F).mul_(slopes[0]).mul_(-rule.sign)  # δ_1 = −s σ′(a_1) ⊙ (W_1 F e)
    for l, layer in enumerate(stack.hidden):
        if l > 0:
            delta = delta.mm(layer.weight.T).mul_(slopes[l])  # δ_l
        layer.write_grad(delta, inputs[l], n)  # the term (h_l − h_l^err) h_{l−1}ᵀ
    stack.output.write_grad(e, h, n)  # the term e h_{L−1}ᵀ
    return StepResult(loss.detach(), logits)
