"""Command line: `python -m model analyze "TEXT"` prints per-byte entropies and the patches; `noise` noises a
text and reads both versions with the BLT, its entropy model and the BPE baseline; `ngrams` lists the hash
n-grams that end at a byte and their buckets.

    python -m model analyze "The famous composer from Salzburg"
    python -m model analyze --file notes.md --mode monotonic --threshold 0.5 --json
    python -m model analyze --model facebook/blt-entropy "Hello"
    python -m model noise --kind drop --rate 0.1 --seed 0 "The famous composer from Salzburg"
    python -m model ngrams --position 5 "The famous composer"
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .analysis import ngrams, noise
from .analysis.reading import SCHEMES, analyze, report, segment, solve_threshold
from .baseline import load_baseline
from .defaults import DEFAULT_SCHEME, default_threshold
from .loading import CheckpointError, load_blt, load_entropy_model
from .tokenizer import byte_glyph


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m model", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("analyze", help="entropy per byte and patch boundaries of a text")
    a.add_argument("text", nargs="?", help="the text (or use --file)")
    a.add_argument("--file", type=Path, help="read the text from a UTF-8 file")
    a.add_argument("--model", default=None, help="entropy model: Hub repo id or folder (default: the shipped one)")
    a.add_argument("--mode", choices=[s for s in SCHEMES if s != "bpe"], default=DEFAULT_SCHEME)
    a.add_argument("--threshold", type=float, default=None, help="nats (default: the model's own; the shipped BLT's, or Meta's 1.3354 for Meta's models)")
    a.add_argument("--target-patch-size", type=float, default=None, help="solve the threshold for this size")
    a.add_argument("--stride", type=int, default=4, help="static mode's patch size")
    a.add_argument("--max-patch-length", type=int, default=None)
    a.add_argument("--max-bytes", type=int, default=100_000)
    a.add_argument("--json", action="store_true", help="machine-readable output")
    n = sub.add_parser("noise", help="noise a text and read clean and noisy with the BLT and the BPE baseline")
    n.add_argument("text", nargs="?", help="the text (or use --file)")
    n.add_argument("--file", type=Path, help="read the text from a UTF-8 file")
    n.add_argument("--kind", choices=noise.KINDS, required=True)
    n.add_argument("--rate", type=float, default=None, help="default: the paper's (drop 0.1, randomcase 0.5, repeat 0.2; typos 0.05)")
    n.add_argument("--seed", type=int, default=0)
    n.add_argument("--blt", default=None, help="BLT: Hub repo id or folder (default: the shipped one)")
    n.add_argument("--baseline", default=None, help="BPE baseline folder (default: the shipped one)")
    n.add_argument("--json", action="store_true", help="machine-readable output")
    g = sub.add_parser("ngrams", help="the hash n-grams ending at a byte, their buckets, where else they are hit")
    g.add_argument("text", nargs="?", help="the text (or use --file)")
    g.add_argument("--file", type=Path, help="read the text from a UTF-8 file")
    g.add_argument("--position", type=int, required=True, help="byte index (from 0) in the text's UTF-8 bytes")
    g.add_argument("--blt", default=None, help="BLT whose hash tables to use (default: the shipped one)")
    g.add_argument("--json", action="store_true", help="machine-readable output")
    args = p.parse_args(argv)
    try:
        if (args.text is None) == (args.file is None):
            raise ValueError("give the text or --file, not both")
        text = args.text if args.file is None else args.file.read_bytes().decode("utf-8")
        if args.command == "noise":
            return _noise(args, text)
        if args.command == "ngrams":
            return _ngrams(args, text)
        analysis = analyze(text, load_entropy_model(args.model), args.max_bytes)
        threshold = default_threshold(args.model) if args.threshold is None else args.threshold
        if args.target_patch_size is not None:
            threshold, _ = solve_threshold(analysis, args.target_patch_size, args.mode == "monotonic")
        seg = segment(analysis, args.mode, threshold, args.stride, args.max_patch_length)
    except (ValueError, OSError, UnicodeDecodeError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = report(analysis, seg)
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
        return 0
    summary, records = out["summary"], out["bytes"]
    print(f"{'byte':>6} {'hex':>4} {'char':>6} {'H(bits)':>8} {'patch':>6}")
    for r in records:
        mark = "│" if r["starts_patch"] else " "
        print(f"{r['byte']:>6} {r['hex']:>4} {r['glyph']:>6} {r['entropy_bits']:>8.3f} {mark}{r['patch']:>5}")
    print()
    for s, e in seg.spans:
        print("│" + "".join(byte_glyph(b + 4) for b in analysis.data[s:e]), end="")
    print("│\n")
    print("  ".join(f"{k}: {v}" for k, v in summary.items() if v is not None))
    return 0


def _noise(args: argparse.Namespace, text: str) -> int:
    lab = noise.lab(text, args.kind, args.rate, args.seed, load_blt(args.blt), *load_baseline(args.baseline))
    records = lab.records()
    if args.json:
        print(json.dumps({"noisy_text": lab.noised.text, "records": records}, ensure_ascii=False))
        return 0
    print(f"kind: {args.kind}  rate: {lab.noised.rate}  seed: {args.seed}")
    print(f"noisy text: {lab.noised.text}\n")
    keys = [k for k in records[0] if k != "text"]
    print(f"{'':26}{'clean':>10}{'noisy':>10}{'change':>10}")
    for k in keys:
        a, b = records[0][k], records[1][k]
        change = "" if a is None or b is None else f"{b - a:+.4g}"
        print(f"{k:26}{_cell(a):>10}{_cell(b):>10}{change:>10}")
    return 0


def _cell(x: object) -> str:
    return "–" if x is None else f"{x:.4g}" if isinstance(x, float) else str(x)


def _ngrams(args: argparse.Namespace, text: str) -> int:
    config = load_blt(args.blt).config
    records = ngrams.ngram_records(text, args.position, config)
    summary = ngrams.collisions(text, config)
    if args.json:
        print(json.dumps({"records": records, "summary": summary}, ensure_ascii=False))
        return 0
    print(f"{'n':>2} {'f':>2} {'n-gram':<24} {'bucket':>7}  same n-gram at · collides with")
    for r in records:
        others = ", ".join(f"{c['ngram']}@{c['ends_at']}" for c in r["collides_at"]) or "–"
        print(f"{r['n']:>2} {r['hash_function']:>2} {r['ngram']:<24} {r['bucket']:>7}  {r['same_at'] or '–'} · {others}")
    print("\n" + ngrams.summary_line(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
