"""Seeded random streams whose position is rule state, so a resumed run draws what it would
have drawn.

Every random draw that is part of a rule (feedback matrices, sparsity masks, sign-symmetry
magnitudes, mirror noise, forward-gradient tangents, Forward-Forward negatives) comes from a
``RandomStream`` seeded by (seed, purpose), never from torch's global generator. Draws are made
on the CPU and moved to the model's device, so the numbers do not depend on the device.
Dropout masks are not rule draws: they come from torch's global generator, like ``nn.Dropout``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from bpfree.rules.common.buffers import HostState


def drawn_on_the_host(what: str) -> str:
    """Why a rule drawing ``what`` from a ``RandomStream`` cannot be captured in one graph
    (``Rule.uncapturable``)."""
    return (
        f"it draws {what} on the host from its seeded stream (the same numbers on every "
        "device), which a compiled graph cannot hold"
    )


def seeded_generator(seed: int, purpose: str) -> torch.Generator:
    """A CPU generator seeded from (``seed``, ``purpose``).

    The stream never coincides with a model initialised from ``Generator().manual_seed(seed)``:
    with a shared stream, FA's B_l would be drawn equal to W_lᵀ.
    """
    digest = hashlib.sha256(f"bpfree feedback {purpose} {seed}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


class RandomStream(HostState):
    """A seeded stream of random draws whose position is a buffer (``state``, uint8) kept on the
    host (``HostState``): the draws are made there and moved to the model's device.

    ``with stream.generator() as g`` gives a CPU generator at the stream's position and advances
    the stream by what is drawn from it; ``normal(shapes, like)`` draws N(0, I) tensors.
    """

    def __init__(self, seed: int, purpose: str) -> None:
        super().__init__()
        self.register_buffer("state", seeded_generator(seed, purpose).get_state())

    @contextmanager
    def generator(self) -> Iterator[torch.Generator]:
        """A CPU generator at the stream's position; the stream advances by what it draws."""
        generator = torch.Generator()
        generator.set_state(self.state)
        yield generator
        self.state.copy_(generator.get_state())

    def normal(
        self,
        shapes: Sequence[Sequence[int]],
        like: torch.Tensor,
        rows: tuple[int, int] | None = None,
    ) -> list[torch.Tensor]:
        """One N(0, I) tensor per shape, with ``like``'s dtype and device.

        With ``rows`` = (start, total), each shape is (n, ...) for n samples of a batch of
        ``total``: it is drawn as (total, ...) and rows start:start + n are kept, so that a
        replica of a data-parallel run draws what one process draws for the whole batch.
        """
        draws = []
        with self.generator() as generator:
            for shape in shapes:
                shape = tuple(shape)
                if rows is not None:
                    start, total = rows
                    full = torch.randn((total, *shape[1:]), generator=generator, dtype=like.dtype)
                    draws.append(full[start : start + shape[0]].to(like.device))
                else:
                    draws.append(
                        torch.randn(shape, generator=generator, dtype=like.dtype).to(like.device)
                    )
        return draws


def sparse_mask(
    shape: torch.Size, sparsity: float, generator: torch.Generator, like: torch.Tensor
) -> torch.Tensor:
    """A fixed 0/1 mask holding a fraction ``sparsity`` of the feedback weights at zero
    (PFA paper Sec. 7), with ``like``'s dtype and device."""
    keep = torch.rand(shape, generator=generator) >= sparsity
    return keep.to(device=like.device, dtype=like.dtype)
