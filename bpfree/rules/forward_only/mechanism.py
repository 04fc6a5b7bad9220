"""The forward-only family's mechanism: layers walked by hand, no autograd graph ever built.

A forward-only rule sees the model as a stack of layers h_l = N(σ_l(W_l P(h_{l−1}) + b_l)), each
hidden one followed by dropout whose mask the rule draws once per batch so that every pass of the
batch shares it, optionally by an activity normalisation N, and fed through the previous block's
pooling P (none in an MLP). Gradients are written straight into ``.grad`` buffers kept between
steps.

Supported models: ``bpfree.models.MLP``'s convention (``flatten(x)``, ``blocks`` of
``Sequential(Linear, activation, Dropout[, ActivityNorm])`` and a ``head`` ``Linear``), and, for
the rules that allow it, ``bpfree.models.PepitaConvNet``'s (``blocks`` of
``Sequential(Conv2d, activation, MaxPool2d)`` and a ``head`` ``Sequential(Flatten, Linear)``).

Index letters: n batch, i inputs of a layer, o outputs of a layer, c classes, p positions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from bpfree.models.mlp import ActivityNorm
from bpfree.rules.base import Rule

# σ written over its argument, for the activations of ``bpfree.models.mlp.ACTIVATIONS``.
IN_PLACE_ACTIVATIONS: dict[type[nn.Module], Callable[[torch.Tensor], torch.Tensor]] = {
    nn.ReLU: torch.relu_,
    nn.Tanh: torch.tanh_,
    nn.Sigmoid: torch.sigmoid_,
    nn.Identity: lambda a: a,
}


@dataclass(frozen=True)
class DenseLayer:
    """One layer as a forward-only rule walks it: h = N(dropout(σ(W P(h_prev) + b)))."""

    linear: nn.Linear
    activation: nn.Module
    dropout: float
    normalize: nn.Module | None = None
    pool: nn.Module | None = None  # P: the previous block's pooling (and flattening)

    @property
    def weight(self) -> nn.Parameter:
        return self.linear.weight

    def inputs(self, h: torch.Tensor) -> torch.Tensor:
        """P(h_{l−1}), what the weights multiply."""
        return h if self.pool is None else self.pool(h)

    def linear_map(self, h: torch.Tensor) -> torch.Tensor:
        """W_l P(h_{l−1}), without the bias."""
        return F.linear(self.inputs(h), self.linear.weight)

    def add_bias(self, a: torch.Tensor) -> torch.Tensor:
        return a if self.linear.bias is None else a + self.linear.bias

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """h_l = N(σ(W_l P(h_{l−1}) + b_l) ⊙ mask)."""
        a = F.linear(self.inputs(h), self.linear.weight, self.linear.bias)
        return self.activate_(a, mask)

    def write_grad(self, post: torch.Tensor, pre: torch.Tensor, n: int) -> None:
        """ΔW = postᵀ P(pre) / n and Δb = Σ post / n into the ``.grad`` buffers."""
        weight = grad_buffer(self.linear.weight)
        torch.addmm(weight, post.T, self.inputs(pre), beta=0.0, alpha=1.0 / n, out=weight)
        if self.linear.bias is not None:
            torch.sum(post, dim=0, out=grad_buffer(self.linear.bias)).div_(n)

    def activate(self, a: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """N(σ(a) ⊙ mask), from a pre-activation (never written in place)."""
        h = self.activation(a)
        if mask is not None:
            h = h * mask if h is a else h.mul_(mask)
        return h if self.normalize is None else self.normalize(h)

    def activate_(self, a: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``activate``, written over the pre-activation ``a`` where σ has an in-place form:
        for a pre-activation nobody reads again, it saves an activity's worth of memory."""
        in_place = IN_PLACE_ACTIVATIONS.get(type(self.activation))
        if in_place is None:
            return self.activate(a, mask)
        h = in_place(a)
        if mask is not None:
            h.mul_(mask)
        return h if self.normalize is None else self.normalize(h)


# What a filter's summed products are divided by, from the batch size n and the number p of
# output positions: ICML 2022 Sec. 3.3 step 3 ("divided by the number of summed products", n·p),
# or what the ICML code (GiorgiaD/PEPITA, main_pytorch.py) divides by: `compute_delta_w_conv`
# averages over the batch and the positions (or √p with its --sqrt_conv), then the weight change
# is divided by the batch size once more.
CONV_AVERAGES: dict[str, Callable[[int, int], float]] = {
    "products": lambda n, p: n * p,
    "reference-code": lambda n, p: n * n * p,
    "reference-code-sqrt": lambda n, p: n * n * math.sqrt(p),
}


@dataclass(frozen=True)
class ConvLayer:
    """A convolution as a forward-only rule walks it: h = σ(W ⋆ P(h_prev) + b), no dropout.

    Its update for a post-synaptic map δ (n, o, p) and presynaptic maps (ICML 2022 Sec. 3.3):
    for every output element, δ times the input patch the filter saw there; all these products
    summed, then divided by their number n·p (``average="products"``; the other entries of
    ``CONV_AVERAGES`` divide as the paper's code does). The sum is one correlation of the input
    with δ, ``conv2d_weight``, the same one a convolution's weight gradient is.
    """

    conv: nn.Conv2d
    activation: nn.Module
    pool: nn.Module | None = None
    dropout: float = 0.0
    normalize: None = None
    average: str = "products"

    @property
    def weight(self) -> nn.Parameter:
        return self.conv.weight

    def inputs(self, h: torch.Tensor) -> torch.Tensor:
        return h if self.pool is None else pooled(self.pool, h)

    def linear_map(self, h: torch.Tensor) -> torch.Tensor:
        c = self.conv
        return F.conv2d(self.inputs(h), c.weight, None, c.stride, c.padding, c.dilation, c.groups)

    def add_bias(self, a: torch.Tensor) -> torch.Tensor:
        return a if self.conv.bias is None else a + self.conv.bias.view(-1, 1, 1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.activate_(self.add_bias(self.linear_map(h)), mask)

    def activate(self, a: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.activation(a)

    def activate_(self, a: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        in_place = IN_PLACE_ACTIVATIONS.get(type(self.activation))
        return self.activate(a, mask) if in_place is None else in_place(a)

    def write_grad(self, post: torch.Tensor, pre: torch.Tensor, n: int) -> None:
        """ΔW[o, i, k] = Σ_{n,p} δ[n, o, p] P(pre)[n, i, p + k] / (n·p); Δb = Σ δ / (n·p)
        (n·p as ``average`` says)."""
        c = self.conv
        divisor = CONV_AVERAGES[self.average](n, post.shape[-2] * post.shape[-1])
        delta = torch.nn.grad.conv2d_weight(
            self.inputs(pre), c.weight.shape, post, c.stride, c.padding, c.dilation, c.groups
        )
        grad_buffer(c.weight).copy_(delta).div_(divisor)
        if c.bias is not None:
            torch.sum(post, dim=(0, 2, 3), out=grad_buffer(c.bias)).div_(divisor)


class LayerStack:
    """A model seen as its layers, input side first; the last one gives the logits."""

    def __init__(self, model: nn.Module, rule_name: str, *, conv: bool = False) -> None:
        if conv and _is_conv_net(model):
            self.model, self.conv = model, True
            self.hidden, pool = [], None
            for block in model.blocks:
                self.hidden.append(ConvLayer(block[0], block[1], pool))
                pool = block[2]
            self.output = DenseLayer(model.head[1], nn.Identity(), 0.0, None, _PoolFlatten(pool))
            return
        blocks, head = getattr(model, "blocks", None), getattr(model, "head", None)
        convs = (
            ""
            if not conv
            else (
                ", or like bpfree.models.PepitaConvNet (blocks of Sequential(Conv2d, activation, "
                "MaxPool2d), and a head Sequential(Flatten, Linear))"
            )
        )
        if not (
            isinstance(blocks, nn.ModuleList)
            and isinstance(head, nn.Linear)
            and callable(getattr(model, "flatten", None))
            and all(_is_dense_block(block) for block in blocks)
        ):
            raise ValueError(
                f"{rule_name} cannot walk {type(model).__name__}: forward-only rules need a model "
                "shaped like bpfree.models.MLP (flatten(x), blocks of Sequential(Linear, "
                f"activation, Dropout[, ActivityNorm]), and a Linear head){convs}"
            )
        self.model, self.conv = model, False
        self.hidden = [
            DenseLayer(block[0], block[1], block[2].p, block[3] if len(block) == 4 else None)
            for block in blocks
        ]
        self.output = DenseLayer(head, nn.Identity(), 0.0)

    @property
    def layers(self) -> list[DenseLayer | ConvLayer]:
        return [*self.hidden, self.output]

    def average_conv_updates(self, average: str) -> None:
        """Divide every convolution's summed products as ``CONV_AVERAGES[average]`` says."""
        if average not in CONV_AVERAGES:
            raise ValueError(
                f"conv_average must be one of {', '.join(CONV_AVERAGES)}, got {average!r}"
            )
        self.hidden = [
            replace(layer, average=average) if isinstance(layer, ConvLayer) else layer
            for layer in self.hidden
        ]

    @property
    def input_features(self) -> int:
        """Features of one input sample: the MLP's input width, or channels × height × width."""
        if not self.conv:
            return (
                self.hidden[0].linear.in_features if self.hidden else self.output.linear.in_features
            )
        h, w = self.model.image_size
        return self.hidden[0].conv.in_channels * h * w

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The batch as the first layer takes it: flattened for an MLP, images for a conv net."""
        if not self.conv:
            return self.model.flatten(x)
        first = self.hidden[0].conv
        if x.dim() != 4 or x.shape[1] != first.in_channels:
            raise ValueError(
                f"{type(self.model).__name__} expects images (batch, {first.in_channels}, h, w), "
                f"got a batch of shape {tuple(x.shape)}"
            )
        return x

    def dropout_masks(self, n: int, like: torch.Tensor) -> list[torch.Tensor | None]:
        """One mask (n, o) per hidden layer, scaled by 1 / keep, shared by all passes of a batch."""
        return list(self.dropout_mask_stream(n, like))

    def shared_masks(self, n: int, like: torch.Tensor) -> SharedMasks:
        """Dropout masks for two passes of a batch that must share them (see ``SharedMasks``)."""
        return SharedMasks(self, n, like)

    def replayable_masks(self, n: int, like: torch.Tensor) -> Callable[[], Iterator]:
        """A function giving, at each call, the same stream of one dropout mask per hidden layer
        (as ``dropout_mask_stream``): passes that share their masks draw them layer by layer and
        none is held beyond its layer. Each stream has its own generator, so streams may be read
        interleaved (a pass and the update that follows it layer by layer). The seed comes from
        torch's global generator, drawn only where a mask will be (so a rule without dropout
        leaves that generator alone)."""
        if not self.model.training or all(layer.dropout == 0.0 for layer in self.hidden):
            return lambda: self.dropout_mask_stream(n, like)
        seed = int(torch.randint(2**62, ()))

        def replay() -> Iterator[torch.Tensor | None]:
            generator = torch.Generator(device=like.device).manual_seed(seed)
            return self.dropout_mask_stream(n, like, generator)

        return replay

    def dropout_mask_stream(
        self, n: int, like: torch.Tensor, generator: torch.Generator | None = None
    ) -> Iterator[torch.Tensor | None]:
        """The masks of ``dropout_masks`` one layer at a time, drawn from ``generator`` (torch's
        global one by default): a pass that must not hold every mask at once redraws them from
        a generator reset to the same seed. No mask is bound to a name here while the stream is
        suspended, so none outlives the layer that took it."""
        for layer in self.hidden:
            if not self.model.training or layer.dropout == 0.0:
                yield None
                continue
            keep = 1.0 - layer.dropout
            shape = (n, layer.linear.out_features)
            yield (
                torch.empty(shape, dtype=like.dtype, device=like.device)
                .bernoulli_(keep, generator=generator)
                .div_(keep)
            )


class SharedMasks:
    """The dropout masks of two passes of a batch: ``first_pass()`` draws one mask per hidden
    layer as the pass reaches it (``LayerStack.dropout_mask_stream``) and keeps only which units
    it kept, one byte per unit; ``second_pass()`` rebuilds the same masks from those, releasing
    each as it goes. The masks held between the passes take a quarter of float32 activations."""

    def __init__(self, stack: LayerStack, n: int, like: torch.Tensor) -> None:
        self._stream = stack.dropout_mask_stream(n, like)
        self._keep = [1.0 - layer.dropout for layer in stack.hidden]
        self._kept: list[torch.Tensor | None] = []
        self._dtype = like.dtype

    def first_pass(self) -> Iterator[torch.Tensor | None]:
        yield from map(self._remember, self._stream)  # binds no mask while suspended

    def second_pass(self) -> Iterator[torch.Tensor | None]:
        yield from map(self._rebuild, range(len(self._keep)))

    def _remember(self, mask: torch.Tensor | None) -> torch.Tensor | None:
        self._kept.append(None if mask is None else mask != 0)
        return mask

    def _rebuild(self, l: int) -> torch.Tensor | None:
        kept, self._kept[l] = self._kept[l], None
        return None if kept is None else kept.to(self._dtype).div_(self._keep[l])


def _is_dense_block(block: nn.Module) -> bool:
    return (
        isinstance(block, nn.Sequential)
        and len(block) in (3, 4)
        and isinstance(block[0], nn.Linear)
        and isinstance(block[2], nn.Dropout)
        and (len(block) == 3 or isinstance(block[3], ActivityNorm))
    )


def _is_conv_net(model: nn.Module) -> bool:
    blocks, head = getattr(model, "blocks", None), getattr(model, "head", None)
    return (
        isinstance(blocks, nn.ModuleList)
        and len(blocks) > 0
        and all(
            isinstance(b, nn.Sequential)
            and len(b) == 3
            and isinstance(b[0], nn.Conv2d)
            and isinstance(b[2], nn.MaxPool2d)
            for b in blocks
        )
        and isinstance(head, nn.Sequential)
        and len(head) == 2
        and isinstance(head[0], nn.Flatten)
        and isinstance(head[1], nn.Linear)
    )


class _PoolFlatten(nn.Module):
    """The last conv block's pooling, then flattening: what the head's weights multiply."""

    def __init__(self, pool: nn.Module) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return pooled(self.pool, h).flatten(1)


def pooled(pool: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """``pool(h)``; on the CPU a max-pooling whose windows tile the map (kernel = stride, no
    padding or dilation) is taken as a maximum over strided slices, rows then columns. A walk
    without autograd needs no argmax, and PyTorch's CPU kernel, which computes one, is several
    times slower (about 25 against 3 ms for 100 × 32 × 28 × 28 maps, one thread); the values
    are the same."""
    window = tiling_window(pool)
    if window is None or h.device.type != "cpu":
        return pool(h)
    (kh, kw), (rows, cols) = window, (h.shape[-2] // window[0], h.shape[-1] // window[1])
    maxima = h[..., 0 : rows * kh : kh, : cols * kw]
    for i in range(1, kh):
        maxima = torch.maximum(maxima, h[..., i : rows * kh : kh, : cols * kw])
    out = maxima[..., 0::kw]
    for j in range(1, kw):
        out = torch.maximum(out, maxima[..., j::kw])
    return out


def tiling_window(pool: nn.Module) -> tuple[int, int] | None:
    """(kh, kw) of a max-pooling larger than 1 × 1 whose windows tile its input, else None."""
    if not isinstance(pool, nn.MaxPool2d) or pool.ceil_mode or pool.return_indices:
        return None

    def pair(value: int | tuple[int, ...]) -> tuple[int, ...]:
        return tuple(value) if isinstance(value, tuple | list) else (value, value)

    kernel, stride = pair(pool.kernel_size), pair(pool.stride or pool.kernel_size)
    if kernel != stride or pair(pool.padding) != (0, 0) or pair(pool.dilation) != (1, 1):
        return None
    return None if kernel == (1, 1) else kernel


def first_layer_maps(
    layer: DenseLayer | ConvLayer, x: torch.Tensor, columns: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(W_1 x + b_1, W_1 columns): the clean pre-activation and the first layer's map of inputs
    shaped like x (F's columns, for W_1 F). For a dense layer wider than the batch both come from
    one product W_1 [x; columns], which reads W_1 once: copying x (n × i) costs less than reading
    W_1 (o × i) twice. Otherwise from two products, copying nothing."""
    n = x.shape[0]
    if isinstance(layer, DenseLayer) and n < layer.weight.shape[0]:
        a, mapped = layer.linear_map(torch.cat([x, columns])).split([n, columns.shape[0]])
    else:
        a, mapped = layer.linear_map(x), layer.linear_map(columns)
    return layer.add_bias(a), mapped


def grad_buffer(param: nn.Parameter) -> torch.Tensor:
    """The parameter's ``.grad``, allocated once and then overwritten in place at every step."""
    if param.grad is None:
        param.grad = torch.empty_like(param)
    return param.grad


def write_outer_grad(
    layer: DenseLayer | ConvLayer, post: torch.Tensor, pre: torch.Tensor, n: int
) -> None:
    """The layer's update from post- and presynaptic terms into its ``.grad`` buffers: for a
    dense layer ΔW = postᵀ pre / n and Δb = Σ post / n ('no,ni->oi'), for a convolution the
    correlation of ``ConvLayer.write_grad``.

    ``post`` and ``pre`` may stack several terms along the batch axis (a sum of outer
    products); ``n`` is the batch size they are averaged over.
    """
    layer.write_grad(post, pre, n)


class ForwardOnlyRule(Rule):
    """A rule made of forward passes only: its ``step`` runs with autograd off.

    ``walks_conv_nets`` says whether the rule's update is defined on convolutions too; every
    rule of the family needs at least one hidden layer.
    """

    walks_conv_nets = False

    def __init__(self, model: nn.Module, *, num_classes: int | None = None) -> None:
        super().__init__(model, num_classes=num_classes)
        stack = LayerStack(model, type(self).__name__, conv=self.walks_conv_nets)
        if not stack.hidden:
            raise ValueError(f"{self.name} needs a model with at least one hidden layer")
        object.__setattr__(self, "stack", stack)


def check_sign(sign: int) -> int:
    """The sign s of an input modulation x + s F e: +1 (ICML 2022) or −1 (ICLR 2024)."""
    if sign not in (1, -1):
        raise ValueError(f"sign must be +1 (x + F e) or -1 (x - F e), got {sign!r}")
    return sign
