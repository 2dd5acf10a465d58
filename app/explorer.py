"""What the page does with a text, apart from Gradio: read it once with the entropy model, then cut and draw
it for any settings. The web page, the API endpoints and the benchmark all go through these functions."""

from __future__ import annotations

import codecs
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from tokenizers import Tokenizer

from model.analysis.bpb import baseline_bpb, blt_bpb
from model.analysis.reading import (
    Analysis,
    Segmentation,
    bpe_segmentation,
    read_windows,
    report,
    rows,
    segment,
    solve_threshold,
    text_bytes,
)
from model.baseline import BPEBaseline
from model.blt import BLT
from model.checks import MAX_STRIDE, MAX_THRESHOLD_BITS
from model.entropy_model import EntropyModel
from model.patcher import DEFAULT_THRESHOLD

from . import plots, render
from .render import LN2

MAX_BYTES = int(os.environ.get("BLT_EXPLORER_MAX_BYTES", 100_000))
DEFAULT_THRESHOLD_BITS = DEFAULT_THRESHOLD / LN2
DEFAULT_RISE_BITS = 1.0
DEFAULT_STRIDE = 4
VIEW_BYTES = 16_384  # bytes of text drawn at once; longer texts page through them (the browser stays quick)
PREVIEW_BYTES = 2048  # bytes of text drawn per row of the scheme comparison (counts always cover all)
TABLE_ROWS = 500  # patches listed in the table (the downloads hold all)
BPB_BYTES = 2048  # bytes the BLT and the baseline score per text (~1 s on a 2-core CPU; the entropy model reads all)


@dataclass
class Settings:
    """The knobs that re-patch without running the model."""

    threshold_bits: float = DEFAULT_THRESHOLD_BITS  # global entropy threshold
    rise_bits: float = DEFAULT_RISE_BITS  # monotonic variant: entropy rise over the previous byte
    stride: int = DEFAULT_STRIDE  # static patching's patch size
    view_from: int = 0  # first byte of the text view's window


@dataclass
class Reading:
    """One text as an entropy model read it, with its BPE tokens: all that re-patching needs (kept per session)."""

    analysis: Analysis
    model: str
    bpe: dict[str, Segmentation] = field(default_factory=dict)
    bpe_missing: dict[str, str] = field(default_factory=dict)
    model_seconds: float = 0.0
    models_bpb: tuple[float | None, float | None, str] = (None, None, "")  # BLT, baseline, what they read
    unread: int = 0  # bytes still to read: a first part of the text, shown while the rest arrives


@dataclass
class View:
    """The page for one reading and one set of settings."""

    notice: str
    summary: str
    text: str
    chart: go.Figure
    sizes: go.Figure
    comparison: str


def read(text: str, entropy_model: EntropyModel, model_name: str, tokenizers: dict[str, Tokenizer],
         missing: dict[str, str] | None = None, max_bytes: int = MAX_BYTES) -> Reading:
    """Run the entropy model once over the text (its first max_bytes) and tokenise it with each BPE tokenizer.
    Raises ValueError for empty text."""
    *_, reading = readings(text, entropy_model, model_name, tokenizers, missing, max_bytes)
    return reading


def readings(text: str, entropy_model: EntropyModel, model_name: str, tokenizers: dict[str, Tokenizer],
             missing: dict[str, str] | None = None, max_bytes: int = MAX_BYTES, reuse: Reading | None = None,
             window: int | None = None) -> Iterator[Reading]:
    """`read`, a window at a time: a reading of the first part after each window (with `unread` bytes to go),
    the whole reading last. `reuse`, the session's previous reading, keeps its
    numbers before the first changed byte. The text is checked at this call."""
    data, original = text_bytes(text, max_bytes)
    prior = reuse.analysis if reuse is not None and reuse.model == model_name else None
    windows = read_windows(data, entropy_model, *([window] if window else []), reuse=prior, original_bytes=original)
    return _readings(windows, len(data), model_name, tokenizers, missing)


def _readings(windows: Iterator, n: int, model_name: str, tokenizers: dict[str, Tokenizer],
              missing: dict[str, str] | None) -> Iterator[Reading]:
    seconds = 0.0
    while True:
        start = time.perf_counter()
        analysis = next(windows, None)
        if analysis is None:
            return
        seconds += time.perf_counter() - start
        if len(analysis.data) < n:
            yield Reading(analysis, model_name, model_seconds=seconds, unread=n - len(analysis.data))
        else:
            yield Reading(analysis, model_name, tokenize(analysis, tokenizers), dict(missing or {}), seconds)


def scores(data: bytes, blt: BLT, baseline: BPEBaseline, tokenizer: Tokenizer,
           before: Reading | None = None) -> tuple[float, float, str]:
    """The BLT's and the baseline's bits per byte on the text's first BPB_BYTES (whole characters), once per text:
    `before`'s, when it scored the same first bytes (an edit further on, typing at the end)."""
    if before is not None and before.models_bpb[0] is not None and before.analysis.data[:BPB_BYTES] == data[:BPB_BYTES]:
        return before.models_bpb
    part = data[:BPB_BYTES]
    part = part[: len(part.decode("utf-8", errors="ignore").encode())]  # whole characters for the tokenizer
    note = f" (its first {len(part):,} bytes)" if len(part) < len(data) else ""
    return blt_bpb(blt, part), baseline_bpb(baseline, tokenizer, part), note


def tokenize(analysis: Analysis, tokenizers: dict[str, Tokenizer]) -> dict[str, Segmentation]:
    return {name: bpe_segmentation(analysis, tok) for name, tok in tokenizers.items()}


def patches(reading: Reading, s: Settings) -> Segmentation:
    """The page's patches: entropy patching with the global threshold θ, as BLT cuts."""
    return segment(reading.analysis, "entropy", s.threshold_bits * LN2)


def text(reading: Reading, s: Settings, cut: Segmentation) -> str:
    """The text view: the window of VIEW_BYTES from s.view_from, coloured, with `cut`'s patches marked."""
    return render.text_view(reading.analysis, cut, s.threshold_bits, s.view_from, s.view_from + VIEW_BYTES)


def schemes(reading: Reading, s: Settings) -> list[tuple[str, Segmentation | None, str]]:
    """The text cut by every scheme, as (label, segmentation or None, note); the first is the page's patches."""
    a = reading.analysis
    out: list[tuple[str, Segmentation | None, str]] = [
        (f"Entropy, global threshold θ = {s.threshold_bits:.2f} bits", patches(reading, s), ""),
        (f"Entropy, monotonic: rise > {s.rise_bits:.2f} bits", segment(a, "monotonic", s.rise_bits * LN2), ""),
        (f"Static, every {s.stride} bytes", segment(a, "static", stride=s.stride), ""),
        ("Space patching", segment(a, "space"), ""),
    ]
    out += [(f"BPE tokens: {name}", seg, "") for name, seg in reading.bpe.items()]
    out += [(f"BPE tokens: {name}", None, why) for name, why in reading.bpe_missing.items()]
    return out


def counts(cut: list[tuple[str, Segmentation | None, str]]) -> list[dict]:
    """Every scheme's units and bytes per unit (the API's /compare and the JSON download)."""
    return [{"scheme": seg.scheme, "label": label, "units": seg.units, "bytes_per_unit": round(seg.bytes_per_unit, 4)}
            if seg else {"scheme": "bpe", "label": label, "error": why} for label, seg, why in cut]


def fit(reading: Reading, target: float) -> tuple[Settings, str]:
    """Settings whose entropy schemes and stride give `target` bytes per patch on this text, and a note. Each
    stays inside its control's range; a target the text cannot reach is said so."""
    a = reading.analysis
    theta, _ = solve_threshold(a, target)
    rise, _ = solve_threshold(a, target, monotonic=True)
    s = Settings(_within(theta / LN2, 0.0, MAX_THRESHOLD_BITS), _within(rise / LN2, 0.0, MAX_THRESHOLD_BITS),
                 _within(round(target), 1, MAX_STRIDE))
    reached = segment(a, "entropy", s.threshold_bits * LN2).bytes_per_unit
    rise_reached = segment(a, "monotonic", s.rise_bits * LN2).bytes_per_unit
    note = (f"Fitted to {plural(target, 'byte')} per patch: θ = {s.threshold_bits:.3f} bits gives {reached:.2f}; "
            f"monotonic rise {s.rise_bits:.3f} bits gives {rise_reached:.2f}; static stride {s.stride}"
            f"{f' (the largest, {MAX_STRIDE})' if round(target) > MAX_STRIDE else ''}.")
    if abs(reached - target) > max(0.5, 0.1 * target):
        note += (f" {plural(target, 'byte')} per patch is out of reach on this text: the nearest θ in 0–"
                 f"{MAX_THRESHOLD_BITS} bits gives {reached:.2f}.")
    return s, note


def _within(x, lo, hi):
    return min(max(x, lo), hi)


def plural(n: float, unit: str) -> str:
    return f"{n:g} {unit}{'s' * (n != 1)}"


def notice(reading: Reading) -> str:
    """What the reader must know about this result: that the text was cut, or the model in use."""
    a = reading.analysis
    if reading.unread:
        total = len(a.data) + reading.unread
        return render.message(f"Reading the text: the first {len(a.data):,} of {total:,} bytes so far "
                              f"({100 * len(a.data) // total}%); the rest fills in as it arrives.", "warn")
    if a.truncated:
        return render.message(
            f"This text is {a.original_bytes:,} bytes; the size cap is {len(a.data):,} bytes, so everything below "
            f"covers the first {len(a.data):,} bytes only ({a.original_bytes - len(a.data):,} bytes not analysed).",
            "warn")
    return render.message(f"Entropy model: {reading.model} \u00b7 {len(a.data):,} bytes read in "
                          f"{reading.model_seconds * 1000:.0f} ms.")


def progress_view(reading: Reading, s: Settings) -> tuple[str, str]:
    """The notice and the headline numbers of a reading still under way: cheap enough to redraw as the text is
    read (the text, the charts and the comparison are drawn for the first window and again at the end)."""
    return notice(reading), render.summary_view(reading.analysis, patches(reading, s), None, "BPE")


def view(reading: Reading, s: Settings, extra: str = "") -> View:
    """Cut the reading by every scheme and draw the page (no model run)."""
    return draw(reading, s, schemes(reading, s), extra)


def draw(reading: Reading, s: Settings, cut: list[tuple[str, Segmentation | None, str]], extra: str = "") -> View:
    """The page for a reading already cut by `schemes`; `extra` is a note shown under the notice."""
    main = cut[0][1]
    assert main is not None
    bpe_name, bpe = next(iter(reading.bpe.items()), ("BPE", None))
    sizes = [("entropy patches", main)] + [(f"{name} tokens", seg) for name, seg in reading.bpe.items()]
    a = reading.analysis
    return View(notice(reading) + render.message(extra),
                render.summary_view(a, main, bpe, bpe_name, reading.models_bpb),
                text(reading, s, main),
                plots.entropy_chart(a, main, s.threshold_bits),
                plots.size_histogram(sizes),
                render.comparison_view(a.data, cut, PREVIEW_BYTES))


def table(reading: Reading, s: Settings) -> pd.DataFrame:
    """The patch table (its first TABLE_ROWS patches), drawn only while it is open on the page."""
    return render.patch_table(reading.analysis, patches(reading, s), TABLE_ROWS)


def export(reading: Reading, s: Settings, folder: Path) -> list[Path]:
    """Per-byte CSV, the full JSON report (with every scheme's counts) and the chart as HTML, in `folder`."""
    cut = schemes(reading, s)
    main = cut[0][1]
    a = reading.analysis
    csv, js, chart = folder / "blt-bytes.csv", folder / "blt-report.json", folder / "blt-entropy-chart.html"
    pd.DataFrame(rows(a, main)).to_csv(csv, index=False)
    doc = report(a, main)
    doc["summary"].update(model=reading.model, threshold_bits=round(s.threshold_bits, 6))
    doc["schemes"] = counts(cut)
    js.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    plots.entropy_chart(a, main, s.threshold_bits).write_html(chart, include_plotlyjs=True)  # works offline
    return [csv, js, chart]


BOMS = [(codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")]  # UTF-32 LE's BOM starts as UTF-16 LE's


def decode_upload(data: bytes, name: str) -> tuple[str, str]:
    """The text of an uploaded file and a note on its encoding. UTF-8 is read as it is; a byte-order mark names
    UTF-8, UTF-16 or UTF-32; other bytes are read as Latin-1 when they can only be Latin-1 text (no NUL, no
    C1 control), with a notice. Anything else is refused with a ValueError that says why."""
    for bom, encoding in BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), f"{name} is {encoding.upper().replace('-SIG', '')} (byte-order mark): decoded."
            except UnicodeDecodeError as e:
                raise ValueError(f"{name} starts with a {encoding.upper()} byte-order mark, but byte {e.start} "
                                 f"is not valid {encoding.upper()}: the file is damaged.") from e
    if 0 in data:
        raise ValueError(f"{name} holds a NUL byte at offset {data.index(0)}: it looks like a binary file (or "
                         "UTF-16/32 text without a byte-order mark). Upload text saved as UTF-8.")
    try:
        return data.decode("utf-8"), ""
    except UnicodeDecodeError as e:
        bad = e.start
    c1 = next((i for i, b in enumerate(data) if 0x80 <= b < 0xA0), None)
    if c1 is not None:
        raise ValueError(f"{name} is not UTF-8 (byte 0x{data[bad]:02X} at offset {bad}), and byte 0x{data[c1]:02X} "
                         f"at offset {c1} is a control character in Latin-1, so its encoding is unclear (Windows-1252? "
                         "binary?). Save it as UTF-8.")
    return data.decode("latin-1"), (f"{name} is not UTF-8 (byte 0x{data[bad]:02X} at offset {bad}); "
                                    "it was read as Latin-1 (ISO 8859-1): check that the text looks right.")
