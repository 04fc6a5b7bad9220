"""Mini-batches as index slices of tensors already on the training device."""

from collections.abc import Iterator

import torch


class Batches:
    """Iterate (x, y) mini-batches of two tensors sharing their first dimension N.

    Each pass (each `iter`) yields ceil(N / batch_size) batches, the last one partial when
    batch_size does not divide N. With shuffle, every pass draws a fresh permutation from
    generator (the global RNG when None), so a seeded generator reproduces the whole sequence.
    No per-sample Python: a batch is one slice (or one gather) of each tensor.

    Example:
        >>> batches = Batches(data.train_x, data.train_y, 128, shuffle=True, generator=g)
        >>> for x, y in batches: ...
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool,
        generator: torch.Generator | None = None,
    ) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if len(x) != len(y):
            raise ValueError(
                f"x and y must hold the same number of samples, got {len(x)} and {len(y)}"
            )
        self.x = x
        self.y = y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator

    def __len__(self) -> int:
        """Number of batches in one pass."""
        return -(-len(self.x) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield the batches of one pass, in a fresh random order when shuffling."""
        n = len(self.x)
        if not self.shuffle:
            for start in range(0, n, self.batch_size):
                yield (
                    self.x[start : start + self.batch_size],
                    self.y[start : start + self.batch_size],
                )
            return
        device = self.generator.device if self.generator is not None else "cpu"
        order = torch.randperm(n, generator=self.generator, device=device).to(self.x.device)
        for idx in order.split(self.batch_size):
            yield self.x[idx], self.y[idx]
