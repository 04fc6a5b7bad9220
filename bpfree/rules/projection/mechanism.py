"""The direct-projection family's mechanism: a signal from the output injected at marked points.

The model is cut into blocks at its injection points. During the rule's forward pass each
point's output is captured and the next block receives it detached, so no gradient crosses from
one block to the one below. A single backward call then sends the output loss's exact gradient
through the last block and the projected signal s B_lᵀ into each point, from where autograd runs
exactly inside the point's block: everything the forward pass computes from the previous point's
output (or the input) up to this point's output.

A point is any module with parameters. Its output may be a feature vector (n, k) or a feature
map (n, C, h, w): then k = C·h·w, B_l is (C·h·w, c) and s B_lᵀ is reshaped to the map. The
'macro' setting of Launay et al. (2020) marks whole blocks (the default, ``model.blocks``); the
'micro' setting marks the layers inside them, e.g. ``points=[m for m in model.modules() if
isinstance(m, (nn.Conv2d, nn.Linear))][:-1]``; a model that names its settings
(``model.feedback_points("macro" | "micro")``, the language model's) takes ``points="micro"``.

A sequence model's output holds one prediction per position, (n, t, c), and so one error
vector per position: then every point's output is (n, t, k), B_l is (k, c) and position t
receives s_t B_lᵀ (the positions are read off the output by the probe pass).

Index letters: n batch, t positions, c classes, k features at an injection point, h w spatial.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.autograd.forward_ad as fwAD
from torch import nn

from bpfree.core.checks import FRACTION, SEED
from bpfree.rules.base import Rule, StepResult
from bpfree.rules.common.buffers import BufferList
from bpfree.rules.common.options import Option
from bpfree.rules.common.probe import example_batch, output_shapes
from bpfree.rules.common.streams import seeded_generator, sparse_mask

logger = logging.getLogger(__name__)


def resolve_points(
    model: nn.Module, points: Sequence[str | nn.Module] | None, rule_name: str
) -> dict[str, nn.Module]:
    """The injection points by name: the given modules or names, the model's named setting
    (``points="macro"``: ``model.feedback_points("macro")``), else the model's ``blocks``."""
    names = {module: path for path, module in model.named_modules()}
    modules = dict(model.named_modules())
    if isinstance(points, str):
        settings = getattr(model, "feedback_points", None)
        if settings is None:
            raise ValueError(
                f"{rule_name}: points={points!r} names a setting, but {type(model).__name__} "
                "has none (no feedback_points method); pass a list of modules or their names"
            )
        points = settings(points)
    if points is None:
        blocks = getattr(model, "blocks", None)
        if not isinstance(blocks, nn.ModuleList):
            raise ValueError(
                f"{rule_name} needs injection points: {type(model).__name__} has no 'blocks' "
                "ModuleList, so pass points=[...] naming the modules at whose outputs the "
                "projected error enters"
            )
        points = list(blocks)
    resolved: dict[str, nn.Module] = {}
    for point in points:
        if isinstance(point, str):
            if point not in modules:
                raise ValueError(f"{rule_name}: the model has no module named {point!r}")
            resolved[point] = modules[point]
        elif point in names:
            resolved[names[point]] = point
        else:
            raise ValueError(f"{rule_name}: injection point {point!r} is not a module of the model")
    for path, module in resolved.items():
        if not any(True for _ in module.parameters()):
            raise ValueError(f"{rule_name}: injection point {path!r} has no parameters to train")
    logger.info("%s injects at %d points: %s", rule_name, len(resolved), ", ".join(resolved))
    return resolved


def point_shapes(
    model: nn.Module,
    points: dict[str, nn.Module],
    example_input: torch.Tensor | Sequence[int] | None,
) -> tuple[tuple[int, ...], list[tuple[int, ...]]]:
    """The positions of one sample's output, () or a sequence model's (t,), and the shape of
    each point's output at one position: (k,) or a feature map (C, h, w).

    With ``example_input`` (a batch, or the shape of one input sample) one forward pass is run
    in eval mode under ``torch.no_grad()`` to read the shapes; without it each point must end in
    an ``nn.Linear``, whose out_features is k, and the output has no positions.
    """
    if example_input is None:
        shapes = []
        for path, module in points.items():
            linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
            if not linears:
                raise ValueError(
                    f"cannot tell the width of injection point {path!r}: it has no nn.Linear; "
                    "pass example_input= (an input batch or the shape of one input) so that "
                    "the rule reads the shape of its output"
                )
            shapes.append((linears[-1].out_features,))
        return (), shapes
    *shapes, output = output_shapes(
        model, {**points, "(output)": model}, example_batch(model, example_input)
    )
    positions = output[:-1]
    for path, shape in zip(points, shapes, strict=True):
        if shape[: len(positions)] != positions:
            raise ValueError(
                f"injection point {path!r} gives outputs of shape {shape} per sample, which do "
                f"not begin with the positions {positions} of the model's output"
            )
    return positions, [shape[len(positions) :] for shape in shapes]


class PointCapture:
    """Forward hooks on the injection points, registered once with the rule (a hook added and
    removed at every step would cost as much, and no graph could capture it), active only while
    ``ProjectionRule.forward_captured`` runs: then each point's output is kept, and the next
    block receives it detached, perturbed along the pass's tangents when given.

    What a running pass keeps is pushed on a list and popped after it, not set on attributes
    and reset: torch 2.13's compiler, replaying a graph's changes to attributes of such an
    object, can set a stale value, which would leave the hooks active after a compiled step."""

    def __init__(
        self,
        modules: Sequence[nn.Module],
        points: Sequence[str],
        shapes: Sequence[tuple[int, ...]],
    ) -> None:
        self.points, self.shapes = list(points), list(shapes)
        # (captured outputs, tangents or None) of the pass running
        self.running: list[tuple[dict[int, torch.Tensor], Sequence[torch.Tensor] | None]] = []
        for index, module in enumerate(modules):
            module.register_forward_hook(self._hook(index))

    def _hook(self, index: int):
        def hook(module, inputs, output):
            if not self.running:  # a forward pass of anyone else: unchanged
                return None
            captured, tangents = self.running[-1]
            if tuple(output.shape[1:]) != self.shapes[index]:
                raise ValueError(
                    f"injection point {self.points[index]!r} gave outputs of shape "
                    f"{tuple(output.shape[1:])} per sample, but its feedback matrix was built "
                    f"for {self.shapes[index]}; build the rule with an example_input "
                    "of the shape the model is trained on"
                )
            captured[index] = output
            if tangents is None:
                return output.detach()
            primal, tangent = fwAD.unpack_dual(output)
            u = tangents[index]
            return fwAD.make_dual(primal.detach(), u if tangent is None else tangent.detach() + u)

        return hook


class ProjectionRule(Rule):
    """A rule that projects a signal s (n, c) from the output to each point through B_l (k, c).

    Subclasses say which signal is projected (``projected_signal``) and which loss trains the
    output block (``loss``), and may adapt the projection to a batch before it is used
    (``before_step``). ``points`` names each injection point; ``point_shapes`` gives the
    shape of one sample of each point's output, k = its product.

    Options every projection rule takes:
        points: modules (or their names) at whose outputs the signal is injected; default
            ``model.blocks`` ('macro'); layers inside the blocks give the 'micro' setting; a
            model with ``feedback_points`` takes the setting's name, ``"macro"`` or ``"micro"``.
        seed: seed of the generator drawing the B_l.
        sparsity: fraction of the entries of each B_l held at zero, in [0, 1).
        example_input: an input batch, or the shape of one input (e.g. (3, 32, 32)), from
            which one probe forward pass reads the output shape of each point; needed when a
            point's output is a feature map (k = C·h·w, the signal reshaped to (C, h, w)),
            optional when every point ends in an ``nn.Linear``.
        num_classes: inferred from the model's last ``nn.Linear`` when omitted.
    """

    points = Option(None)
    seed = Option(0, SEED)
    sparsity = Option(0.0, FRACTION)
    example_input = Option(None)

    def __init__(self, model: nn.Module, **options: Any) -> None:
        super().__init__(model, **options)
        resolved = resolve_points(model, self.points, type(self).__name__)
        self.points: list[str] = list(resolved)
        object.__setattr__(self, "point_modules", list(resolved.values()))
        self.positions, self.point_shapes = point_shapes(model, resolved, self.example_input)
        if isinstance(self.example_input, torch.Tensor):  # keep its shape, not the batch
            self.example_input = tuple(self.example_input.shape[1:])
        object.__setattr__(
            self,
            "_capture",
            PointCapture(
                self.point_modules,
                self.points,
                [(*self.positions, *shape) for shape in self.point_shapes],
            ),
        )
        generator = seeded_generator(self.seed, self.name)
        reference = next(model.parameters())
        self.B = BufferList(
            [
                self.init_feedback(math.prod(shape), generator, reference.dtype).to(
                    reference.device
                )
                for shape in self.point_shapes
            ]
        )

    def init_feedback(self, width: int, generator: torch.Generator, dtype) -> torch.Tensor:
        """B_l (k, c), uniform in ±√(6 / k): the scale of a He-uniform W_{l+1}ᵀ it stands for.

        With ``sparsity``, a fixed random fraction of its entries is zero (PFA paper Sec. 7).
        """
        bound = math.sqrt(6.0 / width)
        b = torch.empty(width, self.num_classes, dtype=dtype).uniform_(
            -bound, bound, generator=generator
        )
        if self.sparsity:
            b.mul_(sparse_mask(b.shape, self.sparsity, generator, b))
        return b

    def projected_signal(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The signal s (n, c), or (n, t, c) per position, sent to every point, already averaged
        over the batch."""
        raise NotImplementedError

    def forward_captured(
        self, x: torch.Tensor, tangents: Sequence[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The model's output, and each point's output h_l (n, *shape) still attached to its block.

        Each block above a point receives the point's output detached, so the graph of the
        returned output reaches back only to the last point. With ``tangents`` (u_l, one per
        point; called inside ``torch.autograd.forward_ad.dual_level()``), each point's output
        is also perturbed along u_l, h_l + ε_l: the tangent (forward-mode) crosses the points,
        so the output's tangent is the directional derivative along every u_l at once.
        """
        captured: dict[int, torch.Tensor] = {}
        self._capture.running.append((captured, tangents))
        try:
            output = self.model(x)
        finally:
            self._capture.running.pop()
        if len(captured) != len(self.point_modules):
            missing = [p for i, p in enumerate(self.points) if i not in captured]
            raise RuntimeError(f"injection points never ran in the forward pass: {missing}")
        hidden = [captured[i] for i in range(len(self.point_modules))]
        return output, hidden

    def before_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Adapt the projection to a checked batch before the step uses it."""

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        self.before_step(x, y)
        output, hidden = self.forward_captured(x)
        return self.project(output, hidden, y)

    def project(
        self, output: torch.Tensor, hidden: list[torch.Tensor], y: torch.Tensor
    ) -> StepResult:
        """The update (eq. 2) from a captured pass: the output block descends the loss, each
        point's block receives s B_lᵀ at its output."""
        loss = self.loss(output, y)
        signal = self.projected_signal(output.detach(), y)
        injected = [  # s B_lᵀ: '...c,kc->...k', reshaped to the point's output (n, C, h, w)
            (signal @ b.T).view(h.shape) for b, h in zip(self.B, hidden, strict=True)
        ]
        loss.backward()  # the blocks are apart (detached at each point): one backward each
        for h, g in zip(hidden, injected, strict=True):
            h.backward(g)
        return StepResult(loss.detach(), output.detach())
