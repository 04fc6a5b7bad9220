"""DFA and GrAPE on a causal language model: one error vector per token position, injected at
the macro (one per layer) or micro (three per layer) feedback points of Launay et al. 2020."""

import pytest
import torch
import torch.nn.functional as F

from bpfree.models import TransformerLM
from bpfree.rules import DFA, GrAPE

N, T, V = 3, 6, 11


def language_model(n_layers: int = 1) -> TransformerLM:
    torch.manual_seed(0)
    model = TransformerLM(V, d_model=8, n_heads=2, n_layers=n_layers, d_ff=12, max_len=T)
    return model.double().eval()  # no dropout: the closed forms are deterministic


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, V, (N, T), generator=g), torch.randint(0, V, (N, T), generator=g)


def layer_norm_backward(s, ln, g):
    """∂⟨g, ln(s)⟩/∂s, γ and β of a LayerNorm (closed form): (ds, dγ, dβ)."""
    mu, var = s.mean(-1, keepdim=True), s.var(-1, unbiased=False, keepdim=True)
    sigma = (var + ln.eps).sqrt()
    s_hat = (s - mu) / sigma
    g_hat = g * ln.weight
    ds = g_hat - g_hat.mean(-1, keepdim=True) - s_hat * (g_hat * s_hat).mean(-1, keepdim=True)
    return ds / sigma, (g * s_hat).sum((0, 1)), g.sum((0, 1))


def test_dfa_micro_on_one_layer_equals_the_closed_form_of_its_three_points():
    model = language_model()
    x, y = batch()
    rule = DFA(model, points="micro", example_input=(T,)).double()
    assert rule.positions == (T,) and rule.point_shapes == [(8,), (12,), (8,)]
    rule.step(x, y)
    layer, head = model.blocks[0], model.head[-1]
    B_a, B_h, B_c = rule.B
    with torch.no_grad():
        embedded = model.embed(x)
        a = layer.attention(embedded)  # after attention
        pre = layer.expand.ff1(a)
        h = torch.relu(pre)  # after the feed-forward nonlinearity
        s = a + layer.contract.ff2(h)
        c = layer.contract.ln(s)  # after the feed-forward block
        z = head(c)
    e = (torch.softmax(z, -1) - F.one_hot(y, V)) / (N * T)  # one error per position
    flat = lambda t: t.reshape(N * T, -1)  # noqa: E731
    torch.testing.assert_close(head.weight.grad, flat(e).T @ flat(c))
    torch.testing.assert_close(head.bias.grad, flat(e).sum(0))
    # the feed-forward nonlinearity: δ = (B_h e) ⊙ relu′, ΔW_ff1 = δ aᵀ
    delta = (e @ B_h.T) * (pre > 0)
    torch.testing.assert_close(layer.expand.ff1.weight.grad, flat(delta).T @ flat(a))
    torch.testing.assert_close(layer.expand.ff1.bias.grad, flat(delta).sum(0))
    # the feed-forward block: B_c e through its LayerNorm into ff2, ΔW_ff2 = δ hᵀ
    ds, d_gamma, d_beta = layer_norm_backward(s, layer.contract.ln, e @ B_c.T)
    torch.testing.assert_close(layer.contract.ff2.weight.grad, flat(ds).T @ flat(h))
    torch.testing.assert_close(layer.contract.ln.weight.grad, d_gamma)
    torch.testing.assert_close(layer.contract.ln.bias.grad, d_beta)
    # attention keeps its exact derivative inside its block, and only B_a e reaches it
    params = [*model.embed.parameters(), *layer.attention.parameters()]
    attention = layer.attention(model.embed(x))
    expected = torch.autograd.grad((attention * (e @ B_a.T)).sum(), params)
    for p, g in zip(params, expected, strict=True):
        torch.testing.assert_close(p.grad, g)


BLOCK_OF = {  # the parameters each micro point's injection trains, by name prefix
    "blocks.0.attention": ("embed.", "blocks.0.attention."),
    "blocks.0.expand": ("blocks.0.expand.",),
    "blocks.0.contract": ("blocks.0.contract.",),
    "blocks.1.attention": ("blocks.1.attention.",),
    "blocks.1.expand": ("blocks.1.expand.",),
    "blocks.1.contract": ("blocks.1.contract.",),
}


@pytest.mark.parametrize("point", list(BLOCK_OF))
def test_no_gradient_crosses_a_feedback_point(point):
    """With every B but one at zero, only that point's block (and the head) gets a gradient."""
    model = language_model(n_layers=2)
    rule = DFA(model, points="micro", example_input=(T,)).double()
    with torch.no_grad():
        for name, b in zip(rule.points, rule.B, strict=True):
            if name != point:
                b.zero_()
    rule.step(*batch())
    for name, p in model.named_parameters():
        trained = name.startswith(("head.", *BLOCK_OF[point]))
        has_gradient = p.grad is not None and bool(p.grad.abs().sum() > 0)
        assert has_gradient == trained, name


def test_macro_injects_after_each_layer_only():
    model = language_model(n_layers=2)
    rule = DFA(model, points="macro", example_input=(T,)).double()
    assert rule.points == ["blocks.0", "blocks.1"]
    with torch.no_grad():
        rule.B[1].zero_()  # the second layer gets nothing, the first its own injection
    rule.step(*batch())
    assert all(p.grad.abs().sum() == 0 for p in model.blocks[1].parameters())
    assert all(p.grad.abs().sum() > 0 for p in model.blocks[0].expand.parameters())


def own_position_gradient_image(model, point, x, y) -> torch.Tensor:
    """G = Σ_it ∇_{h_it} ℓ_it e_itᵀ at a point, each position's gradient of its own loss (k, c)."""
    captured = {}
    handle = point.register_forward_hook(lambda m, i, o: captured.setdefault("h", o))
    try:
        output = model(x)
    finally:
        handle.remove()
    losses = F.cross_entropy(output.flatten(0, 1), y.flatten(), reduction="none").view(N, T)
    e = torch.softmax(output, -1) - F.one_hot(y, V)
    g = torch.zeros_like(captured["h"])
    for i in range(N):
        for t in range(T):
            grad = torch.autograd.grad(losses[i, t], captured["h"], retain_graph=True)[0]
            g[i, t] = grad[i, t]
    return (g.reshape(N * T, -1).T @ e.detach().reshape(N * T, -1)).detach()


def test_grape_turns_its_feedback_toward_the_forward_gradient_on_a_fixed_batch():
    model = language_model(n_layers=2)
    x, y = batch()
    rule = GrAPE(model, points="macro", example_input=(T,), feedback_lr=2.0, seed=3).double()
    first = [float(c) for c in rule.align(x, y)]
    for _ in range(300):
        last = [float(c) for c in rule.align(x, y)]
    for point, before, after in zip(rule.points, first, last, strict=True):
        assert after > max(before, 0.0) + 0.5, (point, before, after)
    # Ḡ, the average of the forward-gradient images, estimates each position's own gradient
    for module, g_bar in zip(rule.point_modules, rule.G, strict=True):
        expected = own_position_gradient_image(model, module, x, y)
        cos = F.cosine_similarity(g_bar.flatten(), expected.flatten(), dim=0)
        assert cos > 0.8, float(cos)


@pytest.mark.parametrize("example", [(T,), torch.zeros(2, T, dtype=torch.long)])
def test_a_sequence_classifier_has_one_error_per_sample(example):
    from bpfree.models import TinyTransformer

    model = TinyTransformer(V, 3, d_model=8, n_heads=2, n_layers=1, max_len=T)
    rule = DFA(model, example_input=example)  # logits (n, c): a point's output is one vector
    assert rule.positions == () and rule.point_shapes == [(T, 8), (T, 8)]


class PooledPoint(torch.nn.Module):
    """Logits per position (n, t, c), but a point whose output is pooled over positions (n, k)."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(V, 4)
        self.pool = torch.nn.Linear(4, 4)
        self.head = torch.nn.Linear(4, V)
        self.blocks = torch.nn.ModuleList([self.pool])

    def forward(self, ids):
        x = self.embed(ids)
        return self.head(x + self.pool(x.mean(1))[:, None])


def test_a_point_that_drops_the_output_positions_is_refused():
    with pytest.raises(ValueError, match=r"'pool' gives outputs of shape \(4,\) per sample"):
        DFA(PooledPoint(), example_input=torch.zeros(1, T, dtype=torch.long))
