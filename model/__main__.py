"""Command line: `python -m model analyze "TEXT"` prints per-byte entropies and the patches.

    python -m model analyze "The famous composer from Salzburg"
    python -m model analyze --file notes.md --mode monotonic --threshold 0.5 --json
    python -m model analyze --model facebook/blt-entropy "Hello"
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .analysis.reading import SCHEMES, analyze, report, segment, solve_threshold
from .defaults import DEFAULT_SCHEME, default_threshold
from .loading import CheckpointError, load_entropy_model
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
    args = p.parse_args(argv)
    try:
        if (args.text is None) == (args.file is None):
            raise ValueError("give the text or --file, not both")
        text = args.text if args.file is None else args.file.read_bytes().decode("utf-8")
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


if __name__ == "__main__":
    sys.exit(main())
