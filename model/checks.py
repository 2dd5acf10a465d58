"""Every check on what a caller hands the models, in one place: the CLI, the page and the API share these
rules, and each failure is a ValueError whose message says what is allowed."""

from __future__ import annotations

import math

import torch

from .tokenizer import VOCAB_SIZE

MAX_PROMPT_BYTES = 8192  # the entropy model's context; longer prompts are refused, not silently cut
MAX_NEW_BYTES = 4096


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded; the message says why and what to do."""


def whole(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def finite(x: object) -> bool:
    return (whole(x) or isinstance(x, float)) and math.isfinite(x)


def check_text(text: object) -> str:
    if not isinstance(text, str):
        raise ValueError(f"expected text (str), got {type(text).__name__}")
    if not text.strip():
        raise ValueError("the text is empty: paste or type some text to analyse")
    return text


def check_tokens(tokens: object) -> None:
    """Raise a ValueError that says what is wrong unless `tokens` is a LongTensor [B, T] of BLT ids."""
    if not isinstance(tokens, torch.Tensor):
        raise ValueError(f"tokens must be a torch.LongTensor [batch, length], got {type(tokens).__name__}")
    if tokens.dtype != torch.long:
        raise ValueError(f"tokens must have dtype torch.long (int64), got {tokens.dtype}")
    if tokens.dim() != 2:
        raise ValueError(f"tokens must have shape [batch, length], got {tuple(tokens.shape)}")
    if tokens.shape[1] == 0 or tokens.shape[0] == 0:
        raise ValueError("tokens is empty: encode at least the BOS id (model.encode('') gives [1])")
    lo, hi = int(tokens.min()), int(tokens.max())
    if lo < 0 or hi >= VOCAB_SIZE:
        raise ValueError(f"token ids must lie in [0, {VOCAB_SIZE}), got values from {lo} to {hi}")


def check_max_new_bytes(n: object, cap: int = MAX_NEW_BYTES) -> int:
    if not (whole(n) and 1 <= n <= cap):
        raise ValueError(f"max_new_bytes must be a whole number from 1 to {cap}, got {n!r}")
    return n


def check_sampling(temperature: object, top_k: object, top_p: object) -> None:
    if not (finite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}")
    if top_k is not None and not (whole(top_k) and top_k >= 1):
        raise ValueError(f"top_k must be a whole number >= 1 or None, got {top_k!r}")
    if top_p is not None and not (finite(top_p) and 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p!r}")
