"""Per-channel standardisation of an image dataset by its training images' statistics."""

from __future__ import annotations

import dataclasses

import torch

from bpfree.data.datasets import Dataset


def channel_statistics(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std (population, float64) of each channel's values over (N, C, H, W) images."""
    values = images.transpose(0, 1).reshape(images.shape[1], -1).double()
    return values.mean(dim=1), values.std(dim=1, correction=0)


def standardized(data: Dataset) -> Dataset:
    """``data`` with every image channel shifted and scaled to x' = (x − μ_c) / σ_c, where μ_c
    and σ_c are the mean and std of channel c over all training images (the test images take the
    training statistics). On CIFAR-10 these are μ = (125.3, 123.0, 113.9) / 255 and σ = (63.0,
    62.1, 66.7) / 255, the constants of Frenkel et al.'s DRTP code (setup.py). A channel of one
    constant value is refused: it has no scale to divide by."""
    mean, std = channel_statistics(data.train_x)
    flat = [c for c in range(len(std)) if std[c] == 0]
    if flat:
        raise ValueError(
            f"{data.name}: channel {flat[0]} of the training images is constant, so it cannot "
            "be standardized; train without 'standardize'"
        )
    shape = (1, -1, 1, 1)
    mean = mean.to(data.train_x.dtype).view(shape)
    std = std.to(data.train_x.dtype).view(shape)
    return dataclasses.replace(
        data, train_x=(data.train_x - mean) / std, test_x=(data.test_x - mean) / std
    )
