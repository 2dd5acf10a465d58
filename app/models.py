"""Which models the page offers, and which it holds.

A visitor picks models by name from fixed lists: the shipped ones, Meta's BLTs and Llama 3. A Space owner adds
or chooses the defaults with environment variables (a Hub id or a folder: folders are the owner's, never a
visitor's). Models load on first use and are shared by every session. The shipped models are small and always
stay; of the large ones one BLT and one baseline are resident at a time. Loading another frees the one before,
first when only that makes room (each loader checks memory from the config alone); a model that would not fit
even then is refused, and the page keeps what it had.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from tokenizers import Tokenizer
from torch import nn

from model import BLT, load_blt, load_entropy_model
from model.baseline import BPEBaseline, load_baseline
from model.checks import check_choice
from model.devices import GB, NotEnoughMemoryError, default_device, module_bytes
from model.entropy_model import EntropyModel
from model.generate import generate, generate_baseline
from model.steps import can_compile

from .lanes import release_memory

SHIPPED = "shipped (assets/blt)"
SHIPPED_BASELINE = "shipped (assets/baseline)"
HUB = {"entropy model": ("facebook/blt-entropy", "facebook/blt-1b", "facebook/blt-7b"),
       "BLT": ("facebook/blt-1b", "facebook/blt-7b"),
       "baseline": ("meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.1-8B")}
SHIPPED_NAMES = {"entropy model": SHIPPED, "BLT": SHIPPED, "baseline": SHIPPED_BASELINE}
ENV = {"entropy model": "BLT_EXPLORER_ENTROPY_MODEL", "BLT": "BLT_EXPLORER_BLT", "baseline": "BLT_EXPLORER_BASELINE"}
COMPILE_ENV = "BLT_EXPLORER_COMPILE"  # 0: never compile the decode steps


def choices(role: str) -> list[str]:
    """The names a visitor can pick for `role`: the shipped model, the owner's choice, the Hub models."""
    owner = os.environ.get(ENV[role], "").strip()
    names = [SHIPPED_NAMES[role], *HUB[role]]
    return names if not owner or owner in names else [SHIPPED_NAMES[role], owner, *HUB[role]]


def default(role: str) -> str:
    """What the page starts with: the owner's choice (environment variable) or the shipped model."""
    return os.environ.get(ENV[role], "").strip() or SHIPPED_NAMES[role]


def check_name(role: str, name: object) -> str:
    """`name` if it is one of the choices; a visitor can name nothing else (no paths, no other repos)."""
    return check_choice(name, tuple(choices(role)), role)


def source(role: str, name: str) -> str | None:
    """What the loaders take for a checked name: None for the shipped model, else the Hub id or owner's folder."""
    return None if check_name(role, name) == SHIPPED_NAMES[role] else name


@dataclass
class _Slot:
    name: str | None = None
    model: object = None


class Resident:
    """Models of one role by name: the shipped one kept, one large one at a time beside it."""

    def __init__(self, role: str, load: Callable[[str | None], object], shipped: object = None):
        self.role, self._load = role, load
        self._shipped = shipped
        self._large = _Slot()
        self._lock = threading.Lock()  # one load at a time; sessions keep using what is loaded meanwhile

    def get(self, name: str) -> object:
        """The model called `name`; raises ValueError or CheckpointError (with what to do), keeping what it had."""
        src = source(self.role, name)
        if src is None:
            with self._lock:
                if self._shipped is None:
                    self._shipped = self._load(None)
            return self._shipped
        if self._large.name == name:
            return self._large.model
        with self._lock:
            if self._large.name == name:
                return self._large.model
            try:
                model = self._load(src)  # checks its memory from its config before reading weights
            except NotEnoughMemoryError as e:
                room = e.available + self._held()
                if self._large.model is None or e.needed > room:
                    if self._large.model is None:
                        raise
                    raise NotEnoughMemoryError(f"{e}; even with {self._large.name} unloaded only {room / GB:.1f} GB "
                                               f"would be free, so the page keeps {self._large.name}", e.needed, room) from None
                self._large = _Slot()  # the one before makes room
                release_memory()
                model = self._load(src)
            self._large = _Slot(name, model)  # one large model per role: the one before is freed
            release_memory()
            return model

    def _held(self) -> int:
        model = self._large.model
        if model is None:
            return 0
        return sum(module_bytes(m) for m in (model if isinstance(model, tuple) else (model,)) if isinstance(m, nn.Module))


class Models:
    """Every model the page runs, by role: entropy models for Explore, the BLT and the baseline for Generate."""

    def __init__(self, entropy_model: EntropyModel | None = None, blt: BLT | None = None,
                 baseline: tuple[BPEBaseline, Tokenizer] | None = None):
        self.entropy = Resident("entropy model", load_entropy_model, entropy_model)
        self.blt = Resident("BLT", load_blt, blt)
        self.baseline = Resident("baseline", load_baseline, baseline)

    def preload(self) -> None:
        """Load the defaults now: on ZeroGPU models must be placed on CUDA when the app starts."""
        for role in (self.entropy, self.blt, self.baseline):
            role.get(default(role.role))

    def compile(self) -> bool:
        """Compile the default BLT's and baseline's decode steps (model/steps.py; about a minute on a laptop CPU)
        before the page serves, so that nothing is compiled for a visitor's prompt or length. Not in the
        background: torch.compile traces with torch.fx, which patches every nn.Module call of the process while
        it traces, and a visitor's model call in another thread then fails ("module is not installed as a
        submodule"). Off where torch.compile is not (ZeroGPU, no C++ compiler) and with BLT_EXPLORER_COMPILE=0.
        Returns whether it compiled."""
        if os.environ.get(COMPILE_ENV, "1") == "0" or not can_compile(default_device()):
            return False
        blt, (baseline, tokenizer) = self.blt.get(default("BLT")), self.baseline.get(default("baseline"))
        list(generate(blt, "Warm-up", 16, compile=True))  # enough bytes to close patches: their steps compile then
        list(generate_baseline(baseline, tokenizer, "Warm-up", 4, compile=True))
        return True

