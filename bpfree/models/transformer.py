"""A small encoder-only transformer classifier built from ``nn.Linear`` layers."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from bpfree.models._common import check_positive


class TokenEmbedding(nn.Module):
    """Token embedding plus a learned position embedding: ids (n, t) → x (n, t, d)."""

    def __init__(self, vocab_size: int, d_model: int, max_len: int) -> None:
        super().__init__()
        self.max_len = max_len
        self.tokens = nn.Embedding(vocab_size, d_model)
        self.positions = nn.Embedding(max_len, d_model)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2 or ids.dtype.is_floating_point or ids.shape[1] > self.max_len:
            raise ValueError(
                f"expected integer token ids of shape (batch, tokens ≤ {self.max_len}), got "
                f"{ids.dtype} of shape {tuple(ids.shape)}"
            )
        positions = torch.arange(ids.shape[1], device=ids.device)
        return self.tokens(ids) + self.positions(positions)


class SelfAttention(nn.Module):
    """Multi-head self-attention with explicit ``nn.Linear`` projections q, k, v and out.

    For each head, softmax(q kᵀ / √e + M) v with e = d / heads; the heads are concatenated and
    projected by ``out``. Without ``causal`` every token attends to every token (M = 0); with it
    token t attends to tokens s ≤ t only (M_ts = −∞ for s > t). ``dropout`` drops attention
    weights in training mode.

    Shapes: x (n, t, d) → (n, t, d); index letters h heads, t and s tokens, e head width.
    """

    def __init__(
        self, d_model: int, n_heads: int, *, causal: bool = False, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be a multiple of n_heads ({n_heads})")
        self.n_heads, self.causal = n_heads, causal
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = (proj(x).view(n, t, self.n_heads, -1) for proj in (self.q, self.k, self.v))
        scores = torch.einsum("nthe,nshe->nhts", q, k) / math.sqrt(q.shape[-1])
        if self.causal:
            future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)  # s > t
            scores = scores.masked_fill(future, float("-inf"))
        weights = self.dropout(scores.softmax(dim=-1))
        context = torch.einsum("nhts,nshe->nthe", weights, v)
        return self.out(context.reshape(n, t, d))


class EncoderBlock(nn.Module):
    """A pre-LayerNorm encoder layer: x + attn(ln₁(x)), then x + ff₂(gelu(ff₁(ln₂(x)))).

    The feed-forward part is 4·d wide. Shapes: x (n, t, d) → (n, t, d).
    """

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads)
        self.ln2 = nn.LayerNorm(d_model)
        self.ff1 = nn.Linear(d_model, 4 * d_model)
        self.act = nn.GELU()
        self.ff2 = nn.Linear(4 * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.ff2(self.act(self.ff1(self.ln2(x))))


class TokenMean(nn.Module):
    """The mean over tokens: (n, t, d) → (n, d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)


class TinyTransformer(nn.Module):
    """An encoder-only transformer that classifies token sequences, mean-pooled to logits.

    Token and learned position embeddings, ``n_layers`` pre-LayerNorm encoder layers
    (Vaswani et al. 2017; Xiong et al. 2020 for the pre-LN placement), a final LayerNorm, the
    mean over tokens and a linear classifier. Attention is written with four ``nn.Linear``
    projections rather than ``nn.MultiheadAttention``, so rules that replace the backward pass of
    ``nn.Linear`` layers reach every projection, as in the DFA transformer experiments of
    Launay et al. (2020) that the GrAPE paper follows. Linear and embedding weights are
    N(0, 0.02²), biases 0, LayerNorm 1 and 0 (GPT-2's initialisation).

    Structure: ``blocks = [TokenEmbedding, *EncoderBlocks]``, ``head = Sequential(LayerNorm,
    TokenMean, Linear)``; ``forward(ids) = head(blocks[-1](...blocks[0](ids)))``.

    Args:
        vocab_size: number of distinct token ids.
        num_classes: number of classes c of the logits.
        d_model: width d of the token representations; a multiple of ``n_heads``.
        n_heads: attention heads per layer.
        n_layers: encoder layers.
        max_len: longest sequence accepted.
        generator: random source of the initial weights (default: torch's global one).

    Shapes: ids (n, t) integers in [0, vocab_size), t ≤ max_len → logits (n, num_classes).

    Example:
        >>> model = TinyTransformer(1000, 2)
        >>> model(torch.randint(0, 1000, (4, 16))).shape
        torch.Size([4, 2])
    """

    input_dtype: ClassVar[torch.dtype] = torch.long

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        *,
        d_model: int = 64,
        n_heads: int = 4,
        n_layers: int = 2,
        max_len: int = 128,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        check_positive(
            vocab_size=vocab_size,
            num_classes=num_classes,
            d_model=d_model,
            n_heads=n_heads,
            max_len=max_len,
        )
        if n_layers < 0:
            raise ValueError(f"n_layers must be non-negative, got {n_layers}")
        self.blocks = nn.ModuleList(
            [
                TokenEmbedding(vocab_size, d_model, max_len),
                *(EncoderBlock(d_model, n_heads) for _ in range(n_layers)),
            ]
        )
        self.head = nn.Sequential(
            nn.LayerNorm(d_model), TokenMean(), nn.Linear(d_model, num_classes)
        )
        gpt2_init_(self, generator)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = ids
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def gpt2_init_(model: nn.Module, generator: torch.Generator | None) -> None:
    """GPT-2's initialisation: Linear and Embedding weights N(0, 0.02²), Linear biases 0
    (LayerNorm keeps torch's 1 and 0)."""
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, 0.0, 0.02, generator=generator)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
