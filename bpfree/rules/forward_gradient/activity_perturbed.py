"""Activity-perturbed forward gradient: each layer's pre-activation nudged at random."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bpfree.core.checks import POSITIVE_INT, SEED
from bpfree.rules.base import Rule, StepResult
from bpfree.rules.common.buffers import add_scaled_
from bpfree.rules.common.directional import ActivityJvp, activity_gradient
from bpfree.rules.common.layer_math import ConvConfig, layer_config, ops_for
from bpfree.rules.common.options import Option
from bpfree.rules.common.probe import output_shapes
from bpfree.rules.common.streams import RandomStream
from bpfree.rules.registry import register


def perturbed_layers(model: nn.Module, rule_name: str) -> dict[str, nn.Module]:
    """The model's Linear and Conv2d layers by name; any other trainable parameter is an error."""
    layers: dict[str, nn.Module] = {}
    for path, module in model.named_modules():
        trainable = any(p.requires_grad for p in module.parameters(recurse=False))
        if type(module) in (nn.Linear, nn.Conv2d) and trainable:
            try:
                layer_config(module)
            except ValueError:
                raise ValueError(
                    f"{rule_name} cannot train {path!r}: only zero padding, symmetric when "
                    "'same', is supported"
                ) from None
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
        d_i = Σ_m ∇_{z_m,i} ℓ_i · u_m,i             one forward-mode pass per direction
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
        >>> opt = bpfree.optimizer(rule, torch.optim.SGD, lr=0.01)
        >>> rule.step(x, y); opt.step()

    Reference: Ren, Kornblith, Liao, Hinton, "Scaling forward gradient with local losses",
    ICLR 2023 (arXiv:2210.03310).
    """

    name = "fg-activity"
    perturbations = Option(1, POSITIVE_INT)
    seed = Option(0, SEED)

    def __init__(self, model: nn.Module, **options: Any) -> None:
        super().__init__(model, **options)
        layers = perturbed_layers(model, self.name)
        self.layers: list[str] = list(layers)
        object.__setattr__(self, "layer_modules", list(layers.values()))
        object.__setattr__(self, "activity_jvp", ActivityJvp(self.layer_modules))
        self.configs: list[ConvConfig | None] = [layer_config(m) for m in self.layer_modules]
        self.stream = RandomStream(self.seed, self.name)
        self._shapes: dict[tuple[int, ...], list[tuple[int, ...]]] = {}

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        n = x.shape[0]
        if tuple(x.shape[1:]) not in self._shapes:
            self._shapes[tuple(x.shape[1:])] = output_shapes(
                self.model, dict(zip(self.layers, self.layer_modules, strict=True)), x
            )
        shapes = [(n, *shape) for shape in self._shapes[tuple(x.shape[1:])]]
        reference = self.layer_modules[0].weight
        for module in self.layer_modules:
            for param in module.parameters(recurse=False):
                self.grads.zeros(param)
        scale = 1.0 / (n * self.perturbations)
        for _ in range(self.perturbations):
            u = self.stream.normal(shapes, reference, rows=self.batch_rows(n))
            loss, d, output, inputs = self.activity_jvp(self.model, x, y, u)
            with torch.no_grad():
                for module, config, h, u_l in zip(
                    self.layer_modules, self.configs, inputs, u, strict=True
                ):
                    self._add_estimate(module, config, h, activity_gradient(d, u_l), scale)
        return StepResult(loss.mean().detach(), output)

    def _add_estimate(
        self, module: nn.Module, config: ConvConfig | None, h: torch.Tensor, g: torch.Tensor, scale
    ) -> None:
        """Add scale · (∂/∂W, ∂/∂b) for the output-gradient estimate g and the input h."""
        ops = ops_for(module)
        add_scaled_(module.weight.grad, ops.weight_grad(h, g, module.weight, config), alpha=scale)
        if module.bias is not None:
            add_scaled_(module.bias.grad, ops.bias_grad(g), alpha=scale)
