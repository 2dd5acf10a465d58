"""One training recipe for the three shipped models: entropy model, BLT and BPE baseline.

    python -m model.training.train entropy  --corpus data/corpus --out runs/entropy  --minutes 35
    python -m model.training.train baseline --corpus data/corpus --out runs/baseline --minutes 35
    python -m model.training.train blt      --corpus data/corpus --out runs/blt --entropy-model runs/entropy/export --minutes 45

The learning rate follows a cosine over *training wall time*, so a run fits its budget on any machine, or
over *training FLOPs* with `--flops`, so two models can be trained at the same compute. Every step's FLOPs
are counted (model.analysis.cost; a frozen entropy model apart) and recorded with the bytes seen. Runs checkpoint every few minutes and resume from `--out` when started again with the same command. At
the end the model is exported (safetensors + JSON config) with a record of how it was made.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import patcher
from ..analysis.bpb import bpe_model_bpb, byte_model_bpb
from ..analysis.cost import blt_training_flops, lm_training_flops
from ..baseline import BaselineConfig, BPEBaseline, save_baseline
from ..blt import BLT, BLTConfig
from ..bpe import train_tokenizer
from ..devices import compute_dtype, cpu_model, default_device
from ..entropy_model import EntropyModel, EntropyModelConfig
from ..layers import TransformerConfig
from ..loading import load_entropy_model, save_blt
from ..patcher import PatchingConfig
from ..tokenizer import BOS_ID, OFFSET
from .corpus import Corpus

ENGLISH_PROSE = "en_prose"


# --- the shipped sizes (shared/corpus.md: what a 2-core CPU can train in under an hour) ---------------


def entropy_config() -> EntropyModelConfig:
    return EntropyModelConfig(dim=256, n_layers=4, n_heads=4, sliding_window=512)


def global_shape() -> TransformerConfig:
    """BLT's global transformer; the baseline uses the same shape."""
    return TransformerConfig(dim=384, n_layers=4, n_heads=6)


def blt_config(entropy: EntropyModelConfig, threshold: float) -> BLTConfig:
    local = dict(n_heads=4, sliding_window=512)
    return BLTConfig(TransformerConfig(256, 1, **local), global_shape(), TransformerConfig(256, 2, **local),
                     cross_attn_k=2, hash_vocab=2048, patching=PatchingConfig("entropy", threshold),
                     entropy_model=entropy)


# --- tasks: what each model reads and how its loss is counted -----------------------------------------


def init_weights(model: nn.Module, std: float = 0.02) -> nn.Module:
    """GPT-2 style: normal(0, 0.02) for every matrix, residual output projections scaled by 1/sqrt(2·layers)."""
    n_layers = sum(1 for n, _ in model.named_modules() if n.endswith("feed_forward"))
    for name, p in model.named_parameters():
        if p.dim() == 2:
            scale = (2 * max(n_layers, 1)) ** -0.5 if name.endswith(("wo.weight", "w2.weight")) else 1.0
            nn.init.normal_(p, std=std * scale)
    return model


def byte_batch(corpus: Corpus, rng: np.random.Generator, batch: int, seq_len: int, device: torch.device) -> Tensor:
    """[batch, seq_len + 1] byte ids, BOS first: the model sees a document start as it will at inference."""
    data = torch.from_numpy(corpus.sample_batch(rng, batch, seq_len).astype(np.int64)) + OFFSET
    return torch.cat([torch.full((batch, 1), BOS_ID), data], dim=1).to(device)


@dataclass
class Task:
    model: nn.Module
    batch: Callable[[np.random.Generator], tuple[Tensor, ...]]
    loss: Callable[..., tuple[Tensor, int, float]]  # (mean loss in nats, bytes it covered, training FLOPs)
    bits_per_byte: Callable[[bytes], float]
    export: Callable[[Path, dict], None]
    config: dict


def entropy_task(args: argparse.Namespace, corpus: Corpus, device: torch.device) -> Task:
    model = init_weights(EntropyModel(entropy_config())).to(device)

    def loss(tokens: Tensor) -> tuple[Tensor, int, float]:
        logits = model.window_logits(tokens[:, :-1])
        rows, seq_len = tokens[:, 1:].shape
        flops = lm_training_flops(model.config.transformer(), model.config.vocab_size, rows, seq_len)
        return F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten()), rows * seq_len, flops

    def export(folder: Path, record: dict) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()},
                  str(folder / "model.safetensors"))
        (folder / "config.json").write_text(json.dumps({"args": model.config.to_dict(), "record": record}, indent=2))

    return Task(model, lambda rng: (byte_batch(corpus, rng, args.batch, args.seq_len, device),), loss,
                lambda data: byte_model_bpb(model.window_logits, data, args.seq_len, device), export,
                model.config.to_dict())


def english_threshold(entropy_model: EntropyModel, corpus: Corpus, target: float, device: torch.device) -> tuple[float, float]:
    """Global threshold giving `target` bytes per patch on held-out English prose (the paper's BLT-Entropy);
    a corpus without English prose (the CI sample) uses all of its held-out text."""
    held_out = corpus.validation(16384)
    english = [name for name in held_out if corpus.sources[name].group == ENGLISH_PROSE] or list(held_out)
    windows = [[BOS_ID] + [b + OFFSET for b in held_out[name][s : s + 4096]]
               for name in english for s in range(0, len(held_out[name]) - 4095, 4096)]
    entropies = entropy_model.entropies(torch.tensor(windows, dtype=torch.long, device=device)).cpu()
    return patcher.threshold_for_patch_size(entropies, target)


def blt_task(args: argparse.Namespace, corpus: Corpus, device: torch.device) -> Task:
    entropy_model = load_entropy_model(args.entropy_model, device=device, dtype=torch.float32)
    threshold, size = english_threshold(entropy_model, corpus, args.patch_size, device)
    print(f"threshold {threshold:.4f} nats gives {size:.2f} bytes per patch on held-out English prose", flush=True)
    model = init_weights(BLT(blt_config(entropy_model.config, threshold))).to(device)
    model.entropy_model.load_state_dict(entropy_model.state_dict())
    model.entropy_model.requires_grad_(False).eval()
    cfg = model.config.patching

    def patch(tokens: Tensor) -> Tensor:
        # Patches come from the entropy model in the surrounding precision: bf16 autocast while training (a
        # third of the step's cost in float32; a rare borderline byte may cut differently), float32 when
        # evaluating, exactly as the shipped model patches at inference.
        with torch.no_grad():
            return patcher.patch_lengths(tokens, cfg, model.entropy_model.entropies(tokens).float())

    def logits(tokens: Tensor) -> Tensor:
        return model(tokens, patch_lengths=patch(tokens))

    def loss(tokens: Tensor) -> tuple[Tensor, int, float]:
        inputs = tokens[:, :-1]
        lengths = patch(inputs)
        rows, seq_len = inputs.shape
        flops = blt_training_flops(model.config, rows, seq_len, int((lengths > 0).sum()) - rows)  # BOS's own patch left out
        out = model(inputs, patch_lengths=lengths)
        return F.cross_entropy(out.flatten(0, 1), tokens[:, 1:].flatten()), rows * seq_len, flops

    def export(folder: Path, record: dict) -> None:
        save_blt(model, folder, {"blt_explorer": record})
        _to_bf16(folder / "model.safetensors")

    return Task(model, lambda rng: (byte_batch(corpus, rng, args.batch, args.seq_len, device),), loss,
                lambda data: byte_model_bpb(logits, data, args.seq_len, device), export,
                {**model.config.to_dict(), "threshold_target_patch_size": args.patch_size,
                 "patch_size_on_english_prose": round(size, 3)})


def baseline_task(args: argparse.Namespace, corpus: Corpus, device: torch.device) -> Task:
    rng = np.random.default_rng(1234)
    sample = [bytes(row).decode("utf-8", errors="ignore") for row in corpus.sample_batch(rng, 4000, 2048)]
    tokenizer = train_tokenizer(sample, args.vocab)
    model = init_weights(BPEBaseline(BaselineConfig(global_shape(), tokenizer.get_vocab_size(), max_seqlen=args.seq_len))).to(device)

    def batch(rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        rows = corpus.sample_batch(rng, args.batch, args.seq_len * 6)
        encs = tokenizer.encode_batch([bytes(r).decode("utf-8", errors="ignore") for r in rows])
        ids = torch.tensor([e.ids[: args.seq_len + 1] for e in encs if len(e.ids) > args.seq_len], device=device)
        n_bytes = sum(len(t) for e in encs if len(e.ids) > args.seq_len for t in e.tokens[1 : args.seq_len + 1])
        return ids, torch.tensor(n_bytes)

    def loss(ids: Tensor, n_bytes: Tensor) -> tuple[Tensor, int, float]:
        rows, seq_len = ids[:, 1:].shape
        flops = lm_training_flops(model.config.transformer, model.config.vocab_size, rows, seq_len)
        return F.cross_entropy(model(ids[:, :-1]).flatten(0, 1), ids[:, 1:].flatten()), int(n_bytes), flops

    def export(folder: Path, record: dict) -> None:
        save_baseline(model, folder, {"blt_explorer": record})
        _to_bf16(folder / "model.safetensors")
        tokenizer.save(str(folder / "tokenizer.json"))

    return Task(model, batch, loss, lambda data: bpe_model_bpb(model, tokenizer, data, args.seq_len, device), export, {"vocab_size": tokenizer.get_vocab_size(), "global_shape": vars(global_shape())})


def _to_bf16(path: Path) -> None:
    """Shipped weights are bf16: half the size, and every loader upcasts them."""
    from safetensors.torch import load_file, save_file

    save_file({k: v.to(torch.bfloat16) for k, v in load_file(str(path)).items()}, str(path), metadata={"format": "pt"})


TASKS = {"entropy": entropy_task, "blt": blt_task, "baseline": baseline_task}


# --- the loop -----------------------------------------------------------------------------------------


def evaluate(task: Task, corpus: Corpus, max_bytes: int, sources: list[str] | None = None) -> dict[str, float]:
    task.model.eval()
    with torch.no_grad():
        out = {name: task.bits_per_byte(data) for name, data in corpus.validation(max_bytes).items()
               if sources is None or name in sources}
    task.model.train()
    return out


def group_means(corpus: Corpus, per_source: dict[str, float]) -> dict[str, float]:
    groups: dict[str, list[float]] = {}
    for name, bpb in per_source.items():
        groups.setdefault(corpus.sources[name].group, []).append(bpb)
    return {g: sum(v) / len(v) for g, v in groups.items()}


def train(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    device = default_device(args.device)
    if device.type == "cpu" and args.threads:
        torch.set_num_threads(args.threads)
    corpus = Corpus.load(args.corpus)
    task = TASKS[args.model](args, corpus, device)
    params = [p for p in task.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path = out / "checkpoint.pt", out / "log.jsonl"
    state = {"step": 0, "elapsed": 0.0, "bytes": 0, "flops": 0.0, "rng": args.seed}
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
        task.model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optim"])
        state = ckpt["state"]
        print(f"resumed at step {state['step']}, {state['elapsed']:.0f} s trained", flush=True)
    rng = np.random.default_rng(state["rng"] + state["step"])
    budget = args.minutes * 60

    def progress() -> float:
        """How far through its budget the run is: training FLOPs with --flops, else training wall time."""
        return state["flops"] / args.flops if args.flops else state["elapsed"] / budget

    watch = ["austen", "bible_web", "shakespeare", "python_stdlib", "de", "zh"]
    amp = compute_dtype(device)  # bf16 autocast where the hardware is fast at it
    last_ckpt = last_eval = time.time()
    task.model.train()
    while progress() < 1 and (args.max_steps is None or state["step"] < args.max_steps):
        t0 = time.time()
        lr = args.lr * (min(1.0, (state["step"] + 1) / args.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress()))))
        for group in opt.param_groups:
            group["lr"] = lr
        batch = task.batch(rng)
        with torch.autocast(device.type, dtype=amp) if amp != torch.float32 else nullcontext():
            loss, n_bytes, flops = task.loss(*batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        state["step"] += 1
        state["elapsed"] += time.time() - t0
        state["bytes"] += n_bytes
        state["flops"] += flops
        if state["step"] % 20 == 0:
            line = {"step": state["step"], "elapsed": round(state["elapsed"], 1), "bytes": state["bytes"], "flops": f"{state['flops']:.4g}", "lr": lr,
                    "train_loss_nats": round(float(loss.detach()), 4), "bytes_per_s": round(state["bytes"] / state["elapsed"], 1)}
            if time.time() - last_eval > args.eval_every:
                line["val_bpb"] = evaluate(task, corpus, 4096, watch)
                last_eval = time.time()
            print(json.dumps(line), flush=True)
            with log_path.open("a") as f:
                f.write(json.dumps(line) + "\n")
        if time.time() - last_ckpt > args.checkpoint_every:
            _checkpoint(task, opt, state, ckpt_path)
            last_ckpt = time.time()
    _checkpoint(task, opt, state, ckpt_path)
    per_source = evaluate(task, corpus, args.final_eval_bytes)
    record = {
        "command": "python -m model.training.train " + shlex.join(sys.argv[1:]), "corpus_sha256": corpus.manifest["corpus_sha256"],
        "steps": state["step"], "train_seconds": round(state["elapsed"]), "bytes_seen": state["bytes"],
        "train_flops": float(f"{state['flops']:.4g}"),
        "device": f"{device.type} ({cpu_model()}, {torch.get_num_threads()} threads)"
                  if device.type == "cpu" else torch.cuda.get_device_name(device),
        "autocast": str(amp if amp != torch.float32 else None), "held_out_bpb": {k: round(v, 4) for k, v in per_source.items()},
        "held_out_bpb_by_group": {k: round(v, 4) for k, v in group_means(corpus, per_source).items()},
        "final_eval_bytes_per_source": args.final_eval_bytes, "config": task.config,
    }
    task.model.eval()
    task.export(out / "export", record)
    (out / "record.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record["held_out_bpb_by_group"]), flush=True)
    return record


def _checkpoint(task: Task, opt: torch.optim.Optimizer, state: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": task.model.state_dict(), "optim": opt.state_dict(), "state": state}, tmp)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", choices=list(TASKS))
    p.add_argument("--corpus", default="data/corpus")
    p.add_argument("--out", required=True)
    p.add_argument("--minutes", type=float, default=30.0, help="training wall-time budget (evaluation not counted)")
    p.add_argument("--flops", type=float, default=None,
                   help="training FLOPs budget: the schedule follows FLOPs instead of wall time (e.g. 3e14)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps even within the budget")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=512, help="bytes per row (tokens for the baseline)")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--entropy-model", default=None, help="BLT: the trained entropy model's export folder")
    p.add_argument("--patch-size", type=float, default=4.5, help="BLT: target bytes per patch on English prose")
    p.add_argument("--vocab", type=int, default=4096, help="baseline: BPE vocabulary size")
    p.add_argument("--eval-every", type=float, default=300.0)
    p.add_argument("--checkpoint-every", type=float, default=180.0)
    p.add_argument("--final-eval-bytes", type=int, default=32768)
    args = p.parse_args(argv)
    if args.model == "blt" and not args.entropy_model:
        p.error("blt needs --entropy-model (the entropy model's export folder)")
    return train(args)


if __name__ == "__main__":
    main()
