"""What a decode step pays besides reading its weights, on one CPU thread: why the shipped BLT's compiled bytes
cost more than their weights' bytes at the memory's stream bandwidth (bench_decode.py: on a 2-core EPYC about
twice in float32 and more in bfloat16), or than their weights and caches at the last-level cache's rate, where
everything fits it (a Xeon's 300 MB L3: 1.3-1.5× in float32, 1.5-1.9× in bfloat16).

    python benchmarks/bench_step_overhead.py | tee benchmarks/results/step_overhead.txt

(a) read speed by size, each buffer summed over and over: where the last-level cache stops helping. A byte's
    steps read 25.5 MB of weights in float32 (12.7 in bfloat16), its caches up to 7 MB more, and every ~4 bytes
    the global transformer another 32.5 MB: on a CPU with a 32 MB L3 little stays cached from one byte to the next;
(b) the fixed cost of a call, hot (back to back) and after 24 MB of other reads (as between two steps of a
    byte): a compiled step (model.steps.Step, as generation compiles it) that adds 1, and the eager add;
(c) one-query attention as a step runs it (KVCache.write, then layers.attend_one, compiled) over the entropy
    model's cache shape (4 heads of 64, a 512-byte window) with 100, 350 and 512 slots written;
(d) the shipped BLT's compiled steps while it generates 256 bytes after bench_decode.py's prompt (float32, and
    bfloat16 too where model.devices would pick it): each step's median µs as generation calls it and when
    called again at once with the same inputs (a step rewrites the same position, so it computes the same), its
    weights and caches just read. Where the two agree, the weights stay in the last-level cache from byte to
    byte and a step is as fast as its kernels stream them: the rate of a byte's three steps (weights and caches
    read, over their time) against (a);
(e) what the one-row products alone reach: 24 different matrices of a local model's shapes (each its own weights,
    too many for the L2 cache together), chained in one compiled step, in GB/s of weights read.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from unittest.mock import patch

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import machine_line, read_bandwidth  # noqa: E402

from bench_decode import PROMPT, step_reads  # noqa: E402
from model.analysis.cost import step_weight_bytes  # noqa: E402
from model.devices import compute_dtype  # noqa: E402
from model.generate import generate  # noqa: E402
from model.layers import KVCache, attend_one, one_position  # noqa: E402
from model.loading import load_blt  # noqa: E402
from model.steps import Step, byte_steps  # noqa: E402

CPU = torch.device("cpu")
EVICT = torch.ones(6 << 20)  # 24 MB


def microseconds(call: Callable[[], object], evict: bool, repeats: int = 300) -> float:
    """Mean µs of `call`, back to back or each after reading EVICT."""
    for _ in range(10):
        call()
    total = 0.0
    for _ in range(repeats):
        if evict:
            EVICT.sum()
        start = time.perf_counter()
        call()
        total += time.perf_counter() - start
    return 1e6 * total / repeats


def read_speeds() -> None:
    print("(a) read speed of one buffer, summed over and over (GB/s, the best of 5)")
    print("    " + ", ".join(f"{mb} MB {read_bandwidth(CPU, mb << 20) / 1e9:.0f}" for mb in (1, 4, 8, 16, 32, 64, 256)))


def call_costs() -> None:
    print("(b) the cost of a call (µs): back to back / after 24 MB of other reads")
    x = torch.randn(1, 4, 1, 64)
    step = Step(lambda t: t + 1, CPU, compile=True)
    for name, call in (("compiled step, one add", lambda: step(x)), ("eager add", lambda: x + 1)):
        print(f"    {name:<24}{microseconds(call, False):7.1f} /{microseconds(call, True):7.1f}")


def attend(q: torch.Tensor, k: torch.Tensor, pos: torch.Tensor, cache: KVCache) -> torch.Tensor:
    keys, values, visible = cache.write(k, k, pos)
    return attend_one(q, keys, values, visible)


def attention_costs() -> None:
    print("(c) one-query attention, 4 heads of 64, window 512 (µs): back to back / after 24 MB of other reads")
    step = Step(attend, CPU, compile=True)
    q, k = torch.randn(1, 4, 1, 64), torch.randn(1, 4, 1, 64)
    for written in (100, 350, 512):
        cache = KVCache(window=512)
        cache.reserve(0, k)
        cache.k.normal_(), cache.v.normal_()
        cache.length = written - 1
        pos = torch.tensor(written - 1)
        with one_position([cache]):  # sets the slots to read; the benchmark's calls rewrite the same position
            call = lambda: step(q, k, pos, cache)  # noqa: E731
            print(f"    {written:>4} slots written{microseconds(call, False):13.1f} /{microseconds(call, True):7.1f}")


def warm_steps(dtype: torch.dtype) -> None:
    """(d) for one dtype: the shipped BLT's steps as generation calls them, and again at once."""
    blt = load_blt(dtype=dtype)
    steps = byte_steps(blt, compile=True)  # the ones generate(compile=True) calls
    names = {id(step): name for name, step in vars(steps).items() if isinstance(step, Step)}
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in names.values()}
    call = Step.__call__

    def twice(step: Step, *args):
        start = time.perf_counter()
        out = call(step, *args)
        middle = time.perf_counter()
        call(step, *args)
        first, again = times[names[id(step)]]
        first.append(middle - start)
        again.append(time.perf_counter() - middle)
        return out

    list(generate(blt, PROMPT, 64, compile=True))  # compiles
    with patch.object(Step, "__call__", twice):
        events = list(generate(blt, PROMPT, 256, compile=True))
    us = {name: (1e6 * statistics.median(first), 1e6 * statistics.median(again)) for name, (first, again) in times.items()}
    print(f"    {str(dtype).removeprefix('torch.')}: " + ", ".join(f"{name} {a:.0f} / {b:.0f}" for name, (a, b) in us.items()))
    weights = step_weight_bytes(blt)
    read = step_reads(weights, events[-1].cost.kv_bytes)["byte"]  # the caches at the run's end
    per_byte = [us[name] for name in ("entropy", "encode", "decode") if name in us]
    rates = [read / sum(pair[i] for pair in per_byte) / 1e3 for i in (0, 1)]
    print(f"      a byte's steps read {weights['byte'] / 1e6:.1f} MB of weights and {(read - weights['byte']) / 1e6:.1f} MB of caches: "
          f"{rates[0]:.0f} GB/s as generation calls them, {rates[1]:.0f} GB/s again at once")


def product_rates(dtype: torch.dtype) -> None:
    """(e) for one dtype: GB/s of 24 chained one-row products per shape (in → out features)."""
    cells = []
    for n_in, n_out in ((256, 768), (256, 1536), (768, 256)):
        layers = [torch.nn.Linear(n_in, n_out, bias=False).to(dtype).eval() for _ in range(24)]
        step = Step(lambda x: [layer(x) for layer in layers], CPU, compile=True)
        x = torch.randn(1, n_in, dtype=dtype)
        with torch.no_grad():
            us = microseconds(lambda: step(x), False, 50)
        cells.append(f"{n_in}→{n_out} {sum(layer.weight.nbytes for layer in layers) / us / 1e3:.0f}")
    print(f"    {str(dtype).removeprefix('torch.')}: " + ", ".join(cells))


def main() -> None:
    torch.set_num_threads(1)
    print(machine_line())
    read_speeds()
    call_costs()
    attention_costs()
    print("(d) the shipped BLT's compiled steps, 256 bytes (median µs): as generation calls them / again at once")
    dtypes = list(dict.fromkeys([torch.float32, compute_dtype("cpu")]))
    for dtype in dtypes:
        warm_steps(dtype)
    print("(e) one-row products, 24 matrices chained in one compiled step (GB/s of weights)")
    for dtype in dtypes:
        product_rates(dtype)


if __name__ == "__main__":
    main()
