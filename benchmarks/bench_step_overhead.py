"""What a decode step pays besides reading its weights, on one CPU thread: why the shipped BLT's compiled bytes
cost about twice (float32) to three times (bfloat16) what their weights' bytes cost at the memory's stream
bandwidth (bench_decode.py).

    python benchmarks/bench_step_overhead.py | tee benchmarks/results/step_overhead.txt

(a) read speed by size, each buffer summed over and over: where the last-level cache stops helping. A byte's
    steps read 25.5 MB of weights in float32 (12.7 in bfloat16), its caches up to 7 MB more, and every ~4 bytes
    the global transformer another 32.5 MB: little stays cached from one byte to the next;
(b) the fixed cost of a call, hot (back to back) and after 24 MB of other reads (as between two steps of a
    byte): a compiled step (model.steps.Step, as generation compiles it) that adds 1, and the eager add;
(c) one-query attention as a step runs it (KVCache.write, then layers.attend_one, compiled) over the entropy
    model's cache shape (4 heads of 64, a 512-byte window) with 100, 350 and 512 slots written.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import machine_line  # noqa: E402

from model.layers import KVCache, attend_one, one_position  # noqa: E402
from model.steps import Step  # noqa: E402

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
    print("(a) read speed of one buffer, summed over and over (GB/s)")
    cells = []
    for mb in (1, 4, 8, 16, 32, 64, 256):
        x = torch.ones(mb << 18)
        cells.append(f"{mb} MB {x.nbytes / microseconds(x.sum, False, max(3, 1000 // mb)) / 1e3:.0f}")
    print("    " + ", ".join(cells))


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


def main() -> None:
    torch.set_num_threads(1)
    print(machine_line())
    read_speeds()
    call_costs()
    attention_costs()


if __name__ == "__main__":
    main()
