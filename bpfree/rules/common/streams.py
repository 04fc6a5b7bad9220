"""Seeded random streams whose position is rule state, so a resumed run draws what it would
have drawn.

Every random draw that is part of a rule (feedback matrices, sparsity masks, sign-symmetry
magnitudes, mirror noise, forward-gradient tangents, Forward-Forward negatives) comes from a
``RandomStream`` seeded by (seed, purpose), never from torch's global generator. The stream is
a CPU generator whose state is a buffer of the rule, so a resumed run draws what it would have
drawn. A draw for a CPU tensor comes from it; a draw of ``RandomStream.normal`` or ``uniform``
(the large per-step draws: tangents, perturbations, mirror noise, sign-symmetry magnitudes) for
a tensor on another device is made on that device, by a generator seeded from the stream, so
that a GPU step neither draws on the host nor copies what it drew: the same stream position
gives the same numbers on the same kind of device. Dropout masks are not rule draws: they come
from torch's global generator, like ``nn.Dropout``.

In a compiled graph (``torch.compile``, which cannot take a ``torch.Generator`` of the
program's own) each of the stream's draws is one opaque call, a custom operator that advances
the stream's state and draws exactly what the eager step draws: a compiled step takes the same
numbers from the same stream position.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache

import torch

from bpfree.rules.common.buffers import HostState


def seeded_generator(seed: int, purpose: str) -> torch.Generator:
    """A CPU generator seeded from (``seed``, ``purpose``).

    The stream never coincides with a model initialised from ``Generator().manual_seed(seed)``:
    with a shared stream, FA's B_l would be drawn equal to W_lᵀ.
    """
    digest = hashlib.sha256(f"bpfree feedback {purpose} {seed}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


class RandomStream(HostState):
    """A seeded stream of random draws whose position is a buffer (``state``, uint8) kept on the
    host (``HostState``).

    ``with stream.generator() as g`` gives a CPU generator at the stream's position and advances
    the stream by what is drawn from it; ``normal(shapes, like)`` draws N(0, I) tensors and
    ``uniform(shape, bound, like)`` a uniform one where ``like`` lives (on the CPU by the
    stream's generator, a large normal draw in blocks side by side; on another device from a
    seed the stream gives).
    """

    def __init__(self, seed: int, purpose: str) -> None:
        super().__init__()
        self.register_buffer("state", seeded_generator(seed, purpose).get_state())

    @contextmanager
    def generator(self) -> Iterator[torch.Generator]:
        """A CPU generator at the stream's position; the stream advances by what it draws."""
        with generator_at(self.state) as generator:
            yield generator

    def normal(
        self,
        shapes: Sequence[Sequence[int]],
        like: torch.Tensor,
        rows: tuple[int, int] | None = None,
    ) -> list[torch.Tensor]:
        """One N(0, I) tensor per shape, with ``like``'s dtype and device.

        With ``rows`` = (start, total), each shape is (n, ...) for n samples of a batch of
        ``total``: its rows start:start + n are those of a (total, ...) draw, so that a replica
        of a data-parallel run draws what one process draws for the whole batch. On the CPU only
        the blocks of ``fill_normal`` that hold those rows are filled (a draw of at most
        ``BLOCK`` numbers is made whole): a replica does its share of the drawing. On another
        device the whole draw is made, in a fraction of the step.
        """
        if torch.compiler.is_compiling():
            rows = None if rows is None else list(rows)
            return [
                torch.ops.bpfree.stream_normal(self.state, list(s), like.dtype, like.device, rows)
                for s in shapes
            ]
        with self.generator() as generator:
            return [draw_normal(generator, tuple(s), like.dtype, like.device, rows) for s in shapes]

    def uniform(self, shape: Sequence[int], bound: float, like: torch.Tensor) -> torch.Tensor:
        """A tensor uniform in ±``bound``, with ``like``'s dtype and device (on another device
        than the CPU drawn there, as ``normal``)."""
        if torch.compiler.is_compiling():
            return torch.ops.bpfree.stream_uniform(
                self.state, list(shape), bound, like.dtype, like.device
            )
        with self.generator() as generator:
            return draw_uniform(generator, tuple(shape), bound, like.dtype, like.device)

    def integers(self, low: int, high: int, shape: Sequence[int]) -> torch.Tensor:
        """A CPU int64 tensor uniform in [``low``, ``high``) (``torch.randint``'s numbers)."""
        if torch.compiler.is_compiling():
            return torch.ops.bpfree.stream_integers(self.state, low, high, list(shape))
        with self.generator() as generator:
            return torch.randint(low, high, tuple(shape), generator=generator)

    def permutation(self, n: int) -> torch.Tensor:
        """A random order of range(``n``), a CPU int64 tensor (``torch.randperm``'s)."""
        if torch.compiler.is_compiling():
            return torch.ops.bpfree.stream_permutation(self.state, n)
        with self.generator() as generator:
            return torch.randperm(n, generator=generator)

    def normal_(self, tensors: Sequence[torch.Tensor]) -> None:
        """Fill each tensor in place with the numbers ``normal`` would draw for its shape (no
        new memory for a contiguous tensor)."""
        if torch.compiler.is_compiling():
            torch.ops.bpfree.stream_normal_(self.state, list(tensors))
            return
        with self.generator() as generator:
            fill_each(generator, tensors)


@contextmanager
def generator_at(state: torch.Tensor) -> Iterator[torch.Generator]:
    """A CPU generator at the position ``state`` (a generator's state, uint8); ``state`` is
    advanced by what it draws."""
    generator = torch.Generator()
    generator.set_state(state)
    yield generator
    state.copy_(generator.get_state())


def draw_normal(
    generator: torch.Generator,
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device,
    rows: Sequence[int] | None = None,
) -> torch.Tensor:
    """``RandomStream.normal``'s draw of one shape from the stream's ``generator``."""
    if rows is None:
        return fill(torch.empty(shape, dtype=dtype, device=device), generator)
    start, total = rows
    row = math.prod(shape[1:])
    full = torch.empty((total, *shape[1:]), dtype=dtype, device=device)
    fill(full, generator, needed=(start * row, (start + shape[0]) * row))
    return full[start : start + shape[0]]


def draw_uniform(
    generator: torch.Generator,
    shape: tuple[int, ...],
    bound: float,
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor:
    """``RandomStream.uniform``'s draw from the stream's ``generator``."""
    out = torch.empty(shape, dtype=dtype, device=device)
    if drawn_where_used(out.device):
        generator = seeded_on(out.device, generator)
    return out.uniform_(-bound, bound, generator=generator)


def fill_each(generator: torch.Generator, tensors: Sequence[torch.Tensor]) -> None:
    """``RandomStream.normal_``'s draws into ``tensors``, in order."""
    for tensor in tensors:
        if tensor.is_contiguous():
            fill(tensor, generator)
        else:  # drawn in the order of its shape, as ``normal`` draws it
            contiguous = torch.empty_like(tensor, memory_format=torch.contiguous_format)
            tensor.copy_(fill(contiguous, generator))


def drawn_where_used(device: torch.device) -> bool:
    """Whether a draw of ``RandomStream.normal`` or ``uniform`` for ``device`` is made there,
    from a generator seeded by the stream (any device but the CPU), rather than by the stream's
    CPU generator itself."""
    return device.type != "cpu"


def fill(
    out: torch.Tensor, generator: torch.Generator, needed: tuple[int, int] | None = None
) -> torch.Tensor:
    """Fill the contiguous tensor ``out`` with N(0, 1) numbers from the stream's ``generator``:
    on the CPU by ``fill_normal`` (only the blocks holding ``needed``); on another device all
    of ``out``, by a generator of that device seeded with one number drawn from ``generator``."""
    if not drawn_where_used(out.device):
        return fill_normal(out, generator, needed)
    return out.normal_(generator=seeded_on(out.device, generator))


def seeded_on(device: torch.device, generator: torch.Generator) -> torch.Generator:
    """A generator of ``device`` seeded with the next 62-bit number of the stream's
    ``generator``."""
    seed = int(torch.randint(2**62, (), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


# Numbers per block of a large draw. Fixed, so that the numbers do not depend on the threads.
BLOCK = 1 << 18


def fill_normal(
    out: torch.Tensor, generator: torch.Generator, needed: tuple[int, int] | None = None
) -> torch.Tensor:
    """Fill the contiguous CPU tensor ``out`` with N(0, 1) numbers from ``generator``.

    Up to ``BLOCK`` numbers are drawn from ``generator`` itself (``torch.randn``'s numbers).
    A larger tensor is cut into blocks of ``BLOCK``; ``generator`` draws one seed per block,
    and each block is drawn from a generator of its own seed, the blocks side by side on
    torch's intra-op threads. One generator draws a few ns a number on one core (5.2 M numbers,
    one per weight of a 3072-1024x3 MLP, take 20 ms); the blocks give the same numbers on any
    number of threads, in a fraction of that time.

    ``needed`` = (start, stop): only the numbers at those flat positions are wanted; the blocks
    outside them are left unfilled. The numbers wanted and the generator's next position are
    those of the whole draw.
    """
    flat = out.view(-1)
    if flat.numel() <= BLOCK:
        return out.normal_(generator=generator)
    blocks = flat.split(BLOCK)
    seeds = torch.randint(2**62, (len(blocks),), generator=generator)
    start, stop = (0, flat.numel()) if needed is None else needed
    wanted = range(start // BLOCK, -(-stop // BLOCK)) if stop > start else range(0)

    def fill_block(index: int) -> None:
        block_generator = torch.Generator().manual_seed(int(seeds[index]))
        blocks[index].normal_(generator=block_generator)

    threads = min(torch.get_num_threads(), len(wanted))
    if threads <= 1:
        for index in wanted:
            fill_block(index)
    else:
        list(_threads(threads).map(fill_block, wanted))
    return out


@cache
def _threads(count: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(count, thread_name_prefix="bpfree-draws")


def sparse_mask(
    shape: torch.Size, sparsity: float, generator: torch.Generator, like: torch.Tensor
) -> torch.Tensor:
    """A fixed 0/1 mask holding a fraction ``sparsity`` of the feedback weights at zero
    (PFA paper Sec. 7), with ``like``'s dtype and device."""
    keep = torch.rand(shape, generator=generator) >= sparsity
    return keep.to(device=like.device, dtype=like.dtype)


# The draws of a stream inside a compiled graph: opaque calls that advance the stream's state
# (a CPU buffer of the rule) and draw exactly what the eager step draws, since torch.compile
# cannot take a torch.Generator of the program's own.


@torch.library.custom_op("bpfree::stream_normal", mutates_args=("state",))
def _stream_normal(
    state: torch.Tensor,
    shape: list[int],
    dtype: torch.dtype,
    device: torch.device,
    rows: list[int] | None,
) -> torch.Tensor:
    with generator_at(state) as generator:
        drawn = draw_normal(generator, tuple(shape), dtype, device, rows)
    return drawn if drawn.storage_offset() == 0 else drawn.clone()


@_stream_normal.register_fake
def _(state, shape, dtype, device, rows):
    return torch.empty(shape, dtype=dtype, device=device)


@torch.library.custom_op("bpfree::stream_uniform", mutates_args=("state",))
def _stream_uniform(
    state: torch.Tensor,
    shape: list[int],
    bound: float,
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor:
    with generator_at(state) as generator:
        return draw_uniform(generator, tuple(shape), bound, dtype, device)


@_stream_uniform.register_fake
def _(state, shape, bound, dtype, device):
    return torch.empty(shape, dtype=dtype, device=device)


@torch.library.custom_op("bpfree::stream_normal_", mutates_args=("state", "tensors"))
def _stream_normal_(state: torch.Tensor, tensors: list[torch.Tensor]) -> None:
    with generator_at(state) as generator:
        fill_each(generator, tensors)


@torch.library.custom_op("bpfree::stream_integers", mutates_args=("state",))
def _stream_integers(state: torch.Tensor, low: int, high: int, shape: list[int]) -> torch.Tensor:
    with generator_at(state) as generator:
        return torch.randint(low, high, tuple(shape), generator=generator)


@_stream_integers.register_fake
def _(state, low, high, shape):
    return torch.empty(shape, dtype=torch.long)


@torch.library.custom_op("bpfree::stream_permutation", mutates_args=("state",))
def _stream_permutation(state: torch.Tensor, n: int) -> torch.Tensor:
    with generator_at(state) as generator:
        return torch.randperm(n, generator=generator)


@_stream_permutation.register_fake
def _(state, n):
    return torch.empty(n, dtype=torch.long)
