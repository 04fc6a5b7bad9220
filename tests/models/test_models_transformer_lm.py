"""TransformerLM: a causal language model whose logits at t see tokens 0..t only."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bpfree.models import TransformerLM, build_model


def small(**options) -> TransformerLM:
    torch.manual_seed(0)
    sizes = dict(d_model=16, n_heads=4, n_layers=2, d_ff=24, max_len=12, dropout=0.0)
    return TransformerLM(30, **{**sizes, **options})


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_the_logits_at_t_do_not_change_when_later_tokens_do(norm):
    model = small(norm=norm).eval()
    ids = torch.randint(0, 30, (3, 12))
    changed = ids.clone()
    changed[:, 7:] = torch.randint(0, 30, (3, 5))
    with torch.no_grad():
        before, after = model(ids), model(changed)
    torch.testing.assert_close(after[:, :7], before[:, :7], rtol=0, atol=0)
    assert not torch.allclose(after[:, 7:], before[:, 7:])


def test_every_position_is_a_prediction_and_every_parameter_learns():
    model = small()
    ids = torch.randint(0, 30, (4, 10))
    logits = model(ids)
    assert logits.shape == (4, 10, 30)
    F.cross_entropy(logits.flatten(0, 1), ids.flatten()).backward()
    for path, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), path


def test_the_head_is_untied_and_the_layers_are_post_norm_by_default():
    model = small()
    assert model.head[-1].weight.data_ptr() != model.embed.tokens.weight.data_ptr()
    layer = model.blocks[0]
    x = torch.randn(2, 5, 16)
    with torch.no_grad():  # ln(x + attn(x)), then ln(a + ff2(relu(ff1(a))))
        a = layer.attention.ln(x + layer.attention.attn(x))
        expected = layer.contract.ln(a + layer.contract.ff2(torch.relu(layer.expand.ff1(a))))
        torch.testing.assert_close(layer(x), expected)


def test_feedback_points_of_the_two_settings():
    model = small(n_layers=3)
    assert model.feedback_points("macro") == list(model.blocks)
    micro = model.feedback_points("micro")
    assert len(micro) == 9
    assert micro[2::3] == [layer.contract for layer in model.blocks]
    with pytest.raises(ValueError, match="macro or micro, got 'mini'"):
        model.feedback_points("mini")


def test_the_registry_builds_it_for_chunks_of_token_ids():
    model = build_model(
        "transformer-lm", input_shape=(12,), num_classes=40, d_model=8, n_heads=2, n_layers=1
    )
    assert model.embed.max_len == 12 and model.head[-1].out_features == 40
    with pytest.raises(ValueError, match="reads images, but the data are token sequences"):
        build_model("mlp", input_shape=(12,), num_classes=40)
    with pytest.raises(ValueError, match=r"reads token ids, input_shape \(tokens,\)"):
        build_model("transformer-lm", input_shape=(1, 28, 28), num_classes=10)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"d_model": 10, "n_heads": 4}, "multiple of n_heads"),
        ({"norm": "sandwich"}, "norm must be one of post, pre"),
        ({"dropout": 1.5}, "dropout"),
        ({"n_layers": 0}, "n_layers"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        TransformerLM(30, **options)


def test_the_same_generator_seed_gives_the_same_weights():
    def make(seed):
        return TransformerLM(30, d_model=8, n_heads=2, n_layers=1, d_ff=12,
                             generator=torch.Generator().manual_seed(seed))  # fmt: skip

    same, other = make(3).state_dict(), make(4).state_dict()
    for key, value in make(3).state_dict().items():
        assert torch.equal(value, same[key]), key
    assert not torch.equal(same["head.1.weight"], other["head.1.weight"])


def test_no_multihead_attention_module_hides_a_projection():
    assert not any(isinstance(m, nn.MultiheadAttention) for m in small().modules())
