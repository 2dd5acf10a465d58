"""ZeroGPU, the free tier of Hugging Face Spaces: a function that runs a model holds a GPU only while it runs,
and asks for it with `@spaces.GPU(duration=...)`. The shorter the duration asked, the sooner a visitor's request
is served, so each request asks for what it needs: seconds from its size.

Off ZeroGPU `spaces.GPU` returns the function unchanged, so the page runs as anywhere else. On ZeroGPU the
models are placed on CUDA when the app starts (outside decorated functions CUDA is emulated there), and nothing
is compiled (ZeroGPU does not support torch.compile).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import spaces

F = TypeVar("F", bound=Callable)

ON_ZEROGPU = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")
MIN_S, MAX_S = 10, 240  # ZeroGPU's default is 60 s; a visitor's daily quota is a few minutes
READ_BYTES_PER_S = 50_000  # an entropy-model pass over text on the GPU, with margin
GENERATED_BYTES_PER_S = 20  # both models, one byte at a time (eager steps are launch-bound on a GPU)
LOAD_S = 20  # first use of a model that is not resident yet


def seconds(read_bytes: int = 0, new_bytes: int = 0) -> int:
    """GPU seconds to ask for a request that reads `read_bytes` and generates `new_bytes` (both models)."""
    need = LOAD_S + read_bytes / READ_BYTES_PER_S + new_bytes / GENERATED_BYTES_PER_S
    return int(min(MAX_S, max(MIN_S, need)))


def gpu(duration: Callable[..., int]) -> Callable[[F], F]:
    """`@spaces.GPU` with a duration computed from the call's own arguments (same signature as the function)."""
    return lambda fn: spaces.GPU(fn, duration=duration)


def _size(x: object, cap: int) -> int:
    """A visitor's value as a count for the estimate only (the function itself checks it and refuses bad ones)."""
    try:
        return min(cap, max(0, int(x)))  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return 0


def for_text(text: object = "", *_: object, **__: object) -> int:
    return seconds(read_bytes=len(text.encode("utf-8", "replace")) if isinstance(text, str) else 0)


def for_generation(prompt: object = "", length: object = 0, *_: object, **kw: object) -> int:
    length = kw.get("max_new_bytes", length)
    return seconds(read_bytes=len(prompt) if isinstance(prompt, str) else 0, new_bytes=_size(length, 4096))
