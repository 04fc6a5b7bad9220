"""Convolutional PEPITA (ICML 2022 Sec. 3.3): the vectorised filter update against the paper's
per-position definition, on a small input."""

import pytest
import torch

import bpfree
from bpfree.models import PepitaConvNet
from bpfree.rules.common.walk import pooled, tiling_window


def per_position_update(delta: torch.Tensor, inputs: torch.Tensor, k: int) -> torch.Tensor:
    """Steps 1-3 of Sec. 3.3, literally: for every output element, its activity difference times
    the input patch the filter saw; all products summed; the sum divided by their number."""
    n, maps, height, width = delta.shape
    total = torch.zeros(maps, inputs.shape[1], k, k, dtype=delta.dtype)
    count = 0
    for sample in range(n):
        for o in range(maps):
            for i in range(height):
                for j in range(width):
                    patch = inputs[sample, :, i : i + k, j : j + k]
                    total[o] += delta[sample, o, i, j] * patch
                    count += 1
    return total / (count / maps)  # products per filter: n · positions


# The ICML code's divisor over the paper's n·p, for a batch of 2 and 4 × 4 output positions.
REFERENCE_CODE_FACTORS = {"products": 1.0, "reference-code": 1 / 2, "reference-code-sqrt": 4 / 2}


# The ICML code moves its filters by +η ΔW where its dense layers move by −η ΔW.
CONV_SIGN_FACTORS = {"paper": 1.0, "reference-code": -1.0}


@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("conv_average", list(REFERENCE_CODE_FACTORS))
@pytest.mark.parametrize("conv_sign", list(CONV_SIGN_FACTORS))
def test_vectorised_filter_update_equals_the_per_position_definition(sign, conv_average, conv_sign):
    generator = torch.Generator().manual_seed(0)
    model = PepitaConvNet(2, 3, image_size=8, generator=generator).double()
    options = {"conv_average": conv_average, "conv_sign": conv_sign}
    rule = bpfree.build("pepita", model, sign=sign, f_scale=5.0, **options)
    rule = rule.double()
    x = torch.rand(2, 2, 8, 8, generator=generator, dtype=torch.float64)
    y = torch.tensor([0, 2])
    rule.step(x, y)

    conv, pool, linear = model.blocks[0][0], model.blocks[0][2], model.head[1]
    h = torch.relu(torch.nn.functional.conv2d(x, conv.weight))  # clean pass, before pooling
    p = torch.softmax(pool(h).flatten(1) @ linear.weight.T, dim=1)
    e = p - torch.nn.functional.one_hot(y, 3).double()
    x_err = x + sign * (e @ rule.F.T).view_as(x)  # modulated input x + s F e
    h_err = torch.relu(torch.nn.functional.conv2d(x_err, conv.weight))

    factor = REFERENCE_CODE_FACTORS[conv_average] * CONV_SIGN_FACTORS[conv_sign]
    expected = per_position_update(h - h_err, x_err, k=5) * factor
    torch.testing.assert_close(conv.weight.grad, expected, rtol=1e-10, atol=1e-12)
    head = e.T @ pool(h_err).flatten(1) / 2  # eq. 5 on the pooled modulated maps
    torch.testing.assert_close(linear.weight.grad, head, rtol=1e-10, atol=1e-12)
    assert conv.weight.grad.abs().max() > 1e-8


def test_conv_pepita_f_has_one_row_per_input_pixel_and_channel():
    rule = bpfree.build("pepita", PepitaConvNet(3, 10, image_size=32))
    assert rule.F.shape == (3 * 32 * 32, 10)
    bound = 0.05 * (6 / (3 * 32 * 32)) ** 0.5  # ICML Table 2, FAN IN 32·32·3
    assert rule.F.abs().max() <= bound


def test_rules_without_a_conv_update_refuse_conv_nets():
    for name in ("pepita-wm", "afa", "pepita-time-local"):
        with pytest.raises(ValueError, match="cannot walk PepitaConvNet"):
            bpfree.build(name, PepitaConvNet(1, 10, image_size=28))


def test_conv_pepita_refuses_flat_inputs():
    rule = bpfree.build("pepita", PepitaConvNet(1, 10, image_size=28))
    with pytest.raises(ValueError, match=r"expects images \(batch, 1, h, w\)"):
        rule.step(torch.rand(4, 784), torch.zeros(4, dtype=torch.long))


def test_the_reference_code_sign_moves_the_filters_up_the_step_the_paper_takes():
    """One SGD step from the same weights: the filters move by exactly opposite amounts, the
    head by the same (the ICML code's sign applies to its convolution only)."""
    x = torch.rand(4, 1, 10, 10, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 1])
    moves = {}
    for conv_sign in CONV_SIGN_FACTORS:
        model = PepitaConvNet(1, 3, image_size=10, generator=torch.Generator().manual_seed(1))
        start = [p.detach().clone() for p in model.parameters()]
        rule = bpfree.build("pepita", model, f_scale=5.0, conv_sign=conv_sign)
        learner = bpfree.optimizer(rule, torch.optim.SGD, lr=0.1)
        rule.step(x, y)
        learner.step()
        moves[conv_sign] = [p.detach() - s for p, s in zip(model.parameters(), start, strict=True)]
    (conv_paper, head_paper), (conv_code, head_code) = moves["paper"], moves["reference-code"]
    assert conv_paper.abs().max() > 0
    torch.testing.assert_close(conv_code, -conv_paper)
    torch.testing.assert_close(head_code, head_paper)


def test_conv_pepita_refuses_an_unknown_conv_sign():
    with pytest.raises(ValueError, match="conv_sign must be one of paper, reference-code"):
        bpfree.build("pepita", PepitaConvNet(1, 10, image_size=28), conv_sign="+")


def test_conv_pepita_refuses_an_unknown_conv_average():
    with pytest.raises(ValueError, match="conv_average must be one of products, reference-code"):
        bpfree.build("pepita", PepitaConvNet(1, 10, image_size=28), conv_average="mean")


@pytest.mark.parametrize(
    "options",
    [
        {"kernel_size": 2},
        {"kernel_size": 3},
        {"kernel_size": (2, 3)},
        {"kernel_size": 2, "stride": 1},  # windows overlap: PyTorch's kernel
        {"kernel_size": 2, "padding": 1},
        {"kernel_size": 2, "ceil_mode": True},
        {"kernel_size": 2, "dilation": 2},
    ],
)
@pytest.mark.parametrize("size", [(9, 11), (8, 8)])
def test_walk_pooling_equals_max_pool2d(options, size):
    """The forward-only walk's pooling gives MaxPool2d's values exactly, odd map sizes (cut
    like PyTorch's floor mode) and ties included."""
    pool = torch.nn.MaxPool2d(**options)
    h = torch.randn(3, 4, *size, generator=torch.Generator().manual_seed(0)).relu()  # ties at 0
    h[0, 0, :4, :4] = 1.0  # ties at a positive value
    out = pooled(pool, h)
    assert torch.equal(out, pool(h))
    assert out.untyped_storage().data_ptr() != h.untyped_storage().data_ptr()


def test_walk_pooling_tiles_only_non_overlapping_windows():
    assert tiling_window(torch.nn.MaxPool2d(2)) == (2, 2)
    assert tiling_window(torch.nn.MaxPool2d((2, 3))) == (2, 3)
    for pool in (
        torch.nn.MaxPool2d(2, stride=1),
        torch.nn.MaxPool2d(2, padding=1),
        torch.nn.MaxPool2d(2, ceil_mode=True),
        torch.nn.MaxPool2d(1),
        torch.nn.AvgPool2d(2),
    ):
        assert tiling_window(pool) is None
