"""Walking a model layer by layer without autograd: the layers a model describes, their dropout
masks and pooling."""

from bpfree.rules.common.walk.layers import (
    CONV_AVERAGES,
    CONV_SIGNS,
    ConvLayer,
    DenseLayer,
    WalkLayer,
    first_layer_maps,
)
from bpfree.rules.common.walk.pooling import pooled, tiling_window
from bpfree.rules.common.walk.stack import LayerStack

__all__ = [
    "CONV_AVERAGES",
    "CONV_SIGNS",
    "ConvLayer",
    "DenseLayer",
    "LayerStack",
    "WalkLayer",
    "first_layer_maps",
    "pooled",
    "tiling_window",
]
