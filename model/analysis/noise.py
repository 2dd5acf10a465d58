"""Character noise, as the BLT paper's robustness study applies it, and where it lands in each model's units.

The paper (Pagnoni et al. 2024, arXiv 2412.09871, §6.2 "Noisy Data", the noised-HellaSwag table: Table 3
in arXiv v1) defines five character-level noising strategies; its rates are the defaults here:

- ``antspeak``: "converts the entire text into uppercase, space-separated characters" (no rate): every
  character upper-cased, one space between each two.
- ``drop``: "randomly removes 10% of the characters" (rate 0.1: round(rate·n) characters, drawn without
  replacement, are removed).
- ``randomcase``: "converts 50% of the characters to uppercase and 50% to lowercase randomly" (rate 0.5:
  round(rate·n) characters drawn are upper-cased, all others lower-cased).
- ``repeat``: "repeats 20% of the characters up to a maximum of four times" (rate 0.2: round(rate·n)
  characters drawn are each written 2, 3 or 4 times, uniformly; the paper does not give the spread).
- ``uppercase``: "transforms all characters in the text to uppercase" (no rate): ``str.upper``.

and this project adds ``typos`` (rate 0.05, our choice): round(rate·n) characters drawn, each gets one typo
chosen uniformly: swapped with the next character, a random lowercase ASCII letter inserted before it, or
deleted.

Every kind works on characters (code points), never on bytes, so noisy text is always valid UTF-8: no kind
splits a multi-byte character. The same (text, kind, rate, seed) always gives the same noise (Python's
``random.Random(seed)``). Noise is kept as its edit script, ``pieces``: (clean, noisy) string pairs whose
concatenations are the clean and noisy texts; where a pair differs the text was noised. That script is the
edit alignment the page plots by and the region the step accounting counts on.
"""

from __future__ import annotations

import math
import random
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..baseline import BPEBaseline
from ..blt import BLT
from ..checks import check_choice, check_seed, check_text
from .bpb import baseline_bpb, blt_bpb
from .reading import Analysis, Segmentation, _spans, analyze_bytes, bpe_segmentation

if TYPE_CHECKING:
    from tokenizers import Tokenizer

KINDS = ("antspeak", "drop", "randomcase", "repeat", "uppercase", "typos")
DEFAULT_RATES: dict[str, float | None] = {"antspeak": None, "drop": 0.1, "randomcase": 0.5, "repeat": 0.2,
                                          "uppercase": None, "typos": 0.05}
MAX_REPEAT = 4  # Repeat: a drawn character is written at most this many times
MAX_NOISE_BYTES = 4096  # the clean text's cap in the noise lab (AntSpeak doubles it; every model reads both)
TYPO_LETTERS = string.ascii_lowercase


@dataclass
class Noised:
    """A text and its noisy version, as the edit script that made one from the other."""

    kind: str
    rate: float | None
    seed: int
    pieces: list[tuple[str, str]]  # (clean, noisy) in order; a piece whose two sides differ was noised

    @property
    def clean(self) -> str:
        return "".join(a for a, _ in self.pieces)

    @property
    def text(self) -> str:
        return "".join(b for _, b in self.pieces)

    def byte_pieces(self) -> list[tuple[int, int, int, int, bool]]:
        """Per piece: (clean start, clean end, noisy start, noisy end, noised) in UTF-8 bytes."""
        out, i, j = [], 0, 0
        for a, b in self.pieces:
            na, nb = len(a.encode()), len(b.encode())
            out.append((i, i + na, j, j + nb, a != b))
            i, j = i + na, j + nb
        return out

    def masks(self) -> tuple[list[bool], list[bool]]:
        """(clean, noisy): per byte of each text, whether it lies in a noised piece. Where a side of a noised
        piece is empty (a deleted character on the noisy side, an inserted one on the clean side) the byte
        after the gap is marked, or the last byte when the gap ends the text: the unit that holds the seam."""
        masks: tuple[list[bool], list[bool]] = ([], [])
        seam = [False, False]
        for i0, i1, j0, j1, hit in self.byte_pieces():
            for side, size in ((0, i1 - i0), (1, j1 - j0)):
                if size:
                    masks[side].extend([hit or seam[side]] + [hit] * (size - 1))
                    seam[side] = False
                elif hit:
                    seam[side] = True
        for side in (0, 1):
            if seam[side] and masks[side]:
                masks[side][-1] = True
        return masks

    def alignment(self) -> list[tuple[int | None, int | None, bool]]:
        """Columns (clean byte or None, noisy byte or None, noised): an unchanged piece pairs its bytes one to
        one; a noised piece puts its clean and noisy bytes side by side, the shorter side padded with gaps."""
        cols = []
        for i0, i1, j0, j1, hit in self.byte_pieces():
            for k in range(max(i1 - i0, j1 - j0)):
                cols.append((i0 + k if i0 + k < i1 else None, j0 + k if j0 + k < j1 else None, hit))
        return cols


def check_kind(kind: object, rate: object, seed: object) -> tuple[str, float | None, int]:
    """(kind, rate, seed) checked: the rate defaults to the paper's; kinds without a rate take none."""
    check_choice(kind, KINDS, "noise kind")
    if seed is None:
        raise ValueError("the noise lab needs a seed (a whole number): the same seed always gives the same noise")
    seed = check_seed(seed)
    if DEFAULT_RATES[kind] is None:
        return kind, None, seed
    rate = DEFAULT_RATES[kind] if rate is None else rate
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise ValueError(f"the rate must be a number from 0 to 1, got {rate!r}")
    return kind, float(rate), seed


def add_noise(text: str, kind: str, rate: float | None = None, seed: int = 0) -> Noised:
    """`text` noised by `kind` at `rate` (None: the paper's default) with `seed`. A lone surrogate, which UTF-8
    cannot hold, is refused (model.checks.check_text), as everywhere else in the package."""
    kind, rate, seed = check_kind(kind, rate, seed)
    text = check_text(text)
    rng = random.Random(seed)
    chars = list(text)
    drawn = set(rng.sample(range(len(chars)), round(rate * len(chars)))) if rate is not None else set()
    pieces: list[tuple[str, str]]
    if kind == "uppercase":
        pieces = [(c, c.upper()) for c in chars]
    elif kind == "antspeak":
        pieces = [p for i, c in enumerate(chars) for p in ([("", " ")] if i else []) + [(c, c.upper())]]
    elif kind == "drop":
        pieces = [(c, "" if i in drawn else c) for i, c in enumerate(chars)]
    elif kind == "randomcase":
        pieces = [(c, c.upper() if i in drawn else c.lower()) for i, c in enumerate(chars)]
    elif kind == "repeat":
        pieces = [(c, c * rng.randint(2, MAX_REPEAT) if i in drawn else c) for i, c in enumerate(chars)]
    else:
        pieces = _typos(chars, sorted(drawn), rng)
    return Noised(kind, rate, seed, pieces)


def _typos(chars: list[str], drawn: list[int], rng: random.Random) -> list[tuple[str, str]]:
    ops = {i: rng.choice(("swap", "insert", "delete")) for i in drawn}
    pieces, i = [], 0
    while i < len(chars):
        op, c = ops.get(i), chars[i]
        if op == "swap" and i + 1 < len(chars):  # the last character has no neighbour to its right: left alone
            pieces.append((c + chars[i + 1], chars[i + 1] + c))
            i += 2
            continue
        if op == "insert":
            pieces.append(("", rng.choice(TYPO_LETTERS)))
        pieces.append((c, "" if op == "delete" else c))
        i += 1
    return pieces


@dataclass
class RegionSteps:
    """One model's units (BLT patches, i.e. global steps, or BPE tokens) on one text, split by the noise."""

    on_noise: int  # units holding at least one noised byte
    elsewhere: int  # units holding none

    @property
    def total(self) -> int:
        return self.on_noise + self.elsewhere


def region_steps(seg: Segmentation, noised: list[bool]) -> RegionSteps:
    """Split `seg`'s units by whether they hold a noised byte (`noised`: one flag per byte of its text)."""
    hit = sum(any(noised[s:e]) for s, e in seg.spans)
    return RegionSteps(hit, seg.units - hit)


@dataclass
class Reading:
    """One text as the noise lab reads it: the BLT's entropy model, its patches, the baseline's tokens."""

    analysis: Analysis  # the BLT's entropy model over the text
    patches: Segmentation  # the BLT's own patches: one global step each
    tokens: Segmentation  # the BPE baseline's tokens: one step each
    blt_bpb: float
    baseline_bpb: float

    def record(self) -> dict:
        n = len(self.analysis.data)
        return {"bytes": n, "patches": self.patches.units, "bytes_per_patch": round(n / self.patches.units, 4),
                "tokens": self.tokens.units, "bytes_per_token": round(n / self.tokens.units, 4),
                "entropy_model_bpb": _round(self.analysis.bits_per_byte), "blt_bpb": _round(self.blt_bpb),
                "baseline_bpb": _round(self.baseline_bpb)}


def _round(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 4)


def read(text: str, blt: BLT, baseline: BPEBaseline, tokenizer: Tokenizer) -> Reading:
    data = text.encode("utf-8")
    if blt.entropy_model is None:
        raise ValueError("this BLT has no entropy model of its own: the noise lab needs one to colour its bytes")
    analysis = analyze_bytes(data, blt.entropy_model)
    lengths = blt.patch_lengths(analysis.tokens[None].to(next(blt.parameters()).device))[0, 1:].tolist()
    patches = Segmentation("entropy", _spans([n for n in lengths if n > 0]), blt.config.patching.threshold)
    return Reading(analysis, patches, bpe_segmentation(analysis, tokenizer), blt_bpb(blt, data),
                   baseline_bpb(baseline, tokenizer, data))


@dataclass
class Lab:
    """A text and its noisy version, each read by the BLT, its entropy model and the baseline."""

    noised: Noised
    clean: Reading
    noisy: Reading

    def steps(self) -> dict[str, dict[str, RegionSteps]]:
        """{"clean"|"noisy": {"BLT global steps"|"baseline tokens": units on the noise and elsewhere}}."""
        masks = dict(zip(("clean", "noisy"), self.noised.masks()))
        return {side: {"BLT global steps": region_steps(r.patches, masks[side]),
                       "baseline tokens": region_steps(r.tokens, masks[side])}
                for side, r in (("clean", self.clean), ("noisy", self.noisy))}

    def records(self) -> list[dict]:
        """The table's rows, one for the clean text and one for the noisy, with the steps on the noise."""
        out = []
        for side, r in (("clean", self.clean), ("noisy", self.noisy)):
            s = self.steps()[side]
            out.append({"text": side, **r.record(),
                        "global_steps_on_noise": s["BLT global steps"].on_noise,
                        "global_steps_elsewhere": s["BLT global steps"].elsewhere,
                        "tokens_on_noise": s["baseline tokens"].on_noise,
                        "tokens_elsewhere": s["baseline tokens"].elsewhere})
        return out


def lab(text: str, kind: str, rate: float | None, seed: int, blt: BLT, baseline: BPEBaseline,
        tokenizer: Tokenizer) -> Lab:
    """Noise `text` and read both versions with every model: what the page, /noise and the CLI show."""
    n = len(check_text(text).encode("utf-8", errors="replace"))
    if n > MAX_NOISE_BYTES:
        raise ValueError(f"the noise lab takes texts up to {MAX_NOISE_BYTES:,} bytes; this one is {n:,}")
    noised = add_noise(text, kind, rate, seed)
    return Lab(noised, read(noised.clean, blt, baseline, tokenizer), read(noised.text, blt, baseline, tokenizer))
