"""Tensors a rule keeps between steps: gradient buffers, lists of feedback buffers, and state
that stays on the host."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn


class GradBuffers:
    """Gradient tensors kept from one step to the next, handed out as parameters' ``.grad``.

    ``Rule.step`` sets every ``.grad`` to None before the rule runs; a rule that writes its
    update itself (no autograd) takes ``buffers(p)``, which makes a kept tensor ``p.grad``
    again and returns it to be overwritten, so a step allocates no gradient memory. Nothing of
    it is rule state: it is rebuilt when a parameter changes shape, dtype or device.

    Inside a compiled graph a CPU parameter keeps its buffer too: a fresh gradient of a few MB
    per step would come from the C allocator in new pages (hundreds of page faults a step on
    784-1024-10, thousands on 3072-1024-1024-10), so the graph writes the kept buffer in place
    (its matrix products through ``addmm_into``, which the compiler does not copy back out). A
    CUDA parameter's gradient is a fresh tensor in a graph: CUDA memory comes from torch's
    caching allocator, and inductor does not replay as a CUDA graph a graph that mutates an
    input other than a parameter or a static buffer.
    """

    def __init__(self) -> None:
        self._kept: dict[int, torch.Tensor] = {}

    def __call__(self, param: nn.Parameter) -> torch.Tensor:
        """The buffer of ``param``, set as its ``.grad`` (contents undefined: overwrite it)."""
        if torch.compiler.is_compiling() and fresh_in_graph(param):
            param.grad = torch.empty_like(param)
            return param.grad
        kept = self._kept.get(id(param))
        if (
            kept is None
            or kept.shape != param.shape
            or kept.dtype != param.dtype
            or kept.device != param.device
        ):
            kept = torch.empty_like(param)
            self._kept[id(param)] = kept
        param.grad = kept
        return kept

    def zeros(self, param: nn.Parameter) -> torch.Tensor:
        """The buffer of ``param``, zeroed: for updates summed over several terms."""
        return self(param).zero_()


def fresh_in_graph(param: nn.Parameter) -> bool:
    """Whether a compiled graph writes ``param``'s gradient into a fresh tensor (CUDA) rather
    than into its kept buffer (see ``GradBuffers``)."""
    return param.device.type == "cuda"


class BufferList(nn.Module):
    """An indexable list of registered buffers (``B.0``, ``B.1``, ... in the state dict)."""

    def __init__(self, tensors: list[torch.Tensor]) -> None:
        super().__init__()
        for i, tensor in enumerate(tensors):
            self.register_buffer(str(i), tensor)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self._buffers[str(index % len(self))]

    def __len__(self) -> int:
        return len(self._buffers)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(self._buffers.values())


class HostState(nn.Module):
    """A module whose buffers stay on the host (CPU) wherever the rule is moved: counters and
    generator positions that Python reads at every step to decide what the step does, so that
    reading them never waits for the GPU. ``.to(device)``, ``.cuda()`` and ``.double()`` leave
    them as they are; ``state_dict`` and ``load_state_dict`` treat them like any buffer."""

    def _apply(self, fn, recurse=True):
        return self


def addmm_into(out: Tensor, mat1: Tensor, mat2: Tensor, *, beta: float, alpha: float) -> None:
    """out ← β out + α mat1 mat2, written in ``out``'s memory (β = 0: ``out``'s contents are not
    read, NaN included). Eagerly ``torch.addmm(..., out=out)``; in a compiled graph one opaque
    call that mutates ``out``, which the compiler writes in place where it would compute the
    product into a new tensor and copy that into ``out`` (a kept gradient buffer)."""
    if torch.compiler.is_compiling():
        torch.ops.bpfree.addmm_into(out, mat1, mat2, beta, alpha)
    else:
        torch.addmm(out, mat1, mat2, beta=beta, alpha=alpha, out=out)


@torch.library.custom_op("bpfree::addmm_into", mutates_args=("out",))
def _addmm_into_op(out: Tensor, mat1: Tensor, mat2: Tensor, beta: float, alpha: float) -> None:
    torch.addmm(out, mat1, mat2, beta=beta, alpha=alpha, out=out)


def add_scaled_(out: Tensor, tensor: Tensor, *, alpha: float) -> Tensor:
    """out ← out + α tensor, in place; eagerly ``out.add_(tensor, alpha=alpha)``.

    In a compiled graph the product α tensor is made apart: inductor (torch 2.13) folds an add
    whose operand is a matrix product into one ``addmm`` and drops the add's α (pytorch/pytorch
    #167313 is the same pattern's ``addmm`` → add + mm direction), so ``out.add_(a @ b,
    alpha=α)`` would add a @ b unscaled.
    """
    if torch.compiler.is_compiling():
        return out.add_(tensor * alpha)
    return out.add_(tensor, alpha=alpha)
