"""Decoding at the hardware's limit: the shipped models' cached generation against Meta's no-cache algorithm
and against the memory bound, on one CPU thread.

    python benchmarks/bench_decode.py [--lengths 96 256 1024] [--dtypes float32 bfloat16] | tee benchmarks/results/decode.txt

For each dtype (default: float32, and bfloat16 too where model.devices would pick it), the shipped BLT
continues a 300-byte prompt greedily:

(a) speed-up over each whole call (the prompt's reading included; best of --rounds rounds, in each of which
    every path and the reference run in turn, so that they share the VM's drift) against Meta's no-cache
    algorithm (`generate_nocache`), for the cached generator's paths: "batched" (each byte through the batched,
    variable-shape path: the generator before fixed-shape steps), "eager" (model/steps.py's fixed-shape steps,
    eagerly), "compiled" (torch.compile, inductor's C++, kernels launched from C++: the default) and
    "compiled, py wrapper" (the same, kernels launched from Python, cpp_wrapper off); and whether every path
    wrote the no-cache bytes;
(b) milliseconds per byte, by component, beside the weight-bandwidth bound: the bytes of weights a byte's
    steps read (model.analysis.cost.step_weight_bytes: every byte the per-byte parts, once per patch the rest,
    at the patch size of the run) over the memory read bandwidth measured in the same run; and, since that
    bandwidth is a 1 GB stream's while a step reads dozens of separate sub-MB matrices, the bandwidth of a cold
    read of one such buffer (machine.cold_read_bandwidth); and a warm bound: the bytes of weights and caches
    (keys and values at the end of the run) a byte reads, over the rate at which this core re-reads a buffer as
    large as everything the generation reads (machine.read_bandwidth): where that fits the last-level cache
    (a 300 MB L3), the cache's rate, not memory's, is what the steps can reach;
(c) per-byte latency over the first and the last 64 bytes of the longest run (flat: within 5 %);
(d) where a compiled byte's time goes, from one more run with timers around each step and around the graph
    inductor built for it: inside the graphs (the kernels and the glue that launches them), torch.compile's
    dispatch between the two (the guards and dynamo's bytecode; dynamo itself and AOT autograd's wrappers
    where a call goes through them), and the generator's own work around the steps.
(b) reads the fastest run of the longest length; (c) takes each byte's median over its runs, so that one run's
hiccup (this VM's timings drift by ±20 %) does not count as a trend.

Then the shipped BPE baseline on the same prompt, eager and compiled steps, against its own bound.
Compile time is excluded: each compiled path runs once to compile, then is timed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from unittest.mock import patch

import torch
from torch._inductor.output_code import CompiledFxGraph

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import cold_read_bandwidth, machine_line, read_bandwidth  # noqa: E402

from model.analysis.cost import step_weight_bytes, step_weights  # noqa: E402
from model.baseline import load_baseline  # noqa: E402
from model.devices import compute_dtype  # noqa: E402
from model.generate import (  # noqa: E402
    GLOBAL_TRANSFORMER,
    ByteEvent,
    CachedBLT,
    Meter,
    Sampling,
    _generate_bytes,
    blt_prompt,
    generate_baseline,
    generate_nocache,
)
from model.loading import load_blt  # noqa: E402
from model import steps as model_steps  # noqa: E402
from model.steps import ByteSteps, InductorGraph, Step  # noqa: E402

PROMPT = ("Byte-level language models read text as it is stored: no vocabulary, no tokenizer, every byte in "
          "sight. The price is length, since a sentence has four or five times more bytes than tokens. "
          "The Byte Latent Transformer groups bytes into patches where the next byte is easy to guess, and "
          "runs its large model once per patch. Its entropy model is small")[:300]
PATHS = ("batched", "eager", "compiled", "compiled, py wrapper")
GB = 1e9
Run = tuple[list, float]  # one generation: its bytes (events, or ids for no-cache) and its seconds


def blt_paths(blt) -> dict[str, Callable[[int], Run]]:
    """Each cached path as a function of n that runs one greedy generation of n bytes: (byte events, seconds).
    Compiled paths are compiled here, so that their runs start warm; each Step compiles code of its own, so the
    two compiled paths live side by side."""
    device, default = next(blt.parameters()).device, model_steps.CPP_WRAPPER
    paths = {}
    for path in PATHS:
        steps = None
        if path != "batched":  # batched: a CachedBLT without steps takes the batched path for every byte
            model_steps.CPP_WRAPPER = "py wrapper" not in path
            steps = ByteSteps(blt, compile=path != "eager")

        def run(n: int, steps: ByteSteps | None = steps) -> tuple[list[ByteEvent], float]:
            start = time.perf_counter()
            events = list(_generate_bytes(CachedBLT(blt, Meter(device), steps), blt_prompt(PROMPT), n, Sampling(), 0))
            return [e for e in events if isinstance(e, ByteEvent)], time.perf_counter() - start

        if path.startswith("compiled"):
            run(2)
        paths[path] = run
    model_steps.CPP_WRAPPER = default
    return paths


def rounds_of(rounds: int, lengths: list[int], runs: dict[str, Callable[[int], Run]]) -> dict[str, dict[int, list[Run]]]:
    """Every run, `rounds` times over: round after round, each length, each path in turn, so that this VM's drift
    (±20 % from one minute to the next) reaches every path alike and the ratios compare runs made side by side."""
    done: dict[str, dict[int, list[Run]]] = {p: {n: [] for n in lengths} for p in runs}
    for _ in range(rounds):
        for n in lengths:
            for path, run in runs.items():
                done[path][n].append(run(n))
    return done


def time_split(run: Callable[[], Run]) -> tuple[float, float, float]:
    """One more run with timers around every step call (model.steps.Step) and every call of a graph inductor
    built (model.steps.InductorGraph, or torch 2.13's CompiledFxGraph, a torch internal, where a step goes through
    AOT autograd): ms per byte (the whole byte, inside steps, inside graphs). Prompts are read by the batched path,
    so every step call belongs to a generated byte."""
    spent = {"step": 0.0, "graph": 0.0}

    def timed(key: str, call: Callable) -> Callable:
        def wrapper(*args):
            start = time.perf_counter()
            try:
                return call(*args)
            finally:
                spent[key] += time.perf_counter() - start
        return wrapper

    with patch.object(Step, "__call__", timed("step", Step.__call__)), \
            patch.object(CompiledFxGraph, "__call__", timed("graph", CompiledFxGraph.__call__)), \
            patch.object(InductorGraph, "__call__", timed("graph", InductorGraph.__call__)):
        events, _ = run()
    n = len(events)
    return statistics.fmean(e.cost.wall_ms for e in events), 1000 * spent["step"] / n, 1000 * spent["graph"] / n


def per_component(events: list[ByteEvent]) -> dict[str, float]:
    ms: dict[str, float] = {}
    for e in events:
        for k, v in e.cost.ms.items():
            ms[k] = ms.get(k, 0.0) + v / len(events)
    return ms


def blt_section(dtype: torch.dtype, lengths: list[int], bw: float, rounds: int) -> None:
    blt = load_blt(dtype=dtype)
    weights = step_weight_bytes(blt)
    print(f"\n== shipped BLT in {str(dtype).removeprefix('torch.')}: weights read every byte {weights['byte'] / 1e6:.1f} MB, "
          f"once per patch {weights['patch'] / 1e6:.1f} MB; prompt {len(PROMPT.encode())} bytes, greedy")
    print(f"(a) {'new bytes':>9}{'no-cache s':>12}" + "".join(f"{p:>22}" for p in PATHS) + "   same bytes")
    paths = blt_paths(blt)
    every = rounds_of(rounds, lengths, {"no-cache": lambda n: blt_run_nocache(blt, n)} | paths)
    best = {p: {n: min(r, key=lambda run: run[1]) for n, r in by_n.items()} for p, by_n in every.items()}
    split = time_split(lambda: paths["compiled"](lengths[-1]))
    for n in lengths:
        reference, t_ref = best["no-cache"][n]
        cells = [f"{best[p][n][1]:7.2f} s = {t_ref / best[p][n][1]:6.1f}×" for p in PATHS]
        same = ["yes" if all([e.id for e in events] == reference for events, _ in every[p][n]) else "NO" for p in PATHS]
        print(f"    {n:>9}{t_ref:>12.2f}" + "".join(f"{c:>22}" for c in cells) + "   " + "/".join(same))
    longest = {p: best[p][lengths[-1]][0] for p in PATHS}
    print(f"    (seconds for the whole call, prompt included, best of {rounds} round{'s' * (rounds > 1)}, each path in "
          f"turn in a round; × = no-cache seconds / this path's; same bytes: in every round)")
    print(f"(b) ms per byte over the fastest run ({len(longest[PATHS[0]])} bytes), by component, and the bound")
    events = longest[PATHS[0]]
    patch_size = len(events) / max(1, sum(e.starts_patch for e in events))
    bound = 1000 * (weights["byte"] + weights["patch"] / patch_size) / bw
    tensors = step_weights(blt)
    sizes = sorted(t.nbytes for t in tensors["byte"] + tensors["patch"])
    cold = ", ".join(f"{mb:g} MB {cold_read_bandwidth(int(mb * 2**20)) / GB:.1f} GB/s" for mb in (0.25, 1, 4))
    print(f"    the steps read {len(tensors['byte'])} weight tensors every byte and {len(tensors['patch'])} every patch, the "
          f"largest {sizes[-1] / 2**20:.2f} MB, half under {sizes[len(sizes) // 2] / 2**20:.2f} MB; one buffer read cold "
          f"(caches evicted, fp32 sum): {cold}, against {bw / GB:.1f} GB/s for the bound's 1 GB stream")
    with_caches = step_reads(weights, longest["compiled"][-1].cost.kv_bytes)  # the caches at the run's end
    read = with_caches["byte"] + with_caches["patch"] / patch_size
    everything = with_caches["byte"] + with_caches["patch"]
    warm = read_bandwidth(torch.device("cpu"), everything)
    warm_bound = 1000 * read / warm
    print(f"    warm bound: with their caches the steps read {read / 1e6:.1f} MB a byte (a patch's share included); "
          f"everything a generation reads, {everything / 1e6:.1f} MB, fits {'a cache' if warm > 1.2 * bw else 'no cache'}: "
          f"a buffer that large, summed over and over, reads at {warm / GB:.1f} GB/s, so {warm_bound:.2f} ms a byte")
    for path in PATHS:
        events = longest[path]
        ms = statistics.fmean(e.cost.wall_ms for e in events)
        parts = ", ".join(f"{k} {v:.2f}" for k, v in per_component(events).items())
        print(f"    {path:<22}{ms:7.2f} ms/byte ({parts}); bound {bound:.2f} ms at {patch_size:.2f} bytes/patch: "
              f"{ms / bound:.2f}× the bound, {ms / warm_bound:.2f}× the warm bound")
    print(f"(c) per-byte latency, first 64 and last 64 bytes: each byte's median over the {rounds} runs")
    for path in PATHS:
        runs = [events for events, _ in every[path][lengths[-1]]]
        median = [statistics.median(e[i].cost.wall_ms for e in runs) for i in range(min(map(len, runs)))]
        first, last = statistics.fmean(median[:64]), statistics.fmean(median[-64:])
        print(f"    {path:<22}{first:7.2f} ms, {last:7.2f} ms: last/first {last / first:.3f}")
    whole, in_steps, in_graphs = split
    print(f"(d) where a compiled byte's time goes: one more run of {lengths[-1]} bytes, {whole:.2f} ms a byte, with timers "
          f"around each step and each graph inductor built")
    print(f"    inside the graphs          {in_graphs:7.2f} ms (the kernels and the glue that launches them): {in_graphs / bound:.2f}× the bound")
    print(f"    torch.compile's dispatch   {in_steps - in_graphs:7.2f} ms (guards and dynamo's bytecode: from a step's call to its graph's)")
    print(f"    the generator around steps {whole - in_steps:7.2f} ms (Python, eager ops, sampling)")


def step_reads(weights: dict[str, int], kv_bytes: dict[str, int]) -> dict[str, int]:
    """Bytes a BLT's steps read with their caches (`kv_bytes`, a generation's Cost.kv_bytes: the keys and values
    attention reads): {"byte": every byte (entropy model, local encoder and decoder), "patch": once per patch
    (the global transformer's part)}; `weights`: model.analysis.cost.step_weight_bytes."""
    per_patch = kv_bytes[GLOBAL_TRANSFORMER]
    return {"byte": weights["byte"] + sum(kv_bytes.values()) - per_patch, "patch": weights["patch"] + per_patch}


def blt_run_nocache(blt, n: int) -> tuple[list[int], float]:
    start = time.perf_counter()
    events = list(generate_nocache(blt, PROMPT, n))
    return [e.id for e in events[1:]], time.perf_counter() - start


def baseline_section(dtype: torch.dtype, n: int, bw: float) -> None:
    net, tokenizer = load_baseline(dtype=dtype)
    per_token = step_weight_bytes(net)["token"]
    print(f"\n== shipped BPE baseline in {str(dtype).removeprefix('torch.')}: weights read every token "
          f"{per_token / 1e6:.1f} MB; {n} new bytes, greedy")
    for compile in (False, True):
        if compile:
            list(generate_baseline(net, tokenizer, PROMPT, n, compile=True))  # compile
        start = time.perf_counter()
        events = list(generate_baseline(net, tokenizer, PROMPT, n, compile=compile))[1:]
        seconds = time.perf_counter() - start
        new_bytes = sum(len(e.data) for e in events)
        ms = sum(e.cost.wall_ms for e in events) / new_bytes
        bound = 1000 * per_token / (new_bytes / len(events)) / bw
        print(f"    {'compiled' if compile else 'eager':<10}{ms:7.2f} ms/byte ({len(events)} tokens, "
              f"{new_bytes / len(events):.2f} bytes/token, {seconds:.2f} s in all); bound {bound:.2f} ms: {ms / bound:.2f}×")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lengths", type=int, nargs="+", default=[96, 256, 1024])
    p.add_argument("--dtypes", nargs="+", default=None, help="float32, bfloat16 (default: float32 and the CPU's own)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3, help="runs of each generation; the fastest counts")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dtypes = [getattr(torch, d) for d in args.dtypes] if args.dtypes else list(dict.fromkeys([torch.float32, compute_dtype("cpu")]))
    print(machine_line())
    bw = read_bandwidth(torch.device("cpu"))
    print(f"memory read bandwidth (sum over 1 GB fp32, best of 5, {torch.get_num_threads()} thread): {bw / GB:.1f} GB/s")
    for dtype in dtypes:
        blt_section(dtype, sorted(args.lengths), bw, args.rounds)
        baseline_section(dtype, 256, bw)
    print("\nGPU: see benchmarks/bench_real_models.py (BLT-1B shape, with and without CUDA graphs)")


if __name__ == "__main__":
    main()
