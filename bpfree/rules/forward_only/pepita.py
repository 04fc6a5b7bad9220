"""PEPITA: the output error modulates the input of a second forward pass."""

from __future__ import annotations

import math

import torch
from torch import nn

from bpfree.rules.base import StepResult, feedback_generator, one_hot
from bpfree.rules.forward_only.mechanism import ForwardOnlyRule, write_outer_grad
from bpfree.rules.registry import register


@register
class PEPITA(ForwardOnlyRule):
    """Present the Error to Perturb the Input To modulate Activity (ICML 2022, Algorithm 1).

    Symbols: x the input (n, i), W_l the layer weights, h_l = σ_l(W_l h_{l−1}) the clean pass,
    e = softmax(h_L) − t the output error (n, c), F a fixed random (i, c) matrix, s = ±1 the sign
    of the modulation, h_l^err the modulated pass.

    Update (ICML eqs. 1-5; the ICLR 2024 paper writes x − F e, i.e. s = −1):
        h_l^err = σ_l(W_l h_{l−1}^err),  h_0^err = x + s F e                         (eq. 2)
        ΔW_1 = (h_1 − h_1^err) (x + s F e)ᵀ                                          (eq. 3)
        ΔW_l = (h_l − h_l^err) (h_{l−1}^err)ᵀ,   1 < l < L                            (eq. 4)
        ΔW_L = e (h_{L−1}^err)ᵀ                                                      (eq. 5)
    averaged over the batch, with one dropout mask shared by both passes. The first layer is
    linear in its input, so W_1 (x + s F e) = W_1 x + s (W_1 F) e reuses the clean pass: the
    modulated pass costs one (o, c) product there instead of a full (n, i, o) one.

    Args:
        model: a ``bpfree.models.MLP`` (or a model shaped like it).
        sign: s, +1 for x + F e (ICML 2022), −1 for x − F e (ICLR 2024).
        presynaptic: ``"modulated"`` (eqs. 3-5) or ``"clean"`` (h_{l−1} and x instead; the ICML
            paper reports no difference).
        output_error: ``"clean"`` (e of eq. 5, Algorithm 1) or ``"modulated"`` (softmax(h_L^err)
            − t, as the ICML tutorial code does).
        f_scale: F is uniform in ±f_scale·√(6 / i) (ICML Table 2: 0.05).
        seed: seed of the generator drawing F.
        num_classes: inferred from the model's last ``nn.Linear`` when omitted.

    Example:
        >>> model = MLP((784, 1024, 10), dropout=0.1)
        >>> rule, opt = PEPITA(model), torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        >>> rule.step(x, y); opt.step()

    Reference: Dellaferrera, Kreiman, "Error-driven Input Modulation: Solving the Credit
    Assignment Problem without a Backward Pass", ICML 2022.
    """

    name = "pepita"

    def __init__(
        self,
        model: nn.Module,
        *,
        sign: int = 1,
        presynaptic: str = "modulated",
        output_error: str = "clean",
        f_scale: float = 0.05,
        seed: int = 0,
        num_classes: int | None = None,
    ) -> None:
        super().__init__(model, num_classes=num_classes)
        if sign not in (1, -1):
            raise ValueError(f"sign must be +1 (x + F e) or -1 (x - F e), got {sign!r}")
        if presynaptic not in ("modulated", "clean"):
            raise ValueError(f"presynaptic must be 'modulated' or 'clean', got {presynaptic!r}")
        if output_error not in ("clean", "modulated"):
            raise ValueError(f"output_error must be 'clean' or 'modulated', got {output_error!r}")
        if not f_scale >= 0.0:
            raise ValueError(f"f_scale must be non-negative, got {f_scale!r}")
        if not self.stack.hidden:
            raise ValueError("PEPITA needs a model with at least one hidden layer")
        self.sign, self.presynaptic, self.output_error = sign, presynaptic, output_error
        first = self.stack.layers[0].linear.weight
        n_inputs = first.shape[1]
        bound = f_scale * math.sqrt(6.0 / n_inputs)
        generator = feedback_generator(seed, self.name)
        F = torch.empty(n_inputs, self.num_classes, dtype=first.dtype)
        self.register_buffer("F", F.uniform_(-bound, bound, generator=generator).to(first.device))

    @torch.no_grad()
    def step(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        x = self.model.flatten(x)
        self.check_labels(x, y)
        n, s = x.shape[0], self.sign
        first, *hidden = self.stack.hidden
        masks = self.stack.dropout_masks(n, x)
        t = one_hot(y, self.num_classes, x.dtype)

        # Clean pass (eq. 1), with (W_1 F)ᵀ for the modulated pass from the same product:
        # [x; Fᵀ] W_1ᵀ = [W_1 x; (W_1 F)ᵀ] reads W_1 once.
        a_1, W1_F_T = (
            torch.cat([x, self.F.T]).mm(first.linear.weight.T).split([n, self.num_classes])
        )
        if first.linear.bias is not None:
            a_1 = a_1 + first.linear.bias
        clean = [first.activate(a_1, masks[0])]
        for layer, mask in zip(hidden, masks[1:], strict=True):
            clean.append(layer.forward(clean[-1], mask))
        logits = self.stack.output.forward(clean[-1], None)
        log_p = torch.log_softmax(logits, dim=1)
        e = log_p.exp().sub_(t)  # e = softmax(h_L) − t
        loss = -log_p.gather(1, y.unsqueeze(1)).mean()

        # Modulated pass (eq. 2): W_1 (x + s F e) = W_1 x + s (W_1 F) e.
        h_err = first.activate(torch.addmm(a_1, e, W1_F_T, alpha=s), masks[0])  # 'nc,co->no'
        if self.presynaptic == "modulated":
            x = torch.addmm(x, e, self.F.T, alpha=s)  # x + s F e: 'nc,ic->ni'
        write_outer_grad(first, clean[0] - h_err, x, n)  # eq. 3
        for l, (layer, mask) in enumerate(zip(hidden, masks[1:], strict=True), start=1):
            h_prev_err, h_err = h_err, layer.forward(h_err, mask)
            pre = self.presynaptic_of(h_prev_err, clean[l - 1])
            write_outer_grad(layer, clean[l] - h_err, pre, n)  # eq. 4
        if self.output_error == "modulated":
            e = torch.softmax(self.stack.output.forward(h_err, None), dim=1).sub_(t)
        write_outer_grad(self.stack.output, e, self.presynaptic_of(h_err, clean[-1]), n)  # eq. 5
        return StepResult(loss.item(), logits)

    def alignment(self) -> dict[str, dict[str, float]]:
        """Angle between F and the product of the forward weights (W_L ⋯ W_1)ᵀ (ICML Fig. 3b)."""
        from bpfree.diagnostics import angle_degrees, norm_ratio

        with torch.no_grad():
            product = self.stack.layers[0].linear.weight.T
            for layer in self.stack.layers[1:]:
                product = product @ layer.linear.weight.T  # (i, c) after the last layer
            return {
                "F": {
                    "angle": angle_degrees(self.F, product),
                    "norm_ratio": norm_ratio(self.F, product),
                }
            }

    def presynaptic_of(self, modulated: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        """The presynaptic term: the modulated-pass activity (eqs. 3-5) or the clean one."""
        return modulated if self.presynaptic == "modulated" else clean

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, sign={self.sign:+d}, presynaptic={self.presynaptic!r}, "
            f"output_error={self.output_error!r}"
        )
