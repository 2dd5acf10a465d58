"""Entropy-model throughput on 64 KB of text: model/ against transformers' BltPatcher, same random weights;
then the explorer's 10 KB read with attention blocks of several sizes.

    python benchmarks/bench_entropy_model.py [--kb 64] [--repeats 3] [--threads 2]

transformers builds a dense T×T mask, so it is fed 8192-byte windows (Meta's own chunk size); model/
takes the whole text and attends block by block within the 512-byte sliding window. Both run float32
on the CPU, in one process, alternating, and the best of the repeats is reported. The block sizes are
timed the same way, with the share of attention (scaled_dot_product_attention's own time, torch.profiler).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import machine_line  # noqa: E402

from model import encode  # noqa: E402
from model.entropy_model import EntropyModel, EntropyModelConfig  # noqa: E402
from model.layers import Attention  # noqa: E402
from model.loading import meta_to_hf  # noqa: E402


def transformers_patcher(ours: EntropyModel):
    from transformers.models.blt.configuration_blt import BltPatcherConfig
    from transformers.models.blt.modeling_blt import BltPatcher

    c = ours.config
    hf = BltPatcher(BltPatcherConfig(vocab_size=260, hidden_size=c.dim, num_hidden_layers=c.n_layers,
                                     num_attention_heads=c.n_heads, intermediate_size=ours.config.transformer().ffn_dim,
                                     sliding_window=c.sliding_window, max_position_embeddings=c.max_seqlen))
    state = {k[len("model.patcher."):]: v for k, v in meta_to_hf({}, ours.state_dict(), 0).items()
             if k.startswith("model.patcher.")}
    hf.load_state_dict(state)
    return hf.eval()


def text_of(kb: int) -> str:
    base = Path(__file__).resolve().parent.parent / "model" / "blt.py"
    text = base.read_text() * (1 + kb * 1024 // len(base.read_bytes()))
    return text.encode()[: kb * 1024].decode("utf-8", errors="ignore")


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--kb", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shapes = {"shipped (4×256)": EntropyModelConfig(dim=256, n_layers=4, n_heads=4),
              "mid (8×512)": EntropyModelConfig(dim=512, n_layers=8, n_heads=8)}
    ids = torch.tensor([encode(text_of(args.kb))])
    print(machine_line())
    print(f"{args.kb} KB of text ({ids.shape[1]} ids), float32, {args.threads} threads")
    print(f"{'entropy model':<18}{'model/ s':>10}{'transformers s':>16}{'model/ KB/s':>13}{'speed-up':>10}{'max |ΔH|':>10}")
    for name, cfg in shapes.items():
        ours = EntropyModel(cfg).eval()
        hf = transformers_patcher(ours)

        def run_ours() -> torch.Tensor:
            return ours.entropies(ids)

        def run_hf() -> torch.Tensor:
            with torch.no_grad():
                return torch.cat([hf(chunk)[0] for chunk in ids.split(cfg.max_seqlen, dim=1)], dim=1)

        diff = float((run_ours() - run_hf()).abs().max())
        t_ours, t_hf = best_of(run_ours, args.repeats), best_of(run_hf, args.repeats)
        print(f"{name:<18}{t_ours:>10.2f}{t_hf:>16.2f}{args.kb / t_ours:>13.1f}{t_hf / t_ours:>9.2f}×{diff:>10.1e}")
    attention_blocks(EntropyModel(shapes["shipped (4×256)"]).eval(), torch.tensor([encode(text_of(10))]), args.repeats)


def attention_share(fn) -> float:
    """Share of fn's time spent inside scaled_dot_product_attention."""
    with torch.profiler.profile() as prof:
        fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    return sum(e.cpu_time_total for e in events if e.key == "aten::scaled_dot_product_attention") / total


BLOCKS = (512, 256, 128, 64, 32)


def attention_blocks(model: EntropyModel, ids: torch.Tensor, repeats: int) -> None:
    """The 10 KB read with blocks of B queries: B+511 keys scored per block, 512 needed per query. The sizes
    take turns, round after round, so that a slow spell of the machine falls on all of them alike."""
    default, best = Attention.block_size, {}
    for _ in range(repeats):
        for block in BLOCKS:
            Attention.block_size = block
            best[block] = min(best.get(block, float("inf")), best_of(lambda: model.entropies(ids), 1))
    print(f"\n10 KB read ({ids.shape[1]} ids, shipped shape), attention blocks of B queries in the 512-byte window, "
          f"best of {repeats} rounds")
    print(f"{'B':>6}{'read s':>9}{'attention':>11}{'keys scored / needed':>22}")
    for block in BLOCKS:
        Attention.block_size = block
        share = attention_share(lambda: model.entropies(ids))
        print(f"{block:>6}{best[block]:>9.3f}{share:>10.0%}{(block + 511) / 512:>21.2f}×" + ("   ← model/" if block == default else ""))
    Attention.block_size = default


if __name__ == "__main__":
    main()
