"""The machine a benchmark ran on, in one line: every result names it, since the CPU changes between machines
(an AVX2-only EPYC runs bf16 matmuls ~300× slower than fp32; a Xeon with AMX runs them faster)."""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model.devices import cpu_flags, cpu_model, fast_bf16  # noqa: E402

SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def machine_line() -> str:
    """'CPU …, N cores, SIMD …, bf16 units yes/no, last-level cache …, torch …, T threads, load …' (and the GPU, if
    any). The cache decides whether a model's weights stay cached from one decode step to the next."""
    flags = [f for f in SIMD_FLAGS if f in cpu_flags()]
    bf16 = "yes" if fast_bf16("cpu") else "no"
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"machine: {cpu_model()}, {len(os.sched_getaffinity(0))} cores, SIMD {' '.join(flags) or 'none found'}, "
            f"bf16 units {bf16}, last-level cache {last_level_cache() >> 20} MB; torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads{gpu}; load average {load}")


def last_level_cache() -> int:
    """Bytes of the CPU's largest cache (Linux's sysfs; 32 MB where it says nothing): a 2-core EPYC had 32 MB,
    a 2-core Xeon 300."""
    sizes = []
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        text = (index / "size").read_text().strip() if (index / "size").exists() else ""
        if text[:-1].isdigit() and text[-1] in "KM":
            sizes.append(int(text[:-1]) << (10 if text[-1] == "K" else 20))
    return max(sizes, default=32 << 20)


def read_bandwidth(device: torch.device, nbytes: int = 1 << 30, repeats: int = 5) -> float:
    """Read bandwidth in bytes/s: the best of `repeats` sums of one fp32 buffer of `nbytes`, summed over and over.
    1 GB, far larger than any cache, gives memory's stream; a smaller buffer the rate of whichever cache holds it,
    as decode steps re-read the same weights and caches byte after byte."""
    x = torch.ones(nbytes // 4, device=device)
    x.sum()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        x.sum()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return x.nbytes / best


def cold_read_bandwidth(nbytes: int, repeats: int = 20) -> float:
    """Bytes/s of reading one buffer of `nbytes` from memory, as a decode step reads each weight matrix where they
    do not stay cached: the caches are first evicted (a read of twice the last-level cache), then the buffer is
    summed; the best of `repeats`. A single core's cold read of a small buffer stays far below a long stream's
    rate: each starts its stream (and page walks) anew."""
    evict, x = torch.ones(2 * last_level_cache() // 4), torch.ones(nbytes // 4)
    best = math.inf
    for _ in range(repeats):
        evict.sum()
        start = time.perf_counter()
        x.sum()
        best = min(best, time.perf_counter() - start)
    return x.nbytes / best


if __name__ == "__main__":
    print(machine_line())
