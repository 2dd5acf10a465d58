"""Every noise kind on the Mozart example, read clean and noisy by the shipped BLT, its entropy model and the
shipped BPE baseline (the noise lab's numbers, as `python -m model noise` and /noise give them), and how many
of the example's hash n-grams collide.

    python benchmarks/noise_lab.py [--seed 0] [--out benchmarks/results/noise.txt]
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import machine_line  # noqa: E402

from app.ui import load_examples  # noqa: E402
from model import load_blt  # noqa: E402
from model.analysis import ngrams, noise  # noqa: E402
from model.baseline import load_baseline  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="also write the output here")
    args = p.parse_args()
    blt, (baseline, tokenizer) = load_blt(), load_baseline()
    label, text = load_examples()[0]
    lines = [f"Noise lab on the example {label!r} ({len(text.encode()):,} bytes), seed {args.seed}, each kind at the "
             f"paper's rate ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)", machine_line(),
             "models: shipped BLT (assets/blt, its entropy model inside), shipped BPE baseline (assets/baseline)",
             "bits per byte (bpb) clean -> noisy; steps = BLT global steps (patches) and baseline tokens, clean -> noisy,"
             " and how many of the noisy text's touch the noise", ""]
    head = (f"{'kind':>10} {'rate':>5} {'bytes':>11} {'entropy bpb':>13} {'BLT bpb':>13} {'baseline bpb':>13} "
            f"{'BLT steps':>11} {'on noise':>8} {'tokens':>11} {'on noise':>8}")
    lines += [head, "-" * len(head)]
    for kind in noise.KINDS:
        clean, noisy = noise.lab(text, kind, None, args.seed, blt, baseline, tokenizer).records()

        def pair(key: str, fmt: str = "") -> str:
            return f"{clean[key]:{fmt}}->{noisy[key]:{fmt}}"

        rate = noise.DEFAULT_RATES[kind]
        lines.append(f"{kind:>10} {'–' if rate is None else f'{rate:g}':>5} {pair('bytes'):>11} "
                     f"{pair('entropy_model_bpb', '.3f'):>13} {pair('blt_bpb', '.3f'):>13} {pair('baseline_bpb', '.3f'):>13} "
                     f"{pair('patches'):>11} {noisy['global_steps_on_noise']:>8} {pair('tokens'):>11} "
                     f"{noisy['tokens_on_noise']:>8}")
    lines += ["", "hash n-grams of the clean example: " + ngrams.summary_line(ngrams.collisions(text, blt.config))]
    out = "\n".join(lines)
    print(out)
    if args.out:
        args.out.write_text(out + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
