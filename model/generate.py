"""Generation, byte by byte, for the BLT and the BPE baseline.

Meta's `generate_nocache` re-runs the entropy model and the whole BLT over the prefix for every new byte.
`generate` instead keeps, between bytes, what each component needs (shared/blt-reference.md §6.3):

- entropy model: keys/values of the last `window` bytes; the context restarts every max_seqlen bytes;
- hash n-grams: the last ids (7 for n up to 8);
- local encoder: keys/values per layer, and the states of the bytes the next patch's slots will pool and
  cross-attend to (the open patch, plus earlier ones with an encoder cross-attention window);
- global transformer: keys/values of every closed patch. It runs once per patch, when the entropy model
  closes it (Meta's realtime patching): a patch's global output is first read by the byte after it;
- local decoder: keys/values per layer, and the cross-attention keys/values of the last closed patch's slots.

Every generator reads the prompt in one batched pass ("prefill": exactly the state that byte-by-byte
reading would leave), then feeds one id, samples the next and yields it. They are Python generators: the
UI streams their events, and closing one frees its caches.
"""

from __future__ import annotations

import math
import time
from array import array
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from typing import TYPE_CHECKING, Any, Protocol

import numpy
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from . import patcher
from .baseline import BPEBaseline
from .blt import BLT, patch_window_mask
from .bpe import ByteLevelTokens
from .checks import (
    MAX_PROMPT_BYTES,
    check_max_new_bytes,
    check_sampling,
    check_seed,
    check_text,
    whole,
)
from .entropy_model import entropy_from_logits
from .layers import KV, KVCache, fixed_buffer, one_position
from .patcher import PatchingConfig
from .steps import ByteSteps, Step, byte_steps, token_step
from .tokenizer import BOS_ID, EOS_ID, VOCAB_SIZE, encode

if TYPE_CHECKING:
    from tokenizers import Tokenizer


ENTROPY_MODEL, LOCAL_ENCODER, GLOBAL_TRANSFORMER, LOCAL_DECODER = (
    "entropy_model", "local_encoder", "global_transformer", "local_decoder")
BLT_FORWARD = "blt_forward"  # the no-cache algorithm runs encoder, global and decoder as one forward pass
BASELINE = "baseline_transformer"


# --- events: what the generators yield ------------------------------------------------------------------


@dataclass
class Cost:
    """What one step cost, per component: wall time, matmul FLOPs (measured only when asked), cache memory."""

    wall_ms: float  # the whole step inside the generator: components, sampling, bookkeeping
    ms: dict[str, float]
    flops: dict[str, int]  # empty unless generation was asked to count FLOPs
    kv_bytes: dict[str, int]  # cache memory held after the step


@dataclass
class PromptEvent:
    """The prompt, read in one pass. Scores cover every id after the first (a BLT predicts its first byte
    from BOS, as Llama 3 its first token; the shipped baseline's first token has nothing before it)."""

    ids: list[int]  # BLT byte ids (BOS first) or baseline token ids
    bits_per_byte: float  # the model's cross-entropy on the prompt; nan when there is nothing to score
    scored_bytes: int
    cost: Cost
    entropies: list[float] = field(default_factory=list)  # BLT: uncertainty (nats) about each of ids[1:]
    starts_patch: list[bool] = field(default_factory=list)  # BLT: does ids[1 + i] open a patch?


@dataclass
class ByteEvent:
    """One generated BLT byte. It opens a patch exactly when the global transformer ran to predict it."""

    id: int  # 4..259 for a byte, EOS_ID when generation stops on its own
    prob: float  # the model's probability of this id (temperature 1, before top-k/top-p)
    entropy: float  # the entropy model's uncertainty (nats) about this byte: it decides `starts_patch`
    starts_patch: bool
    cost: Cost

    @property
    def global_step(self) -> bool:
        """Did the global transformer run to predict this byte? Exactly when the byte opens a patch."""
        return self.starts_patch


@dataclass
class TokenEvent:
    """One generated baseline token and the bytes it stands for (cut to fit the byte limit)."""

    id: int
    data: bytes
    prob: float
    cost: Cost


# --- measuring ------------------------------------------------------------------------------------------

# torch's counter knows the GPU attention kernels but not the CPU one that scaled_dot_product_attention uses.
_CPU_SDPA = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu:
             lambda q, k, v, *args, out_shape=None, **kwargs: sdpa_flop_count(q, k, v)}


class Meter:
    """Wall time per component and, when `count_flops`, matmul FLOPs from torch's FlopCounterMode (entered
    around each component only, so nothing the caller runs between steps is counted)."""

    def __init__(self, device: torch.device, count_flops: bool = False):
        self.device, self.count_flops = device, count_flops
        self.cuda = device.type == "cuda"  # then each timing waits for the kernels launched
        self.ms: dict[str, float] = defaultdict(float)
        self.flops: dict[str, int] = defaultdict(int)
        self._timings: dict[str, _Timing] = {}  # reused when they count no FLOPs: a byte takes four

    def __call__(self, component: str) -> _Timing:
        """`with meter(component):` times (and counts) what it runs as that component's. Not reentrant for one
        component: a component's timings never nest."""
        if self.count_flops:
            return _Timing(self, component)
        timing = self._timings.get(component)
        if timing is None:
            timing = self._timings[component] = _Timing(self, component)
        return timing

    def _sync(self) -> None:
        torch.cuda.synchronize(self.device)

    def take(self, started: float, kv_bytes: dict[str, int]) -> Cost:
        """The cost since the last call (`started`: perf_counter() when the step began); count afresh."""
        cost = Cost(1000 * (time.perf_counter() - started), dict(self.ms), dict(self.flops), kv_bytes)
        self.ms.clear()
        self.flops.clear()
        return cost


class _Timing:
    """One component's share of a Meter, as a context manager: a class rather than a @contextmanager, since a
    generated byte takes several."""

    __slots__ = ("meter", "component", "counter", "start")

    def __init__(self, meter: Meter, component: str):
        self.meter, self.component = meter, component
        self.counter = FlopCounterMode(display=False, custom_mapping=_CPU_SDPA) if meter.count_flops else None

    def __enter__(self) -> None:
        if self.meter.cuda:
            self.meter._sync()
        self.start = time.perf_counter()
        if self.counter is not None:
            self.counter.__enter__()

    def __exit__(self, kind: type[BaseException] | None, *rest: Any) -> None:
        meter = self.meter
        if self.counter is not None:
            self.counter.__exit__(kind, *rest)
            meter.flops[self.component] += self.counter.get_total_flops()
        if meter.cuda:
            meter._sync()
        meter.ms[self.component] += 1000 * (time.perf_counter() - self.start)


# --- inputs and sampling ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sampling:
    """Greedy when temperature is 0; otherwise softmax(logits / temperature), optionally cut to the top_k
    ids and then to the smallest set whose probability reaches top_p."""

    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self) -> None:
        check_sampling(self.temperature, self.top_k, self.top_p)

    def sample(self, logits: Tensor, generator: torch.Generator) -> tuple[int, float]:
        """(next id, the model's probability of it) from next-id logits [V]."""
        probs = torch.softmax(logits.float(), dim=-1)
        if self.temperature == 0:
            prob, i = probs.max(-1)  # the first of equal maxima, as argmax
            return int(i), float(prob)
        scaled = logits.float() / self.temperature
        if self.top_k is not None and self.top_k < scaled.numel():
            kth = torch.topk(scaled, self.top_k).values[-1]
            scaled = scaled.masked_fill(scaled < kth, -math.inf)
        p = torch.softmax(scaled, dim=-1)
        if self.top_p is not None and self.top_p < 1:
            sorted_p, order = p.sort(descending=True)
            drop = (sorted_p.cumsum(0) - sorted_p) >= self.top_p  # keep ids until the mass before them reaches top_p
            p = p.index_fill(0, order[drop], 0.0)
        i = int(torch.multinomial(p, 1, generator=generator))
        return i, float(probs[i])


def blt_prompt(prompt: str | list[int]) -> list[int]:
    """BLT ids of a prompt: text is encoded with BOS first; an empty prompt is BOS alone."""
    if isinstance(prompt, str):
        ids = encode(check_text(prompt, "prompt", empty_ok=True))
    elif isinstance(prompt, (list, tuple)) and all(whole(i) for i in prompt):
        ids = list(prompt) or [BOS_ID]
        if any(not 0 <= i < VOCAB_SIZE for i in ids):
            raise ValueError(f"prompt ids must lie in [0, {VOCAB_SIZE})")
    else:
        raise ValueError(f"the prompt must be text (str) or a list of BLT ids, got {type(prompt).__name__}")
    if EOS_ID in ids:
        raise ValueError("the prompt contains EOS (id 2): generation continues a single document, "
                         "so pass only the text after the last EOS")
    if len(ids) - 1 > MAX_PROMPT_BYTES:
        raise ValueError(f"the prompt is {len(ids) - 1} bytes, over the cap of {MAX_PROMPT_BYTES}: shorten it")
    return ids


# --- the cached BLT -----------------------------------------------------------------------------------------


def cache_bytes(cache: list[KVCache] | list[KV] | None) -> int:
    """Memory of a stack's caches. Its KVCaches share one length and size (every position is written to each
    layer), so the first speaks for all: generators ask after every byte."""
    if not cache:
        return 0
    if isinstance(cache[0], KVCache):
        return len(cache) * cache[0].nbytes
    return sum(k.nbytes + v.nbytes for k, v in cache)


NO_PATCH = -(2**62)  # the patch index of a decoder slot that holds no patch yet: outside every window


def float32(x: float) -> float:
    """x rounded to float32, as torch rounds a Python number compared with a float32 tensor."""
    return array("f", [x])[0]


def patch_closes(t: int, entropy: float | None, previous: float | None, open_bytes: int, cfg: PatchingConfig) -> bool:
    """Does the patch holding byte t end at t, so that byte t+1 opens the next one? Meta's realtime patching:
    `patcher.patch_lengths` applies the same rules to a whole sequence at once. `open_bytes` counts the
    open patch's bytes, t included; `entropy` is H[t] and `previous` H[t-1], float32 values as Python numbers
    (one conversion a feed, not tensor ops a byte), compared as the patcher compares its float32 tensors: the
    difference and the thresholds rounded to float32."""
    if t == 0:
        return True  # BOS is a patch of its own
    if cfg.max_patch_length is not None and open_bytes >= cfg.max_patch_length:
        return True
    if cfg.mode == "byte":
        return True
    if cfg.monotonicity:
        return t == 1 or float32(entropy - previous) > float32(cfg.threshold)
    if cfg.threshold_add is not None:
        return t == 1 or (t > 2 and float32(entropy - previous) > float32(cfg.threshold_add)
                          and entropy > float32(cfg.threshold))
    return entropy > float32(cfg.threshold)


class HostInts:
    """Integer inputs of a step (ids, a position) in one CPU tensor that numpy rewrites in place before each call:
    a write costs ~0.1 µs where torch.tensor made a new tensor in 2.5-4 µs, three times a byte. A step reads its
    inputs during the call only, so one tensor can serve every call."""

    def __init__(self, *shape: int):
        self.array = numpy.zeros(shape, dtype=numpy.int64)
        self.tensor = torch.from_numpy(self.array)

    def __call__(self, values: int | list[Any]) -> Tensor:
        self.array[...] = values
        return self.tensor


def step_ints(host: HostInts | None, values: int | list[Any], device: torch.device) -> Tensor:
    """`values` as a step's int64 input: written into `host` on a CPU (HostInts), a new tensor on a GPU."""
    return host(values) if host is not None else torch.tensor(values, device=device)


class Reader(Protocol):
    """A model that reads ids one batch at a time and predicts the next one (both BLT readers, the baseline)."""

    meter: Meter
    device: torch.device

    def feed(self, ids: list[int]) -> tuple[Tensor, Tensor | None, list[bool] | None]: ...

    def reserve(self, n: int) -> None: ...

    def kv_bytes(self) -> dict[str, int]: ...


class CachedBLT:
    """The BLT reading bytes incrementally. `feed(ids)` returns next-byte logits for each fed byte, as
    BLT.forward over everything fed so far would (up to float rounding), plus the entropies and patch closes.

    Several bytes (a prompt) are read in one batched pass, eagerly: compiled for any length (inductor's
    dynamic-shape kernels), the shipped entropy model and BLT took 1.3-2.3× as long as eager over 300 bytes,
    after 40-110 s of compiling (Intel Xeon with AMX, both dtypes). With `steps` (model/steps.py), a single
    byte takes the fixed-shape step of each component, compiled or eager, on caches that keep their shapes
    (caches without a sliding window grow as needed; `reserve` makes room up front). Without, it takes the
    batched path too, whose attention covers only the positions written: what counting FLOPs should see."""

    def __init__(self, blt: BLT, meter: Meter | None = None, steps: ByteSteps | None = None):
        cfg = blt.config
        if cfg.patching.mode not in ("entropy", "byte"):
            raise ValueError(f"cached generation supports entropy and byte patching, not {cfg.patching.mode!r}: "
                             "use generate_nocache")
        if cfg.patching.mode == "entropy" and blt.entropy_model is None:
            raise ValueError("this BLT patches by entropy but has no entropy model")
        self.blt, self.patching = blt, cfg.patching
        self.steps = steps
        self.device = next(blt.parameters()).device
        self.meter = meter or Meter(self.device)
        self.encoder_window = cfg.cross_attn_window_encoder or 1  # patches whose bytes a patch's slots see
        self.decoder_window = cfg.cross_attn_window_decoder or 1  # closed patches a byte sees
        self.ngram = max(cfg.hash_ngram_sizes, default=1)  # ids the hash n-grams of a byte look at
        self.length = 0  # bytes read
        self.recent: list[int] = []  # the last ids, for the hash n-grams
        self.last_entropy: float | None = None
        self.entropy_kv: list[KVCache] | None = None  # a new one each max_seqlen bytes
        self.encoder_kv = blt.local_encoder.new_cache()
        self.global_kv = blt.global_transformer.new_cache()
        self.decoder_kv = blt.local_decoder.new_cache()
        # starts of the open patch and of the patches before it whose bytes its slots will see; the states of
        # those bytes (per cross-attending encoder layer) begin at starts[0]
        self.starts: list[int] = [0]
        self.byte_states: list[Tensor] | None = None
        self.states_from = 0
        self.patches = 0  # closed patches, i.e. global steps taken
        # a step's position, byte and hash window: on a CPU rewritten in place; on a GPU made per value
        on_cpu = self.device.type == "cpu"
        self._host_position = HostInts() if on_cpu else None
        self._host_byte, self._host_window = (HostInts(1, 1), HostInts(1, self.ngram)) if on_cpu else (None, None)
        self._last_position: tuple[int, Tensor | None] = (-1, None)
        # the decoder's cross-attention keys/values of the last decoder_window patches' slots, per layer, in a
        # ring of fixed size (patch j at (j % window)·k), and the patch each slot holds (NO_PATCH: none yet)
        ring, dtype = self.decoder_window * cfg.cross_attn_k, next(blt.local_decoder.parameters()).dtype
        self.slots: list[KV] = [tuple(fixed_buffer(torch.zeros(1, c.n_kv_heads, ring, c.head_dim, dtype=dtype, device=self.device))
                                      for _ in "kv") for c in blt.local_decoder.cross_attn_layers]
        self.slot_patch = torch.full((ring,), NO_PATCH, device=self.device)
        self.slot_seen = fixed_buffer(self.slot_patch >= 0)  # what a byte read alone sees: every patch in the ring
        self.slot_bytes = cache_bytes(self.slots)  # the ring's memory, fixed

    @torch.no_grad()
    def feed(self, ids: list[int]) -> tuple[Tensor, Tensor | None, list[bool]]:
        """Read bytes (one while generating, a whole prompt when prefilling): (logits [n, 260], entropies
        [n] or None without an entropy model, whether each byte closes its patch)."""
        start, n = self.length, len(ids)
        entropies = None
        if self.patching.mode == "entropy":
            with self.meter(ENTROPY_MODEL):
                entropies = self._entropies(ids, start)
        with self.meter(LOCAL_ENCODER):
            states = self._encode(ids, start)
            self.byte_states = states if self.byte_states is None else [
                torch.cat([old, new], dim=1) for old, new in zip(self.byte_states, states)]
        closes, starts = [], self.starts
        values = None if entropies is None else entropies.tolist()
        for i in range(n):
            t = start + i
            entropy = None if values is None else values[i]
            close = patch_closes(t, entropy, self.last_entropy, t - starts[-1] + 1, self.patching)
            if close:
                starts = starts + [t + 1]
            closes.append(close)
            self.last_entropy = entropy
        new_slots = self._close_patches(starts) if any(closes) else None
        with self.meter(LOCAL_DECODER):
            logits = self._decode(states[-1], closes, start, new_slots)
        self.patches += sum(closes)
        self.recent = (self.recent + ids)[-(self.ngram - 1):] if self.ngram > 1 else []
        self.length += n
        return logits[0], entropies, closes

    def reserve(self, n: int) -> None:
        """Room for n more bytes in the caches without a window (each byte may close a patch), so that their
        shapes stay fixed while generating them."""
        for cache in (self.global_kv, self.encoder_kv, self.decoder_kv, self.entropy_kv or []):
            for c in cache:
                c.reserve(n)

    def _position(self, t: int) -> Tensor:
        """t as the 0-d tensor a step takes: on a GPU a byte's steps share one (a tensor made there is a copy)."""
        if self._host_position is not None:
            return self._host_position(t)
        if self._last_position[0] != t:
            self._last_position = (t, torch.tensor(t, device=self.device))
        return self._last_position[1]

    def _entropies(self, ids: list[int], start: int) -> Tensor:
        """H[t] of each new byte, with the context restarted every max_seqlen bytes as EntropyModel.forward does."""
        model, out = self.blt.entropy_model, []
        S, t, i = model.config.max_seqlen, start, 0
        while i < len(ids):
            piece = ids[i : i + S - t % S]
            if t % S == 0:
                self.entropy_kv = model.new_cache()
            if len(piece) == 1 and self.steps is not None:
                with one_position(self.entropy_kv):
                    byte = step_ints(self._host_byte, [piece], self.device)
                    out.append(self.steps.entropy(byte, self._position(t % S), self.entropy_kv))
            else:
                tokens = torch.tensor([piece], device=self.device)
                out.append(entropy_from_logits(model.extend(tokens, t % S, self.entropy_kv)[0]))
            t, i = t + len(piece), i + len(piece)
        return out[0] if len(out) == 1 else torch.cat(out)

    def _encode(self, ids: list[int], start: int) -> list[Tensor]:
        """The encoder's states of the new bytes, per cross-attending layer [1, n, D]."""
        if len(ids) == 1 and self.steps is not None:  # the hash n-grams of one byte: its last `ngram` ids, zeros before the first (as hashing pads)
            ngram_ids = [[0] * (self.ngram - 1 - len(self.recent)) + self.recent + ids]
            window = step_ints(self._host_window, ngram_ids, self.device)
            with one_position(self.encoder_kv):
                return self.steps.encode(window, self._position(start), self.encoder_kv)
        tail = torch.tensor([self.recent + ids], device=self.device)
        return self.blt.local_encoder.extend(self.blt.embed(tail)[:, -len(ids):], start, self.encoder_kv)

    def _close_patches(self, starts: list[int]) -> list[KV]:
        """Run the P patches this feed closed through the local encoder's pooling and the global transformer,
        and return the decoder's cross-attention keys/values of their slots [1, H, P·k, hd] per layer. `starts`
        extends self.starts (the open patch's start and those of the window before it) with the start after each
        closed patch. Then only the bytes that later patches' slots may see are kept. One patch while
        generating: two steps (the pooling's time counts as the encoder's, the slots' projections as the global
        transformer's); several (a prompt): the batched path."""
        first, end = len(self.starts) - 1, starts[-1]  # the first closed patch's index in starts; the bytes' end
        count = len(starts) - 1 - first
        stepping = count == 1 and self.steps is not None
        with self.meter(LOCAL_ENCODER):
            positions = torch.arange(self.states_from, end, device=self.device)
            pids = torch.bucketize(positions, torch.tensor(starts, device=self.device), right=True)[None] - 1 - first
            seen = [s[:, : end - self.states_from] for s in self.byte_states]
            if stepping:
                patches = self.steps.pool(seen, pids)
            else:
                patches = self.blt.local_encoder.patch_slots(seen, pids, count).reshape(1, count, -1)
            self.starts = starts[-self.encoder_window:]
            self.byte_states = [s[:, self.starts[0] - self.states_from :] for s in self.byte_states]
            self.states_from = self.starts[0]
        if stepping:
            with self.meter(GLOBAL_TRANSFORMER), one_position(self.global_kv):
                return self.steps.patch(patches, self._position(self.patches), self.global_kv)
        with self.meter(GLOBAL_TRANSFORMER):
            out = self.blt.global_transformer.extend(patches, self.patches, self.global_kv)
        with self.meter(LOCAL_DECODER):
            return self.blt.local_decoder.slot_keys_values(out)

    def _decode(self, h: Tensor, closes: list[bool], start: int, new: list[KV] | None) -> Tensor:
        """Decoder logits for the new bytes: byte t sees the slots of the last patch that closed at or before t
        (and the window before it), so patches closed by this very feed count. `new`: their slots' keys/values."""
        decoder = self.blt.local_decoder
        if len(closes) == 1 and self.steps is not None:
            if new is not None:
                self._keep_slots(new)
            with one_position(self.decoder_kv):
                return self.steps.decode(h, self._position(start), self.decoder_kv, self.slots, self.slot_seen)
        k = self.blt.config.cross_attn_k
        seen = list(accumulate(closes, initial=self.patches - 1))[1:]  # the patch each byte reads
        slots, key_patch = self.slots, self.slot_patch
        if new is not None:
            slots = [(torch.cat([k0, k1], dim=2), torch.cat([v0, v1], dim=2)) for (k0, v0), (k1, v1) in zip(slots, new)]
            key_patch = torch.cat([key_patch, self.patches + torch.arange(new[0][0].shape[2], device=self.device) // k])
        mask = patch_window_mask(torch.tensor(seen, device=self.device)[None, :, None], key_patch[None, None, :],
                                 self.blt.config.cross_attn_window_decoder)
        logits = decoder.extend(h, start, self.decoder_kv, slots, mask)
        if new is not None:
            self._keep_slots(new)
        return logits

    def _keep_slots(self, new: list[KV]) -> None:
        """Put the slots of the patches just closed (numbered from self.patches) into the decoder's ring."""
        k, w = self.blt.config.cross_attn_k, self.decoder_window
        count = new[0][0].shape[2] // k
        for j in range(max(0, count - w), count):
            patch, ring = self.patches + j, (self.patches + j) % w * k
            for (rk, rv), (nk, nv) in zip(self.slots, new):
                rk[:, :, ring : ring + k], rv[:, :, ring : ring + k] = nk[:, :, j * k : (j + 1) * k], nv[:, :, j * k : (j + 1) * k]
            self.slot_patch[ring : ring + k] = patch
        self.slot_seen.copy_(self.slot_patch >= 0)

    def kv_bytes(self) -> dict[str, int]:
        return {ENTROPY_MODEL: cache_bytes(self.entropy_kv),
                LOCAL_ENCODER: cache_bytes(self.encoder_kv) + sum(s.nbytes for s in self.byte_states or []),
                GLOBAL_TRANSFORMER: cache_bytes(self.global_kv),
                LOCAL_DECODER: cache_bytes(self.decoder_kv) + self.slot_bytes}


class NoCacheBLT:
    """Meta's generate_nocache: every feed re-runs the entropy model and the whole BLT over all bytes read."""

    def __init__(self, blt: BLT, meter: Meter | None = None):
        self.blt, self.tokens = blt, []
        self.device = next(blt.parameters()).device
        self.meter = meter or Meter(self.device)

    @torch.no_grad()
    def feed(self, ids: list[int]) -> tuple[Tensor, Tensor | None, list[bool]]:
        self.tokens += ids
        tokens = torch.tensor([self.tokens], device=self.device)
        entropies = None
        with self.meter(ENTROPY_MODEL):
            if self.blt.config.patching.mode == "entropy":
                entropies = self.blt.entropy_model.entropies(tokens)
            lengths = patcher.patch_lengths(tokens, self.blt.config.patching, entropies)
        with self.meter(BLT_FORWARD):
            logits = self.blt(tokens, patch_lengths=lengths)[0]
        ends = set((lengths[0].cumsum(0) - 1).tolist())
        T, n = len(self.tokens), len(ids)
        return logits[-n:], None if entropies is None else entropies[0, -n:], [t in ends for t in range(T - n, T)]

    def reserve(self, n: int) -> None:
        """Nothing to make room in: every feed starts over."""

    def kv_bytes(self) -> dict[str, int]:
        return {}


class CachedBaseline:
    """The BPE baseline reading tokens incrementally, with a KV cache: a prompt in one batched pass, then one
    token at a time through the fixed-shape `step` (compiled or eager) when given, else the batched path."""

    def __init__(self, model: BPEBaseline, meter: Meter | None = None, step: Step | None = None):
        self.model, self.length, self.kv = model, 0, model.new_cache()
        self.device = next(model.parameters()).device
        self.meter = meter or Meter(self.device)
        self.step = step
        on_cpu = self.device.type == "cpu"  # then a step's token and position are rewritten in place, as CachedBLT's
        self._host_token, self._host_position = (HostInts(1, 1), HostInts()) if on_cpu else (None, None)

    @torch.no_grad()
    def feed(self, ids: list[int]) -> tuple[Tensor, None, None]:
        with self.meter(BASELINE):
            if len(ids) == 1 and self.step is not None:
                with one_position(self.kv):
                    token = step_ints(self._host_token, [ids], self.device)
                    logits = self.step(token, step_ints(self._host_position, self.length, self.device), self.kv)
            else:
                logits = self.model.extend(torch.tensor([ids], device=self.device), self.length, self.kv)
        self.length += len(ids)
        return logits[0], None, None

    def reserve(self, n: int) -> None:
        """Room for n more tokens, so that the cache's shape stays fixed while generating them."""
        for c in self.kv:
            c.reserve(n)

    def kv_bytes(self) -> dict[str, int]:
        return {BASELINE: cache_bytes(self.kv)}


# --- the generators ----------------------------------------------------------------------------------------


def generate(blt: BLT, prompt: str | list[int], max_new_bytes: int, temperature: float = 0.0,
             top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
             count_flops: bool = False, compile: bool = False) -> Iterator[PromptEvent | ByteEvent]:
    """Stream a BLT continuation of `prompt`: a PromptEvent, then one ByteEvent per byte until EOS or
    max_new_bytes. Cached: the global transformer runs once per patch. Bad arguments raise ValueError here,
    before anything runs. Each byte takes the fixed-shape steps of model/steps.py, compiled when `compile`.
    `count_flops` measures matmul FLOPs per component on the batched path instead (slower; attention over the
    positions written, not a cache's fixed slots; nothing compiled, which the counter could not see)."""
    ids, n, sampling = blt_prompt(prompt), check_max_new_bytes(max_new_bytes), Sampling(temperature, top_k, top_p)
    seed = check_seed(seed)
    steps = None if count_flops else byte_steps(blt, compile)
    reader = CachedBLT(blt, Meter(next(blt.parameters()).device, count_flops), steps)
    return _generate_bytes(reader, ids, n, sampling, seed)


def generate_nocache(blt: BLT, prompt: str | list[int], max_new_bytes: int, temperature: float = 0.0,
                     top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                     count_flops: bool = False) -> Iterator[PromptEvent | ByteEvent]:
    """As `generate`, with Meta's no-cache algorithm: the reference that `generate` must match."""
    ids, n, sampling = blt_prompt(prompt), check_max_new_bytes(max_new_bytes), Sampling(temperature, top_k, top_p)
    seed = check_seed(seed)
    reader = NoCacheBLT(blt, Meter(next(blt.parameters()).device, count_flops))
    return _generate_bytes(reader, ids, n, sampling, seed)


def generate_baseline(model: BPEBaseline, tokenizer: "Tokenizer", prompt: str, max_new_bytes: int,
                      temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
                      seed: int | None = None, count_flops: bool = False,
                      compile: bool = False) -> Iterator[PromptEvent | TokenEvent]:
    """Stream the BPE baseline's continuation of `prompt`: a PromptEvent, then TokenEvents until
    max_new_bytes bytes are out (the last token's bytes are cut to fit) or an EOS id of the model's config.
    `count_flops` and `compile` as for `generate`."""
    check_text(prompt, "prompt", empty_ok=True)
    if len(prompt.encode("utf-8")) > MAX_PROMPT_BYTES:
        raise ValueError(f"the prompt is over the cap of {MAX_PROMPT_BYTES} bytes: shorten it")
    ids = tokenizer.encode(prompt).ids  # with the tokenizer's own special tokens, as transformers encodes: Llama 3's BOS
    if not ids:
        raise ValueError("the BPE baseline has no beginning-of-text token: give it a prompt of at least one character")
    n, sampling = check_max_new_bytes(max_new_bytes), Sampling(temperature, top_k, top_p)
    seed = check_seed(seed)
    step = None if count_flops else token_step(model, compile)
    reader = CachedBaseline(model, Meter(next(model.parameters()).device, count_flops), step)
    return _generate_tokens(reader, ids, ByteLevelTokens(tokenizer), n, sampling, seed, model.config.eos_ids)


def _generate_bytes(reader: Reader, ids: list[int], max_new: int, sampling: Sampling,
                    seed: int | None) -> Iterator[PromptEvent | ByteEvent]:
    generator = _rng(seed, reader.device)
    yield _read_prompt(reader, ids, len(ids) - 1)
    reader.reserve(max_new)
    next_id = ids[-1]
    for _ in range(max_new):
        started = time.perf_counter()
        logits, entropies, closes = reader.feed([next_id])
        next_id, prob = sampling.sample(logits[-1], generator)
        entropy = math.nan if entropies is None else float(entropies[-1])
        yield ByteEvent(next_id, prob, entropy, closes[-1], reader.meter.take(started, reader.kv_bytes()))
        if next_id == EOS_ID:
            return


def _generate_tokens(reader: CachedBaseline, ids: list[int], token_bytes: ByteLevelTokens, max_new: int,
                     sampling: Sampling, seed: int | None, eos_ids: tuple[int, ...]) -> Iterator[PromptEvent | TokenEvent]:
    generator = _rng(seed, reader.device)
    yield _read_prompt(reader, ids, sum(len(token_bytes(i)) for i in ids[1:]))
    reader.reserve(max_new)
    next_id, produced = ids[-1], 0
    for _ in range(max_new):  # every token but a special one holds at least one byte
        started = time.perf_counter()
        logits, _, _ = reader.feed([next_id])
        next_id, prob = sampling.sample(logits[-1], generator)
        data = token_bytes(next_id)[: max_new - produced]
        produced += len(data)
        yield TokenEvent(next_id, data, prob, reader.meter.take(started, reader.kv_bytes()))
        if produced >= max_new or next_id in eos_ids:
            return


def _read_prompt(reader: Reader, ids: list[int], scored_bytes: int) -> PromptEvent:
    """Feed all of the prompt but its last id in one pass (the loop feeds that one) and score it."""
    started = time.perf_counter()
    if len(ids) < 2:
        return PromptEvent(ids, math.nan, 0, reader.meter.take(started, reader.kv_bytes()))
    logits, entropies, closes = reader.feed(ids[:-1])
    target = torch.tensor(ids[1:], device=logits.device)
    nats = float(F.cross_entropy(logits.float(), target, reduction="sum"))
    return PromptEvent(ids, nats / math.log(2) / max(scored_bytes, 1), scored_bytes, reader.meter.take(started, reader.kv_bytes()),
                       [] if entropies is None else entropies.tolist(), closes or [])


def _rng(seed: int | None, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator
