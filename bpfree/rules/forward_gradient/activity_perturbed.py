"""Activity-perturbed forward gradient: each layer's pre-activation nudged at random."""

from __future__ import annotations

import torch
from torch import nn

from bpfree.rules.base import Rule, StepResult
from bpfree.rules.forward_gradient.mechanism import (
    RandomStream,
    activity_gradient,
    activity_jvp,
    check_perturbations,
    output_shapes,
)
from bpfree.rules.forward_only.mechanism import grad_buffer
from bpfree.rules.registry import register


def _linear_grads(layer: nn.Linear, h: torch.Tensor, g: torch.Tensor) -> list[torch.Tensor]:
    """∂/∂W = Σ gᵀ h ('...k,...i->ki') and ∂/∂b = Σ g, summed over the batch (and any sequence)."""
    grads = [torch.einsum("...k,...i->ki", g, h)]
    return grads + ([g.reshape(-1, g.shape[-1]).sum(0)] if layer.bias is not None else [])


def _conv2d_grads(layer: nn.Conv2d, h: torch.Tensor, g: torch.Tensor) -> list[torch.Tensor]:
    """∂/∂W = the correlation of h (n, i, h, w) with g (n, k, h′, w′); ∂/∂b = Σ_{n,h′,w′} g."""
    weight = torch.nn.grad.conv2d_weight(
        h, layer.weight.shape, g, layer.stride, _conv_padding(layer), layer.dilation, layer.groups
    )
    return [weight] + ([g.sum((0, 2, 3))] if layer.bias is not None else [])


def _conv_padding(layer: nn.Conv2d) -> tuple[int, int]:
    """The layer's zero padding as two ints ('valid' and symmetric 'same' converted)."""
    if layer.padding == "valid":
        return (0, 0)
    if layer.padding == "same":
        total = [d * (k - 1) for d, k in zip(layer.dilation, layer.kernel_size, strict=True)]
        return (total[0] // 2, total[1] // 2)
    return tuple(layer.padding)


def _supported_conv(layer: nn.Conv2d) -> bool:
    if layer.padding_mode != "zeros":
        return False
    if layer.padding != "same":
        return True
    return all(d * (k - 1) % 2 == 0 for d, k in zip(layer.dilation, layer.kernel_size, strict=True))


# Per-layer math, written once: the gradients of (weight, bias) from the layer's input h and the
# estimate g of the loss's gradient at its output.
LAYER_GRADS = {nn.Linear: _linear_grads, nn.Conv2d: _conv2d_grads}


def perturbed_layers(model: nn.Module, rule_name: str) -> dict[str, nn.Module]:
    """The model's Linear and Conv2d layers by name; any other trainable parameter is an error."""
    layers: dict[str, nn.Module] = {}
    for path, module in model.named_modules():
        trainable = any(p.requires_grad for p in module.parameters(recurse=False))
        if type(module) in LAYER_GRADS and trainable:
            if isinstance(module, nn.Conv2d) and not _supported_conv(module):
                raise ValueError(
                    f"{rule_name} cannot train {path!r}: only zero padding, symmetric when "
                    "'same', is supported"
                )
            layers[path] = module
        elif trainable:
            raise ValueError(
                f"{rule_name} cannot train the parameters of {path!r} "
                f"({type(module).__name__}): it perturbs the outputs of nn.Linear and nn.Conv2d "
                "layers only; use fg-weight for other layers"
            )
    if not layers:
        raise ValueError(f"{rule_name}: {type(model).__name__} has no nn.Linear or nn.Conv2d")
    return layers


@register
class FGActivity(Rule):
    """Activity-perturbed forward gradient (Ren et al. 2022): ĝ_l = (Σ_m ∇_{z_m}ℓ · u_m) u_l.

    Symbols: z_l (n, k_l) the output of the l-th Linear or Conv2d (its pre-activation; a feature
    map for a convolution), u_l ~ N(0, I) of the same shape, drawn for each sample, ℓ_i the
    cross-entropy of sample i, h_{l−1} the layer's input.

    Update (GrAPE paper eq. 4, unbiased since E[u uᵀ] = I and the u_l are independent):
        d_i = Σ_m ∇_{z_m,i} ℓ_i · u_m,i             one ``torch.func.jvp`` per direction
        ĝ_l,i = d_i u_l,i                           the estimate of ∇_{z_l,i} ℓ_i
        ΔW_l = (1/n) Σ_i ĝ_l,i h_{l−1,i}ᵀ,  Δb_l = (1/n) Σ_i ĝ_l,i   (a Linear; a Conv2d
               correlates ĝ with its input the same way), averaged over K directions
    Samples must not interact in the forward pass: no BatchNorm in training mode. Only Linear
    and Conv2d layers are trained; a model with other trainable parameters is refused.

    Args:
        model: any ``nn.Module`` returning logits (n, c) whose parameters all lie in
            ``nn.Linear`` and ``nn.Conv2d`` layers.
        perturbations: K, directions per batch, averaged; a positive int.
        seed: seed of the stream of directions (saved in ``state_dict()`` as ``stream.state``).
        num_classes: inferred from the model's last ``nn.Linear`` when omitted.

    Example:
        >>> rule = FGActivity(MLP((784, 256, 10)))
        >>> rule.step(x, y); opt.step()

    Reference: Ren, Kornblith, Liao, Hinton, "Scaling forward gradient with local losses",
    ICLR 2023 (arXiv:2210.03310).
    """

    name = "fg-activity"

    def __init__(
        self,
        model: nn.Module,
        *,
        perturbations: int = 1,
        seed: int = 0,
        num_classes: int | None = None,
    ) -> None:
        super().__init__(model, num_classes=num_classes)
        self.perturbations = check_perturbations(perturbations)
        layers = perturbed_layers(model, self.name)
        self.layers: list[str] = list(layers)
        object.__setattr__(self, "layer_modules", list(layers.values()))
        self.stream = RandomStream(seed, self.name)
        self._shapes: dict[tuple[int, ...], list[tuple[int, ...]]] = {}

    def step(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        self.check_batch(x, y)
        n = x.shape[0]
        if tuple(x.shape[1:]) not in self._shapes:
            self._shapes[tuple(x.shape[1:])] = output_shapes(
                self.model, dict(zip(self.layers, self.layer_modules, strict=True)), x
            )
        shapes = [(n, *shape) for shape in self._shapes[tuple(x.shape[1:])]]
        reference = self.layer_modules[0].weight
        grads = [
            [grad_buffer(p).zero_() for p in module.parameters(recurse=False)]
            for module in self.layer_modules
        ]
        scale = 1.0 / (n * self.perturbations)
        for _ in range(self.perturbations):
            u = self.stream.normal(shapes, reference)
            loss, d, output, inputs = activity_jvp(self.model, self.layer_modules, x, y, u)
            with torch.no_grad():
                for module, h, u_l, buffers in zip(
                    self.layer_modules, inputs, u, grads, strict=True
                ):
                    estimate = LAYER_GRADS[type(module)](module, h, activity_gradient(d, u_l))
                    for buffer, g in zip(buffers, estimate, strict=True):
                        buffer.add_(g, alpha=scale)
        return StepResult(loss.mean().item(), output)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, perturbations={self.perturbations}"
