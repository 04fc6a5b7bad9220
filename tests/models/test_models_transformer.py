"""TinyTransformer: token ids to logits, attention built from nn.Linear layers only."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bpfree.models import EncoderBlock, SelfAttention, TinyTransformer


def test_runs_on_token_ids_and_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = TinyTransformer(50, 3, d_model=16, n_heads=4, n_layers=2, max_len=10)
    logits = model(torch.randint(0, 50, (4, 10)))
    assert logits.shape == (4, 3)
    F.cross_entropy(logits, torch.tensor([0, 1, 2, 0])).backward()
    for path, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), path


def test_attention_is_made_of_linear_layers_not_multihead_attention():
    model = TinyTransformer(50, 3, n_layers=3)
    assert not any(isinstance(m, nn.MultiheadAttention) for m in model.modules())
    # q, k, v, out and two feed-forward layers per encoder layer, and the classifier
    assert len([m for m in model.modules() if isinstance(m, nn.Linear)]) == 3 * 6 + 1
    assert len(model.blocks) == 1 + 3
    assert all(isinstance(b, EncoderBlock) for b in model.blocks[1:])
    assert isinstance(model.head[-1], nn.Linear)


def test_self_attention_matches_torch_scaled_dot_product_attention():
    torch.manual_seed(0)
    n, t, d, h = 2, 5, 12, 3
    attn = SelfAttention(d, h)
    x = torch.randn(n, t, d)

    def heads(proj):
        return proj(x).view(n, t, h, d // h).transpose(1, 2)  # (n, h, t, e)

    context = F.scaled_dot_product_attention(heads(attn.q), heads(attn.k), heads(attn.v))
    expected = attn.out(context.transpose(1, 2).reshape(n, t, d))
    torch.testing.assert_close(attn(x), expected)


def test_logits_are_the_mean_over_tokens():
    model = TinyTransformer(20, 2, d_model=8, n_heads=2, n_layers=1).eval()
    ids = torch.randint(0, 20, (2, 6))
    with torch.no_grad():
        h = model.blocks[1](model.blocks[0](ids))
        norm, _, fc = model.head
        torch.testing.assert_close(model(ids), fc(norm(h).mean(dim=1)))


def test_bad_arguments_and_inputs_are_refused():
    with pytest.raises(ValueError, match="multiple of n_heads"):
        TinyTransformer(10, 2, d_model=10, n_heads=4)
    with pytest.raises(ValueError, match="vocab_size"):
        TinyTransformer(0, 2)
    model = TinyTransformer(10, 2, d_model=8, n_heads=2, max_len=4)
    with pytest.raises(ValueError, match="tokens ≤ 4"):
        model(torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="integer token ids"):
        model(torch.zeros(1, 3))
