"""The PEPITA family against closed forms: Hebbian, time-local, AFA, weight mirroring,
activity normalisation and the random-perturbation ablation."""

import pytest
import torch

import bpfree
from bpfree.models import MLP
from bpfree.rules import AFA, PEPITA, PEPITAHebbian, PEPITATimeLocal, PEPITAWeightMirror

FORWARD_ONLY = ("pepita", "pepita-hebbian", "pepita-wm", "pepita-time-local", "afa")


def model64(sizes=(6, 5, 4, 3), **options):
    return MLP(sizes, generator=torch.Generator().manual_seed(1), **options).double()


def batch64(n=7, features=6, classes=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n, features, generator=generator, dtype=torch.float64)
    return x, torch.arange(n) % classes


def grads(model):
    return [layer.weight.grad.clone() for layer in model.linears]


def passes(model, F, x, y, sign):
    """Both passes of PEPITA written out: clean and modulated activities, softmax, one-hot."""
    Ws = [layer.weight for layer in model.linears]

    def forward(h0):
        hs = [h0]
        for block in model.blocks:
            hs.append(block(hs[-1]))
        return hs, torch.softmax(hs[-1] @ Ws[-1].T, dim=1)

    clean, p = forward(x)
    t = torch.nn.functional.one_hot(y, Ws[-1].shape[0]).to(x.dtype)
    modulated, _ = forward(x + sign * (p - t) @ F.T)
    return clean, modulated, p, t


@pytest.mark.parametrize("n", [3, 7])  # narrower and wider than the first layer (5)
def test_hebbian_is_pepita_plus_the_presynaptic_difference(n):
    """ΔW_l(Hebbian) = ΔW_l(PEPITA) + h_l (h_{l−1} − h_{l−1}^err)ᵀ, and likewise with y at the
    output: equal to PEPITA wherever the presynaptic terms of both passes coincide."""
    x, y = batch64(n)
    pepita_model, hebbian_model = model64(), model64()
    hebbian = PEPITAHebbian(hebbian_model, sign=-1, f_scale=3.0).double()
    pepita = PEPITA(pepita_model, sign=-1, f_scale=3.0).double()
    pepita.F.copy_(hebbian.F)
    pepita.step(x, y)
    hebbian.step(x, y)
    clean, modulated, p, _ = passes(hebbian_model, hebbian.F, x, y, sign=-1)
    n = x.shape[0]
    posts = [*clean[1:], p]
    pairs = zip(grads(pepita_model), grads(hebbian_model), strict=True)
    for l, (g_pepita, g_hebbian) in enumerate(pairs):
        correction = posts[l].T @ (clean[l] - modulated[l]) / n
        torch.testing.assert_close(g_hebbian, g_pepita + correction, rtol=1e-12, atol=1e-12)
        assert correction.abs().max() > 1e-6  # the presynaptic terms differ here


def test_hebbian_equals_pepita_when_the_presynaptic_terms_coincide():
    x, y = batch64()
    pepita_model, hebbian_model = model64(), model64()
    PEPITA(pepita_model, f_scale=0.0).double().step(x, y)  # F = 0: both passes identical
    PEPITAHebbian(hebbian_model, f_scale=0.0).double().step(x, y)
    for a, b in zip(grads(pepita_model), grads(hebbian_model), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("normalization", ["frobenius", "per-sample"])
def test_normalised_pepita_follows_the_equations_through_both_passes(normalization):
    x, y = batch64()
    model = model64(normalization=normalization)
    rule = PEPITA(model, f_scale=3.0).double()
    rule.step(x, y)
    clean, modulated, p, t = passes(model, rule.F, x, y, sign=1)
    n = x.shape[0]
    expected = [(clean[l] - modulated[l]).T @ modulated[l - 1] / n for l in (1, 2)]
    expected.append((p - t).T @ modulated[-1] / n)
    for got, want in zip(grads(model), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_random_perturbation_modulates_the_input_with_k_r():
    x, y = batch64()
    model = model64()
    rule = PEPITA(model, perturbation="random", amplitude=0.3).double()
    torch.manual_seed(5)
    rule.step(x, y)
    torch.manual_seed(5)
    r = torch.empty_like(x).uniform_(-1.0, 1.0)
    clean, _, p, t = passes(model, torch.zeros(6, 3, dtype=x.dtype), x, y, sign=1)
    hs = [x + 0.3 * r]
    for block in model.blocks:
        hs.append(block(hs[-1]))
    n = x.shape[0]
    expected = [(clean[l] - hs[l]).T @ hs[l - 1] / n for l in (1, 2)] + [(p - t).T @ hs[-1] / n]
    for got, want in zip(grads(model), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [3, 7])  # narrower and wider than the first layer (5)
def test_projected_random_perturbation_modulates_the_input_with_F_k_r(n):
    """ICML App. D eq. 11: h_0^err = x + F (k r), r uniform in [0, 1)^c; the output layer still
    learns from the clean error e (eq. 5)."""
    x, y = batch64(n=n)
    model = model64()
    rule = PEPITA(model, perturbation="projected-random", amplitude=0.3, f_scale=3.0).double()
    torch.manual_seed(5)
    rule.step(x, y)
    torch.manual_seed(5)
    r = torch.rand(n, 3, dtype=x.dtype)
    clean, _, p, t = passes(model, rule.F, x, y, sign=1)
    hs = [x + 0.3 * r @ rule.F.T]
    for block in model.blocks:
        hs.append(block(hs[-1]))
    expected = [(clean[l] - hs[l]).T @ hs[l - 1] / n for l in (1, 2)] + [(p - t).T @ hs[-1] / n]
    for got, want in zip(grads(model), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_time_local_steps_add_up_to_hebbian_as_the_learning_rate_vanishes():
    x, y = batch64()
    reference = model64()
    hebbian_rule = PEPITAHebbian(reference, f_scale=3.0).double()
    hebbian_rule.step(x, y)
    hebbian = grads(reference)
    errors = []
    for lr in (1e-2, 1e-4):
        model = model64()
        start = [layer.weight.detach().clone() for layer in model.linears]
        rule = PEPITATimeLocal(model, f_scale=3.0).double()
        rule.F.copy_(hebbian_rule.F)
        bpfree.optimizer(rule, torch.optim.SGD, lr=lr)
        rule.step(x, y)
        moved = [
            (w0 - layer.weight.detach()) / lr
            for w0, layer in zip(start, model.linears, strict=True)
        ]
        assert all(layer.weight.grad is None for layer in model.linears)
        errors.append(
            max((m - h).norm() / h.norm() for m, h in zip(moved, hebbian, strict=True)).item()
        )
    assert errors[1] < 1e-3 and errors[1] < errors[0] / 50  # O(lr)


def test_time_local_needs_an_optimizer():
    x, y = batch64()
    with pytest.raises(RuntimeError, match=r"bpfree.optimizer\(rule"):
        PEPITATimeLocal(model64()).double().step(x, y)


def test_afa_approaches_pepitas_first_layer_update_as_f_e_vanishes():
    x, y = batch64()
    differences = []
    for f_scale in (1.0, 0.1, 0.01, 0.001):
        pepita_model, afa_model = model64(), model64()
        PEPITA(pepita_model, f_scale=f_scale).double().step(x, y)
        AFA(afa_model, f_scale=f_scale).double().step(x, y)
        pepita_first, afa_first = (
            pepita_model.linears[0].weight.grad,
            afa_model.linears[0].weight.grad,
        )
        differences.append(((afa_first - pepita_first).norm() / pepita_first.norm()).item())
    assert differences == sorted(differences, reverse=True)
    assert differences[-1] < 1e-2
    assert differences[-1] < differences[0] / 30


def test_afa_and_pepita_share_f_for_the_same_seed():
    assert torch.equal(AFA(model64(), seed=4).F, PEPITA(model64(), seed=4).F)


def test_mirroring_aligns_each_factor_with_its_weights_and_keeps_the_products_std():
    torch.manual_seed(0)
    model = MLP((20, 16, 12, 4), generator=torch.Generator().manual_seed(0))
    rule = PEPITAWeightMirror(model, mirror_lr=0.5, mirror_decay=0.5, mirror_batch=256)
    start = {k: v["angle"] for k, v in rule.alignment().items() if k.startswith("F_")}
    for _ in range(200):
        rule.mirror()
        assert rule.F.std().item() == pytest.approx(rule.target_std, rel=1e-5)
    end = {k: v["angle"] for k, v in rule.alignment().items() if k.startswith("F_")}
    assert all(75 < angle < 105 for angle in start.values())  # random: near orthogonal
    assert all(end[k] < 15 for k in start)  # mirrored: nearly parallel to W_lᵀ


def test_factorised_f_starts_at_the_target_std():
    model = MLP((784, 256, 256, 10), generator=torch.Generator().manual_seed(0))
    rule = PEPITAWeightMirror(model, f_scale=0.05)
    assert rule.F.std().item() == pytest.approx(0.05 * (2 / 784) ** 0.5, rel=0.1)


def test_pre_mirror_and_schedule_counts(monkeypatch):
    rule = PEPITAWeightMirror(MLP((6, 5, 3)), mirror_every=3, pre_mirror_steps=4)
    calls = []
    monkeypatch.setattr(rule, "mirror", lambda: calls.append(int(rule.schedule.steps)))
    x, y = torch.rand(4, 6), torch.tensor([0, 1, 2, 0])
    for _ in range(7):
        rule.step(x, y)
    assert calls == [0, 0, 0, 0, 3, 6]


@pytest.mark.parametrize("name", FORWARD_ONLY)
def test_no_forward_only_rule_calls_backward(name, no_autograd):
    model = MLP((6, 5, 4, 3), dropout=0.1)
    rule = bpfree.build(name, model)
    bpfree.optimizer(rule, torch.optim.SGD, lr=0.1)
    rule.step(torch.rand(8, 6), torch.arange(8) % 3)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("pepita", {"perturbation": "noise"}, "perturbation must be one of"),
        ("pepita", {"amplitude": -1.0}, "amplitude must be a non-negative number"),
        ("pepita-wm", {"mirror_lr": 0.0}, "mirror_lr must be a positive number"),
        ("pepita-wm", {"mirror_every": -1}, "mirror_every must be a non-negative integer"),
        ("pepita-time-local", {"sign": 2}, "sign must be"),
        ("afa", {"sign": 0}, "sign must be"),
    ],
)
def test_bad_options_are_named(name, options, message):
    with pytest.raises(ValueError, match=message):
        bpfree.build(name, MLP((6, 5, 3)), **options)


def test_afa_refuses_normalised_models():
    with pytest.raises(ValueError, match="normalisation"):
        AFA(MLP((6, 5, 3), normalization="frobenius"))


@pytest.mark.parametrize("name", ["pepita", "pepita-hebbian"])
def test_biases_learn_from_the_postsynaptic_terms(name):
    """Δb_l = mean(h_l − h_l^err) for the hidden layers of both rules."""
    x, y = batch64()
    model = model64(bias=True)
    torch.nn.init.uniform_(
        model.blocks[0][0].bias, -0.5, 0.5, generator=torch.Generator().manual_seed(3)
    )
    rule = bpfree.build(name, model, sign=-1, f_scale=3.0).double()
    rule.step(x, y)
    clean, modulated, p, t = passes(model, rule.F, x, y, sign=-1)
    for l, block in enumerate(model.blocks, start=1):
        expected = (clean[l] - modulated[l]).mean(dim=0)
        torch.testing.assert_close(block[0].bias.grad, expected, rtol=1e-12, atol=1e-12)
    # the output bias sees y − t in both rules (Hebbian: y·1 − t·1)
    torch.testing.assert_close(model.head.bias.grad, (p - t).mean(dim=0), rtol=1e-12, atol=1e-12)


def test_time_local_passes_share_their_dropout_masks():
    """With F = 0 both passes see the same input; with the same masks the two terms cancel as
    the learning rate vanishes, whatever the dropout rate."""
    model = MLP((6, 5, 4, 3), dropout=0.5, generator=torch.Generator().manual_seed(1)).double()
    start = [w.detach().clone() for w in (layer.weight for layer in model.linears)]
    rule = PEPITATimeLocal(model, f_scale=0.0).double()
    lr = 1e-6
    bpfree.optimizer(rule, torch.optim.SGD, lr=lr)
    x, y = batch64(n=32)
    rule.step(x, y)
    for w0, layer in zip(start[:-1], model.linears[:-1], strict=True):
        moved = (w0 - layer.weight.detach()).norm() / lr
        assert moved < 1e-3 * w0.norm()  # one term alone moves it by O(‖h‖ ‖h_prev‖)


def test_time_local_redrawn_masks_are_fresh_draws_for_the_modulated_pass():
    """``modulated_masks="redrawn"`` (the ICLR code's mixed_tl): with F = 0 the two terms no
    longer cancel; as the learning rate vanishes the first layer moves by
    (h ⊙ m_clean − h ⊙ m_modulated)ᵀ x / n, the clean mask replayed from a seed drawn from
    torch's generator, the modulated one that generator's next draw, as ``nn.Dropout`` would."""
    model = MLP((6, 5, 3), dropout=0.5, generator=torch.Generator().manual_seed(1)).double()
    w0 = model.linears[0].weight.detach().clone()
    rule = PEPITATimeLocal(model, f_scale=0.0, modulated_masks="redrawn").double()
    lr = 1e-7
    bpfree.optimizer(rule, torch.optim.SGD, lr=lr)
    x, y = batch64(n=32)
    torch.manual_seed(3)
    rule.step(x, y)

    torch.manual_seed(3)
    seed = int(torch.randint(2**62, ()))
    clean_mask = torch.empty(32, 5, dtype=x.dtype).bernoulli_(
        0.5, generator=torch.Generator().manual_seed(seed)
    )
    modulated_mask = torch.empty(32, 5, dtype=x.dtype).bernoulli_(0.5)
    h = torch.relu(x @ w0.T) / 0.5
    expected = (h * clean_mask - h * modulated_mask).T @ x / 32
    assert not torch.equal(clean_mask, modulated_mask)
    moved = (w0 - model.linears[0].weight.detach()) / lr
    torch.testing.assert_close(moved, expected, rtol=1e-4, atol=1e-6)
