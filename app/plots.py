"""Plotly charts: entropy per byte with the threshold and patch starts (the BLT paper's figure, interactive),
and the distribution of patch and token sizes."""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

from model.analysis.cost import GenerationCost
from model.analysis.reading import Analysis, Segmentation
from model.generate import (
    BASELINE,
    ENTROPY_MODEL,
    GLOBAL_TRANSFORMER,
    LOCAL_DECODER,
    LOCAL_ENCODER,
)
from model.tokenizer import OFFSET, byte_glyph, utf8_char_spans

from .render import LN2, char_glyph

MARKERS_UP_TO = 3000  # bytes; longer texts draw the entropy as a bare line
TICK_LABELS_UP_TO = 120  # bytes; short texts get one tick per byte, labelled with the character
INITIAL_WINDOW = 400  # bytes shown at first; double-click shows all
THRESHOLD_COLOUR, START_COLOUR, LINE_COLOUR = "#b91c1c", "#94a3b8", "#2563eb"
_AXIS = dict(gridcolor="#e5e7eb", linecolor="#94a3b8", zeroline=False)
# A light look spelled out: plotly's named templates are slow to copy and heavy to send.
_LOOK = dict(template="none", paper_bgcolor="white", plot_bgcolor="white", font=dict(size=12, color="#1f2937"),
             colorway=["#2563eb", "#f59e0b", "#10b981", "#a855f7"],
             margin=dict(l=55, r=20, t=70, b=40))


_BYTE_LABELS = [html.escape(f"{byte_glyph(b + OFFSET)} {b:02X}") for b in range(256)]


def _byte_labels(data: bytes) -> list[str]:
    """Per byte: its character's glyph and the byte in hex ("é C3", "é A9"), escaped: plotly reads a few HTML
    tags in labels, and user text must stay text. A lone byte of a cut character shows as <E4>."""
    if data.isascii():
        return [_BYTE_LABELS[b] for b in data]
    out = []
    for a, b in utf8_char_spans(data):
        if b - a == 1:
            out.append(_BYTE_LABELS[data[a]])
        else:
            glyph = html.escape(char_glyph(data[a:b].decode("utf-8")))
            out += [f"{glyph} {x:02X}" for x in data[a:b]]
    return out


def entropy_chart(analysis: Analysis, seg: Segmentation, threshold_bits: float | None) -> go.Figure:
    """Entropy (bits) of each byte's prediction, the threshold θ as a dashed line, patch starts as verticals."""
    n = len(analysis.data)
    bits = (analysis.byte_entropies.float() / LN2).numpy()
    labels = _byte_labels(analysis.data)
    patch = np.repeat(np.arange(1, seg.units + 1, dtype=np.int32), [e - s for s, e in seg.spans])
    top = float(max(bits.max(initial=0.0), threshold_bits or 0.0)) * 1.08 + 0.1
    # Patch starts as one comb-shaped path, (s, 0)-(s, top)-(s, 0) per start: a single path draws in a
    # fraction of the time of separate segments, and the return strokes lie on the x axis.
    comb_x = np.repeat(np.asarray(seg.starts, dtype=np.int32), 3)
    comb_y = np.tile(np.array([0, top, 0], dtype=np.float32), seg.units)
    fig = go.Figure([  # SVG, not WebGL: WebGL hangs browsers without a GPU
        go.Scatter(x=comb_x, y=comb_y, mode="lines", name="patch start", hoverinfo="skip",
                   line=dict(color=START_COLOUR, width=1, dash="dot", simplify=False)),
        go.Scatter(x0=0, dx=1, y=bits.astype(np.float32), mode="lines+markers" if n <= MARKERS_UP_TO else "lines",
                   name="entropy", line=dict(color=LINE_COLOUR, width=1.5), marker=dict(size=4),
                   text=np.array(labels), customdata=patch,  # numpy arrays: fast for plotly to check
                   hovertemplate="byte %{x}: %{text}<br>%{y:.2f} bits<br>patch %{customdata}<extra></extra>"),
    ])
    if threshold_bits is not None:
        fig.add_hline(y=threshold_bits, line=dict(color=THRESHOLD_COLOUR, dash="dash", width=1.5),
                      annotation_text=f"θ = {threshold_bits:.2f} bits", annotation_position="top right")
    xaxis = dict(_AXIS, title="byte", range=[-0.5, min(n, INITIAL_WINDOW) - 0.5])
    if n <= TICK_LABELS_UP_TO:
        xaxis.update(tickmode="array", tickvals=list(range(n)), ticktext=[t.rsplit(" ", 1)[0] for t in labels],
                     tickangle=0, title=None)
    fig.update_layout(_LOOK, height=360, xaxis=xaxis, dragmode="pan",
                      yaxis=dict(_AXIS, title="entropy (bits)", range=[0, top]),
                      legend=dict(orientation="h", y=1.12, x=0),
                      title=dict(text="Entropy of each byte's prediction; a byte above θ opens a patch", font=dict(size=13)))
    return fig


def size_histogram(segs: list[tuple[str, Segmentation]], cap: int = 24) -> go.Figure:
    """How many units have each size (bytes), one bar series per scheme; sizes above `cap` share the last bar."""
    fig = go.Figure()
    for label, seg in segs:
        sizes = np.minimum([e - s for s, e in seg.spans], cap)
        counts = np.bincount(sizes, minlength=cap + 1)[1:]
        fig.add_bar(x=[str(k) for k in range(1, cap)] + [f"{cap}+"], y=counts, name=label,
                    hovertemplate=f"{label}<br>%{{x}} bytes: %{{y}}<extra></extra>")
    fig.update_layout(_LOOK, height=300, barmode="group", xaxis=dict(_AXIS, title="size (bytes)", type="category"),
                      yaxis=dict(_AXIS, title="count"),
                      legend=dict(orientation="h", y=1.15, x=0),
                      title=dict(text="Patch and token sizes", font=dict(size=13)))
    return fig


COMPONENT_COLOURS = {ENTROPY_MODEL: "#a855f7", LOCAL_ENCODER: "#10b981", GLOBAL_TRANSFORMER: "#2563eb",
                     LOCAL_DECODER: "#f59e0b", BASELINE: "#64748b"}


def _component(name: str) -> str:
    return name.replace("_", " ")


def component_chart(bills: list[GenerationCost], per_byte: str, unit: str, title: str) -> go.Figure:
    """One stacked bar per model, a segment per component: `per_byte` names a GenerationCost field
    (flops_per_byte from the formulas, ms_per_byte measured)."""
    fig = go.Figure()
    for component, colour in COMPONENT_COLOURS.items():
        ys = [getattr(c, per_byte).get(component) for c in bills]
        if any(y for y in ys):
            fig.add_bar(x=[c.model for c in bills], y=ys, name=_component(component), marker_color=colour,
                        hovertemplate=f"{_component(component)}: %{{y:.3s}} {unit} per byte<extra></extra>")
    fig.update_layout(_LOOK, height=340, barmode="stack", xaxis=dict(_AXIS), yaxis=dict(_AXIS, title=f"{unit} per byte"),
                      legend=dict(orientation="h", y=1.15, x=0), title=dict(text=title, font=dict(size=13)))
    return fig


def steps_chart(bills: list[GenerationCost]) -> go.Figure:
    """How many times each component ran while generating: BLT's global transformer only once per patch."""
    fig = go.Figure()
    for c in bills:
        names = list(c.steps)
        fig.add_bar(x=[_component(k) for k in names], y=[c.steps[k] for k in names], name=c.model,
                    marker_color=[COMPONENT_COLOURS.get(k, LINE_COLOUR) for k in names],
                    hovertemplate=f"{c.model}: %{{x}} ran %{{y}} times for {c.new_bytes} bytes<extra></extra>")
    fig.update_layout(_LOOK, height=340, showlegend=False, xaxis=dict(_AXIS, type="category"),
                      yaxis=dict(_AXIS, title="steps"),
                      title=dict(text="Steps of each component for the generated bytes", font=dict(size=13)))
    return fig


def latency_chart(series: dict[str, tuple[list[int], list[float]]]) -> go.Figure:
    """Time to generate the first n bytes, per model: a straight line means per-byte latency stays flat."""
    fig = go.Figure()
    for name, (xs, ys) in series.items():
        fig.add_scatter(x=xs, y=ys, mode="lines", name=name, line=dict(width=2, shape="hv"),
                        hovertemplate=f"{name}: %{{x}} bytes in %{{y:.0f}} ms<extra></extra>")
    fig.update_layout(_LOOK, height=340, xaxis=dict(_AXIS, title="bytes generated"), yaxis=dict(_AXIS, title="ms"),
                      legend=dict(orientation="h", y=1.15, x=0),
                      title=dict(text="Time to generate the first n bytes", font=dict(size=13)))
    return fig


def noise_chart(columns: list[tuple[int | None, int | None, bool]], clean: Analysis, noisy: Analysis) -> go.Figure:
    """Per-byte entropy of the clean and the noisy text over their edit alignment (`columns`: clean byte,
    noisy byte, noised), the noised columns shaded: where the noise went, and what it did to the surprise."""
    bits = [(a.byte_entropies.float() / LN2).numpy() for a in (clean, noisy)]
    labels = [_byte_labels(a.data) for a in (clean, noisy)]
    x = np.arange(len(columns))
    top = float(max(b.max(initial=0.0) for b in bits)) * 1.08 + 0.1
    fig = go.Figure()
    fig.add_bar(x=x, y=[top if hit else None for _, _, hit in columns], name="noised", width=1.0,
                marker=dict(color="rgba(240,80,110,0.18)", line=dict(width=0)), hoverinfo="skip")
    for side, (name, colour) in enumerate((("clean", LINE_COLOUR), ("noisy", THRESHOLD_COLOUR))):
        ys = [None if c[side] is None else float(bits[side][c[side]]) for c in columns]
        text = [None if c[side] is None else f"byte {c[side]}: {labels[side][c[side]]}" for c in columns]
        fig.add_scatter(x=x, y=ys, mode="lines+markers" if len(columns) <= MARKERS_UP_TO else "lines", name=name,
                        line=dict(color=colour, width=1.5), marker=dict(size=4), text=text, connectgaps=False,
                        hovertemplate=f"{name} %{{text}}<br>%{{y:.2f}} bits<extra></extra>")
    fig.update_layout(_LOOK, height=340, bargap=0, dragmode="pan",
                      xaxis=dict(_AXIS, title="alignment column (clean and noisy bytes side by side)",
                                 range=[-0.5, min(len(columns), INITIAL_WINDOW) - 0.5]),
                      yaxis=dict(_AXIS, title="entropy (bits)", range=[0, top]), legend=dict(orientation="h", y=1.12, x=0),
                      title=dict(text="Where the noise went: each byte's entropy, clean against noisy", font=dict(size=13)))
    return fig
