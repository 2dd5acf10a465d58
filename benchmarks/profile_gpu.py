"""Where a BLT-1B byte step's time goes on a GPU: torch.profiler over 32 greedy bytes, compiled steps with CUDA
graphs, random weights in BLT-1B's shapes (bench_real_models.write_blt_1b). Needs CUDA.

    python benchmarks/profile_gpu.py > benchmarks/results/gpu_profile_blt1b.txt
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_real_models import PROMPT, write_blt_1b  # noqa: E402
from machine import machine_line  # noqa: E402

from model.generate import ByteEvent, generate  # noqa: E402
from model.loading import load_blt  # noqa: E402
from model.patcher import threshold_for_patch_size  # noqa: E402
from model.tokenizer import encode  # noqa: E402

NEW_BYTES = 32


def main() -> None:
    print(machine_line())
    folder = Path(tempfile.mkdtemp()) / "blt"
    write_blt_1b(folder)
    blt = load_blt(str(folder), device="cuda")
    entropies = blt.entropy_model.entropies(torch.tensor([encode(PROMPT)], device="cuda"))
    blt.config.patching.threshold, _ = threshold_for_patch_size(entropies.float().cpu(), 4.5)
    for run in ("compiling", "warm"):
        start = time.perf_counter()
        list(generate(blt, PROMPT, NEW_BYTES, compile=True))
        print(f"{run} run of {NEW_BYTES} bytes: {time.perf_counter() - start:.2f} s")
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        events = [e for e in generate(blt, PROMPT, NEW_BYTES, compile=True) if isinstance(e, ByteEvent)]
    print(f"profiled: {len(events)} bytes, {sum(e.starts_patch for e in events)} patches")
    table = prof.key_averages()
    print(table.table(sort_by="cuda_time_total", row_limit=30, max_name_column_width=90))
    print(table.table(sort_by="cpu_time_total", row_limit=25, max_name_column_width=90))


if __name__ == "__main__":
    main()
