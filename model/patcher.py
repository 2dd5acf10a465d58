"""The patcher: where BLT cuts a byte sequence into patches, in every mode of Meta's `Patcher`.

Conventions (Meta's, `include_next_token=True`): position 0 (BOS) is a patch of its own and position 1
always starts a patch; for entropy modes, a high entropy *at* position p starts a new patch at p+1 (the
hard-to-predict byte opens the patch). Internally lengths cover T+1 positions: the last patch also holds
the not-yet-seen next byte ("future slot"), which is how the model knows whether the last byte closed
its patch. Publicly (`public_lengths`) lengths sum to T, as transformers writes them: a trailing 0 means
the last byte closed its patch and the next byte opens a new one.

The rules are applied to one row at a time; `pad_rows` right-pads a batch with zeros.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from .tokenizer import BPE_ID, OFFSET

DEFAULT_THRESHOLD = 1.335442066192627  # nats; the released BLT's global threshold
MODES = ("entropy", "static", "space", "bpe", "byte")


@dataclass
class PatchingConfig:
    mode: str = "entropy"
    threshold: float = DEFAULT_THRESHOLD
    threshold_add: float | None = None  # with monotonicity off: "global + monotonic" variant
    monotonicity: bool = False  # threshold applies to the rise H[t] - H[t-1] instead of H[t]
    patch_size: float = 4.5  # static mode's stride (truncated to an int, as Meta's long tensor does)
    max_patch_length: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown patching mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.max_patch_length is not None and self.max_patch_length < 1:
            raise ValueError(f"max_patch_length must be at least 1, got {self.max_patch_length}")
        if self.mode == "static" and int(self.patch_size) < 1:
            raise ValueError(f"static patching needs patch_size >= 1, got {self.patch_size}")

    def to_dict(self) -> dict:
        return asdict(self)


# --- start ids of one row (positions 0..T, T being the future slot) ---------------------------------


def entropy_starts(entropies: Tensor, threshold: float, threshold_add: float | None = None,
                   monotonicity: bool = False) -> Tensor:
    """Patch start ids from per-position entropies [T] (Meta's `find_entropy_patch_start_ids`)."""
    e = entropies.float()[1:]  # H[0] (the prediction made at BOS) is never used
    if monotonicity:
        starts = torch.cat([e.new_ones(min(1, len(e)), dtype=torch.bool), (e[1:] - e[:-1]) > threshold])
    elif threshold_add is not None:
        rise = (e[1:] - e[:-1]) > threshold_add
        starts = torch.cat([e.new_ones(min(1, len(e)), dtype=torch.bool), rise & (e[1:] > threshold)])
        starts[1:2] = False  # Meta's mask term `~mask[:, :-1]` forbids slice index 1
    else:
        starts = e > threshold
    return torch.cat([torch.tensor([0, 1], device=e.device), starts.nonzero().flatten() + 2])


def space_starts(tokens: Tensor) -> Tensor:
    """A patch ends after the first of a run of "space-like" bytes: anything but ASCII letters, digits and
    UTF-8 continuation bytes; special ids always end a patch (Meta's `find_space_patch_start_ids`)."""
    b = tokens - OFFSET
    alnum = ((b >= ord("0")) & (b <= ord("9"))) | ((b >= ord("A")) & (b <= ord("Z"))) | ((b >= ord("a")) & (b <= ord("z")))
    space_like = ~alnum & ~((b >= 0x80) & (b < 0xC0))
    ends = space_like.clone()
    ends[1:] &= ~space_like[:-1]
    ends |= tokens < OFFSET
    return torch.cat([torch.tensor([0, 1], device=tokens.device), ends[1:].nonzero().flatten() + 2])


def bpe_delimiter_starts(tokens: Tensor) -> Tensor:
    """Starts after each BPE delimiter id (Meta's training-only `bpe` mode, tokens with id 3 inserted)."""
    delims = (tokens[:-1] == BPE_ID).nonzero().flatten()
    return torch.cat([torch.tensor([0, 1], device=tokens.device), delims + 1])


def lengths_from_starts(starts: Tensor, total: int) -> Tensor:
    ends = torch.cat([starts[1:], starts.new_tensor([total])])
    return ends - starts


def split_long(lengths: Tensor, max_len: int) -> Tensor:
    """Replace each length above max_len by max_len, max_len, ..., remainder (Meta's `split_large_numbers`)."""
    out = []
    for n in lengths.tolist():
        while n > max_len:
            out.append(max_len)
            n -= max_len
        out.append(n)
    return lengths.new_tensor(out)


def row_patch_lengths(tokens: Tensor, cfg: PatchingConfig, entropies: Tensor | None = None) -> Tensor:
    """Patch lengths of one row [T] in Meta's convention (they sum to T+1, the future slot included)."""
    T = tokens.shape[0]
    if cfg.mode == "entropy":
        if entropies is None:
            raise ValueError("entropy patching needs the entropy model's entropies")
        lengths = lengths_from_starts(entropy_starts(entropies, cfg.threshold, cfg.threshold_add, cfg.monotonicity), T + 1)
    elif cfg.mode == "space":
        lengths = lengths_from_starts(space_starts(tokens), T + 1)
    elif cfg.mode == "bpe":
        lengths = lengths_from_starts(bpe_delimiter_starts(tokens), T + 1)
    elif cfg.mode == "byte":
        lengths = torch.ones(T + 1, dtype=torch.long, device=tokens.device)
    else:  # static
        k = int(cfg.patch_size)
        lengths = torch.full((math.ceil((T + 1) / k),), k, dtype=torch.long, device=tokens.device)
        if (T + 1) % k:
            lengths[-1] = (T + 1) % k
    if cfg.max_patch_length is not None:
        lengths = split_long(lengths, cfg.max_patch_length)
    return lengths


def pad_rows(rows: Sequence[Tensor]) -> Tensor:
    """Stack rows of patch lengths into [B, P], right-padded with zeros."""
    width = max(len(r) for r in rows)
    return torch.stack([torch.cat([r, r.new_zeros(width - len(r))]) for r in rows])


def patch_lengths(tokens: Tensor, cfg: PatchingConfig, entropies: Tensor | None = None) -> Tensor:
    """Meta-convention patch lengths [B, P] (rows sum to T+1) for tokens [B, T]."""
    return pad_rows([row_patch_lengths(tokens[b], cfg, None if entropies is None else entropies[b])
                     for b in range(tokens.shape[0])])


# --- conventions ------------------------------------------------------------------------------------


def public_lengths(lengths: Tensor) -> Tensor:
    """Meta lengths (sum T+1) → transformers' convention (sum T): the future slot leaves the last patch,
    which stays as a 0 when it held nothing else."""
    out = lengths.clone()
    last = (lengths > 0).long().cumsum(-1).argmax(-1)
    out[torch.arange(len(out)), last] -= 1
    return out


def internal_lengths(lengths: Tensor, seq_len: int) -> Tensor:
    """Accept either convention for explicit patch lengths [B, P] and return Meta's (sum T+1).

    Rows summing to T are read as transformers reads them: the next byte belongs to the patch after the
    last non-empty one, so a trailing 0 means the last byte closed its patch.
    """
    if lengths.dim() != 2 or lengths.dtype != torch.long:
        raise ValueError(f"patch_lengths must be a LongTensor [batch, patches], got {lengths.dtype} {tuple(lengths.shape)}")
    if (lengths < 0).any():
        raise ValueError("patch_lengths must not be negative")
    sums = lengths.sum(-1)
    if lengths.shape[1] == 0 or not (((sums == seq_len) | (sums == seq_len + 1)).all()):
        raise ValueError(f"each row of patch_lengths must sum to the sequence length {seq_len}, got {sums.tolist()}")
    if (lengths[:, 0] != 1).any():
        raise ValueError("the first patch must be exactly the BOS byte (length 1)")
    out = torch.cat([lengths, lengths.new_zeros(len(lengths), 1)], dim=1)
    rows = (sums == seq_len).nonzero().flatten()
    last = (out > 0).long().cumsum(-1).argmax(-1)
    slot = torch.where(lengths[torch.arange(len(lengths)), -1] == 0, last + 1, last)
    out[rows, slot[rows]] += 1
    keep = int((out > 0).long().cumsum(-1).argmax(-1).max()) + 1
    return out[:, :keep]


def patch_ids(lengths: Tensor, seq_len: int) -> Tensor:
    """Index of the patch holding each of the first seq_len positions, [B, seq_len]."""
    starts = lengths.cumsum(-1) - lengths
    pos = torch.arange(seq_len, device=lengths.device)
    return (starts[:, None, :] <= pos[None, :, None]).sum(-1) - 1


def decoder_patch_ids(lengths: Tensor, seq_len: int) -> Tensor:
    """For byte i, the last patch that ends at or before i: its global output predicts byte i+1."""
    return patch_ids(lengths[:, 1:], seq_len)


# --- statistics and threshold search ----------------------------------------------------------------


def average_patch_size(lengths: Tensor) -> float:
    """Bytes of text per patch, BOS and the future slot left out (the paper's "average patch size")."""
    text = public_lengths(lengths)[:, 1:]
    return float(text.sum()) / max(float((text > 0).sum()), 1.0)


def threshold_for_patch_size(entropies: Tensor, target: float, cfg: PatchingConfig | None = None,
                             iters: int = 60) -> tuple[float, float]:
    """Threshold that gives an average patch size closest to `target` on these entropies [T] or [B, T]
    (blt#106, #141). Returns (threshold, average patch size reached). Bisection: patches grow with θ."""
    cfg = cfg or PatchingConfig()
    ent = entropies if entropies.dim() == 2 else entropies[None]
    tokens = torch.full(ent.shape, OFFSET, dtype=torch.long)

    def size(theta: float) -> float:
        c = PatchingConfig("entropy", theta, cfg.threshold_add, cfg.monotonicity, cfg.patch_size, cfg.max_patch_length)
        return average_patch_size(patch_lengths(tokens, c, ent))

    lo, hi = float(ent.min()) - 1.0, float(ent.max()) + 1.0
    if cfg.monotonicity:
        lo, hi = -float(ent.max() - ent.min()) - 1.0, float(ent.max() - ent.min()) + 1.0
    for _ in range(iters):
        mid = (lo + hi) / 2
        if size(mid) < target:
            lo = mid
        else:
            hi = mid
    best = min((lo, hi), key=lambda t: abs(size(t) - target))
    return best, size(best)
