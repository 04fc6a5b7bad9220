"""Batches covers every sample once per pass, reproducibly, keeping the last partial batch."""

import pytest
import torch

from bpfree.data import Batches


def _data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples whose image encodes their label, so a batch shows whether x and y stay paired."""
    y = torch.arange(n)
    return y.float()[:, None, None, None].expand(n, 1, 2, 2).clone(), y


def _pass(batches: Batches) -> list[torch.Tensor]:
    """The labels of one pass, batch by batch, after checking each x matches its y."""
    out = []
    for x, y in batches:
        assert torch.equal(x[:, 0, 0, 0].long(), y)
        out.append(y)
    return out


@pytest.mark.parametrize("shuffle", [False, True])
def test_every_index_once_per_pass_with_last_partial_batch(shuffle):
    batches = Batches(*_data(10), 3, shuffle=shuffle, generator=torch.Generator().manual_seed(0))
    assert len(batches) == 4
    for _ in range(2):
        labels = _pass(batches)
        assert [len(y) for y in labels] == [3, 3, 3, 1]
        assert sorted(torch.cat(labels).tolist()) == list(range(10))


def test_without_shuffle_the_order_is_kept():
    assert torch.cat(_pass(Batches(*_data(7), 4, shuffle=False))).tolist() == list(range(7))


def test_shuffle_draws_a_new_order_each_pass_reproducibly():
    def orders(seed: int) -> list[list[int]]:
        generator = torch.Generator().manual_seed(seed)
        batches = Batches(*_data(50), 8, shuffle=True, generator=generator)
        return [torch.cat(_pass(batches)).tolist() for _ in range(3)]

    first = orders(1)
    assert first == orders(1)
    assert first != orders(2)
    assert first[0] != first[1] != first[2]


def test_batch_larger_than_the_data_is_one_batch():
    batches = Batches(*_data(5), 64, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert len(batches) == 1 and [len(y) for y in _pass(batches)] == [5]


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True])
def test_bad_batch_size_is_named(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        Batches(*_data(5), batch_size, shuffle=False)


def test_x_and_y_must_have_the_same_length():
    x, y = _data(5)
    with pytest.raises(ValueError, match="same number"):
        Batches(x, y[:4], 2, shuffle=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("generator_device", ["cpu", "cuda"])
def test_batches_of_cuda_tensors(generator_device):
    x, y = (t.cuda() for t in _data(10))
    generator = torch.Generator(device=generator_device).manual_seed(0)
    labels = _pass(Batches(x, y, 4, shuffle=True, generator=generator))
    assert all(t.is_cuda for t in labels)
    assert sorted(torch.cat(labels).tolist()) == list(range(10))
