"""The entropy model: a small byte-level transformer whose next-byte uncertainty decides BLT's patches.

Architecture and masking follow Meta's `LMTransformer` as `load_entropy_model` builds it: sliding-window
(512) causal attention, documents separated by EOS, and the context restarted every `max_seqlen` (8192)
bytes, as `calculate_entropies` does. Unlike Meta's code, rows of a batch never see each other (blt#123).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import check_tokens
from .layers import KVCache, RMSNorm, TransformerConfig, TransformerStack
from .tokenizer import EOS_ID, VOCAB_SIZE


@dataclass
class EntropyModelConfig:
    dim: int = 768
    n_layers: int = 14
    n_heads: int = 12
    n_kv_heads: int | None = None
    ffn_dim: int | None = None
    vocab_size: int = VOCAB_SIZE
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    sliding_window: int | None = 512
    max_seqlen: int = 8192  # context (and RoPE positions) restart every max_seqlen bytes

    def transformer(self) -> TransformerConfig:
        return TransformerConfig(self.dim, self.n_layers, self.n_heads, self.n_kv_heads, self.ffn_dim,
                                 self.norm_eps, self.rope_theta, self.sliding_window)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ffn_dim"] = self.transformer().ffn_dim
        return d


def document_ids(tokens: Tensor) -> Tensor:
    """Index of the document each position belongs to; an EOS ends (and belongs to) its document."""
    eos = (tokens == EOS_ID).long()
    return eos.cumsum(-1) - eos


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy in nats of the next-byte distribution, over all 260 ids (Meta's `patcher.entropy`), in float32."""
    logp = F.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


class EntropyModel(TransformerStack):
    def __init__(self, config: EntropyModelConfig):
        super().__init__(config.transformer())
        self.config = config
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.dim)
        self.norm = RMSNorm(config.dim, config.norm_eps)
        self.output = nn.Linear(config.dim, config.vocab_size, bias=False)

    def forward(self, tokens: Tensor) -> Tensor:
        """Next-byte logits [B, T, 260] (float32) for byte ids [B, T]."""
        check_tokens(tokens)
        chunks = [self.window_logits(c) for c in tokens.split(self.config.max_seqlen, dim=1)]
        return torch.cat(chunks, dim=1)

    def window_logits(self, tokens: Tensor) -> Tensor:
        """Logits of one context window (at most max_seqlen bytes), positions from 0; no input checks."""
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        h = super().forward(self.tok_embeddings(tokens), positions, document_ids(tokens))
        return self.output(self.norm(h)).float()

    def extend(self, tokens: Tensor, start: int, cache: list[KVCache]) -> Tensor:
        """Logits for bytes at positions start.. of the current context window, continuing from the keys and
        values of the bytes before them in `cache`: the entropy model's step in cached generation. No documents (EOS
        ends a generation); the caller restarts the context every max_seqlen bytes, as `forward` does."""
        positions = torch.arange(start, start + tokens.shape[1], device=tokens.device)
        h = TransformerStack.forward(self, self.tok_embeddings(tokens), positions, cache=cache)
        return self.output(self.norm(h)).float()

    def step(self, tokens: Tensor, pos: Tensor, cache: list[KVCache]) -> Tensor:
        """`extend` for one byte [B, 1] at `pos` (0-d tensor) of the context window, at fixed shapes
        (layers.Attention.step): returns the entropy (nats) of its next-byte prediction [B]."""
        h = TransformerStack.step(self, self.tok_embeddings(tokens), pos, cache)
        return entropy_from_logits(self.output(self.norm(h))[:, -1])

    @torch.no_grad()
    def entropies(self, tokens: Tensor) -> Tensor:
        """Entropy in nats [B, T] of the prediction made at each position (the uncertainty about the next byte)."""
        return entropy_from_logits(self(tokens))
