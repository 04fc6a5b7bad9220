"""A model seen as the layers it describes (``layer_specs()``), input side first."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import torch
from torch import nn

from bpfree.models.spec import LayerSpec
from bpfree.rules.common.buffers import GradBuffers
from bpfree.rules.common.walk import masks
from bpfree.rules.common.walk.layers import ConvLayer, DenseLayer, WalkLayer


class LayerStack:
    """The walked layers of a model: ``hidden`` ones and the ``output`` layer giving the logits.

    Built from ``model.layer_specs()`` (see ``bpfree.models.spec``); ``conv`` says whether a
    convolution is among them, which only rules that define a convolution's update accept.
    """

    def __init__(
        self, model: nn.Module, rule_name: str, grads: GradBuffers, *, conv: bool = False
    ) -> None:
        specs = _layer_specs(model, rule_name)
        self.model = model
        self.layers: list[WalkLayer] = [_walk_layer(spec, grads) for spec in specs]
        self.conv = any(isinstance(layer, ConvLayer) for layer in self.layers)
        if self.conv and not conv:
            raise ValueError(
                f"{rule_name} cannot walk {type(model).__name__}: its update is defined for "
                "nn.Linear layers only, and the model has convolutions"
            )
        if isinstance(self.layers[-1], ConvLayer):
            raise ValueError(
                f"{rule_name}: the last layer of {type(model).__name__} must be Linear"
            )

    @property
    def hidden(self) -> list[WalkLayer]:
        return self.layers[:-1]

    @property
    def output(self) -> DenseLayer:
        return self.layers[-1]

    def average_conv_updates(self, average: str, sign: str = "paper") -> None:
        """Divide every convolution's summed products as ``CONV_AVERAGES[average]`` says and
        write them with the sign ``CONV_SIGNS[sign]``."""
        self.layers = [
            replace(layer, average=average, sign=sign) if isinstance(layer, ConvLayer) else layer
            for layer in self.layers
        ]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one input sample, as the model states it."""
        return tuple(self.model.input_shape)

    @property
    def input_features(self) -> int:
        """Features of one input sample: the MLP's input width, or channels × height × width."""
        return math.prod(self.input_shape)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The batch as the first layer takes it: flattened for a Linear, images for a Conv2d."""
        name, first = type(self.model).__name__, self.layers[0]
        if isinstance(first, DenseLayer):
            features = first.linear.in_features
            if x.dim() < 2 or math.prod(x.shape[1:]) != features:
                raise ValueError(
                    f"{name} expects inputs of {features} features per sample (any shape that "
                    f"flattens to it), got a batch of shape {tuple(x.shape)}"
                )
            return x.reshape(x.shape[0], features)
        channels = first.conv.in_channels
        if x.dim() != 4 or x.shape[1] != channels:
            raise ValueError(
                f"{name} expects images (batch, {channels}, h, w), got a batch of shape "
                f"{tuple(x.shape)}"
            )
        return x

    def dropout_masks(self, n: int, like: torch.Tensor) -> list[torch.Tensor | None]:
        """One mask (n, o) per hidden layer, scaled by 1 / keep, shared by all passes of a batch."""
        return list(self.dropout_mask_stream(n, like))

    def dropout_mask_stream(
        self, n: int, like: torch.Tensor, generator: torch.Generator | None = None
    ) -> masks.MaskStream:
        """The masks of ``dropout_masks`` one layer at a time (``masks.dropout_masks``)."""
        return masks.dropout_masks(self.hidden, n, like, self.model.training, generator)

    def replayable_masks(self, n: int, like: torch.Tensor) -> Callable[[], masks.MaskStream]:
        """The same stream of masks at every call (``masks.replayable_masks``)."""
        return masks.replayable_masks(self.hidden, n, like, self.model.training)

    def shared_masks(self, n: int, like: torch.Tensor) -> masks.SharedMasks:
        """Masks for two passes of a batch that must share them (``masks.SharedMasks``)."""
        return masks.SharedMasks(self.hidden, n, like, self.model.training)


def _layer_specs(model: nn.Module, rule_name: str) -> list[LayerSpec]:
    describe = getattr(model, "layer_specs", None)
    if not callable(describe) or not hasattr(model, "input_shape"):
        raise ValueError(
            f"{rule_name} cannot walk {type(model).__name__}: forward-only rules compute the "
            "model layer by layer, so it must describe its layers (layer_specs() and "
            "input_shape, see bpfree.models.spec), as bpfree.models.MLP and PepitaConvNet do"
        )
    specs = list(describe())
    if len(specs) < 2:
        raise ValueError(f"{rule_name} needs a model with at least one hidden layer")
    return specs


def _walk_layer(spec: LayerSpec, grads: GradBuffers) -> WalkLayer:
    if isinstance(spec.module, nn.Conv2d):
        return ConvLayer(spec.module, spec.activation, grads, spec.pooling)
    return DenseLayer(
        spec.module,
        spec.activation,
        grads,
        spec.dropout,
        spec.normalization,
        spec.pooling,
        spec.flatten,
    )
