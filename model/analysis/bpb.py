"""Bits per byte: the one measure that compares a byte model with a BPE model on the same text.

Training logs, the model card, the shipped-weights tests and the cost comparison all call these.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..tokenizer import BOS_ID, OFFSET


@torch.no_grad()
def byte_model_bpb(logits_of: Callable[[Tensor], Tensor], data: bytes, window: int = 512,
                   device: torch.device | str = "cpu") -> float:
    """A byte-level model (entropy model or BLT) read in windows of `window` bytes, each after a BOS;
    every byte is predicted once."""
    nats, n = 0.0, 0
    for s in range(0, len(data), window):
        ids = torch.tensor([[BOS_ID] + [b + OFFSET for b in data[s : s + window]]], device=device)
        nats += float(F.cross_entropy(logits_of(ids[:, :-1])[0].float(), ids[0, 1:], reduction="sum"))
        n += ids.shape[1] - 1
    return nats / max(n, 1) / math.log(2)


@torch.no_grad()
def bpe_model_bpb(model: Callable[[Tensor], Tensor], tokenizer, data: bytes, window: int = 512,  # noqa: ANN001
                  device: torch.device | str = "cpu") -> float:
    """The BPE baseline read in windows of `window` tokens; every token but the first is predicted, and
    the bytes of those tokens are the denominator."""
    enc = tokenizer.encode(data.decode("utf-8", errors="replace"))
    nats = 0.0
    for s in range(0, len(enc.ids) - 1, window):
        ids = torch.tensor([enc.ids[s : s + window + 1]], device=device)
        nats += float(F.cross_entropy(model(ids[:, :-1])[0].float(), ids[0, 1:], reduction="sum"))
    return nats / max(sum(len(t) for t in enc.tokens[1:]), 1) / math.log(2)


BLT_WINDOW = 8192  # bytes per BLT pass: the entropy model's context, so patches are the ones it makes alone


def blt_bpb(blt: torch.nn.Module, data: bytes) -> float:
    """The BLT's bits per byte on `data`, teacher-forced: it patches each window with its own entropy model."""
    if not data:
        return float("nan")
    return byte_model_bpb(blt, data, BLT_WINDOW, next(blt.parameters()).device)


def baseline_bpb(baseline: torch.nn.Module, tokenizer, data: bytes) -> float:  # noqa: ANN001
    """The BPE baseline's bits per byte on `data` (NaN for a text of one token: nothing is predicted)."""
    if len(tokenizer.encode(data.decode("utf-8", errors="replace")).ids) < 2:
        return float("nan")
    return bpe_model_bpb(baseline, tokenizer, data, device=next(baseline.parameters()).device)
