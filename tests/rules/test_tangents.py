"""``forward_mode()``: a linear map whose input or weight alone carries a tangent gives the
tangent forward AD gives, bitwise, with the product of the zero tangent left out, and its primal
keeps its reverse-mode graph (DFA's and GrAPE's blocks backpropagate inside)."""

import itertools

import pytest
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F

from bpfree.rules.common.tangents import forward_mode

MAPS = {  # map, input shape, weight shape, keyword arguments
    "linear": (F.linear, (8, 12), (5, 12), {}),
    "linear on a sequence": (F.linear, (4, 3, 12), (5, 12), {}),
    "conv1d": (F.conv1d, (4, 3, 10), (6, 3, 3), {"padding": 1}),
    "conv2d": (F.conv2d, (4, 3, 9, 9), (6, 3, 3, 3), {"stride": 2, "padding": 1}),
}
PRODUCTS = {"linear": "aten::mm", "linear on a sequence": "aten::mm",
            "conv1d": "aten::convolution", "conv2d": "aten::convolution"}  # fmt: skip


def evaluate(name, perturbed, context):
    """The map's primal and tangent with tangents on the ``perturbed`` of (x, W, b)."""
    func, x_shape, w_shape, options = MAPS[name]
    generator = torch.Generator().manual_seed(0)
    primals = [torch.randn(s, generator=generator) for s in (x_shape, w_shape, w_shape[:1])]
    tangents = [torch.randn(p.shape, generator=generator) for p in primals]
    with torch.no_grad(), context():
        args = [
            fwAD.make_dual(p, t) if on else p
            for p, t, on in zip(primals, tangents, perturbed, strict=True)
        ]
        primal, tangent = fwAD.unpack_dual(func(*args, **options))
        return primal.clone(), None if tangent is None else tangent.clone()


@pytest.mark.parametrize("perturbed", list(itertools.product([False, True], repeat=3)))
@pytest.mark.parametrize("name", sorted(MAPS))
def test_the_tangent_is_forward_ads_bitwise(name, perturbed):
    primal, tangent = evaluate(name, perturbed, forward_mode)
    expected_primal, expected_tangent = evaluate(name, perturbed, fwAD.dual_level)
    assert torch.equal(primal, expected_primal)
    if expected_tangent is None:
        assert tangent is None
    else:
        assert torch.equal(tangent, expected_tangent)


@pytest.mark.parametrize("perturbed", [(True, False, False), (False, True, True)])
@pytest.mark.parametrize("name", sorted(MAPS))
def test_a_one_sided_tangent_takes_one_product(name, perturbed):
    def products(context):
        with torch.profiler.profile() as profile:
            evaluate(name, perturbed, context)
        return sum(e.count for e in profile.key_averages() if e.key == PRODUCTS[name])

    assert products(fwAD.dual_level) - products(forward_mode) == 1


@pytest.mark.parametrize("name", sorted(MAPS))
def test_the_primal_backpropagates_as_without_the_mode(name):
    func, x_shape, w_shape, options = MAPS[name]
    generator = torch.Generator().manual_seed(1)
    x, w, b = (torch.randn(s, generator=generator) for s in (x_shape, w_shape, w_shape[:1]))
    u = torch.randn(x_shape, generator=generator)

    def gradients(context):
        leaves = [t.clone().requires_grad_() for t in (x, w, b)]
        with context():
            primal = fwAD.unpack_dual(func(fwAD.make_dual(leaves[0], u), *leaves[1:], **options))
            primal.primal.square().sum().backward()
        return [leaf.grad for leaf in leaves]

    for got, expected in zip(gradients(forward_mode), gradients(fwAD.dual_level), strict=True):
        assert torch.equal(got, expected)
