"""A validation split held out of the training set: seeded and stratified by class."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bpfree.data.errors import DataError

# Offset of the split's seed from the run's seed: the split's draws and the run's own draws
# (initialisation, batch order) come from unrelated streams.
SPLIT_SEED_OFFSET = 7919


@dataclass(frozen=True)
class Split:
    """Indices into the training set: the rows trained on and the rows held out, both sorted."""

    train: torch.Tensor
    validation: torch.Tensor


def stratified_split(labels: torch.Tensor, fraction: float, seed: int) -> Split:
    """Hold out ``round(fraction * n_c)`` samples of every class c (n_c of them), chosen by a
    generator seeded with ``seed``: the same labels, fraction and seed give the same split on
    every machine. Every class keeps at least one training sample."""
    if not 0.0 < fraction < 1.0:
        raise DataError(f"the validation fraction must be in (0, 1), got {fraction}")
    generator = torch.Generator().manual_seed(seed + SPLIT_SEED_OFFSET)
    cpu_labels = labels.cpu()
    held_out = []
    for label in torch.unique(cpu_labels):
        members = torch.nonzero(cpu_labels == label).flatten()
        count = min(round(fraction * len(members)), len(members) - 1)
        held_out.append(members[torch.randperm(len(members), generator=generator)[:count]])
    validation = torch.cat(held_out).sort().values
    if len(validation) == 0:
        raise DataError(
            f"a validation fraction of {fraction} holds out no sample of a training set of "
            f"{len(labels)}; raise it"
        )
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[validation] = False
    train = torch.nonzero(keep).flatten()
    return Split(train.to(labels.device), validation.to(labels.device))
