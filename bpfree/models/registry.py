"""The models by name, each a ``ModelSpec``, built for a dataset's input shape and class count."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from bpfree.core.registry import Registry, reject_unknown
from bpfree.models.convnet import PepitaConvNet
from bpfree.models.lenet import LeNet, LeNet4
from bpfree.models.mlp import MLP
from bpfree.models.resnet import resnet18, resnet20
from bpfree.models.transformer_lm import TransformerLM
from bpfree.models.vgg import alexnet, vgg16

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class ModelSpec:
    """What a model is and how it is built for images of shape (C, H, W).

    ``make(input_shape, num_classes, options)`` builds it; ``options`` are the keyword options it
    takes (every model takes ``generator``); ``min_size(options)`` is the smallest height and
    width it takes (what leaves its last feature maps at least 1×1 without leaning on padding);
    ``label(options)`` names a configuration in a run folder's name. ``inputs`` is what the
    model reads: ``images`` (C, H, W), or ``tokens``, integer ids (L,), for which ``make``
    takes (L,) and the vocabulary size in place of the class count, and ``min_size`` is unused.
    """

    name: str
    make: Callable[[Shape, int, dict[str, Any]], nn.Module]
    options: tuple[str, ...]
    min_size: Callable[[dict[str, Any]], int]
    label: Callable[[dict[str, Any]], str] | None = None
    inputs: str = "images"

    def describe(self, options: dict[str, Any]) -> str:
        """``mlp`` options → ``1024x512``; any other model → its name."""
        return self.name if self.label is None else self.label(options)


def _mlp(shape: Shape, num_classes: int, options: dict[str, Any]) -> nn.Module:
    hidden = options.pop("hidden", [1024])
    if isinstance(hidden, str | int) or not isinstance(hidden, Sequence):
        raise ValueError(f"hidden must be a list of layer widths, e.g. [1024], got {hidden!r}")
    return MLP(sizes=(math.prod(shape), *hidden, num_classes), **options)


def _sized(model: Callable[..., nn.Module]) -> Callable[[Shape, int, dict], nn.Module]:
    """A model taking its image size from the input shape."""
    return lambda shape, classes, options: model(
        in_channels=shape[0], num_classes=classes, image_size=shape[1:], **options
    )


def _channels(model: Callable[..., nn.Module]) -> Callable[[Shape, int, dict], nn.Module]:
    """A model taking only its input channels from the input shape."""
    return lambda shape, classes, options: model(
        in_channels=shape[0], num_classes=classes, **options
    )


def _language_model(shape: tuple[int], vocab_size: int, options: dict[str, Any]) -> nn.Module:
    return TransformerLM(vocab_size, max_len=shape[0], **options)


def _fixed(size: int) -> Callable[[dict[str, Any]], int]:
    return lambda options: size


MODELS: Registry[ModelSpec] = Registry("model")
for _spec in (
    ModelSpec(
        "mlp",
        _mlp,
        (
            "hidden",
            "activation",
            "dropout",
            "bias",
            "normalization",
            "input_dropout",
            "init",
            "generator",
        ),
        _fixed(1),
        label=lambda options: "x".join(map(str, options.get("hidden", [1024]))) or "linear",
    ),
    ModelSpec("pepita-conv", _sized(PepitaConvNet), ("init", "generator"), _fixed(6)),  # 5×5, pool
    ModelSpec("lenet", _sized(LeNet), ("generator",), _fixed(12)),  # two convs, two pools
    ModelSpec("lenet4", _sized(LeNet4), ("generator",), _fixed(12)),
    ModelSpec("resnet20", _channels(resnet20), ("generator",), _fixed(4)),  # two stride-2 stages
    ModelSpec(
        "resnet18",
        _channels(resnet18),
        ("stem", "generator"),
        lambda options: 32 if options.get("stem") == "imagenet" else 8,  # three stride-2 stages
    ),
    ModelSpec("alexnet", _channels(alexnet), ("batch_norm", "generator"), _fixed(32)),
    ModelSpec("vgg16", _channels(vgg16), ("batch_norm", "width", "generator"), _fixed(32)),
    ModelSpec(
        "transformer-lm",
        _language_model,
        ("d_model", "n_heads", "n_layers", "d_ff", "dropout", "norm", "generator"),
        _fixed(1),
        label=lambda o: f"lm{o.get('n_layers', 6)}x{o.get('d_model', 512)}",
        inputs="tokens",
    ),
):
    MODELS.add(_spec.name, _spec)


def build_model(
    name: str, *, input_shape: tuple[int, ...], num_classes: int, **options: Any
) -> nn.Module:
    """Build model ``name`` for images of ``input_shape`` (C, H, W) and ``num_classes`` classes,
    or, for a model of token inputs (``transformer-lm``), for chunks of ``input_shape = (L,)``
    token ids and a vocabulary of ``num_classes``.

    The input shape sets each model's input channels and, where it has them, image size; for
    ``"mlp"`` it sets ``sizes = (C·H·W, *hidden, num_classes)``. ``options`` go to the model
    (``MODELS[name].options`` lists them): ``mlp`` takes ``hidden`` (default ``[1024]``),
    ``activation``, ``dropout``, ``bias``, ``normalization``, ``input_dropout``, ``init``;
    ``pepita-conv`` ``init``; ``resnet18`` ``stem``
    (``"cifar"`` or ``"imagenet"``); ``alexnet`` ``batch_norm``; ``vgg16`` ``batch_norm`` and
    ``width``; ``transformer-lm`` ``d_model``, ``n_heads``, ``n_layers``, ``d_ff``,
    ``dropout``, ``norm``; every model ``generator``.

    Raises:
        ValueError: for an unknown name or option, or an input shape the model cannot take.

    Example:
        >>> model = build_model("lenet", input_shape=(1, 28, 28), num_classes=10)
        >>> model(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """
    spec = MODELS.lookup(name)
    reject_unknown(options, spec.options, what="option", where=f"for model {name!r}")
    if spec.inputs == "tokens" or len(input_shape) == 1:
        return _build_token_model(spec, tuple(input_shape), num_classes, options)
    c, h, w = _check_shape(input_shape)
    least = spec.min_size(options)
    if h < least or w < least:
        shown = f"{name} (stem={options['stem']!r})" if "stem" in options else name
        raise ValueError(
            f"model {shown} cannot take input_shape {(c, h, w)}: it needs images of at least "
            f"{least}×{least}, got {h}×{w}"
        )
    return spec.make((c, h, w), num_classes, dict(options))


def _build_token_model(
    spec: ModelSpec, input_shape: tuple[int, ...], vocab_size: int, options: dict[str, Any]
) -> nn.Module:
    """A model of token inputs for chunks of (L,) ids, or a ``ValueError`` for a mismatch of
    model and data (images to a language model, token ids to an image model)."""
    if spec.inputs != "tokens":
        raise ValueError(
            f"model {spec.name} reads images, but the data are token sequences {input_shape}; "
            "train a model of token inputs (transformer-lm) on text"
        )
    if len(input_shape) != 1 or not isinstance(input_shape[0], int) or input_shape[0] < 1:
        raise ValueError(
            f"model {spec.name} reads token ids, input_shape (tokens,), got {input_shape!r}; "
            "train it on a text dataset"
        )
    return spec.make(input_shape, vocab_size, dict(options))


def _check_shape(input_shape: Sequence[int]) -> Shape:
    """``input_shape`` as three positive ints (C, H, W), or a ``ValueError`` saying why not."""
    try:
        shape = tuple(operator.index(d) for d in input_shape)
    except TypeError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            f"input_shape must be (channels, height, width), three positive integers, "
            f"got {input_shape!r}"
        )
    return shape
