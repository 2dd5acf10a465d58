"""Where and in what precision to compute, and whether a model fits there.

bf16 matmuls pay off only on hardware built for them: CUDA GPUs from Ampere on, and CPUs with AVX-512 BF16 or
AMX. Elsewhere torch emulates them (this project's AVX2 EPYC: 0.3 GFLOP/s in bf16 against 96 in fp32), so
compute stays in fp32. Training (autocast) and inference (loading) both ask `compute_dtype`.

Tables that are only looked up, never multiplied (BLT's hash n-gram embeddings: 3.07B of BLT-1B's 4.5B
parameters), cost no arithmetic, so they keep the checkpoint's 16-bit dtype and each lookup is cast to the
compute dtype: half their memory, and exactly the numbers an all-fp32 model on the same checkpoint gives.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from .checks import CheckpointError

GB = 1e9


class NotEnoughMemoryError(CheckpointError):
    """A model would not fit on the device it was asked for; `needed` and `available` in bytes."""

    def __init__(self, message: str, needed: int, available: int):
        super().__init__(message)
        self.needed, self.available = needed, available


def default_device(device: str | torch.device | None = None) -> torch.device:
    """`device`, or CUDA when there is one, else the CPU."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _cpuinfo() -> str:
    path = Path("/proc/cpuinfo")
    return path.read_text() if path.exists() else ""


def cpu_flags() -> set[str]:
    for line in _cpuinfo().splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_model() -> str:
    """The CPU's name, as /proc/cpuinfo gives it ("AMD EPYC", "Intel(R) Xeon(R) Platinum 8480+")."""
    for line in _cpuinfo().splitlines():
        if line.startswith(("model name", "Model")):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def fast_bf16(device: str | torch.device) -> bool:
    """Does `device` run bf16 matmuls at least as fast as fp32? CUDA with compute capability 8+ (Ampere), or a
    CPU whose /proc/cpuinfo lists avx512_bf16 or amx_bf16."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":
        return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())
    return False


DTYPE_ENV = "BLT_EXPLORER_DTYPE"  # float32 or bfloat16: the compute dtype on every device, whatever the hardware


def compute_dtype(device: str | torch.device) -> torch.dtype:
    """bf16 where the hardware is fast at it, else fp32; BLT_EXPLORER_DTYPE decides instead where it is set
    (reference numbers on a bf16 machine: the test suite sets float32, so it checks the same numbers anywhere)."""
    forced = os.environ.get(DTYPE_ENV)
    if forced:
        if forced not in ("float32", "bfloat16"):
            raise ValueError(f"{DTYPE_ENV} must be float32 or bfloat16, got {forced!r}")
        return getattr(torch, forced)
    return torch.bfloat16 if fast_bf16(device) else torch.float32


def storage_dtype(stored: torch.dtype, compute: torch.dtype, lookup_only: bool) -> torch.dtype:
    """The dtype a parameter is kept in: the compute dtype, except that a lookup-only table stored narrower
    (bf16, fp16) stays as stored."""
    if lookup_only and stored.is_floating_point and stored.itemsize < compute.itemsize:
        return stored
    return compute


def _cgroup_free() -> int | None:
    """Room left under this process's cgroup memory limit (v2, else v1); None without a limit."""
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            text = Path(limit).read_text().strip()
            if text == "max" or int(text) >= 1 << 60:
                return None
            return int(text) - int(Path(usage).read_text())
        except (OSError, ValueError):
            continue
    return None


def available_memory(device: str | torch.device) -> int:
    """Bytes a new model may take: on CUDA the free GPU memory; on CPU MemAvailable, capped by the room left
    under a cgroup limit (containers, Spaces)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    free = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    except OSError:
        pass
    if free is None:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    cgroup = _cgroup_free()
    return free if cgroup is None else min(free, cgroup)


def module_bytes(module: torch.nn.Module) -> int:
    """Bytes held by a module's parameters and buffers (shared tensors counted once)."""
    tensors = {id(t): t for t in (*module.parameters(), *module.buffers())}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def check_fits(needed: int, device: str | torch.device, what: str) -> None:
    """Raise NotEnoughMemoryError, with the numbers, unless `needed` bytes are available on `device`."""
    device = torch.device(device)
    free = available_memory(device)
    if needed > free:
        raise NotEnoughMemoryError(
            f"{what} needs {needed / GB:.1f} GB on {device}, {free / GB:.1f} GB are available: close other programs, "
            "or load it on a device with more memory (device='cuda' or 'cpu')", needed, free)
