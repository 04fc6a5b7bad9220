"""Forward-Forward: each hidden layer raises the goodness of positive data, lowers the negative."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bpfree.core.checks import NON_NEGATIVE_INT, SEED, one_of
from bpfree.rules.base import StepResult
from bpfree.rules.common.options import Option
from bpfree.rules.common.streams import RandomStream
from bpfree.rules.forward_forward.mechanism import (
    SIGNS,
    THRESHOLD,
    ForwardForwardRule,
    ff_loss,
    goodness,
    goodness_delta,
    head_error,
    head_logits,
    normalise,
    thresholds,
    walk,
    write_summed_grad,
    zero_grad,
)
from bpfree.rules.forward_forward.negatives import (
    check_image_shape,
    hybrids,
    resolve_image_shape,
    wrong_labels,
)
from bpfree.rules.registry import register


@register
class FF(ForwardForwardRule):
    """Forward-Forward (Hinton 2022): two forward passes, one local logistic loss per layer.

    Symbols: h_l the output of hidden layer l (ReLU, dropout), ĥ_l = √o h_l / (‖h_l‖₂ + ε) what
    layer l+1 receives, G_l = Σ_o h_{l,o}² its goodness, θ_l its threshold, s = +1 for a positive
    sample and −1 for a negative one, t the one-hot label, embed(x, k) the input x with its first
    c features overwritten by the one-hot of label k.

    Update of every hidden layer, closed form (see ``forward_forward.mechanism``):
        loss_l = mean softplus(−s (G_l − θ_l))            p(positive) = σ(G_l − θ_l)
        δ_l = −s σ(−s (G_l − θ_l)) · 2 h_l ⊙ σ′(a_l) ⊙ m_l
        ΔW_l = Σ_± δ_lᵀ ĥ_{l−1} / n,   ĥ_0 = the (embedded or hybrid) input

    Negative data (``negatives``):
        ``"label"`` (supervised, Sec. 3.3): positive embed(x, y), negative embed(x, ŷ) with ŷ
            uniform among the wrong labels. Prediction: argmax_k Σ_{l ∈ goodness_layers}
            G_l(embed(x, k)). The head is not used: its ``.grad`` is set to zeros, so the
            optimizer leaves it (SGD, Adam; a decoupled weight decay would still shrink it).
        ``"hybrid"`` (unsupervised, Sec. 3.2): positive x, negative mask ⊙ x + (1 − mask) ⊙ x',
            x' another image of the batch and the mask a blurred, thresholded random bit image.
            The head is a softmax classifier on ĥ_{L−1} of the positive pass, trained by the
            delta rule ΔW_L = (softmax − t)ᵀ ĥ_{L−1} / n; prediction is its logits.

    The positive and negative passes of a batch share one dropout mask. In label mode the first
    layer is linear in its input, W₁ embed(x, k) = W₁ x₀ + W₁[:, k] with x₀ the input's label
    features zeroed: one (n, i, o) product serves every label, and its update splits the same way.
    ``step``'s output is the goodness of every label on the batch (the positive and the negative
    pass are two of these c passes, so this costs c passes of the layers after the first instead
    of 2): it equals ``predict(x)`` before the optimizer step, dropout masks aside. Its loss is
    Σ_l loss_l, plus the head's cross-entropy in hybrid mode.

    Args:
        model: a ``bpfree.models.MLP`` (or a model shaped like it), at least one hidden layer,
            activations ReLU (Hinton's), tanh, sigmoid or identity.
        negatives: ``"label"`` or ``"hybrid"``.
        threshold: θ for every layer, > 0; default each layer's number of units (a mean square
            activity of 1).
        goodness_layers: hidden-layer indices (from 0) whose goodness ``predict`` sums in label
            mode; default all but the first when there are two or more (Hinton, Sec. 3.3).
        blur_steps: blurring passes of the hybrid masks (hybrid mode), ≥ 0.
        image_shape: (h, w) or (channels, h, w) to cut hybrids in when the batches are flat;
            default the shape of the batch's samples.
        seed: seed of the stream of negative labels and hybrid masks (saved in ``state_dict()``
            as ``stream.state``, so a resumed run draws what it would have drawn).
        num_classes: inferred from the model's last ``nn.Linear`` when omitted; in label mode at
            most the number of input features.

    Example:
        >>> model = MLP((784, 500, 500, 10))
        >>> rule = FF(model)
        >>> opt = bpfree.optimizer(rule, torch.optim.Adam, lr=1e-3)
        >>> rule.step(x, y); opt.step()

    Reference: Hinton, "The Forward-Forward Algorithm: Some Preliminary Investigations",
    arXiv:2212.13345, 2022.
    """

    name = "ff"

    negatives = Option("label", one_of("label", "hybrid"))
    threshold = Option(None, THRESHOLD)
    goodness_layers = Option(None)
    blur_steps = Option(6, NON_NEGATIVE_INT)
    image_shape = Option(None)
    seed = Option(0, SEED)

    def __init__(self, model: nn.Module, **options: Any) -> None:
        super().__init__(model, **options)
        hidden = self.stack.hidden
        features = hidden[0].linear.in_features
        if self.negatives == "label" and self.num_classes > features:
            raise ValueError(
                f"num_classes must be at most the {features} input features for "
                f"negatives='label' (the label overwrites the first num_classes features), "
                f"got {self.num_classes}"
            )
        if self.negatives == "hybrid" and self.goodness_layers is not None:
            raise ValueError(
                "goodness_layers applies to negatives='label' only (hybrid mode predicts with "
                "the head)"
            )
        self.thresholds = thresholds(hidden, self.threshold)
        self.goodness_layers = check_goodness_layers(self.goodness_layers, len(hidden))
        self.image_shape = check_image_shape(self.image_shape, features)
        self.stream = RandomStream(self.seed, self.name)

    @torch.no_grad()
    def _step(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        batch_shape = x.shape
        x = self.stack.inputs(x)
        masks = self.stack.replayable_masks(x.shape[0], x)  # drawn layer by layer, twice
        if self.negatives == "label":
            return self.step_label(x, y, masks)
        image_shape = resolve_image_shape(self.image_shape, batch_shape)
        negative = hybrids(
            x,
            image_shape,
            blur_steps=self.blur_steps,
            stream=self.stream,
            rows=self.batch_rows(x.shape[0]),
        )
        return self.step_hybrid(x, negative, y, masks)

    def step_label(
        self, x: torch.Tensor, y: torch.Tensor, masks: Callable[[], Iterator[torch.Tensor | None]]
    ) -> StepResult:
        """Label mode: positive embed(x, y), negative embed(x, ŷ), read off every label's pass."""
        n, c = x.shape[0], self.num_classes
        wrong = wrong_labels(y, c, self.stream, rows=self.batch_rows(n))
        labels = torch.stack([y, wrong])  # (2, n): y, ŷ
        rows = torch.arange(n, device=x.device)
        sign = x.new_tensor(SIGNS).unsqueeze(1)
        scores, loss = x.new_zeros(n, c), x.new_zeros(())
        walked = self.label_walk(x, masks())
        layers = zip(self.stack.hidden, self.thresholds, masks(), strict=True)
        for l, (layer, theta, mask) in enumerate(layers):
            pre, a, h = next(walked)  # not through zip, which would hold the layer below (walk)
            G = goodness(h)  # (n, c): every label's goodness
            if l in self.goodness_layers:
                scores += G
            layer_loss, dG = ff_loss(G[rows, labels], sign, theta, n)
            delta = goodness_delta(layer, a[rows, labels], h[rows, labels], dG, mask)  # (2, n, o)
            loss += layer_loss
            if l > 0:
                write_summed_grad(layer, n, (delta.flatten(0, 1), pre[rows, labels].flatten(0, 1)))
            else:
                # ΔW₁ = Σ_± δ±ᵀ (x₀ + t±) / n: the shared x₀ part, then δ±ᵀ t± on the label
                # columns.
                write_summed_grad(layer, n, (delta.sum(dim=0), pre))
                layer.linear.weight.grad[:, :c].index_add_(
                    1, labels.flatten(), delta.flatten(0, 1).T, alpha=1.0 / n
                )
            del pre, a, h, G, delta  # the walk frees this layer before it computes the next
        zero_grad(self.stack.output)
        return StepResult(loss.detach(), scores)

    def step_hybrid(
        self,
        x: torch.Tensor,
        negative: torch.Tensor,
        y: torch.Tensor,
        masks: Callable[[], Iterator[torch.Tensor | None]],
    ) -> StepResult:
        """Hybrid mode: positive x, negative hybrids; the head learns by the delta rule."""
        n = x.shape[0]
        sign = x.new_tensor(SIGNS).unsqueeze(1)
        loss = x.new_zeros(())
        stacked = walk(self.stack.hidden, torch.stack([x, negative]), masks())  # (2, n, ·)
        for layer, theta, mask in zip(self.stack.hidden, self.thresholds, masks(), strict=True):
            pre, a, h = next(stacked)
            layer_loss, dG = ff_loss(goodness(h), sign, theta, n)
            delta = goodness_delta(layer, a, h, dG, mask)
            write_summed_grad(layer, n, (delta.flatten(0, 1), pre.flatten(0, 1)))
            loss += layer_loss
            del pre, a, delta  # h is kept: the head reads the last layer's
        features = normalise(h[0])  # ĥ_{L−1} of the positive pass
        logits = self.stack.output.forward(features, None)
        head_loss, e = head_error(logits, y, self.num_classes)
        self.stack.output.write_grad(e, features, n)  # ΔW_L = eᵀ ĥ_{L−1} / n
        return StepResult((loss + head_loss).detach(), logits)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Label mode: Σ_{l ∈ goodness_layers} G_l(embed(x, k)) for each label k, (n, c).
        Hybrid mode: the head's logits on ĥ_{L−1}."""
        x = self.stack.inputs(x)
        masks = self.stack.dropout_mask_stream(x.shape[0], x)
        if self.negatives == "hybrid":
            return head_logits(self.stack.hidden, self.stack.output, x, masks)
        scores = x.new_zeros(x.shape[0], self.num_classes)
        walked = self.label_walk(x, masks)
        for l in range(self.goodness_layers[-1] + 1):
            _, _, h = next(walked)
            if l in self.goodness_layers:
                scores += goodness(h)
            del h
        return scores

    def label_walk(
        self, x: torch.Tensor, masks: Iterable[torch.Tensor | None]
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Every label's pass at once: (input, a, h) of each hidden layer, a and h (n, c, o).

        The first layer's input is shared by all labels and yielded as x₀ (n, i), the input with
        its label features zeroed: W₁ embed(x, k) + b₁ = (W₁ x₀ + b₁) + W₁[:, k]. A sample's
        dropout mask serves all of its c passes.
        """
        c = self.num_classes
        first, *rest = self.stack.hidden
        masks = (None if mask is None else mask.unsqueeze(1) for mask in masks)
        x0 = x.clone()
        x0[:, :c] = 0.0
        weight = first.linear.weight
        a = F.linear(x0, weight, first.linear.bias).unsqueeze(1) + weight[:, :c].T  # (n, c, o)
        h = first.activate(a, next(masks))
        yield x0, a, h
        del a, x0  # not held while the deeper layers are walked
        deeper = walk(rest, normalise(h), masks)
        del h  # the walk holds ĥ₁ alone, and frees it after the second layer
        yield from deeper


def check_goodness_layers(layers: Sequence[int] | None, depth: int) -> tuple[int, ...]:
    """Distinct hidden-layer indices in [0, depth), sorted; default: all but the first, if any."""
    if layers is None:
        return tuple(range(1, depth)) if depth >= 2 else (0,)
    chosen = tuple(layers)
    if not (
        chosen
        and all(isinstance(l, int) and not isinstance(l, bool) and 0 <= l < depth for l in chosen)
        and len(set(chosen)) == len(chosen)
    ):
        raise ValueError(
            f"goodness_layers must be distinct hidden-layer indices in [0, {depth - 1}], "
            f"got {layers!r}"
        )
    return tuple(sorted(chosen))
