"""A causal transformer language model, cut where DFA and GrAPE inject their feedback."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from bpfree.core.checks import FRACTION
from bpfree.models._common import check_positive
from bpfree.models.transformer import SelfAttention, TokenEmbedding, gpt2_init_

NORMS = ("post", "pre")
SETTINGS = ("macro", "micro")


class AttentionSublayer(nn.Module):
    """The masked self-attention sublayer with its residual and LayerNorm:
    post-norm ln(x + drop(attn(x))), pre-norm x + drop(attn(ln(x))). Shapes (n, t, d) → same."""

    def __init__(self, d_model: int, n_heads: int, dropout: float, norm: str) -> None:
        super().__init__()
        self.pre_norm = norm == "pre"
        self.attn = SelfAttention(d_model, n_heads, causal=True, dropout=dropout)
        self.ln = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_norm:
            return x + self.dropout(self.attn(self.ln(x)))
        return self.ln(x + self.dropout(self.attn(x)))


class FeedForwardExpand(nn.Module):
    """The feed-forward block's first half, up to its nonlinearity: relu(ff1(x)) post-norm,
    relu(ff1(ln(x))) pre-norm. Shapes (n, t, d) → (n, t, d_ff)."""

    def __init__(self, d_model: int, d_ff: int, norm: str) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(d_model) if norm == "pre" else nn.Identity()
        self.ff1 = nn.Linear(d_model, d_ff)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.ff1(self.ln(x)))


class FeedForwardContract(nn.Module):
    """The feed-forward block's second half with the residual: from the sublayer's input x and
    the hidden h, post-norm ln(x + drop(ff2(drop(h)))), pre-norm x + drop(ff2(drop(h)))."""

    def __init__(self, d_model: int, d_ff: int, dropout: float, norm: str) -> None:
        super().__init__()
        self.pre_norm = norm == "pre"
        self.ff2 = nn.Linear(d_ff, d_model)
        self.ln = nn.Identity() if self.pre_norm else nn.LayerNorm(d_model)
        self.hidden_dropout = nn.Dropout(dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.ln(x + self.dropout(self.ff2(self.hidden_dropout(h))))


class CausalLayer(nn.Module):
    """One transformer layer, in three modules that are the 'micro' feedback points:
    ``attention`` (the attention sublayer's output), ``expand`` (the feed-forward
    nonlinearity's output) and ``contract`` (the feed-forward block's output, the layer's)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, norm: str) -> None:
        super().__init__()
        self.attention = AttentionSublayer(d_model, n_heads, dropout, norm)
        self.expand = FeedForwardExpand(d_model, d_ff, norm)
        self.contract = FeedForwardContract(d_model, d_ff, dropout, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attention(x)
        return self.contract(x, self.expand(x))


class TransformerLM(nn.Module):
    """A causal transformer language model after Launay et al. (2020)'s setup.

    Token and learned position embeddings (with dropout), ``n_layers`` layers of masked
    self-attention and a ReLU feed-forward block, each sublayer with its residual and LayerNorm
    (``norm="post"``, as torch's ``nn.TransformerEncoderLayer`` that Launay et al. train, or
    ``"pre"``), then an untied linear head to the vocabulary (after a final LayerNorm when
    pre-norm). Position t's logits see tokens 0..t only. Weights as GPT-2's (N(0, 0.02²)).

    Feedback points (``feedback_points``), the settings of Launay et al. and GrAPE Table 3:
    ``macro`` one after each layer (``blocks``); ``micro`` three per layer, after the attention
    sublayer, after the feed-forward nonlinearity and after the feed-forward block. Attention's
    internals (q, k, v, softmax, out) sit inside a point's block, so a projection rule keeps
    their exact derivative there.

    Structure: ``embed = TokenEmbedding``, ``blocks = [CausalLayer] * n_layers``, ``head``;
    ``forward(ids) = head(blocks[-1](... blocks[0](drop(embed(ids)))))``.

    Args:
        vocab_size: number of token ids V.
        d_model: width d (a multiple of ``n_heads``); n_heads: heads per layer;
        n_layers: layers; d_ff: width of the feed-forward block; dropout: rate of every dropout;
        max_len: longest sequence; norm: ``post`` or ``pre``; generator: random source of the
        initial weights.

    Shapes: ids (n, t) int64 in [0, V), t ≤ max_len → logits (n, t, V).

    Example:
        >>> model = TransformerLM(1000, d_model=64, n_heads=4, n_layers=2, d_ff=256)
        >>> model(torch.randint(0, 1000, (4, 16))).shape
        torch.Size([4, 16, 1000])
    """

    input_dtype: ClassVar[torch.dtype] = torch.long

    def __init__(
        self,
        vocab_size: int,
        *,
        d_model: int = 512,
        n_heads: int = 8,
        n_layers: int = 6,
        d_ff: int = 2048,
        dropout: float = 0.1,
        max_len: int = 128,
        norm: str = "post",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        check_positive(
            vocab_size=vocab_size,
            d_model=d_model,
            n_heads=n_heads,
            n_layers=n_layers,
            d_ff=d_ff,
            max_len=max_len,
        )
        FRACTION(dropout, "dropout")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
        self.embed = TokenEmbedding(vocab_size, d_model, max_len)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            CausalLayer(d_model, n_heads, d_ff, dropout, norm) for _ in range(n_layers)
        )
        self.head = nn.Sequential(
            nn.LayerNorm(d_model) if norm == "pre" else nn.Identity(),
            nn.Linear(d_model, vocab_size),
        )
        gpt2_init_(self, generator)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.embed(ids))
        for block in self.blocks:
            x = block(x)
        return self.head(x)

    def feedback_points(self, setting: str) -> list[nn.Module]:
        """The modules at whose outputs a projection rule injects, for ``macro`` or ``micro``."""
        if setting == "macro":
            return list(self.blocks)
        if setting == "micro":
            return [
                module
                for layer in self.blocks
                for module in (layer.attention, layer.expand, layer.contract)
            ]
        raise ValueError(f"feedback points are {' or '.join(SETTINGS)}, got {setting!r}")
