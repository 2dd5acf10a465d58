"""Server-side time for the explorer page to analyse 1 KB, 10 KB and 100 KB of text, split into model /
patching / rendering, and the page weight per KB of text. Goal: 10 KB in under 0.2 s.

    python benchmarks/bench_app.py [--model FOLDER] [--tokenizer FOLDER] [--threshold NATS] [--repeats 3] [--out FILE]

model      the entropy model over the text (`model.analysis.analyze`): what happens once per text;
patching   BPE tokenisation and every scheme's cut (`explorer.tokenize`, `explorer.schemes`);
rendering  the page (`explorer.draw`) serialised as Gradio sends it (HTML strings, plotly JSON, table JSON).
Re-patching (the threshold slider) costs patching + rendering only. The text is the app's examples
(English, code, JSON, German, Chinese, Arabic, Hindi, emoji), repeated and cut to size at a character
boundary. Each stage reports the best of the repeats (the machine may be shared), after one warm-up run.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import machine_line  # noqa: E402

from app import explorer  # noqa: E402
from app.render import LN2  # noqa: E402
from app.ui import load_examples  # noqa: E402
from model import load_entropy_model  # noqa: E402
from model.analysis.reading import analyze  # noqa: E402
from model.bpe import SHIPPED, shipped_tokenizer  # noqa: E402
from model.defaults import default_threshold  # noqa: E402

SIZES_KB = (1, 10, 100)


def sample_text(n_bytes: int) -> str:
    """The examples, one after another, repeated and cut to n_bytes at a character boundary."""
    corpus = "\n\n".join(text for _, text in load_examples()).encode()
    data = (corpus * (n_bytes // len(corpus) + 1))[:n_bytes]
    return data.decode("utf-8", errors="ignore")


def page_bytes(view: explorer.View, table: pd.DataFrame) -> int:
    """Bytes of the page's outputs as Gradio sends them (the table counted as if open)."""
    html = sum(len(s.encode()) for s in (view.notice, view.summary, view.text, view.comparison))
    return html + len(view.chart.to_json()) + len(view.sizes.to_json()) + len(table.to_json(orient="split"))


def measure(text: str, entropy_model, tokenizers: dict, s: explorer.Settings) -> dict[str, float]:
    t0 = time.perf_counter()
    analysis = analyze(text, entropy_model, explorer.MAX_BYTES)
    t1 = time.perf_counter()
    reading = explorer.Reading(analysis, "bench", explorer.tokenize(analysis, tokenizers))
    cut = explorer.schemes(reading, s)
    t2 = time.perf_counter()
    view = explorer.draw(reading, s, cut)
    weight = page_bytes(view, explorer.table(reading, s))
    t3 = time.perf_counter()
    return {"model": t1 - t0, "patching": t2 - t1, "rendering": t3 - t2, "weight": weight,
            "patches": cut[0][1].units, "bytes": len(analysis.data)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="entropy model folder or repo id (default: the shipped one)")
    p.add_argument("--tokenizer", default=None, help="folder with the BPE tokenizer.json (default: the shipped one)")
    p.add_argument("--threshold", type=float, default=None,
                   help="θ in nats (default: the shipped BLT's own; Meta's 1.3354 with --model)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=None, help="also write the report to this file")
    args = p.parse_args()
    entropy_model = load_entropy_model(args.model)
    tokenizers = {SHIPPED: shipped_tokenizer(args.tokenizer)}
    theta = args.threshold or default_threshold(args.model)  # the page's default θ
    settings = explorer.Settings(threshold_bits=theta / LN2)
    params = sum(t.numel() for t in entropy_model.parameters())
    device = next(entropy_model.parameters()).device
    lines = [f"BLT Explorer page, server side ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
             f"{machine_line()}; device {device}",
             f"entropy model: {args.model or 'shipped (assets/blt)'}, {params / 1e6:.2f} M parameters; "
             f"BPE: {args.tokenizer or 'shipped (assets/baseline)'}; θ = {theta:.4f} nats",
             f"best of {args.repeats} runs after a warm-up; times in seconds", "",
             f"{'text':>7} {'patches':>8} {'model':>8} {'patching':>9} {'rendering':>10} {'total':>8} "
             f"{'re-patch':>9} {'page KB':>8} {'KB/KB':>6}"]
    for kb in SIZES_KB:
        text = sample_text(kb * 1000)
        measure(text, entropy_model, tokenizers, settings)  # warm-up
        runs = [measure(text, entropy_model, tokenizers, settings) for _ in range(args.repeats)]
        best = {k: min(r[k] for r in runs) for k in ("model", "patching", "rendering")}
        weight, patches, n = runs[-1]["weight"], runs[-1]["patches"], runs[-1]["bytes"]
        total = sum(best.values())
        lines.append(f"{kb:>5}KB {patches:>8,} {best['model']:>8.3f} {best['patching']:>9.3f} {best['rendering']:>10.3f} "
                     f"{total:>8.3f} {best['patching'] + best['rendering']:>9.3f} {weight / 1000:>8.0f} "
                     f"{weight / n:>6.0f}")
    lines += ["", "re-patch = patching + rendering: what the threshold slider costs (the model does not run).",
              "page KB = HTML + plotly JSON + table JSON sent to the browser; KB/KB = page bytes per byte of text."]
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
