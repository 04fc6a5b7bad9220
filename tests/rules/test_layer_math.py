"""The layer math of a convolution: one backward call gives the feedback layer's two gradients."""

import pytest
import torch

from bpfree.rules.common.layer_math import Conv2dOps, ConvConfig


@pytest.mark.parametrize(
    ("size", "stride", "padding", "dilation", "groups"),
    [(8, 1, 1, 1, 1), (9, 2, 1, 1, 2), (10, 1, 2, 2, 1), (7, 3, 0, 1, 1)],
)
def test_one_backward_call_gives_delta_x_through_the_kernel_and_the_exact_delta_w(
    size, stride, padding, dilation, groups
):
    """What a compiled graph computes in one ``convolution_backward`` call (``Conv2dOps.
    input_and_weight_grads``) is what the eager step computes in two: δx through the feedback
    kernel, and δW, which reads δy and x but not the kernel."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, size, size + 1, dtype=torch.float64, generator=generator)
    weight, kernel = torch.randn(2, 6, 4 // groups, 3, 3, dtype=torch.float64, generator=generator)
    config = ConvConfig((stride, stride), (padding, padding), (dilation, dilation), groups)
    ops = Conv2dOps()
    grad_y = torch.randn(ops.forward(x, weight, None, config).shape, dtype=torch.float64)
    grad_x, grad_w = ops._backward(grad_y, x, kernel, config, (True, True))
    torch.testing.assert_close(
        grad_x, ops.input_grad(grad_y, kernel, x, config), rtol=1e-12, atol=1e-12
    )
    torch.testing.assert_close(
        grad_w, ops.weight_grad(x, grad_y, weight, config), rtol=1e-12, atol=1e-12
    )
    assert (
        ops.input_and_weight_grads(grad_y, kernel, x, weight, config, weight_grad=False)[1] is None
    )
