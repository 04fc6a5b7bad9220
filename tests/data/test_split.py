"""The validation split: disjoint from the training rows, stratified by class, the same for the
same seed, and refused when it would hold out nothing."""

import pytest
import torch

from bpfree.data import DataError
from bpfree.data.split import stratified_split


def labels(counts):
    return torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])[
        torch.randperm(sum(counts))
    ]


def test_the_split_is_disjoint_and_covers_the_training_set():
    y = labels([30, 50, 20])
    split = stratified_split(y, 0.2, seed=3)
    train, held = set(split.train.tolist()), set(split.validation.tolist())
    assert not train & held
    assert train | held == set(range(len(y)))


def test_every_class_keeps_its_share():
    y = labels([30, 50, 20, 100])
    split = stratified_split(y, 0.1, seed=0)
    held = y[split.validation]
    assert [int((held == c).sum()) for c in range(4)] == [3, 5, 2, 10]


def test_the_same_seed_gives_the_same_split_and_another_seed_another():
    y = labels([40, 40, 40])
    a, b = stratified_split(y, 0.25, seed=5), stratified_split(y, 0.25, seed=5)
    assert torch.equal(a.validation, b.validation) and torch.equal(a.train, b.train)
    assert not torch.equal(a.validation, stratified_split(y, 0.25, seed=6).validation)


def test_a_class_keeps_at_least_one_training_sample():
    split = stratified_split(torch.tensor([0, 0, 1]), 0.9, seed=0)
    assert set(torch.tensor([0, 0, 1])[split.train].tolist()) == {0, 1}


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_a_fraction_outside_the_open_unit_interval_is_refused(fraction):
    with pytest.raises(DataError, match="validation fraction must be in"):
        stratified_split(torch.arange(10) % 2, fraction, seed=0)


def test_a_fraction_too_small_to_hold_out_anything_is_refused():
    with pytest.raises(DataError, match="holds out no sample"):
        stratified_split(torch.arange(10) % 2, 0.01, seed=0)
