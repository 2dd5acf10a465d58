"""Sharing one CPU between visitors: the model's turns, each session's runs and its cached reading.

A long text is read a window at a time (`model.analysis.reading.read_windows`), and each window takes one
turn; turns are served first come, first served, so a short text that arrives while a long one is read
waits for one window at most, not for the whole text. A new edit or a closed page ends a session's run
between two windows. Readings are kept per session within a byte budget, the least recently used
dropped first, and what Gradio keeps of sessions without an open page is dropped when the page is idle, so
memory stays bounded whatever visitors do.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from gradio.state_holder import StateHolder

from .explorer import Reading

READINGS_BUDGET = 256 * 2**20  # bytes of cached readings, all sessions together
MALLOC_ARENAS = 2  # glibc malloc arenas for the whole process (its default: up to 8 per core)


class Turns:
    """A lock granted in the order it was asked for (threading.Lock promises no order): a run that takes
    turn after turn queues behind every request that arrived during its last one."""

    def __init__(self):
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()

    @contextmanager
    def turn(self) -> Iterator[None]:
        me = object()
        with self._cond:
            self._queue.append(me)
            self._cond.wait_for(lambda: self._queue[0] is me)
        try:
            yield
        finally:
            with self._cond:
                self._queue.popleft()
                self._cond.notify_all()


class Runs:
    """The text each session wants read now (the text box's latest value): a run for any other text is stale
    and stops at its next window. Comparing texts, not counting runs, means an edit that reaches the server
    after the run for it has started does not stop that run."""

    def __init__(self):
        self._wanted: dict[str, int | None] = {}

    def want(self, session: str, text: str) -> None:
        self._wanted[session] = hash(text)

    def current(self, session: str, text: str) -> bool:
        return self._wanted.get(session, hash(text)) == hash(text)

    def end(self, session: str) -> None:
        """The page closed: every run of the session is stale."""
        self._wanted[session] = None


def reading_bytes(r: Reading) -> int:
    a = r.analysis
    return len(a.data) + sum(t.numel() * t.element_size() for t in (a.entropies, a.top_ids, a.top_probs, a.nats))


class Readings:
    """Each session's last reading, within `budget` bytes in all (least recently used dropped first)."""

    def __init__(self, budget: int = READINGS_BUDGET):
        self.budget = budget
        self._kept: OrderedDict[str, Reading] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session: str) -> Reading | None:
        with self._lock:
            r = self._kept.get(session)
            if r is not None:
                self._kept.move_to_end(session)
            return r

    def put(self, session: str, reading: Reading) -> None:
        with self._lock:
            self._kept[session] = reading
            self._kept.move_to_end(session)
            while self.nbytes > self.budget and len(self._kept) > 1:
                self._kept.popitem(last=False)

    def drop(self, session: str) -> None:
        with self._lock:
            self._kept.pop(session, None)

    @property
    def nbytes(self) -> int:
        return sum(map(reading_bytes, self._kept.values()))


class Pages:
    """The sessions whose page is open, so that what Gradio keeps of every other session can go.

    Gradio keeps each session's last input and output of every event (to rebuild the page for a deep link,
    which this page does not offer) until `state_session_capacity` newer sessions push it out: an hour and
    more after a page closed, and for ever for an API client, whose session never closes. Here that is the
    text, its view's HTML (up to 13 MB for a 16 KB window), its chart, or all of /analyze's report."""

    def __init__(self):
        self._open: set[str] = set()

    def opened(self, session: str) -> None:
        self._open.add(session)

    def closed(self, session: str) -> None:
        self._open.discard(session)

    def forget_others(self, holder: StateHolder) -> None:
        """Drop Gradio's state of every session without an open page (an API call's state is of no later use)."""
        with holder.lock:
            for session in [s for s in list(holder.session_data) if s not in self._open]:
                del holder.session_data[session]
                holder.time_last_used.pop(session, None)


_LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if ctypes.util.find_library("c") else None
_M_ARENA_MAX = -8  # mallopt's parameter (malloc.h)


def limit_arenas(n: int = MALLOC_ARENAS) -> None:
    """Let glibc's malloc keep `n` arenas, unless MALLOC_ARENA_MAX says otherwise. By default each thread that
    allocates gets an arena of its own, up to 8 per core, and a freed block is reused only by its arena: each of
    Gradio's worker threads holds its own scraps of freed memory, which malloc_trim cannot give back while a
    live block shares their pages. It caps the arenas made from then on: call it before serving."""
    if _LIBC is not None and hasattr(_LIBC, "mallopt") and "MALLOC_ARENA_MAX" not in os.environ:
        _LIBC.mallopt(_M_ARENA_MAX, n)


def release_memory() -> None:
    """Give freed memory back to the system: glibc keeps freed blocks of its arenas for reuse, so without
    malloc_trim a process stays at its peak after the work is done; torch keeps freed GPU memory cached the
    same way."""
    gc.collect()
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class Trimmer:
    """Once the page has been idle (no `touch` for `idle_s`) after some work, calls `forget` (drop what no session
    needs any more) and then `release_memory`."""

    def __init__(self, forget: Callable[[], None] = lambda: None, idle_s: float = 5.0):
        self.forget, self.idle_s = forget, idle_s
        self._touched = threading.Event()
        threading.Thread(target=self._loop, daemon=True, name="blt-trimmer").start()

    def touch(self) -> None:
        self._touched.set()

    def _loop(self) -> None:
        while True:
            self._touched.wait()
            self._touched.clear()
            while self._touched.wait(self.idle_s):  # still busy: wait for a quiet spell
                self._touched.clear()
            self.forget()
            release_memory()
