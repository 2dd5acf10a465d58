"""The Gradio page and its API: `build_app()` wires the explorer's functions to components and endpoints.

The entropy model runs once per text (`analyse`), a window at a time, taking turns with other sessions
(`lanes`); the threshold slider, the target patch size and the scheme settings only re-cut the session's
cached reading (`repatch`), so they answer without the model.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import gradio as gr
import pandas as pd
from tokenizers import Tokenizer

from model import BLT, CheckpointError
from model.analysis import ngrams
from model.analysis import noise as noise_model
from model.analysis.reading import PATCH_SCHEMES, report, segment, solve_threshold
from model.baseline import BPEBaseline
from model.bpe import load_bpe_tokenizers
from model.checks import (
    MAX_STRIDE,
    MAX_THRESHOLD_BITS,
    check_choice,
    check_stride,
    check_target_patch_size,
    check_threshold_bits,
)
from model.defaults import default_threshold, shipped_records
from model.entropy_model import EntropyModel

from . import explorer, generation, lanes, noise, render, zerogpu
from .explorer import (
    DEFAULT_RISE_BITS,
    DEFAULT_STRIDE,
    DEFAULT_THRESHOLD_BITS,
    MAX_BYTES,
    Reading,
    Settings,
)
from .models import (
    SHIPPED,
    SHIPPED_BASELINE,
    Models,
    check_name,
    choices,
    default,
    source,
)
from .render import LN2

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"
MODEL_CONCURRENCY = 8  # sessions reading at once; their windows take the model's turns one at a time (lanes.Turns)
READ_WINDOW_BYTES = 512  # bytes per turn of the model: a short text waits for one window at most (~0.07 s)
# The text box's height in lines, fixed (lines == max_lines): Gradio's growing box measures its whole text twice on
# every change, which for a 100 KB text kept the browser busy 1.5 s before the text was even sent.
TEXT_LINES = 8
PARTIAL_EVERY_S = 1.5  # while a long text is read, its progress and numbers are redrawn this often
GENERATION_CONCURRENCY = 1  # generations at once (their own queue, so analyses do not wait behind them)
QUEUE_SIZE = 100
EXPORTS_KEPT = 16  # export folders kept on disk (older ones are removed); each chart embeds plotly (~5 MB)
HINT = "Paste or type some text above, upload a file, or pick an example."
# A click (or tap) on a character of a text view writes its byte index (data-b, a number the page wrote) into
# the n-gram view's byte position; nothing the user typed is read.
PICK_JS = """() => {
  const targets = {"blt-text-view": "ngram-pos", "noise-noisy-blt": "noise-ngram-pos"};
  document.addEventListener("click", (e) => {
    const cell = e.target.closest && e.target.closest("[data-b]");
    if (!cell) return;
    const view = Object.keys(targets).find((id) => cell.closest("#" + id));
    const input = view && document.querySelector("#" + targets[view] + " input");
    if (!input) return;
    input.value = String(parseInt(cell.dataset.b, 10));
    input.dispatchEvent(new Event("input", {bubbles: true}));
  });
}"""
LAUNCH = dict(max_file_size="10mb", state_session_capacity=1000, js=PICK_JS)  # pass to demo.launch()

ABOUT = """
**How to read the text.** Each cell is one character, coloured by the entropy (in bits) of the entropy model's
prediction of it: pale cells were easy to predict, red ones surprising. A dark bar marks where a patch starts:
BLT opens a new patch at every byte whose entropy is above the threshold θ, and its large transformer then
takes one step per patch instead of one per token. Where a patch boundary cuts a multi-byte character, its
bytes are drawn one by one in hex (`<E4>`) with the character above the first, so nothing is hidden. A
multi-byte character inside one patch is striped, one stripe per byte. Whitespace shows as ⋅ (space), ↵ (newline) and ⇥ (tab); invisible or
direction-changing characters by name (ZWJ, RLO, U+0085). Hover, tap or Tab to a cell for its bytes, entropy,
patch (numbered from 0, as in the downloads and the API) and the model's five best guesses for it.

**Controls.** Moving θ, the target patch size or the scheme settings re-cuts the text from the cached
entropies: the model does not run again. The comparison cuts the same bytes by each scheme: the entropy
rules, a fixed stride, a new patch after each space, and BPE tokens.
"""


def load_examples() -> list[tuple[str, str]]:
    """(label, text) of each example in assets/examples/examples.json."""
    index = json.loads((EXAMPLES_DIR / "examples.json").read_text(encoding="utf-8"))
    return [(e["label"], (EXAMPLES_DIR / e["file"]).read_text(encoding="utf-8")) for e in index]


def build_app(entropy_model: EntropyModel | None = None, bpe_tokenizers: dict[str, Tokenizer] | None = None,
              max_bytes: int = MAX_BYTES, threshold_bits: float | None = None, blt: BLT | None = None,
              baseline: tuple[BPEBaseline, Tokenizer] | None = None) -> gr.Blocks:
    """The explorer page and the generation tab. Models default to the shipped ones (tests pass their own,
    with Meta's θ unless `threshold_bits` is given); Llama 3's tokenizer is added when it loads (gated on the Hub)."""
    lanes.limit_arenas()  # before Gradio's threads first allocate
    models = Models(entropy_model, blt, baseline)
    if zerogpu.ON_ZEROGPU:
        models.preload()
    else:
        models.compile()
    shipped_threshold_bits = (threshold_bits if threshold_bits is not None else
                              DEFAULT_THRESHOLD_BITS if entropy_model is not None else default_threshold() / LN2)

    def threshold_bits_of(name: str) -> float:
        """The θ a model patches with: the shipped BLT's own (tuned to its entropy model), else its folder's or Meta's."""
        src = source("entropy model", name)
        return shipped_threshold_bits if src is None else default_threshold(src) / LN2
    stops: dict[str, threading.Event] = {}
    closed: set[str] = set()  # sessions whose page was closed during a generation
    uploaded: dict[str, str] = {}  # a session's note on the file it uploaded, shown with its analysis
    missing: dict[str, str] = {}
    if bpe_tokenizers is None:
        bpe_tokenizers, missing = load_bpe_tokenizers()
    examples = load_examples()
    start = default("entropy model")
    exports: deque[Path] = deque()

    turns, runs, kept, pages = lanes.Turns(), lanes.Runs(), lanes.Readings(), lanes.Pages()
    trimmer = lanes.Trimmer(lambda: pages.forget_others(demo.state_holder))  # touched only once the app is served

    def view_outputs(v: explorer.View) -> tuple:
        return v.notice, v.summary, v.text, v.chart, v.sizes, v.comparison

    def scorers() -> tuple[BLT, BPEBaseline, Tokenizer] | None:
        """The shipped BLT and baseline, which score every text Explore reads (quick on any machine)."""
        try:
            return pair(SHIPPED, SHIPPED_BASELINE)
        except CheckpointError:
            return None  # the summary shows – for the BLT's and the baseline's bits per byte

    def readings(text: str, name: str, session: str | None) -> Iterator[Reading]:
        """`text` read a window per turn of the model, so other sessions' windows run between. A page session
        reuses its last reading, keeps the newest, and stops when its text box changes or the page closes; the API
        (session None) reads each request whole."""
        if session:
            runs.want(session, text)
        before = kept.get(session) if session else None
        parts = explorer.readings(text, models.entropy.get(name), name, bpe_tokenizers, missing, max_bytes, before,
                                  READ_WINDOW_BYTES)
        while not session or runs.current(session, text):
            trimmer.touch()
            with turns.turn():
                reading = next(parts, None)
            if reading is None:
                return
            if session and not reading.unread and (scoring := scorers()) is not None:
                # the BLT's and the baseline's bits per byte for the page's summary, outside the model's turns:
                # other sessions' windows run beside them instead of waiting
                reading.models_bpb = explorer.scores(reading.analysis.data, *scoring, before)
            if session:
                kept.put(session, reading)
            yield reading

    def read(text: str, name: str) -> Reading:
        *_, reading = readings(text, name, None)
        return reading

    def settings(threshold: float, rise: float = DEFAULT_RISE_BITS, stride: float = DEFAULT_STRIDE,
                 view_from: float = 0) -> Settings:
        return Settings(check_threshold_bits(threshold), check_threshold_bits(rise, "the monotonic rise"),
                        check_stride(stride), int(view_from))

    def ngram_pick(position: float | None, request: gr.Request) -> str:
        """The hash n-grams of the picked byte of the session's text, in the shipped BLT's buckets."""
        reading, scoring = kept.get(request.session_hash), scorers()
        if reading is None or scoring is None:
            return gr.skip()
        return noise.ngram_view(reading.analysis.data, position, scoring[0].config)

    @zerogpu.gpu(zerogpu.for_text)
    def analyse(text: str, name: str, threshold: float, rise: float, stride: float, request: gr.Request,
                progress=gr.Progress()) -> Iterator[tuple]:
        yield from read_and_draw(text, name, threshold, rise, stride, request, progress)

    def read_and_draw(text: str, name: str, threshold: float, rise: float, stride: float, request: gr.Request,
                      progress: gr.Progress) -> Iterator[tuple]:
        """A new text: the model reads it once, window by window; the first window's view shows at once and
        fills in as the rest arrives. The view starts at byte 0."""
        if not text or not text.strip():
            kept.drop(request.session_hash)  # the knobs have nothing to re-cut
            runs.want(request.session_hash, text)
            yield (gr.update(visible=False), render.message(HINT), "", "", None, None, "")
            return
        shown, note = None, uploaded.pop(request.session_hash, "")
        try:
            s = settings(threshold, rise, stride)
            for reading in readings(text, name, request.session_hash):
                n = len(reading.analysis.data)
                if reading.unread:
                    progress(n / (n + reading.unread), desc="Reading the text with the entropy model")
                    if shown is not None:  # later windows: only the notice and the numbers (the rest is heavy)
                        if time.perf_counter() - shown >= PARTIAL_EVERY_S:
                            shown = time.perf_counter()
                            yield (gr.skip(), *explorer.progress_view(reading, s), *[gr.skip()] * 4)
                        continue
                    shown = time.perf_counter()
                pager = gr.update(value=0, maximum=max(1, n - 1), visible=n > explorer.VIEW_BYTES)
                yield (pager, *view_outputs(explorer.view(reading, s, note)))
        except (ValueError, CheckpointError) as e:
            yield (gr.skip(), render.message(str(e), "error"), *[gr.skip()] * 5)

    def edited(text: str, request: gr.Request) -> None:
        """The text changed: a run for an older text stops at its next window (the new one is queued)."""
        runs.want(request.session_hash, text)

    def session_reading(request: gr.Request) -> Reading | None:
        return kept.get(request.session_hash)

    def repatch(threshold: float, rise: float, stride: float, view_from: float, request: gr.Request) -> tuple:
        reading = session_reading(request)
        if reading is None:
            return tuple(gr.skip() for _ in range(6))
        try:
            return view_outputs(explorer.view(reading, settings(threshold, rise, stride, view_from)))
        except ValueError as e:
            return (render.message(str(e), "error"), *[gr.skip()] * 5)

    def fill_table(threshold: float, is_open: bool, request: gr.Request) -> pd.DataFrame:
        """The patch table, drawn only while its accordion is open (a big table is slow for the browser)."""
        reading = session_reading(request)
        if reading is None or not is_open:
            return gr.skip()
        return explorer.table(reading, Settings(threshold))

    def page(threshold: float, view_from: float, request: gr.Request) -> str:
        """Another window of a long text: only the text view is drawn again."""
        reading = session_reading(request)
        if reading is None:
            return gr.skip()
        s = Settings(threshold, view_from=int(view_from))
        return explorer.text(reading, s, explorer.patches(reading, s))

    def fit(target: float | None, view_from: float, request: gr.Request) -> tuple:
        reading = session_reading(request)
        try:
            if reading is None:
                raise ValueError("Analyse a text first.")
            s, note = explorer.fit(reading, check_target_patch_size(target))
        except ValueError as e:
            return (gr.skip(), gr.skip(), gr.skip(), render.message(str(e), "error"), *[gr.skip()] * 5)
        s.view_from = int(view_from)
        return (s.threshold_bits, s.rise_bits, s.stride, *view_outputs(explorer.view(reading, s, note)))

    @zerogpu.gpu(lambda name, active, text, *_, **__: zerogpu.for_text(text))
    def switch_model(name: str, active: str, text: str, threshold: float, rise: float, stride: float,
                     request: gr.Request, progress=gr.Progress(track_tqdm=True)) -> Iterator[tuple]:
        progress(0.05, desc=f"Loading {name}")
        try:
            models.entropy.get(name)
        except (ValueError, CheckpointError) as e:
            note = render.message(f"Could not load {name}: {e} The page keeps using {active}.", "error")
            yield (active, gr.update(value=active), gr.skip(), gr.skip(), note, *[gr.skip()] * 5)
            return
        theta = threshold_bits_of(name)
        for out in read_and_draw(text, name, theta, rise, stride, request, progress):
            yield (name, gr.skip(), theta, *out)

    def load_file(path: str | None, request: gr.Request) -> tuple:
        """The file's text into the text box (which analyses it, showing the file's note with the result); the
        upload box is emptied for the next file."""
        if path is None:
            return gr.skip(), gr.skip(), gr.skip()
        name, data = Path(path).name, Path(path).read_bytes()
        try:
            text, note = explorer.decode_upload(data, name)
        except ValueError as e:
            return gr.skip(), render.message(str(e), "error"), None
        uploaded[request.session_hash] = f"Loaded {name} ({len(data):,} bytes). {note}".strip()
        return text, render.message(uploaded[request.session_hash]), None

    def export(threshold: float, rise: float, stride: float, request: gr.Request) -> tuple:
        reading = session_reading(request)
        if reading is None or reading.unread:
            why = "Analyse a text first." if reading is None else "Wait until the whole text is read."
            return gr.skip(), render.message(why, "error")
        folder = Path(tempfile.mkdtemp(prefix="blt-explorer-"))
        exports.append(folder)
        while len(exports) > EXPORTS_KEPT:
            shutil.rmtree(exports.popleft(), ignore_errors=True)
        try:
            return [str(f) for f in explorer.export(reading, settings(threshold, rise, stride), folder)], gr.skip()
        except ValueError as e:
            return gr.skip(), render.message(str(e), "error")

    @zerogpu.gpu(zerogpu.for_text)
    def api_analyze(text: str, threshold_bits: float | None = None, target_patch_size: float | None = None,
                    scheme: Literal["entropy", "monotonic", "static", "space", "byte"] = "entropy",
                    stride: int = DEFAULT_STRIDE, model: str = start) -> dict:
        """Per-byte entropies and the patches of `text`: {"summary", "bytes", "patches"}, as the JSON download.
        θ defaults to the model's own; a target patch size, when given, solves θ instead."""
        try:
            check_choice(scheme, PATCH_SCHEMES, "scheme (BPE tokens are counted by /compare)")
            stride = check_stride(stride)
            bits = threshold_bits_of(model) if threshold_bits is None else check_threshold_bits(threshold_bits)
            a = read(text, model).analysis
            threshold = bits * LN2
            if target_patch_size is not None:
                threshold, _ = solve_threshold(a, check_target_patch_size(target_patch_size), scheme == "monotonic")
            return report(a, segment(a, scheme, threshold, stride))
        except (ValueError, CheckpointError) as e:
            raise gr.Error(str(e)) from e

    @zerogpu.gpu(zerogpu.for_text)
    def api_compare(text: str, threshold_bits: float | None = None, rise_bits: float = DEFAULT_RISE_BITS,
                    stride: int = DEFAULT_STRIDE, model: str = start) -> list[dict]:
        """Units and bytes per unit of `text` under every scheme (entropy rules, static, space, BPE), one record
        each; θ defaults to the model's own."""
        try:
            s = settings(threshold_bits_of(model) if threshold_bits is None else threshold_bits, rise_bits, stride)
            cut = explorer.schemes(read(text, model), s)
        except (ValueError, CheckpointError) as e:
            raise gr.Error(str(e)) from e
        return explorer.counts(cut)

    def arm_stop(request: gr.Request) -> None:
        """Generate was pressed: a fresh stop flag for the session's run, set by Stop even while it is queued."""
        stops[request.session_hash] = threading.Event()

    def pair(blt_name: str, baseline_name: str, progress: gr.Progress | None = None) -> tuple[BLT, BPEBaseline, Tokenizer]:
        """The chosen BLT and baseline, each loaded on first use (with progress) and shared by every session."""
        check_name("BLT", blt_name), check_name("baseline", baseline_name)
        if progress is not None:
            progress(0.0, desc=f"Loading {blt_name}")
        blt_model = models.blt.get(blt_name)
        if progress is not None:
            progress(0.0, desc=f"Loading {baseline_name}")
        return blt_model, *models.baseline.get(baseline_name)

    @zerogpu.gpu(zerogpu.for_generation)
    def generate_both(prompt: str, length: float, temperature: float, top_k: float | None, top_p: float, seed: float | None,
                      count_flops: bool, blt_name: str, baseline_name: str, request: gr.Request,
                      progress=gr.Progress(track_tqdm=True)) -> Iterator[tuple]:
        """Both models generate, streaming their texts; when they finish (or are stopped) the costs are drawn."""
        rest = [gr.skip()] * 8
        stop = stops.setdefault(request.session_hash, threading.Event())
        if stop.is_set():
            yield (render.message("Stopped before it started."), gr.skip(), gr.skip(), *rest)
            del stops[request.session_hash]
            return
        trimmer.touch()
        try:
            req = generation.Request(prompt or "", length, temperature, top_k, top_p, seed, count_flops).check()
            blt_model, baseline_model, tokenizer = pair(blt_name, baseline_name, progress)
            duels = generation.run(blt_model, baseline_model, tokenizer, req, stop.is_set)
        except (ValueError, CheckpointError) as e:
            yield (render.message(str(e), "error"), gr.skip(), gr.skip(), *rest)
            return
        duel = None
        try:
            for duel in generation.throttled(duels):
                trimmer.touch()
                done = len(duel.blt_bytes) + len(duel.baseline_bytes)
                line = generation.status(duel, req)
                progress(done / (2 * req.max_new_bytes), desc=line)
                yield (render.message(line), *generation.streaming(duel), *rest)
        finally:
            if stops.get(request.session_hash) is stop:
                del stops[request.session_hash]  # a session's stop flag lives as long as its run
        if request.session_hash in closed:
            closed.discard(request.session_hash)
            return
        if duel is None or not duel.blt:
            return
        progress(1.0, desc="Measuring and drawing")
        r = generation.finish(duel, blt_model, baseline_model, tokenizer, bpe_tokenizers, (blt_name, baseline_name))
        yield (render.message(generation.status(duel, req, finished=True)), r.blt_text, r.baseline_text, r.costs,
               r.trace, r.flops, r.time, r.steps, r.latency, r.projection, r.formulas)

    def stop_generation(request: gr.Request) -> None:
        if request.session_hash in stops:
            stops[request.session_hash].set()

    def open_session(request: gr.Request) -> None:
        """A page opened: Gradio's state of its session is kept while it is open."""
        pages.opened(request.session_hash)

    def close_session(request: gr.Request) -> None:
        """The page was closed: its runs stop at their next step, its reading is dropped, and what Gradio keeps of
        it goes when the page is next idle."""
        if request.session_hash in stops:
            closed.add(request.session_hash)  # its generation ends without drawing
            stops[request.session_hash].set()
        runs.end(request.session_hash)
        pages.closed(request.session_hash)
        kept.drop(request.session_hash)
        uploaded.pop(request.session_hash, None)
        trimmer.touch()

    @zerogpu.gpu(zerogpu.for_text)
    def api_noise(text: str, kind: Literal[noise_model.KINDS] = noise.DEFAULT_KIND,
                  rate: float | None = None, seed: int = 0, blt_model: str = default("BLT"),
                  baseline_model: str = default("baseline")) -> dict:
        """`text` noised by `kind` (rate None: the paper's), read clean and noisy by the BLT, its entropy model and
        the baseline: {"noisy_text", "records": [clean, noisy]} with the noise lab's table fields."""
        trimmer.touch()  # what Gradio keeps of the call goes at the next quiet spell
        try:
            lab = noise_model.lab(text, kind, rate, seed, *pair(blt_model, baseline_model))
        except (ValueError, CheckpointError) as e:
            raise gr.Error(str(e)) from e
        return {"noisy_text": lab.noised.text, "records": lab.records()}

    def api_ngrams(text: str, position: int, blt_model: str = default("BLT")) -> dict:
        """The hash n-grams ending at byte `position` of `text`, one record per hash table of the BLT, and how
        many of the text's n-grams collide: {"records", "summary"}."""
        trimmer.touch()
        try:
            config = models.blt.get(blt_model).config  # refuses a name off the page's list
            return {"records": ngrams.ngram_records(text, position, config), "summary": ngrams.collisions(text, config)}
        except (ValueError, CheckpointError) as e:
            raise gr.Error(str(e)) from e

    @zerogpu.gpu(zerogpu.for_generation)
    def api_generate(prompt: str, max_new_bytes: int = generation.DEFAULT_NEW_BYTES, temperature: float = 0.0,
                     top_k: int | None = None, top_p: float | None = None, seed: int | None = 0,
                     blt_model: str = default("BLT"), baseline_model: str = default("baseline")) -> dict:
        """Both models continue `prompt`: {"blt", "baseline"} texts and "costs" (one record per model).
        `blt_model` and `baseline_model` are names from the page's lists (the defaults: the shipped models)."""
        trimmer.touch()
        try:
            req = generation.Request(prompt, max_new_bytes, temperature, top_k, top_p, seed).check()
            blt_net, baseline_net, tokenizer = pair(blt_model, baseline_model)
            duel = None
            for duel in generation.run(blt_net, baseline_net, tokenizer, req):
                pass
        except (ValueError, CheckpointError) as e:
            raise gr.Error(str(e)) from e
        bills = generation.costs(duel, blt_net, baseline_net)
        return {"blt": duel.blt_bytes.decode("utf-8", errors="replace"),
                "baseline": duel.baseline_bytes.decode("utf-8", errors="replace"),
                "costs": generation.cost_table(bills).to_dict(orient="records")}

    with gr.Blocks(title="BLT Explorer", delete_cache=(1800, 3600)) as demo:
        gr.HTML(render.STYLE, js_on_load=None)
        gr.Markdown("# BLT Explorer\nHow a Byte Latent Transformer reads your text: the entropy model's surprise at "
                    "every byte, and where BLT cuts the bytes into patches.")
        active = gr.State(start)
        with gr.Tab("Explore", id="explore"):
            with gr.Row():
                with gr.Column(scale=3):
                    text = gr.Textbox(value=examples[0][1], label="Text", lines=TEXT_LINES, max_lines=TEXT_LINES,
                                      elem_id="blt-input", placeholder=HINT)
                with gr.Column(scale=1, min_width=250):
                    upload = gr.File(label="…or upload a .txt, .md, .py or .json file", type="filepath", height=110,
                                     file_types=[".txt", ".md", ".py", ".json"], elem_id="blt-upload")
                    model_choice = gr.Dropdown(choices("entropy model"), value=start, label="Entropy model", elem_id="blt-model",
                                               info="Meta's models need a Hugging Face token with access (HF_TOKEN)")
                    run = gr.Button("Analyse", variant="primary", elem_id="blt-run")
            gr.Examples([[t] for _, t in examples], inputs=[text], example_labels=[label for label, _ in examples],
                        label="Examples: why patching is dynamic")
            notice = gr.HTML(js_on_load=None, elem_id="blt-notice")
            summary = gr.HTML(js_on_load=None, elem_id="blt-summary")
            with gr.Row(equal_height=True):
                threshold = gr.Slider(0, MAX_THRESHOLD_BITS, value=threshold_bits_of(start), step=0.001, scale=3,
                                      label="Entropy threshold θ (bits)", elem_id="blt-threshold",
                                      info=f"a byte whose prediction is more uncertain than θ opens a patch; the shipped "
                                           f"BLT uses {shipped_threshold_bits:.3f} bits, Meta's models "
                                           f"{DEFAULT_THRESHOLD_BITS:.3f} bits (1.3354 nats)")
                with gr.Column(scale=1, min_width=220):
                    target = gr.Number(4.5, label="Target average patch size (bytes)",
                                       info="solves θ (and the other schemes) for it", elem_id="blt-target")
                    fit_button = gr.Button("Fit θ to this size", size="sm")
            view_from = gr.Slider(0, 1, value=0, step=1, label="Text view from byte", visible=False, elem_id="blt-view-from",
                                  info=f"long texts are drawn {explorer.VIEW_BYTES:,} bytes at a time")
            text_view = gr.HTML(js_on_load=None, elem_id="blt-text-view")
            with gr.Row():
                chart = gr.Plot(label="Entropy per byte", scale=3, elem_id="blt-chart")
                sizes = gr.Plot(label="Patch sizes", scale=2, elem_id="blt-sizes")
            gr.Markdown("### The same text, cut by each scheme")
            with gr.Row():
                rise = gr.Slider(0, MAX_THRESHOLD_BITS, value=DEFAULT_RISE_BITS, step=0.001, elem_id="blt-rise",
                                 label="Monotonic rule: entropy rise over the previous byte (bits)")
                stride = gr.Slider(1, MAX_STRIDE, value=DEFAULT_STRIDE, step=1, label="Static patching: stride k (bytes)",
                                   elem_id="blt-stride")
            comparison = gr.HTML(js_on_load=None, elem_id="blt-comparison")
            with gr.Accordion("Patch table", open=False) as table_box:
                table = gr.Dataframe(label=f"Patches (the first {explorer.TABLE_ROWS:,}; the downloads hold all)",
                                     interactive=False, wrap=True, elem_id="blt-table")
            with gr.Accordion("Hash n-grams of a byte", open=True):
                ngram_pos = gr.Number(None, precision=0, minimum=0, elem_id="ngram-pos",
                                      label="Byte position (click or tap a character in the text, or type and use the arrow keys)")
                ngram_out = gr.HTML(js_on_load=None, elem_id="ngram-view")
            with gr.Row():
                export_button = gr.Button("Prepare downloads: per-byte CSV, JSON report, chart (HTML)", scale=1)
                files = gr.File(label="Downloads", file_count="multiple", interactive=False, scale=2, elem_id="blt-files")
            with gr.Accordion("How to read this page", open=False):
                gr.Markdown(ABOUT)
        with gr.Tab("Generate & compare", id="generate"):
            gr.Markdown("Both models continue the same prompt, byte for byte: the BLT takes a step of its global "
                        "transformer only when its entropy model opens a patch; the BPE baseline takes one per token. "
                        "The cost table and charts count each component's steps, FLOPs and time per generated byte.")
            with gr.Row():
                with gr.Column(scale=3):
                    gen_prompt = gr.Textbox(value=generation.DEFAULT_PROMPT, label="Prompt", lines=4, max_lines=10,
                                            elem_id="gen-prompt", placeholder="Empty: the BLT starts from BOS")
                    with gr.Row():
                        gen_run = gr.Button("Generate", variant="primary", elem_id="gen-run")
                        gen_stop = gr.Button("Stop", variant="stop", elem_id="gen-stop")
                with gr.Column(scale=2, min_width=280):
                    with gr.Row():
                        gen_blt = gr.Dropdown(choices("BLT"), value=default("BLT"), label="BLT", elem_id="gen-blt-model",
                                              info="Meta's need a Hugging Face token with access")
                        gen_baseline = gr.Dropdown(choices("baseline"), value=default("baseline"), label="BPE baseline",
                                                   elem_id="gen-baseline-model", info="loaded on first use")
                    gen_length = gr.Number(generation.DEFAULT_NEW_BYTES, label=f"Bytes to generate (1 to {generation.MAX_NEW_BYTES:,})",
                                           elem_id="gen-length")
                    temperature = gr.Slider(0, 2, value=0, step=0.05, label="Temperature (0 = greedy)", elem_id="gen-temperature")
                    with gr.Row():
                        top_k = gr.Number(0, minimum=0, precision=0, label="top-k (0 = off)", elem_id="gen-top-k")
                        top_p = gr.Number(1, label="top-p (0 to 1; 1 = off)", elem_id="gen-top-p")
                        seed = gr.Number(0, label="seed (empty = random)", elem_id="gen-seed")
                    count_flops = gr.Checkbox(False, label="Also measure FLOPs with torch's FlopCounterMode (slower)")
            gr.Examples([[t] for t in generation.EXAMPLE_PROMPTS], inputs=[gen_prompt], label="Prompts")
            gen_notice = gr.HTML(js_on_load=None, elem_id="gen-notice")
            with gr.Row():
                with gr.Column():
                    gr.Markdown("**BLT** (entropy colours, patches as generation cut them)")
                    blt_out = gr.HTML(js_on_load=None, elem_id="gen-blt")
                with gr.Column():
                    gr.Markdown("**BPE baseline** (its tokens)")
                    baseline_out = gr.HTML(js_on_load=None, elem_id="gen-baseline")
            gen_costs = gr.Dataframe(label="Cost per generated byte", interactive=False, wrap=True, elem_id="gen-costs")
            with gr.Row():
                gen_flops = gr.Plot(label="FLOPs per byte", elem_id="gen-flops")
                gen_time = gr.Plot(label="Time per byte", elem_id="gen-time")
            with gr.Row():
                gen_steps = gr.Plot(label="Steps", elem_id="gen-steps")
                gen_latency = gr.Plot(label="Latency", elem_id="gen-latency")
            with gr.Accordion("Per-byte trace of the BLT", open=False):
                gen_trace = gr.Dataframe(interactive=False, elem_id="gen-trace")
            with gr.Accordion("Training compute of the shipped models", open=False):
                gr.Markdown("The shipped BLT and BPE baseline were trained on the same corpus to the same training "
                            "FLOPs (three forward passes a step), so their bits per byte compare like for like. The "
                            "BLT's entropy model was trained first, on its own, and is counted apart. Full record: "
                            "`assets/README.md`.")
                gr.Dataframe(generation.training_table(shipped_records()), interactive=False, elem_id="gen-training")
            with gr.Accordion("At paper scale: BLT-1B and BLT-7B against Llama 3 on this text", open=True):
                gen_projection = gr.Dataframe(interactive=False, elem_id="gen-projection")
                gen_formulas = gr.Markdown()
        with gr.Tab("Noise lab", id="noise"):
            noise.build_tab(pair, examples, dict(concurrency_id="model", concurrency_limit=MODEL_CONCURRENCY,
                                                           api_visibility="private"))

        knobs = [threshold, rise, stride, view_from]
        views = [notice, summary, text_view, chart, sizes, comparison]
        table_open = gr.State(False)
        model_run = dict(concurrency_id="model", concurrency_limit=MODEL_CONCURRENCY, api_visibility="private")
        drawing = dict(concurrency_id="draw", concurrency_limit=2, api_visibility="private", show_progress="hidden",
                       trigger_mode="always_last")
        table_io = dict(fn=fill_table, inputs=[threshold, table_open], outputs=table, **drawing)
        analyse_io = dict(fn=analyse, inputs=[text, active, threshold, rise, stride], outputs=[view_from, *views],
                          show_progress="minimal", **model_run)
        demo.load(**analyse_io).then(**table_io)
        text.change(edited, text, None, queue=False, api_visibility="private")
        text.change(**{**analyse_io, "trigger_mode": "always_last"}).then(**table_io)
        run.click(**analyse_io).then(**table_io)
        upload.upload(load_file, upload, [text, notice, upload], api_visibility="private")
        model_choice.input(switch_model, [model_choice, active, text, threshold, rise, stride],
                           [active, model_choice, threshold, view_from, *views], **model_run).then(**table_io)
        for knob in (threshold, rise, stride):
            knob.input(repatch, knobs, views, **drawing).then(**table_io)
        view_from.input(page, [threshold, view_from], text_view, **drawing)
        for trigger in (fit_button.click, target.submit):
            trigger(fit, [target, view_from], [threshold, rise, stride, *views], **drawing).then(**table_io)
        table_box.expand(lambda: True, None, table_open, api_visibility="private").then(**table_io)
        table_box.collapse(lambda: False, None, table_open, api_visibility="private")
        for trigger in (ngram_pos.change, text_view.change):  # a new text redraws the view for its own bytes
            trigger(ngram_pick, ngram_pos, ngram_out, api_visibility="private", show_progress="hidden")
        export_button.click(export, [threshold, rise, stride], [files, notice], api_visibility="private")
        gen_outputs = [gen_notice, blt_out, baseline_out, gen_costs, gen_trace, gen_flops, gen_time, gen_steps,
                       gen_latency, gen_projection, gen_formulas]
        gen_run.click(arm_stop, None, None, queue=False, api_visibility="private").then(
            generate_both, [gen_prompt, gen_length, temperature, top_k, top_p, seed, count_flops, gen_blt, gen_baseline],
            gen_outputs,
                      concurrency_id="generate", concurrency_limit=GENERATION_CONCURRENCY, api_visibility="private",
                      show_progress_on=[gen_notice])
        gen_stop.click(stop_generation, None, None, queue=False, api_visibility="private")
        demo.load(open_session, None, None, queue=False, api_visibility="private")
        demo.unload(close_session)
        gr.api(api_generate, api_name="generate", concurrency_id="generate", concurrency_limit=GENERATION_CONCURRENCY)
        gr.api(api_analyze, api_name="analyze", concurrency_id="model", concurrency_limit=MODEL_CONCURRENCY)
        gr.api(api_compare, api_name="compare", concurrency_id="model", concurrency_limit=MODEL_CONCURRENCY)
        gr.api(api_noise, api_name="noise", concurrency_id="model", concurrency_limit=MODEL_CONCURRENCY)
        gr.api(api_ngrams, api_name="ngrams", concurrency_id="model", concurrency_limit=MODEL_CONCURRENCY)
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=2)
    return demo
