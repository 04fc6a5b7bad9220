"""GrAPE: the feedback update turns B toward the forward gradient and keeps its norm."""

import itertools

import pytest
import torch

from bpfree.models import MLP
from bpfree.rules import GrAPE
from bpfree.rules.projection.grape import align_feedback
from bpfree.rules.projection.mechanism import ProjectionRule


def cosine(a, b):
    return float((a * b).sum() / (a.norm() * b.norm()))


def test_feedback_update_raises_the_cosine_to_one_for_a_fixed_gradient():
    """App. A Fig. 4: a 4×4 B updated by eq. 6 against a fixed 4×4 gradient matrix."""
    generator = torch.Generator().manual_seed(0)
    g = torch.randn(4, 4, generator=generator, dtype=torch.float64)
    b = torch.randn(4, 4, generator=generator, dtype=torch.float64)
    norm = b.norm().clone()
    cosines = [align_feedback(b, g, lr=0.5) for _ in range(100)]
    assert cosines[0] < 0.5
    assert all(later >= earlier - 1e-12 for earlier, later in itertools.pairwise(cosines))
    assert cosine(b, g) > 0.999
    torch.testing.assert_close(b.norm(), norm, rtol=1e-12, atol=0)


@pytest.mark.parametrize(("noise", "escapes"), [(0.0, False), (1e-6, True)])
def test_noise_moves_b_off_the_antiparallel_stationary_point(noise, escapes):
    generator = torch.Generator().manual_seed(1)
    g = torch.randn(4, 4, generator=generator, dtype=torch.float64)
    g /= g.norm()
    b = -g.clone()
    for _ in range(100):
        xi = torch.randn(4, 4, generator=generator, dtype=torch.float64)
        align_feedback(b, g, lr=0.5, noise=xi * (noise * b.norm() / xi.norm()))
    assert (cosine(b, g) > 0.99) == escapes


def test_grape_aligns_b_with_the_averaged_forward_gradient():
    torch.manual_seed(0)
    model = MLP((6, 5, 3), activation="tanh").double()
    rule = GrAPE(model, feedback_lr=1.0, perturbations=4).double()
    x, y = torch.randn(32, 6, dtype=torch.float64), torch.randint(0, 3, (32,))
    norm = rule.B[0].norm().clone()
    first = rule.align(x, y)[0]
    for _ in range(150):
        last = rule.align(x, y)[0]
    assert last > max(first, 0.9)
    torch.testing.assert_close(rule.B[0].norm(), norm)
    assert rule.steps == 151
    logged = rule.alignment()["blocks.0"]  # the diagnostic the trainer logs: eq. 5 on the state
    assert logged["cos_omega_bar"] == pytest.approx(cosine(rule.B[0], rule.G[0]), abs=1e-12)
    assert logged["cos_omega_bar"] > 0.9 and logged["angle"] < 26


def test_grape_updates_w_with_dfa_and_the_new_b():
    model = MLP((6, 5, 3), activation="tanh").double()
    x, y = torch.randn(8, 6, dtype=torch.float64), torch.randint(0, 3, (8,))
    rule = GrAPE(model, feedback_lr=0.5).double()
    b0 = rule.B[0].clone()
    rule.step(x, y)
    assert not torch.equal(rule.B[0], b0)
    h = torch.tanh(x @ model.linears[0].weight.T)
    e = (torch.softmax(h @ model.head.weight.T, 1) - torch.nn.functional.one_hot(y, 3)) / 8
    d1 = (e @ rule.B[0].T) * (1 - h**2)
    torch.testing.assert_close(model.linears[0].weight.grad, d1.T @ x)


@pytest.mark.parametrize("perturbations", [1, 3])
def test_a_step_equals_a_separate_forward_gradient_pass_then_dfa(perturbations):
    """A step carries its first perturbation's tangent on DFA's own pass: the same Ḡ, B and
    gradients as ``align`` (a tangent pass per perturbation) followed by DFA's step with the
    aligned B (without dropout, where one pass or two see the same network)."""

    def make():
        torch.manual_seed(0)
        model = MLP((6, 5, 4, 3), activation="tanh").double()
        return GrAPE(model, perturbations=perturbations, feedback_lr=0.5).double()

    generator = torch.Generator().manual_seed(2)
    x = torch.randn(16, 6, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 3, (16,), generator=generator)
    fused, separate = make(), make()
    for _ in range(3):
        fused.step(x, y)
        separate.align(x, y)
        separate.model.zero_grad(set_to_none=True)
        ProjectionRule._step(separate, x, y)  # DFA's step, with the B just aligned
        for rule in (fused, separate):
            torch.optim.SGD(rule.model.parameters(), lr=0.1).step()
    for name, value in separate.state_dict().items():
        torch.testing.assert_close(fused.state_dict()[name], value, rtol=1e-12, atol=1e-14)
    for a, b in zip(fused.model.parameters(), separate.model.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
