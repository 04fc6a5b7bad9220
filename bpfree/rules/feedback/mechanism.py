"""The feedback family's mechanism: a backward pass through feedback weights instead of Wᵀ.

While a feedback rule's forward pass runs, every ``F.linear`` and ``F.conv2d`` call on a
converted layer's weight goes through ``_FeedbackFunction``: its forward is the layer's own, its
backward sends the error δy down the rule's feedback path (for FA, δx = δy B̃ with B̃ the
feedback in W's place) while the weight and bias get the exact gradient for δy. Every other op
(activations, dropout, BatchNorm, pooling, residual additions) keeps its exact derivative, so a
rule runs on any ``nn.Module`` graph. A weighted layer type the rule cannot convert is an error
that names it: nothing silently falls back to backpropagation.

Feedback tensors have the shape of Wᵀ (see ``common.layer_math``). Index letters: n batch,
i inputs, o outputs.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from bpfree.core.checks import SEED
from bpfree.rules.base import Rule, StepResult
from bpfree.rules.common.alignment import alignment_of
from bpfree.rules.common.layer_math import ConvConfig, LayerOps, conv_config, ops_for
from bpfree.rules.common.options import Option
from bpfree.rules.common.probe import eval_mode
from bpfree.rules.common.streams import RandomStream

logger = logging.getLogger(__name__)

# Layers whose parameters act elementwise: their exact gradient transports no weights.
EXACT_LAYERS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
)
SUPPORTED_LAYERS: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv2d)

# A feedback path: (δy, x, conv geometry or None, whether δW is wanted) -> (δx, exact δW or None).
Path = Callable[[torch.Tensor, torch.Tensor, Any, bool], tuple[torch.Tensor, torch.Tensor | None]]


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
        needs_x, needs_w, needs_b = ctx.needs_input_grad[:3]
        if needs_x:
            grad_x, grad_w = ctx.path(grad_y, x, config, needs_w)
        else:  # x is data: δW alone
            grad_x, grad_w = None, ops.weight_grad(x, grad_y, weight, config) if needs_w else None
        grad_b = ops.bias_grad(grad_y) if ctx.has_bias and needs_b else None
        return grad_x, grad_w, grad_b, None, None, None


class FeedbackMode(TorchFunctionMode):
    """Inside this context, linear and conv calls on the given weights take their feedback paths.

    ``paths`` maps a weight to ``(ops, path)`` with ``path(δy, x, config, weight_grad) ->
    (δx, δW)`` (δW None unless ``weight_grad``); other calls run unchanged. With ``path`` None,
    a call runs unchanged and ``on_input(weight, x, config)`` is told of it instead.
    """

    def __init__(
        self,
        paths: dict[nn.Parameter, tuple[LayerOps, Path | None]],
        on_input: Callable[[nn.Parameter, torch.Tensor, Any], None] | None = None,
    ) -> None:
        super().__init__()
        self._paths = {id(weight): (weight, *entry) for weight, entry in paths.items()}
        self._on_input = on_input

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear or func is F.conv2d:
            entry = self._paths.get(id(args[1] if len(args) > 1 else kwargs.get("weight")))
            if entry is not None:
                weight_param, ops, path = entry
                x, weight, bias, rest = _split_arguments(args, kwargs)
                config = conv_config(rest, kwargs, weight.shape[2:]) if func is F.conv2d else None
                if path is None:
                    self._on_input(weight_param, x, config)
                    return ops.forward(x, weight, bias, config)
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


class FeedbackRule(Rule):
    """A rule whose backward pass runs through feedback weights, one set per converted layer.

    Subclasses give the Wᵀ-shaped feedback each layer uses at a step (``feedback``), and may
    replace the whole feedback path (``backward_through``), prepare a step (``before_step``) or
    adapt their state after the backward pass (``after_backward``). ``converted`` names each
    converted layer with its type and weight shape.

    Every feedback rule draws its feedback (and any later random draw) from ``stream``, seeded
    by its ``seed`` option.

    State: ``stream.state``, and which layers' feedback carries errors (those whose input is not
    data), with the shape and geometry of their inputs, ``feedback_inputs``: learnt at the first
    step (or by ``probe_feedback_inputs``) and saved, so a resumed rule knows them before its
    first step.
    """

    seed = Option(0, SEED)

    def __init__(self, model: nn.Module, **options: Any) -> None:
        super().__init__(model, **options)
        self.stream = RandomStream(self.seed, self.name)
        layers = convertible_layers(model, type(self).__name__)
        self.converted: dict[str, str] = {
            path: f"{type(layer).__name__}{tuple(layer.weight.shape)}"
            for path, layer in layers.items()
        }
        object.__setattr__(self, "layers", list(layers.values()))
        object.__setattr__(self, "ops", [ops_for(layer) for layer in self.layers])
        self.feedback_inputs: dict[int, tuple[tuple[int, ...], ConvConfig | None]] = {}

    def feedback(self, index: int) -> torch.Tensor:
        """The Wᵀ-shaped feedback of layer ``index`` at this step."""
        raise NotImplementedError

    def backward_through(
        self, index: int, grad_y: torch.Tensor, x: torch.Tensor, config, weight_grad: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(δx, δW) of layer ``index``: δy sent through its feedback, δx = δy B̃ (B̃ =
        feedbackᵀ), and the layer's exact weight gradient δW (None unless ``weight_grad``: a
        frozen weight). A rule whose feedback learns from δW computes it here."""
        ops: LayerOps = self.ops[index]
        kernel = ops.transpose(self.feedback(index))
        weight = self.layers[index].weight
        return ops.input_and_weight_grads(
            grad_y, kernel, x, weight, config, weight_grad=weight_grad
        )

    def before_step(self, x: torch.Tensor) -> None:
        """Prepare the feedback of a step on the (checked) batch ``x``."""

    def after_backward(self) -> None:
        """Adapt the feedback state once the gradients are written."""

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        self.before_step(x)
        paths = {
            layer.weight: (ops, self._path(index))
            for index, (layer, ops) in enumerate(zip(self.layers, self.ops, strict=True))
        }
        with FeedbackMode(paths):
            output = self.model(x)
        loss = self.loss(output, y)
        loss.backward()
        self.after_backward()
        return StepResult(loss.detach(), output.detach())

    def _path(self, index: int) -> Path:
        def path(grad_y, x, config, weight_grad):
            if index not in self.feedback_inputs:  # learnt once: a later step writes nothing
                self.feedback_inputs[index] = (tuple(x.shape), config)
            return self.backward_through(index, grad_y, x, config, weight_grad)

        return path

    def probe_feedback_inputs(self, x: torch.Tensor) -> None:
        """Learn ``feedback_inputs`` from one forward pass on ``x`` in eval mode (no dropout
        mask drawn, no running statistic moved, nothing written): a layer's feedback carries
        errors where its input depends on trained parameters. They are kept in the order a
        backward pass would reach them, last layer first, as a training step records them."""
        index_of = {id(layer.weight): i for i, layer in enumerate(self.layers)}
        found: dict[int, tuple[tuple[int, ...], ConvConfig | None]] = {}

        def record(weight: nn.Parameter, inputs: torch.Tensor, config) -> None:
            if inputs.requires_grad:
                found[index_of[id(weight)]] = (tuple(inputs.shape), config)

        paths = {
            layer.weight: (ops, None) for layer, ops in zip(self.layers, self.ops, strict=True)
        }
        with eval_mode(self.model), torch.enable_grad(), FeedbackMode(paths, record):
            self.model(x)
        self.feedback_inputs = dict(reversed(found.items()))

    def alignment(self) -> dict[str, dict[str, float]]:
        """Angle (degrees) and norm ratio of each used feedback against Wᵀ, by layer name.

        Only layers whose feedback path has run are reported (all of them before any step).
        """
        used = self.feedback_inputs or range(len(self.layers))
        names = list(self.converted)
        with torch.no_grad():
            return {
                names[i]: alignment_of(self.feedback(i), self.layers[i].weight.transpose(0, 1))
                for i in sorted(used)
            }

    def get_extra_state(self) -> dict[str, Any]:
        return {
            "feedback_inputs": {
                index: (shape, None if config is None else dataclasses.astuple(config))
                for index, (shape, config) in self.feedback_inputs.items()
            }
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.feedback_inputs = {
            int(index): (tuple(shape), None if config is None else ConvConfig(*config))
            for index, (shape, config) in state["feedback_inputs"].items()
        }
