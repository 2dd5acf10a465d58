"""Every check on what a caller hands the models, in one place: the CLI, the page and the API share these
rules, and each failure is a ValueError whose message says what is allowed."""

from __future__ import annotations

import math

import torch

from .tokenizer import VOCAB_SIZE

MAX_PROMPT_BYTES = 8192  # the entropy model's context; longer prompts are refused, not silently cut
MAX_NEW_BYTES = 4096
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit integer
MAX_THRESHOLD_BITS = 8.1  # just above log2(260), the largest entropy a next-byte prediction can have
MAX_STRIDE = 16  # static patching's largest stride (the page's slider and the API share it)


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded; the message says why and what to do."""


def as_whole(x: object) -> object:
    """A float that holds a whole number (as the page's number boxes send them) as that int; anything else as is."""
    return int(x) if isinstance(x, float) and x.is_integer() else x


def whole(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def finite(x: object) -> bool:
    return (whole(x) or isinstance(x, float)) and math.isfinite(x)


def check_text(text: object, what: str = "text", empty_ok: bool = False) -> str:
    """Text the models can read: a str that is not blank (unless `empty_ok`) and has UTF-8 bytes. A lone
    surrogate (half of a UTF-16 pair, which Python strings can hold) has none, so it is refused, never replaced."""
    if not isinstance(text, str):
        raise ValueError(f"the {what} must be text (str), got {type(text).__name__}")
    if not empty_ok and not text.strip():
        raise ValueError(f"the {what} is empty: paste or type some text")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"the {what} holds a lone surrogate U+{ord(text[e.start]):04X} at character {e.start}: it is "
                         "half of a UTF-16 pair, not a character, and has no UTF-8 bytes. Remove it or paste the "
                         "whole character.") from None
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


def check_seed(seed: object) -> int | None:
    """None (a fresh random seed) or a whole number torch can seed with."""
    if seed is None:
        return None
    seed = as_whole(seed)
    if not (whole(seed) and 0 <= seed <= MAX_SEED):
        raise ValueError(f"the seed must be a whole number from 0 to 2**63-1 ({MAX_SEED:,}), or empty for a random one; got {seed!r}")
    return seed


def check_threshold_bits(bits: object, what: str = "the threshold θ") -> float:
    if not (finite(bits) and 0 <= bits <= MAX_THRESHOLD_BITS):
        raise ValueError(f"{what} must be a number of bits from 0 to {MAX_THRESHOLD_BITS}, got {bits!r}")
    return float(bits)


def check_stride(stride: object) -> int:
    stride = as_whole(stride)
    if not (whole(stride) and 1 <= stride <= MAX_STRIDE):
        raise ValueError(f"the stride must be a whole number of bytes from 1 to {MAX_STRIDE}, got {stride!r}")
    return stride


def check_target_patch_size(target: object) -> float:
    if not (finite(target) and target >= 1):
        raise ValueError(f"the target patch size must be a number of bytes, at least 1, got {target!r}")
    return float(target)


def check_choice(value: object, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")
    return value  # type: ignore[return-value]
