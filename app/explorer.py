"""What the page does with a text, apart from Gradio: read it once with the entropy model, then cut and draw
it for any settings. The web page, the API endpoints and the benchmark all go through these functions."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from tokenizers import Tokenizer

from model.analysis.bpb import baseline_bpb, blt_bpb
from model.analysis.reading import (
    Analysis,
    Segmentation,
    analyze,
    bpe_segmentation,
    report,
    rows,
    segment,
    solve_threshold,
)
from model.baseline import BPEBaseline
from model.blt import BLT
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
BPB_BYTES = 16_384  # bytes the BLT and the baseline score per text (both run in full; the entropy model reads all)


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
         missing: dict[str, str] | None = None, max_bytes: int = MAX_BYTES,
         models: tuple[BLT, BPEBaseline, Tokenizer] | None = None) -> Reading:
    """Run the entropy model once over the text (its first max_bytes) and tokenise it with each BPE tokenizer;
    with `models` (a BLT, the baseline and its tokenizer) also score it with both, on its first BPB_BYTES.
    Raises ValueError for empty text."""
    start = time.perf_counter()
    analysis = analyze(text, entropy_model, max_bytes)
    seconds = time.perf_counter() - start
    reading = Reading(analysis, model_name, tokenize(analysis, tokenizers), dict(missing or {}), seconds)
    if models is not None:
        blt, baseline, tokenizer = models
        data = analysis.data[:BPB_BYTES]
        data = data[: len(data.decode("utf-8", errors="ignore").encode())]  # whole characters for the tokenizer
        note = f" (its first {len(data):,} bytes)" if len(data) < len(analysis.data) else ""
        reading.models_bpb = (blt_bpb(blt, data), baseline_bpb(baseline, tokenizer, data), note)
    return reading


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
    """Settings whose entropy schemes and stride give `target` bytes per patch on this text, and a note."""
    theta, reached = solve_threshold(reading.analysis, target)
    rise, rise_reached = solve_threshold(reading.analysis, target, monotonic=True)
    s = Settings(theta / LN2, rise / LN2, max(1, round(target)))
    return s, (f"Fitted to {target:g} bytes per patch: θ = {s.threshold_bits:.3f} bits gives {reached:.2f}; "
               f"monotonic rise {s.rise_bits:.3f} bits gives {rise_reached:.2f}; static stride {s.stride}.")


def notice(reading: Reading) -> str:
    """What the reader must know about this result: that the text was cut, or the model in use."""
    a = reading.analysis
    if a.truncated:
        return render.message(
            f"This text is {a.original_bytes:,} bytes; the size cap is {len(a.data):,} bytes, so everything below "
            f"covers the first {len(a.data):,} bytes only ({a.original_bytes - len(a.data):,} bytes not analysed).",
            "warn")
    return render.message(f"Entropy model: {reading.model} \u00b7 {len(a.data):,} bytes read in "
                          f"{reading.model_seconds * 1000:.0f} ms.")


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
    plots.entropy_chart(a, main, s.threshold_bits).write_html(chart, include_plotlyjs="cdn")
    return [csv, js, chart]


def decode_upload(data: bytes, name: str) -> str:
    """The text of an uploaded file; a ValueError that says what is wrong for anything but UTF-8 text."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{name} is not UTF-8 text (byte 0x{data[e.start]:02X} at offset {e.start} is not valid "
                         "UTF-8): it looks like a binary file. Upload a .txt, .md, .py or .json file saved as UTF-8.") from e
    if data.count(0) > max(1, len(data) // 100):  # UTF-16 text and binary formats are full of NUL bytes
        raise ValueError(f"{name} is full of NUL bytes: it looks like a binary or UTF-16 file. Save it as UTF-8 text.")
    return text
