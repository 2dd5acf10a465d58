"""The "Noise lab" tab apart from Gradio: a text and its noisy version side by side, as the BLT patches them and
the BPE baseline tokenises them, with what the noise cost each model. All numbers come from
`model.analysis.noise`; the page, /noise and `python -m model noise` call the same `lab`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr
import pandas as pd
import plotly.graph_objects as go
from tokenizers import Tokenizer

from model.analysis import ngrams, noise
from model.analysis.noise import DEFAULT_RATES, KINDS, Lab, Reading
from model.baseline import BPEBaseline
from model.blt import BLT, BLTConfig
from model.loading import CheckpointError

from . import plots, render, zerogpu
from .models import choices, default
from .render import LN2

DEFAULT_KIND = "repeat"
KIND_LABELS = {"antspeak": "AntSpeak (upper case, spaced)", "drop": "Drop (remove characters)",
               "randomcase": "RandomCase", "repeat": "Repeat (up to 4×)", "uppercase": "UpperCase",
               "typos": "Typos (swap, insert, delete)"}
assert set(KIND_LABELS) == set(KINDS)
MEASURES = {"bytes": "bytes", "patches": "BLT patches", "bytes_per_patch": "bytes / patch", "tokens": "baseline tokens",
            "bytes_per_token": "bytes / token", "entropy_model_bpb": "entropy model bits/byte",
            "blt_bpb": "BLT bits/byte", "baseline_bpb": "baseline bits/byte"}


@dataclass
class View:
    notice: str
    noisy_text: str
    clean_blt: str
    noisy_blt: str
    clean_tokens: str
    noisy_tokens: str
    table: pd.DataFrame
    chart: go.Figure
    steps: pd.DataFrame


def view(lab: Lab) -> View:
    clean, noisy = lab.records()
    n = lab.noised
    changed = sum(a != b for a, b in n.pieces)
    rate = "" if n.rate is None else f" at rate {n.rate:g}"
    note = (f"{KIND_LABELS[n.kind]}{rate}, seed {n.seed}: {changed:,} edits; {clean['bytes']:,} bytes became "
            f"{noisy['bytes']:,}. The same seed always gives the same noise.")
    return View(render.message(note), n.text, _patches(lab.clean), _patches(lab.noisy), _tokens(lab.clean, "clean"),
                _tokens(lab.noisy, "noisy"), table(clean, noisy),
                plots.noise_chart(n.alignment(), lab.clean.analysis, lab.noisy.analysis), steps(lab))


def _patches(r: Reading) -> str:
    theta = r.patches.threshold / LN2 if r.patches.threshold is not None else None
    return render.text_view(r.analysis, r.patches, theta)


def _tokens(r: Reading, side: str) -> str:
    data = r.analysis.data
    return render.comparison_view(data, [(f"BPE baseline: the {side} text in its tokens", r.tokens, "")], len(data))


def table(clean: dict, noisy: dict) -> pd.DataFrame:
    """Measure, clean, noisy and the change, one row per field of the records."""
    rows = []
    for key, label in MEASURES.items():
        a, b = clean[key], noisy[key]
        rows.append({"measure": label, "clean": a, "noisy": b,
                     "change": None if a is None or b is None else round(b - a, 4)})
    return pd.DataFrame(rows)


def steps(lab: Lab) -> pd.DataFrame:
    """Each model's big steps on the noised region and on the rest, clean against noisy."""
    s = lab.steps()
    rows = []
    for model in ("BLT global steps", "baseline tokens"):
        for region, get in (("on the noised region", "on_noise"), ("elsewhere", "elsewhere"), ("all", "total")):
            a, b = getattr(s["clean"][model], get), getattr(s["noisy"][model], get)
            rows.append({"model": model, "region": region, "clean": a, "noisy": b, "extra steps": b - a})
    return pd.DataFrame(rows)


def ngram_view(data: bytes, position: float | None, config: BLTConfig) -> str:
    """The hash n-gram view for byte `position` of `data` (Explore's text or the noisy text)."""
    if position is None:
        return ""
    try:
        records = ngrams.ngram_records(data, position, config)
    except ValueError as e:
        return render.message(str(e), "error")
    return render.ngram_view(records, ngrams.summary_line(ngrams.collisions(data, config)))


def default_rate(kind: str) -> tuple[float, bool]:
    """The rate slider's value for a kind, and whether the kind takes a rate at all."""
    rate = DEFAULT_RATES.get(kind)
    return (0.0, False) if rate is None else (rate, True)


# --- the tab ------------------------------------------------------------------------------------------------

def build_tab(resolve: Callable[[str, str], tuple[BLT, BPEBaseline, Tokenizer]], examples: list[tuple[str, str]],
              concurrency: dict) -> None:
    """The Noise lab's components and events, inside the caller's gr.Tab. `resolve(blt, baseline)` gives the
    models by their names on the page's lists (ui.py's one resolver); `concurrency` is the model queue's settings."""
    gr.Markdown("The BLT reads bytes, the baseline reads BPE tokens: add the BLT paper's character noise (§6.2) to "
                "a text and see what each model makes of it: the BLT's patches coloured by entropy, the baseline's "
                "tokens, bits per byte of every model, and where their big steps went.")
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Textbox(value=examples[0][1], label="Text", lines=4, max_lines=10, elem_id="noise-input")
        with gr.Column(scale=2, min_width=260):
            kind = gr.Dropdown([(label, k) for k, label in KIND_LABELS.items()], value=DEFAULT_KIND, label="Noise",
                               elem_id="noise-kind")
            rate = gr.Slider(0, 1, value=DEFAULT_RATES[DEFAULT_KIND], step=0.01, label="Rate (the paper's by default)",
                             elem_id="noise-rate")
            seed = gr.Number(0, precision=0, label="Seed", elem_id="noise-seed")
            with gr.Row():
                blt_name = gr.Dropdown(choices("BLT"), value=default("BLT"), label="BLT", elem_id="noise-blt-model")
                baseline_name = gr.Dropdown(choices("baseline"), value=default("baseline"), label="BPE baseline",
                                            elem_id="noise-baseline-model")
            run = gr.Button("Add noise and compare", variant="primary", elem_id="noise-run")
    gr.Examples([[t] for _, t in examples], inputs=[text], example_labels=[label for label, _ in examples])
    notice = gr.HTML(js_on_load=None, elem_id="noise-notice")
    noisy_text = gr.Textbox(label="Noisy text", interactive=False, lines=2, max_lines=6, elem_id="noise-text")
    with gr.Row():
        with gr.Column():
            gr.Markdown("**Clean**: the BLT's patches")
            clean_blt = gr.HTML(js_on_load=None, elem_id="noise-clean-blt")
            clean_tokens = gr.HTML(js_on_load=None, elem_id="noise-clean-tokens")
        with gr.Column():
            gr.Markdown("**Noisy**: the BLT's patches (click a character for its hash n-grams)")
            noisy_blt = gr.HTML(js_on_load=None, elem_id="noise-noisy-blt")
            noisy_tokens = gr.HTML(js_on_load=None, elem_id="noise-noisy-tokens")
    numbers = gr.Dataframe(label="Clean against noisy", interactive=False, elem_id="noise-table")
    chart = gr.Plot(label="Where the noise went", elem_id="noise-chart")
    spent = gr.Dataframe(label="Where the big steps went: on the noised region against the rest", interactive=False,
                         elem_id="noise-steps")
    with gr.Accordion("Hash n-grams of a byte of the noisy text", open=True):
        pick = gr.Number(None, precision=0, minimum=0, label="Byte position (click or tap a character above, or type "
                         "and use the arrow keys)", elem_id="noise-ngram-pos")
        ngram_out = gr.HTML(js_on_load=None, elem_id="noise-ngram-view")
    lab_state = gr.State(None)

    @zerogpu.gpu(zerogpu.for_text)
    def noise_and_read(text: str, kind: str, rate: float, seed: float | None, blt_model: str, baseline_model: str,
                       progress=gr.Progress(track_tqdm=True)) -> tuple:
        try:
            blt, baseline, tokenizer = resolve(blt_model, baseline_model)
            lab = noise.lab(text, kind, rate if DEFAULT_RATES.get(kind) is not None else None,
                            0 if seed is None else seed, blt, baseline, tokenizer)
        except (ValueError, CheckpointError) as e:
            return (gr.skip(), render.message(str(e), "error"), *[gr.skip()] * 9)
        v = view(lab)
        return ((lab, blt.config), v.notice, v.noisy_text, v.clean_blt, v.noisy_blt, v.clean_tokens, v.noisy_tokens, v.table, v.chart,
                v.steps, gr.update(value=None))

    def show_ngrams(read: tuple[Lab, BLTConfig] | None, position: float | None) -> str:
        """The picked byte's n-grams in the buckets of the BLT that read the noisy text."""
        if read is None:
            return gr.skip()
        lab, config = read
        return ngram_view(lab.noisy.analysis.data, position, config)

    def kind_rate(kind: str) -> dict:
        value, takes = default_rate(kind)
        return gr.update(value=value, interactive=takes,
                         label="Rate (the paper's by default)" if takes else "Rate (this kind has none)")

    outputs = [lab_state, notice, noisy_text, clean_blt, noisy_blt, clean_tokens, noisy_tokens, numbers, chart, spent, pick]
    run.click(noise_and_read, [text, kind, rate, seed, blt_name, baseline_name], outputs, **concurrency)
    kind.input(kind_rate, kind, rate, api_visibility="private")
    for trigger in (pick.change, lab_state.change):
        trigger(show_ngrams, [lab_state, pick], ngram_out, api_visibility="private", show_progress="hidden")
