"""What the explorer shows about a text: per-byte entropies and predictions, and patches by each scheme.

The entropy model runs once per text (`analyze`); every patching scheme is then a cheap function of the
cached result (`segment`), so a threshold slider re-patches without running the model again. The CLI,
the web page and the benchmarks all call these two functions.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .. import patcher
from ..bpe import token_byte_lengths
from ..checks import check_choice, check_stride, check_text
from ..entropy_model import EntropyModel, entropy_from_logits
from ..patcher import PatchingConfig
from ..tokenizer import BOS_ID, OFFSET, byte_glyph, utf8_char_spans

if TYPE_CHECKING:
    from tokenizers import Tokenizer

DEFAULT_MAX_BYTES = 100_000
TOP_K = 5
WINDOW_BYTES = 4096  # positions read at a time by `read_windows`


@dataclass
class Analysis:
    """The entropy model's reading of one text. Position 0 is BOS; byte i of `data` is position i+1."""

    data: bytes  # the analysed UTF-8 bytes (the first max_bytes of the text)
    original_bytes: int  # bytes in the whole text; more than len(data) when it was cut
    entropies: Tensor  # [T] nats: entropies[p] is the uncertainty, at position p, about position p+1
    top_ids: Tensor  # [T, TOP_K] most likely next ids at each position
    top_probs: Tensor  # [T, TOP_K]
    nats: Tensor  # [T-1] -log p(actual next byte) at each position
    bpe_lengths: list[int] | None = None  # bytes per BPE token, when a tokenizer was given

    @property
    def truncated(self) -> bool:
        return self.original_bytes > len(self.data)

    @property
    def tokens(self) -> Tensor:
        return torch.tensor([BOS_ID] + [b + OFFSET for b in self.data])

    @property
    def byte_entropies(self) -> Tensor:
        """[len(data)] entropy (nats) of the prediction *of* each byte: the quantity that opens a patch."""
        return self.entropies[:-1]

    @property
    def bits_per_byte(self) -> float:
        return float(self.nats.mean()) / math.log(2) if len(self.nats) else float("nan")


@dataclass
class Segmentation:
    """A text cut into units (patches or tokens): byte spans over `data`, in order, covering it exactly."""

    scheme: str
    spans: list[tuple[int, int]]
    threshold: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def starts(self) -> list[int]:
        return [s for s, _ in self.spans]

    @property
    def units(self) -> int:
        return len(self.spans)

    @property
    def bytes_per_unit(self) -> float:
        return (self.spans[-1][1] / len(self.spans)) if self.spans else 0.0

    def unit_of_byte(self) -> list[int]:
        out = []
        for i, (s, e) in enumerate(self.spans):
            out += [i] * (e - s)
        return out


@torch.no_grad()
def analyze(text: str, entropy_model: EntropyModel, max_bytes: int | None = DEFAULT_MAX_BYTES,
            bpe_tokenizer: object | None = None) -> Analysis:
    """Run the entropy model over `text` (its first max_bytes bytes; the result says when it was cut)."""
    data, original = text_bytes(text, max_bytes)
    return analyze_bytes(data, entropy_model, bpe_tokenizer, original)


def text_bytes(text: str, max_bytes: int | None = DEFAULT_MAX_BYTES) -> tuple[bytes, int]:
    """The UTF-8 bytes to analyse (the first max_bytes) and the length of the whole text, after `check_text`."""
    data = check_text(text).encode("utf-8")
    return (data if max_bytes is None else data[:max_bytes]), len(data)


@torch.no_grad()
def analyze_bytes(data: bytes, entropy_model: EntropyModel, bpe_tokenizer: object | None = None,
                  original_bytes: int | None = None) -> Analysis:
    """`analyze` for raw bytes, which need not be valid UTF-8 (a model's generated output, a cut text)."""
    original = len(data) if original_bytes is None else original_bytes
    tokens = torch.tensor([[BOS_ID] + [b + OFFSET for b in data]], device=_device(entropy_model))
    logits = entropy_model(tokens)[0].float()
    logp = torch.log_softmax(logits, -1)
    top_p, top_i = logp.exp().topk(TOP_K, dim=-1)
    nats = -logp[:-1].gather(1, tokens[0, 1:, None]).squeeze(1)
    bpe = None
    if bpe_tokenizer is not None:
        bpe = token_byte_lengths(bpe_tokenizer, data.decode("utf-8", errors="replace"))
        if sum(bpe) != len(data):  # cut mid-character: the tokenizer saw U+FFFD, not the raw bytes
            bpe = None
    return Analysis(data, original, entropy_from_logits(logits).cpu(), top_i.cpu(), top_p.cpu(), nats.cpu(), bpe)


def context_positions(entropy_model: EntropyModel) -> int:
    """How far back a position's logits can look: with a sliding window w, each of L layers reaches w-1
    positions further, so L·(w-1); without one, the whole context window."""
    cfg = entropy_model.config
    w = cfg.sliding_window
    return cfg.max_seqlen if w is None else min(cfg.max_seqlen, cfg.n_layers * (w - 1))


def common_prefix(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo] and a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if a[:mid] == b[:mid] else (lo, mid)
    return lo


@torch.no_grad()
def read_windows(data: bytes, entropy_model: EntropyModel, window: int = WINDOW_BYTES,
                 reuse: Analysis | None = None, original_bytes: int | None = None) -> Iterator[Analysis]:
    """`analyze_bytes`, a window of positions at a time: yields the analysis of a growing prefix of `data`
    (the last one is all of it), so a caller can show the first window at once and let others run between.

    The numbers equal one whole pass: entropies are causal, so a position needs only the positions before it
    in its context window (the context restarts every max_seqlen), and of those only the last
    `context_positions`. Windows of one context run on a KV cache; where reading starts mid-context, that
    much context is read first. `reuse`, an earlier analysis of a text that shares a prefix with `data`
    (a complete one or a prefix yielded here), keeps its numbers before the first changed byte: typing at
    the end reads only the new bytes (and their context), an edit in the middle only the bytes from it on.
    """
    original = len(data) if original_bytes is None else original_bytes
    device = _device(entropy_model)
    tokens = torch.tensor([BOS_ID] + [b + OFFSET for b in data], device=device)
    T, seq = len(tokens), entropy_model.config.max_seqlen
    entropies, nats = torch.empty(T), torch.empty(T - 1)
    top_ids, top_probs = torch.empty(T, TOP_K, dtype=torch.long), torch.empty(T, TOP_K)
    start = 0
    if reuse is not None:  # positions before the first changed byte saw the same bytes; position d needs byte d
        start = min(common_prefix(reuse.data, data), len(reuse.entropies) - 1)
        entropies[:start], top_ids[:start], top_probs[:start] = (
            reuse.entropies[:start], reuse.top_ids[:start], reuse.top_probs[:start])
        nats[:start] = reuse.nats[:start]

    def done(end: int) -> Analysis:  # positions [0, end) are read: the analysis of data[:end-1]
        n = end - 1
        return Analysis(data[:n], original if end == T else n, entropies[:end], top_ids[:end], top_probs[:end], nats[:n])

    context = context_positions(entropy_model)
    pos = start
    while pos < T:
        chunk = pos - pos % seq  # the context window holding pos; its positions count from 0
        cache = entropy_model.new_cache()
        lead = max(chunk, pos - context)
        if lead < pos:
            entropy_model.extend(tokens[None, lead:pos], lead - chunk, cache)
        stop = min(T, chunk + seq)
        while pos < stop:
            end = min(stop, pos + window)
            logits = entropy_model.extend(tokens[None, pos:end], pos - chunk, cache)[0].float()
            logp = torch.log_softmax(logits, -1)
            top_probs[pos:end], top_ids[pos:end] = (x.cpu() for x in logp.exp().topk(TOP_K, dim=-1))
            entropies[pos:end] = entropy_from_logits(logits).cpu()
            nxt = min(end, T - 1)
            nats[pos:nxt] = -logp[: nxt - pos].gather(1, tokens[pos + 1 : nxt + 1, None]).squeeze(1).cpu()
            pos = end
            yield done(end)
    if start >= T:
        yield done(T)


def _device(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


SCHEMES = ("entropy", "monotonic", "static", "space", "bpe", "byte")
PATCH_SCHEMES = tuple(x for x in SCHEMES if x != "bpe")  # the schemes that need nothing but the bytes


def segment(analysis: Analysis, scheme: str = "entropy", threshold: float = patcher.DEFAULT_THRESHOLD,
            stride: int = 4, max_patch_length: int | None = None) -> Segmentation:
    """Cut the analysed bytes by one scheme; entropy schemes reuse the cached entropies.

    `threshold` is the global threshold (nats) for "entropy", the relative one for "monotonic".
    Patches are reported over the text's bytes: BOS's own patch is left out.
    """
    if scheme == "bpe" and analysis.bpe_lengths is not None:
        return Segmentation("bpe", _spans(analysis.bpe_lengths))
    check_choice(scheme, PATCH_SCHEMES, "scheme (BPE tokens need a tokenizer: see the comparison of schemes)"
                 if scheme == "bpe" else "scheme")
    if scheme == "static":
        check_stride(stride)
    mode = {"monotonic": "entropy"}.get(scheme, scheme)
    cfg = PatchingConfig(mode, threshold, monotonicity=scheme == "monotonic", patch_size=stride,
                         max_patch_length=max_patch_length)
    lengths = patcher.public_lengths(patcher.patch_lengths(analysis.tokens[None], cfg, analysis.entropies[None]))[0]
    lengths = lengths[lengths > 0].tolist()
    lengths[0] -= 1  # BOS leaves the first patch; static mode's first patch keeps its text bytes
    notes = ["static patching (Meta's rule) counts BOS in the first patch"] if scheme == "static" else []
    uses_threshold = scheme in ("entropy", "monotonic")
    return Segmentation(scheme, _spans([n for n in lengths if n > 0]), threshold if uses_threshold else None, notes)


def _spans(lengths: list[int]) -> list[tuple[int, int]]:
    spans, pos = [], 0
    for n in lengths:
        spans.append((pos, pos + n))
        pos += n
    return spans


def solve_threshold(analysis: Analysis, target_patch_size: float, monotonic: bool = False) -> tuple[float, float]:
    """Threshold giving `target_patch_size` bytes per patch on this text: (threshold, size reached)."""
    if not target_patch_size >= 1:
        raise ValueError(f"the target patch size must be at least 1 byte, got {target_patch_size}")
    return patcher.threshold_for_patch_size(analysis.entropies, target_patch_size, PatchingConfig(monotonicity=monotonic))


def rows(analysis: Analysis, seg: Segmentation) -> list[dict]:
    """One record per byte of the text: the CLI's table and the web page's CSV/JSON download. `char` is the
    character a byte begins ("" on the bytes that continue it, so the column joins back into the text);
    `glyph` is how the page draws the byte (⋅ for a space, <E5> for a byte of a cut character)."""
    unit = seg.unit_of_byte()
    starts = set(seg.starts)
    ent = analysis.byte_entropies.tolist()
    chars = [""] * len(analysis.data)
    for a, b in utf8_char_spans(analysis.data):
        chars[a] = analysis.data[a:b].decode("utf-8", errors="backslashreplace")
    return [{"byte": i, "hex": f"{b:02x}", "char": chars[i], "glyph": byte_glyph(b + OFFSET),
             "entropy_nats": round(ent[i], 6), "entropy_bits": round(ent[i] / math.log(2), 6), "patch": unit[i],
             "starts_patch": i in starts} for i, b in enumerate(analysis.data)]


def unit_record(data: bytes, start: int, end: int) -> dict:
    """A patch or token exactly: its bytes in hex, and its text, where the bytes of a character that a
    boundary cuts are marked as \\xNN escapes (never replaced by U+FFFD)."""
    return {"start": start, "end": end, "hex": data[start:end].hex(),
            "text": data[start:end].decode("utf-8", errors="backslashreplace")}


def report(analysis: Analysis, seg: Segmentation) -> dict:
    """The machine-readable result (CLI --json, the page's JSON download, the API): summary, bytes, patches
    (numbered from 0, as everywhere)."""
    summary = {"bytes": len(analysis.data), "truncated_from": analysis.original_bytes if analysis.truncated else None,
               "mode": seg.scheme, "threshold_nats": seg.threshold, "patches": seg.units,
               "bytes_per_patch": round(seg.bytes_per_unit, 4), "bits_per_byte": round(analysis.bits_per_byte, 4)}
    return {"summary": summary, "bytes": rows(analysis, seg),
            "patches": [unit_record(analysis.data, s, e) for s, e in seg.spans]}


def bpe_segmentation(analysis: Analysis, tokenizer: Tokenizer) -> Segmentation:
    """The analysed bytes cut into `tokenizer`'s tokens (a byte-level BPE).

    When the analysed text was cut inside a character, its leading bytes at the end cannot be tokenised as
    text; each counts as one token, as a byte-fallback tokenizer would, and a note says so.
    """
    text = analysis.data.decode("utf-8", errors="ignore")  # only a character cut at the end can be invalid
    dangling = len(analysis.data) - len(text.encode("utf-8"))
    lengths = token_byte_lengths(tokenizer, text) + [1] * dangling
    if sum(lengths) != len(analysis.data):
        raise ValueError("this tokenizer's tokens do not map to bytes: only byte-level BPE tokenizers are supported")
    seg = segment(replace(analysis, bpe_lengths=lengths), "bpe")
    if dangling:
        seg.notes.append(f"the last {dangling} byte(s) cut a character and count as one token each")
    return seg
