"""The feedback family's mechanism: a backward pass through feedback matrices instead of Wᵀ.

Every ``nn.Linear`` of the model is converted: while the rule's forward pass runs, its
``F.linear`` call goes through ``_FeedbackLinear``, whose forward is the ordinary linear map and
whose backward sends the error down through the layer's feedback matrix B (shape of Wᵀ) instead of
the weight itself. Every other op (activations, dropout, normalisation, residual additions) keeps
its exact derivative, so a rule runs on any ``nn.Module`` graph. A weighted layer type the rule
cannot convert is an error that names it: nothing silently falls back to backpropagation.

Index letters: n batch, i input features, o output features.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from bpfree.rules.base import BufferList, Rule, StepResult, clear_grads

logger = logging.getLogger(__name__)

# Layers whose parameters act elementwise: their exact gradient transports no weights.
EXACT_LAYERS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
)


class _FeedbackLinear(torch.autograd.Function):
    """y = x Wᵀ + b forward; backward δx = δy Bᵀ with B (i, o) in place of Wᵀ, exact δW and δb."""

    @staticmethod
    def forward(ctx, x, weight, bias, feedback):
        ctx.save_for_backward(x, feedback)
        ctx.has_bias = bias is not None
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad_y):
        x, feedback = ctx.saved_tensors
        grad_y2 = grad_y.reshape(-1, grad_y.shape[-1])
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = (grad_y2 @ feedback.T).reshape(x.shape)  # δx = δy Bᵀ: 'no,io->ni'
        if ctx.needs_input_grad[1]:
            grad_w = grad_y2.T @ x.reshape(-1, x.shape[-1])  # δW = δyᵀ x: 'no,ni->oi'
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_y2.sum(0)
        return grad_x, grad_w, grad_b, None


class FeedbackMode(TorchFunctionMode):
    """Inside this context, ``F.linear`` calls on the given weights use their feedback matrices."""

    def __init__(self, feedback_of: dict[nn.Parameter, torch.Tensor]) -> None:
        super().__init__()
        self._feedback_of = {id(weight): b for weight, b in feedback_of.items()}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear:
            x, weight, bias = _linear_arguments(*args, **kwargs)
            feedback = self._feedback_of.get(id(weight))
            if feedback is not None:
                return _FeedbackLinear.apply(x, weight, bias, feedback)
        return func(*args, **kwargs)


def _linear_arguments(input, weight, bias=None):
    return input, weight, bias


def convertible_layers(
    model: nn.Module, supported: tuple[type[nn.Module], ...], rule_name: str
) -> dict[str, nn.Module]:
    """The model's layers a feedback rule converts, by name; an error for any it cannot convert.

    A module with parameters of its own is either one of ``supported`` (converted), one of
    ``EXACT_LAYERS`` (kept exact), or an error naming its path and type.
    """
    layers: dict[str, nn.Module] = {}
    for path, module in model.named_modules():
        if not any(True for _ in module.parameters(recurse=False)):
            continue
        if isinstance(module, supported):
            layers[path] = module
        elif not isinstance(module, EXACT_LAYERS):
            raise ValueError(
                f"{rule_name} cannot convert layer {path!r} of type {type(module).__name__}: "
                f"supported layer types are {', '.join(t.__name__ for t in supported)} "
                f"(and {', '.join(t.__name__ for t in EXACT_LAYERS[1:])}, BatchNorm kept exact)"
            )
    if not layers:
        raise ValueError(f"{rule_name} found no layer to convert in {type(model).__name__}")
    logger.info("%s converted %d layers: %s", rule_name, len(layers), ", ".join(layers))
    return layers


class FeedbackRule(Rule):
    """A rule whose backward pass runs through feedback matrices B_l, one per converted layer.

    Subclasses draw the initial B_l (``init_feedback``), may derive the matrices used at a step
    from the weights (``feedback_matrices``), and may adapt their state after the backward pass
    (``update_feedback``). ``converted`` names each converted layer.
    """

    supported: tuple[type[nn.Module], ...] = (nn.Linear,)

    def __init__(self, model: nn.Module, *, seed: int = 0, num_classes: int | None = None) -> None:
        super().__init__(model, num_classes=num_classes)
        layers = convertible_layers(model, self.supported, type(self).__name__)
        self.converted: dict[str, str] = {
            path: f"{type(layer).__name__}{tuple(layer.weight.shape)}"
            for path, layer in layers.items()
        }
        object.__setattr__(self, "layers", list(layers.values()))
        generator = torch.Generator().manual_seed(seed)
        self.B = BufferList([self.init_feedback(layer, generator) for layer in self.layers])

    def init_feedback(self, layer: nn.Module, generator: torch.Generator) -> torch.Tensor:
        """The initial feedback matrix B (shape of Wᵀ) of ``layer``."""
        raise NotImplementedError

    def feedback_matrices(self) -> list[torch.Tensor]:
        """The B_l the backward pass uses at this step (by default the stored ones)."""
        return list(self.B)

    def update_feedback(self) -> None:
        """Adapt the feedback state after the backward pass (fixed feedback: nothing to do)."""

    def step(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        self.check_labels(x, y)
        clear_grads(self.model)
        feedback_of = dict(
            zip((layer.weight for layer in self.layers), self.feedback_matrices(), strict=True)
        )
        with FeedbackMode(feedback_of):
            output = self.model(x)
        loss = F.cross_entropy(output, y)
        loss.backward()
        self.update_feedback()
        return StepResult(loss.item(), output.detach())
