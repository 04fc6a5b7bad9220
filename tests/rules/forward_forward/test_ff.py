"""Forward-Forward and FF with top-down feedback against naive references, computed in float64."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bpfree.models import MLP
from bpfree.rules import FF, FFTopDown, build
from bpfree.rules.common.streams import RandomStream
from bpfree.rules.forward_forward.negatives import (
    blur,
    embed_labels,
    hybrid_masks,
    hybrids,
    partners,
    wrong_labels,
)


def naive_normalise(h):
    return h * h.shape[1] ** 0.5 / (h.norm(dim=1, keepdim=True) + 1e-8)


def naive_ff_grads(model, x_pos, x_neg, masks, thresholds):
    """Each hidden layer's FF loss differentiated by autograd, its inputs detached."""
    grads, total = [], 0.0
    for block, mask, theta in zip(model.blocks, masks, thresholds, strict=True):
        params = [p.detach().requires_grad_() for p in block[0].parameters()]

        def layer(h, params=params, activation=block[1], mask=mask):
            out = activation(F.linear(h, *params))
            return out if mask is None else out * mask

        h_pos, h_neg = layer(x_pos), layer(x_neg)
        G_pos, G_neg = h_pos.square().sum(1), h_neg.square().sum(1)
        loss = (F.softplus(-(G_pos - theta)) + F.softplus(G_neg - theta)).mean()
        grads.append(torch.autograd.grad(loss, params))
        total += loss.item()
        x_pos, x_neg = naive_normalise(h_pos.detach()), naive_normalise(h_neg.detach())
    return grads, total, x_pos


def step_and_replay(rule, x, y, draw):
    """Run ``rule.step`` and replay its random draws: the dropout masks and ``draw(stream)``."""
    state = rule.stream.state.clone() if hasattr(rule, "stream") else None
    torch.manual_seed(5)
    result = rule.step(x, y)
    torch.manual_seed(5)
    masks = list(rule.stack.replayable_masks(x.shape[0], x)())
    if state is None:
        return result, masks, None
    rule.stream.state.copy_(state)
    return result, masks, draw(rule.stream)


def assert_grads(model, expected):
    for block, grads in zip(model.blocks, expected, strict=True):
        for param, grad in zip(block[0].parameters(), grads, strict=True):
            torch.testing.assert_close(param.grad, grad, rtol=1e-9, atol=1e-9)


def tiny(sizes=(7, 6, 5, 3), activation="relu"):
    model = MLP(sizes, activation=activation, dropout=0.3, bias=True)
    return model.double()


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("threshold", [None, 0.7])
def test_label_mode_grads_equal_autograd_of_the_layer_losses(activation, threshold):
    model = tiny(activation=activation)
    rule = FF(model, threshold=threshold)
    x, y = torch.rand(9, 7, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2, 2, 1, 0])
    result, masks, y_neg = step_and_replay(rule, x, y, lambda g: wrong_labels(y, 3, g))
    expected, loss, _ = naive_ff_grads(
        model, embed_labels(x, y, 3), embed_labels(x, y_neg, 3), masks, rule.thresholds
    )
    assert rule.thresholds == ([6.0, 5.0] if threshold is None else [0.7, 0.7])
    assert_grads(model, expected)
    assert float(result.loss) == pytest.approx(loss, rel=1e-10)
    assert all(torch.count_nonzero(p.grad) == 0 for p in model.head.parameters())


def test_hybrid_mode_grads_equal_autograd_and_the_head_learns_by_the_delta_rule():
    model = tiny((12, 6, 5, 3))
    rule = FF(model, negatives="hybrid", blur_steps=1)
    x, y = torch.rand(9, 3, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2, 2, 1, 0])
    result, masks, x_neg = step_and_replay(
        rule, x, y, lambda s: hybrids(x.flatten(1), (3, 4), blur_steps=1, stream=s)
    )
    expected, loss, features = naive_ff_grads(model, x.flatten(1), x_neg, masks, rule.thresholds)
    assert_grads(model, expected)
    logits = model.head(features)
    e = torch.softmax(logits, 1) - F.one_hot(y, 3)
    torch.testing.assert_close(model.head.weight.grad, e.T @ features / 9)
    torch.testing.assert_close(model.head.bias.grad, e.mean(0))
    torch.testing.assert_close(result.output, logits)
    assert float(result.loss) == pytest.approx(loss + F.cross_entropy(logits, y).item(), rel=1e-10)


@pytest.mark.parametrize("sign", [1, -1])
def test_topdown_grads_equal_autograd_with_the_modulated_input_as_negative(sign):
    model = tiny()
    rule = FFTopDown(model, sign=sign, f_scale=3.0).double()
    x, y = torch.rand(9, 7, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2, 2, 1, 0])
    torch.manual_seed(5)
    result = rule.step(x, y)
    torch.manual_seed(5)
    masks = rule.stack.dropout_masks(x.shape[0], x)  # drawn once, shared by both passes
    h = x
    for block, mask in zip(model.blocks, masks, strict=True):
        h = naive_normalise(block[1](block[0](h)) * mask)
    logits = model.head(h)
    e = torch.softmax(logits, 1) - F.one_hot(y, 3)
    x_neg = x + sign * e @ rule.F.T
    expected, loss, features = naive_ff_grads(model, x, x_neg, masks, rule.thresholds)
    assert_grads(model, expected)
    torch.testing.assert_close(model.head.weight.grad, e.T @ features / 9)
    torch.testing.assert_close(result.output, logits)
    assert float(result.loss) == pytest.approx(loss + F.cross_entropy(logits, y).item(), rel=1e-10)


def separable_task(n=256, seed=0, features=16, classes=4):
    """Class prototypes plus noise, behind blank leading features where labels are embedded."""
    generator = torch.Generator().manual_seed(seed)
    prototypes = 2 * torch.randn(
        classes, features - classes, generator=torch.Generator().manual_seed(1)
    )
    y = torch.randint(0, classes, (n,), generator=generator)
    x = prototypes[y] + torch.randn(n, features - classes, generator=generator)
    return torch.cat([torch.zeros(n, classes), x], dim=1), y


def p_positive(rule, x_pos, x_neg):
    """Mean σ(G − θ) of the last hidden layer on positive and on negative inputs."""
    hidden, theta = rule.stack.hidden, rule.thresholds[-1]
    probs = []
    for h in (x_pos, x_neg):
        for i, layer in enumerate(hidden):
            h = layer.forward(h if i == 0 else naive_normalise(h), None)
        probs.append(torch.sigmoid(h.square().sum(1) - theta).mean().item())
    return probs


@pytest.mark.parametrize("name", ["ff", "ff-topdown"])
def test_training_separates_positive_from_negative_goodness(name):
    torch.manual_seed(0)
    model = MLP((16, 32, 32, 4), generator=torch.Generator().manual_seed(0))
    rule = build(name, model, **({"f_scale": 2.0} if name == "ff-topdown" else {}))
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    x, y = separable_task()

    if name == "ff":  # the true label against each wrong one in turn
        y_wrong = (y + 1 + torch.arange(len(y)) % 3) % 4
        pos, neg = embed_labels(x, y, 4), embed_labels(x, y_wrong, 4)
    else:  # the clean input against the input modulated by the untrained network's error
        with torch.no_grad():
            e = torch.softmax(rule.predict(x), 1) - F.one_hot(y, 4)
        pos, neg = x, x + rule.sign * e @ rule.F.T

    pos_before, neg_before = p_positive(rule, pos, neg)
    for _ in range(150):
        rule.step(x, y)
        opt.step()
    pos_after, neg_after = p_positive(rule, pos, neg)
    # Untrained, the network cannot tell them apart; training raises the positives' goodness
    # and lowers the negatives'.
    # Untrained, the network barely tells them apart; training lowers the negatives' goodness
    # and widens the gap. Label negatives are far from the positives, so FF also raises the
    # positives' goodness toward certainty; top-down negatives lie close to the positives (and
    # the error that made them shrinks as the network learns), so only the gap is asked of it.
    gap_before, gap_after = pos_before - neg_before, pos_after - neg_after
    assert abs(gap_before) < 0.15 and neg_after < neg_before
    if name == "ff":
        assert pos_after > max(pos_before, 0.9) and gap_after > 0.5
    else:
        assert gap_after > gap_before + 0.08
    model.eval()
    assert (rule.predict(x).argmax(1) == y).float().mean() > 0.9


def test_hybrid_masks_are_binary_blurry_regions():
    stream = RandomStream(0, "masks")
    masks = hybrid_masks(64, 28, 28, blur_steps=6, stream=stream)
    assert set(masks.unique().tolist()) == {0.0, 1.0}
    assert 0.3 < masks.mean() < 0.7

    def agreement(m):
        return (m[:, :, 1:] == m[:, :, :-1]).float().mean()

    raw = hybrid_masks(64, 28, 28, blur_steps=0, stream=stream)
    assert agreement(raw) < 0.55 and agreement(masks) > 0.8  # neighbours: 1/2 unblurred
    assert agreement(masks.transpose(1, 2)) > 0.8
    # The filter is [1/4, 1/2, 1/4], edges replicated.
    torch.testing.assert_close(
        blur(torch.tensor([[0.0, 4.0, 0.0, 8.0]]), 1), torch.tensor([[1.0, 2.0, 3.0, 6.0]])
    )


def test_hybrids_mix_two_different_images_of_the_batch():
    x = torch.arange(6).repeat_interleave(2 * 25).reshape(6, 2, 5, 5).float()  # image k is all k
    stream = RandomStream(1, "hybrids")
    mixed = hybrids(x.flatten(1), (2, 5, 5), blur_steps=2, stream=stream).view(6, 2, 5, 5)
    for k in range(6):
        values = set(mixed[k].unique().tolist())
        assert k in values and len(values) == 2  # own pixels, and one other image's
        torch.testing.assert_close(mixed[k, 0], mixed[k, 1])  # one mask for all channels
    order = partners(50, RandomStream(0, "partners"), torch.device("cpu"))
    assert sorted(order.tolist()) == list(range(50)) and (order != torch.arange(50)).all()


def test_label_embedding_and_wrong_labels():
    x, y = torch.rand(300, 8), torch.randint(0, 4, (300,))
    embedded = embed_labels(x, y, 4)
    torch.testing.assert_close(embedded[:, :4], F.one_hot(y, 4).float())
    torch.testing.assert_close(embedded[:, 4:], x[:, 4:])
    wrong = wrong_labels(y, 4, RandomStream(0, "labels"))
    assert (wrong != y).all() and ((wrong >= 0) & (wrong < 4)).all()
    counts = torch.bincount((wrong - y) % 4, minlength=4)
    assert counts[0] == 0 and counts[1:].min() > 70  # uniform over the 3 wrong labels


@pytest.mark.parametrize("goodness_layers", [None, (0,), (0, 2)])
def test_label_predict_sums_goodness_over_a_loop_of_labels(goodness_layers):
    model = MLP((9, 8, 7, 6, 3), bias=True).double()
    rule = FF(model, goodness_layers=goodness_layers)
    model.eval()
    x = torch.rand(5, 9, dtype=torch.float64)
    layers = (1, 2) if goodness_layers is None else goodness_layers
    expected = torch.zeros(5, 3, dtype=torch.float64)
    for label in range(3):
        h = embed_labels(x, torch.full((5,), label), 3)
        for l, block in enumerate(model.blocks):
            h = torch.relu(block[0](h if l == 0 else naive_normalise(h)))
            if l in layers:
                expected[:, label] += h.square().sum(1)
    torch.testing.assert_close(rule.predict(x), expected)
    torch.testing.assert_close(rule.step(x, torch.tensor([0, 1, 2, 0, 1])).output, expected)


def test_topdown_predict_runs_the_normalised_network():
    model = MLP((7, 6, 5, 3)).eval()
    rule = FFTopDown(model)
    x = torch.rand(4, 7)
    h = naive_normalise(torch.relu(model.blocks[0][0](x)))
    h = naive_normalise(torch.relu(model.blocks[1][0](h)))
    torch.testing.assert_close(rule.predict(x), model.head(h))


@pytest.mark.parametrize(
    ("name", "options", "shape"),
    [("ff", {}, (7, 12)), ("ff", {"negatives": "hybrid"}, (7, 3, 4)), ("ff-topdown", {}, (7, 12))],
)
def test_step_and_predict_never_use_autograd(no_autograd, name, options, shape):
    model = MLP((12, 6, 5, 3), dropout=0.1)
    rule = build(name, model, **options)
    result = rule.step(torch.rand(shape), torch.tensor([0, 1, 2, 0, 1, 2, 2]))
    assert not result.output.requires_grad and not rule.predict(torch.rand(shape)).requires_grad
    assert all(p.grad is not None for p in model.parameters())


def test_state_survives_save_and_load(tmp_path):
    def hybrid_rule(seed):
        model = MLP((12, 6, 3), generator=torch.Generator().manual_seed(0))
        return FF(model, negatives="hybrid", image_shape=(3, 4), seed=seed)

    x, y = torch.rand(8, 12), torch.tensor([0, 1, 2, 0, 1, 2, 2, 1])
    rule = hybrid_rule(seed=1)
    rule.step(x, y)  # the stream of negatives has moved
    torch.save(rule.state_dict(), tmp_path / "ff.pt")
    fresh = hybrid_rule(seed=2)
    fresh.load_state_dict(torch.load(tmp_path / "ff.pt"))
    rule.step(x, y)
    fresh.step(x, y)  # the same hybrids: the same gradients
    for a, b in zip(rule.model.parameters(), fresh.model.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad)

    top = FFTopDown(MLP((12, 6, 3)), seed=1)
    torch.save(top.state_dict(), tmp_path / "top.pt")
    other = FFTopDown(MLP((12, 6, 3)), seed=2)
    assert not torch.equal(other.F, top.F)
    other.load_state_dict(torch.load(tmp_path / "top.pt"))
    assert torch.equal(other.F, top.F)
    assert top.F.shape == (12, 3) and top.F.abs().max() <= 0.5 * (6 / 12) ** 0.5


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("ff", {"threshold": 0.0}, "threshold"),
        ("ff", {"threshold": -2}, "threshold"),
        ("ff", {"threshold": float("nan")}, "threshold"),
        ("ff", {"negatives": "shuffled"}, r"negatives must be one of label, hybrid"),
        ("ff", {"num_classes": 13}, r"num_classes.*12 input features"),
        ("ff", {"goodness_layers": (2,)}, r"goodness_layers.*\[0, 1\]"),
        ("ff", {"goodness_layers": ()}, "goodness_layers"),
        ("ff", {"goodness_layers": (1,), "negatives": "hybrid"}, "goodness_layers"),
        ("ff", {"blur_steps": -1}, "blur_steps"),
        ("ff", {"image_shape": (5, 5)}, r"image_shape.*12 input features"),
        ("ff-topdown", {"sign": 0}, "sign"),
        ("ff-topdown", {"f_scale": -0.1}, "f_scale"),
        ("ff-topdown", {"threshold": 0}, "threshold"),
    ],
)
def test_bad_options_are_named(name, options, match):
    with pytest.raises(ValueError, match=match):
        build(name, MLP((12, 6, 5, 3)), **options)


def test_unsupported_models_and_flat_hybrid_batches_are_refused():
    model = MLP((12, 6, 3))
    model.blocks[0][1] = nn.GELU()
    with pytest.raises(ValueError, match="GELU"):
        FF(model)
    with pytest.raises(ValueError, match="hidden layer"):
        FFTopDown(MLP((12, 3)))
    rule = FF(MLP((12, 6, 3)), negatives="hybrid")
    with pytest.raises(ValueError, match="image_shape"):
        rule.step(torch.rand(4, 12), torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="n ≥ 2"):
        rule.step(torch.rand(1, 3, 4), torch.tensor([0]))
