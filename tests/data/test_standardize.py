"""Per-channel standardisation by the training images' statistics."""

import pytest
import torch

from bpfree.data import Dataset
from bpfree.data.standardize import channel_statistics, standardized


def images(n, generator, scale=(1.0, 0.5, 0.1)):
    x = torch.rand(n, 3, 4, 5, generator=generator)
    return x * torch.tensor(scale).view(1, 3, 1, 1)


def dataset(generator, **changes):
    values = dict(
        name="tiny",
        num_classes=2,
        train_x=images(20, generator),
        train_y=torch.arange(20) % 2,
        test_x=images(6, generator),
        test_y=torch.arange(6) % 2,
    )
    return Dataset(**{**values, **changes})


def test_training_channels_end_at_mean_zero_and_std_one():
    data = standardized(dataset(torch.Generator().manual_seed(0)))
    mean, std = channel_statistics(data.train_x)
    torch.testing.assert_close(mean, torch.zeros(3, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(std, torch.ones(3, dtype=torch.float64), atol=1e-6, rtol=0)


def test_the_test_images_take_the_training_statistics():
    raw = dataset(torch.Generator().manual_seed(1))
    data = standardized(raw)
    for c in range(3):
        values = raw.train_x[:, c].double()
        mean, std = values.mean(), values.std(correction=0)
        expected = ((raw.test_x[:, c].double() - mean) / std).float()
        torch.testing.assert_close(data.test_x[:, c], expected)
    assert torch.equal(data.train_y, raw.train_y) and torch.equal(data.test_y, raw.test_y)


def test_a_constant_channel_is_refused():
    generator = torch.Generator().manual_seed(2)
    flat = images(20, generator)
    flat[:, 1] = 0.5
    with pytest.raises(ValueError, match="channel 1 of the training images is constant"):
        standardized(dataset(generator, train_x=flat))
