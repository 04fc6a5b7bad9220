"""The feedback family's mechanism: a backward pass through feedback weights instead of Wᵀ.

While a feedback rule's forward pass runs, every ``F.linear`` and ``F.conv2d`` call on a
converted layer's weight goes through ``_FeedbackFunction``: its forward is the layer's own, its
backward sends the error δy down the rule's feedback path (for FA, δx = δy B̃ with B̃ the
feedback in W's place) while the weight and bias get the exact gradient for δy. Every other op
(activations, dropout, BatchNorm, pooling, residual additions) keeps its exact derivative, so a
rule runs on any ``nn.Module`` graph. A weighted layer type the rule cannot convert is an error
that names it: nothing silently falls back to backpropagation.

Feedback tensors have the shape of Wᵀ (see ``layers``). Index letters: n batch, i inputs,
o outputs.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from bpfree.rules.base import Rule, StepResult, clear_grads
from bpfree.rules.feedback.layers import LayerOps, conv_config, ops_for

logger = logging.getLogger(__name__)

# Layers whose parameters act elementwise: their exact gradient transports no weights.
EXACT_LAYERS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
)
SUPPORTED_LAYERS: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv2d)


class _FeedbackFunction(torch.autograd.Function):
    """The layer's forward; backward: δx from the rule's feedback path, exact δW and δb."""

    @staticmethod
    def forward(ctx, x, weight, bias, ops, config, path):
        ctx.save_for_backward(x, weight)
        ctx.ops, ctx.config, ctx.path, ctx.has_bias = ops, config, path, bias is not None
        return ops.forward(x, weight, bias, config)

    @staticmethod
    def backward(ctx, grad_y):
        x, weight = ctx.saved_tensors
        ops, config = ctx.ops, ctx.config
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[1]:
            grad_w = ops.weight_grad(x, grad_y, weight, config)
        if ctx.needs_input_grad[0]:
            grad_x = ctx.path(grad_y, x, config, grad_w)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = ops.bias_grad(grad_y)
        return grad_x, grad_w, grad_b, None, None, None


class FeedbackMode(TorchFunctionMode):
    """Inside this context, linear and conv calls on the given weights take their feedback paths.

    ``paths`` maps a weight to ``(ops, path)`` with ``path(δy, x, config, δW) -> δx``; other
    calls run unchanged.
    """

    def __init__(self, paths: dict[nn.Parameter, object]) -> None:
        super().__init__()
        self._paths = {id(weight): entry for weight, entry in paths.items()}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear or func is F.conv2d:
            entry = self._paths.get(id(args[1] if len(args) > 1 else kwargs.get("weight")))
            if entry is not None:
                ops, path = entry
                x, weight, bias, rest = _split_arguments(args, kwargs)
                config = conv_config(rest, kwargs, weight.shape[2:]) if func is F.conv2d else None
                return _FeedbackFunction.apply(x, weight, bias, ops, config, path)
        return func(*args, **kwargs)


def _split_arguments(args, kwargs):
    values = list(args)
    for position, name in enumerate(("input", "weight", "bias")):
        if position >= len(values):
            values.append(kwargs.pop(name, None))
    return values[0], values[1], values[2], tuple(values[3:])


def convertible_layers(model: nn.Module, rule_name: str) -> dict[str, nn.Module]:
    """The model's layers a feedback rule converts, by name; an error for any it cannot convert.

    A module with parameters of its own is a ``Linear`` or ``Conv2d`` (converted), a norm layer
    (kept exact), or an error naming its path and type.
    """
    layers: dict[str, nn.Module] = {}
    for path, module in model.named_modules():
        if not any(True for _ in module.parameters(recurse=False)):
            continue
        if isinstance(module, SUPPORTED_LAYERS):
            layers[path] = module
        elif not isinstance(module, EXACT_LAYERS):
            raise ValueError(
                f"{rule_name} cannot convert layer {path!r} of type {type(module).__name__}: "
                "supported layer types are Linear and Conv2d (BatchNorm, LayerNorm and "
                "GroupNorm are kept exact)"
            )
    if not layers:
        raise ValueError(f"{rule_name} found no layer to convert in {type(model).__name__}")
    logger.info("%s converted %d layers: %s", rule_name, len(layers), ", ".join(layers))
    return layers


def he_uniform_like_transposed(weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A Wᵀ-shaped tensor drawn like W (uniform in ±√(6 / fan_in)), on W's device and dtype."""
    bound = math.sqrt(6.0 / weight[0].numel())
    b = torch.empty(weight.shape, dtype=weight.dtype).uniform_(-bound, bound, generator=generator)
    return b.transpose(0, 1).contiguous().to(weight.device)


class FeedbackRule(Rule):
    """A rule whose backward pass runs through feedback weights, one set per converted layer.

    Subclasses give the Wᵀ-shaped feedback each layer uses at a step (``feedback``), and may
    replace the whole feedback path (``backward_through``), prepare a step (``before_step``) or
    adapt their state after the backward pass (``after_backward``). ``converted`` names each
    converted layer with its type and weight shape.
    """

    def __init__(self, model: nn.Module, *, num_classes: int | None = None) -> None:
        super().__init__(model, num_classes=num_classes)
        layers = convertible_layers(model, type(self).__name__)
        self.converted: dict[str, str] = {
            path: f"{type(layer).__name__}{tuple(layer.weight.shape)}"
            for path, layer in layers.items()
        }
        object.__setattr__(self, "layers", list(layers.values()))
        object.__setattr__(self, "ops", [ops_for(layer) for layer in self.layers])
        # Input shape and geometry of each layer whose feedback path has run: the layers whose
        # feedback matters (a first layer fed by data never needs one).
        self.feedback_inputs: dict[int, tuple[tuple[int, ...], object]] = {}

    def feedback(self, index: int) -> torch.Tensor:
        """The Wᵀ-shaped feedback of layer ``index`` at this step."""
        raise NotImplementedError

    def backward_through(
        self, index: int, grad_y: torch.Tensor, x: torch.Tensor, config, grad_w
    ) -> torch.Tensor:
        """δx of layer ``index``: δy sent through its feedback, δx = δy B̃ (B̃ = feedbackᵀ).

        ``grad_w`` is the layer's exact weight gradient δW, already computed (``None`` when the
        weight is frozen), for rules whose feedback learns from it.
        """
        ops: LayerOps = self.ops[index]
        return ops.input_grad(grad_y, ops.transpose(self.feedback(index)), x, config)

    def before_step(self) -> None:
        """Prepare the feedback of a step (e.g. redraw random magnitudes)."""

    def after_backward(self) -> None:
        """Adapt the feedback state once the gradients are written."""

    def step(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        self.check_batch(x, y)
        clear_grads(self.model)
        clear_grads(self)
        self.before_step()
        paths = {
            layer.weight: (ops, self._path(index))
            for index, (layer, ops) in enumerate(zip(self.layers, self.ops, strict=True))
        }
        with FeedbackMode(paths):
            output = self.model(x)
        loss = self.loss(output, y)
        loss.backward()
        self.after_backward()
        return StepResult(loss.item(), output.detach())

    def _path(self, index: int):
        def path(grad_y, x, config, grad_w):
            self.feedback_inputs[index] = (tuple(x.shape), config)
            return self.backward_through(index, grad_y, x, config, grad_w)

        return path

    def alignment(self) -> dict[str, dict[str, float]]:
        """Angle (degrees) and norm ratio of each used feedback against Wᵀ, by layer name.

        Only layers whose feedback path has run are reported (all of them before any step).
        """
        from bpfree.diagnostics import angle_degrees, norm_ratio

        used = self.feedback_inputs or range(len(self.layers))
        names = list(self.converted)
        with torch.no_grad():
            return {
                names[i]: {
                    "angle": angle_degrees(self.feedback(i), self.layers[i].weight.transpose(0, 1)),
                    "norm_ratio": norm_ratio(self.feedback(i), self.layers[i].weight),
                }
                for i in sorted(used)
            }
