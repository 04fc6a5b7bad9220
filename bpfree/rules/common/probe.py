"""Shapes read off a model by one forward pass that changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Within it, every module of ``model`` is in eval mode (no dropout mask is drawn, no
    BatchNorm statistic moves); each module's own mode is restored afterwards."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for module, training in modes.items():
            module.training = training


def output_shapes(
    model: nn.Module, modules: dict[str, nn.Module], x: torch.Tensor
) -> list[tuple[int, ...]]:
    """The shape of one sample of each module's output (modules by name), read by one pass on ``x``.

    The pass runs in eval mode under ``torch.no_grad()``, so no BatchNorm statistic moves and no
    dropout mask is drawn; every module's training flag is restored afterwards. A module that
    never runs is a ``ValueError``.
    """
    seen: dict[int, tuple[int, ...]] = {}

    def record(index: int):
        def hook(module, inputs, output):
            seen[index] = tuple(output.shape[1:])

        return hook

    handles = [m.register_forward_hook(record(i)) for i, m in enumerate(modules.values())]
    try:
        with eval_mode(model), torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    missing = [path for i, path in enumerate(modules) if i not in seen]
    if missing:
        raise ValueError(f"modules never ran in the forward pass: {missing}")
    return [seen[i] for i in range(len(modules))]


def example_batch(model: nn.Module, example_input: torch.Tensor | tuple[int, ...]) -> torch.Tensor:
    """One sample to probe ``model`` with: the first of a batch (token ids kept integers), or
    zeros of one input's shape, on the model's device, of its ``input_dtype`` (a model of token
    ids says so) or else its parameters' dtype."""
    reference = next(model.parameters())
    dtype = getattr(model, "input_dtype", reference.dtype)
    if isinstance(example_input, torch.Tensor):
        floating = example_input.is_floating_point()
        return example_input[:1].to(reference.device, dtype if floating else None)
    return torch.zeros(1, *example_input, device=reference.device, dtype=dtype)
