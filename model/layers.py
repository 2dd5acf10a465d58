"""Building blocks shared by the entropy model, the BLT and the BPE baseline.

Numerics follow Meta's `bytelatent/base_transformer.py`: RMSNorm statistics and RoPE rotations in float32
(rounded once back to the activation dtype), interleaved RoPE pairs, SwiGLU feed-forward, no biases.

Every attention layer takes an optional KVCache of earlier positions' keys and values and appends its own,
so the same code serves a full forward pass and a cached, byte-by-byte generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

KV = tuple[Tensor, Tensor]  # keys, values: [B, n_kv_heads, T, head_dim], RoPE already applied to keys


def fixed_buffer(t: Tensor, growing: int | None = None) -> Tensor:
    """A buffer that compiled steps write in place. On CUDA its address is marked static: CUDA graphs may then
    mutate it (they copy other inputs into buffers of their own, which would lose the writes). Dimension
    `growing` differs between generations (a cache without a window): compiled steps take its size as a symbol,
    so a new size compiles nothing."""
    if t.is_cuda:
        torch._dynamo.mark_static_address(t)
    if growing is not None:
        torch._dynamo.maybe_mark_dynamic(t, growing)
    return t


class KVCache:
    """One attention layer's keys and values in cached generation, in fixed buffers: position p lives at slot
    p % size. With a sliding window of w keys the buffers hold exactly w slots (a query's window, itself
    included) and never move or grow, so a one-position `step` has the same shapes at every byte: what
    compiling (and CUDA graphs) need. On a CPU a step reads only the slots written (`slots_to_read`), a count
    that compiled steps take as a symbol: one graph still. Without a window they hold `capacity` positions and
    double when full."""

    def __init__(self, window: int | None = None, capacity: int = 64):
        self.window, self.size = window, window or capacity
        self.k: Tensor | None = None
        self.v: Tensor | None = None
        self.slots: Tensor | None = None  # 0..size-1, from which `read` is cut
        self.read: Tensor | None = None  # the slots the next one-position step reads (`one_position` sets it)
        self.length = 0  # positions written
        self.position_bytes = 0  # memory of one position's keys and values, once allocated

    def reserve(self, n: int, like: Tensor | None = None) -> None:
        """Room for n more positions (the first call allocates buffers for keys shaped like `like` [B, H, *, hd])."""
        if self.k is None:
            self.size = self.window or max(self.size, n)
            self.k, self.v = self._buffer(like), self._buffer(like)
        elif self.window is None and self.length + n > self.size:  # no window: never wrapped, grow in place
            self.size = max(2 * self.size, self.length + n)
            grown = [self._buffer(x) for x in (self.k, self.v)]
            grown[0][:, :, : self.length], grown[1][:, :, : self.length] = self.k[:, :, : self.length], self.v[:, :, : self.length]
            self.k, self.v = grown
        else:
            return  # nothing allocated or grown: the slots stand
        self.slots = fixed_buffer(torch.arange(self.size, device=self.k.device), growing=None if self.window else 0)
        B, H, _, hd = self.k.shape
        self.position_bytes = 2 * B * H * hd * self.k.element_size()  # keys and values: `nbytes` asked every byte

    def _buffer(self, like: Tensor) -> Tensor:
        """Zeros for `size` positions of keys or values shaped like `like` [B, H, *, hd]; without a window the
        size dimension grows, so compiled steps take it as a symbol."""
        zeros = like.new_zeros(like.shape[0], like.shape[1], self.size, like.shape[3])
        return fixed_buffer(zeros, growing=None if self.window else 2)

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write the new positions (reading several at once); returns the keys and values their queries may
        need, oldest first, the new ones last."""
        n, start = k.shape[2], self.length
        self.reserve(n, k)
        if start + n <= self.size:  # nothing wraps (always so without a window): the buffers' prefix is the answer
            self.k[:, :, start : start + n], self.v[:, :, start : start + n] = k, v
            self.length += n
            return self.k[:, :, : start + n], self.v[:, :, : start + n]
        first = max(0, start - self.size + 1)  # the first new query sees size-1 earlier positions at most
        kept = torch.arange(first, start, device=k.device) % self.size
        keys, values = torch.cat([self.k[:, :, kept], k], dim=2), torch.cat([self.v[:, :, kept], v], dim=2)
        m = min(n, self.size)
        slots = torch.arange(start + n - m, start + n, device=k.device) % self.size
        self.k[:, :, slots], self.v[:, :, slots] = k[:, :, n - m :], v[:, :, n - m :]
        self.length += n
        return keys, values

    def slots_to_read(self) -> Tensor:
        """The slots a one-position step at the next position reads, a prefix of 0..size-1. On a CPU, those
        written, the new one included: until a window fills, attention reads fewer keys (the shipped BLT, float32,
        same-process A/B: 256 bytes after a 33-byte prompt 9 % faster, bfloat16 5 %). At least 2: compiled steps
        take the count as a symbol (steps.Step marks it for dynamo), and torch would give a count of 1 a graph of
        its own. On a GPU, every slot: CUDA graphs replay fixed shapes."""
        if self.k.is_cuda:
            return self.slots
        return self.slots[: max(2, self.length + 1)]

    def write(self, k: Tensor, v: Tensor, pos: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Write one position (`pos`, a 0-d tensor: no Python number reaches a compiled step); returns the keys
        and values of the slots in `read` and which of them hold a key the query sees. The caller counts the
        position (`length`) and sets `read` (`one_position` does both)."""
        size = self.k.shape[2]  # not self.size: a compiled step may treat the size of a growing cache as symbolic
        slot = (pos % size).view(1)
        self.k[:, :, slot], self.v[:, :, slot] = k, v
        n = self.read.shape[0]
        return self.k[:, :, :n], self.v[:, :, :n], self.read <= pos

    @property
    def nbytes(self) -> int:
        """Memory of the keys and values that later steps can see."""
        return min(self.length, self.size) * self.position_bytes


class one_position:  # named for its use: `with one_position(cache):`
    """Around a one-position step (Attention.step) on a stack's caches: room for the position and the slots
    to read before it (a cache without a window may grow), and the position counted after it, outside any
    compiled code. A stack's caches have one size and length, so they share the view of the slots to read.
    A class rather than a @contextmanager: a byte takes three, on the generator's hot path."""

    __slots__ = ("cache",)

    def __init__(self, cache: list[KVCache]):
        self.cache = cache

    def __enter__(self) -> None:
        for c in self.cache:
            c.reserve(1)
        read = self.cache[0].slots_to_read() if self.cache else None
        for c in self.cache:
            c.read = read

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:  # a step that failed wrote no position
            for c in self.cache:
                c.length += 1


@dataclass(frozen=True)
class Llama3RopeScaling:
    """Llama 3.1's long-context RoPE (transformers' rope_type "llama3"): frequencies whose wavelength exceeds
    the original context / low_freq_factor turn `factor` times slower, those under original / high_freq_factor
    stay, and the ones between move along a smooth ramp."""

    factor: float
    low_freq_factor: float
    high_freq_factor: float
    original_max_position_embeddings: int

    def __call__(self, freqs: Tensor) -> Tensor:
        """Scaled inverse frequencies, computed as transformers' `_compute_llama3_parameters` does."""
        context = self.original_max_position_embeddings
        wavelen = 2 * math.pi / freqs
        scaled = torch.where(wavelen > context / self.low_freq_factor, freqs / self.factor, freqs)
        smooth = (context / wavelen - self.low_freq_factor) / (self.high_freq_factor - self.low_freq_factor)
        smoothed = (1 - smooth) * scaled / self.factor + smooth * scaled
        medium = (wavelen >= context / self.high_freq_factor) & (wavelen <= context / self.low_freq_factor)
        return torch.where(medium, smoothed, scaled)


@dataclass
class TransformerConfig:
    """Shape of one stack of transformer blocks (entropy model, local encoder/decoder, global, baseline)."""

    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int | None = None
    ffn_dim: int | None = None
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    sliding_window: int | None = None  # keys per query, the query itself included (xformers' convention)
    head_dim: int | None = None  # dim // n_heads unless set (Llama configs may set another)
    rope_scaling: Llama3RopeScaling | None = None

    def __post_init__(self) -> None:
        self.n_kv_heads = self.n_kv_heads or self.n_heads
        self.ffn_dim = self.ffn_dim or ffn_hidden_dim(self.dim)
        if (self.head_dim is None and self.dim % self.n_heads) or self.n_heads % self.n_kv_heads:
            raise ValueError(f"dim {self.dim}, n_heads {self.n_heads}, n_kv_heads {self.n_kv_heads} do not divide")
        self.head_dim = self.head_dim or self.dim // self.n_heads


def ffn_hidden_dim(dim: int, multiplier: float = 1.0, multiple_of: int = 256) -> int:
    """Meta's SwiGLU width: 2/3 of 4·dim, scaled, rounded up to a multiple of `multiple_of`."""
    hidden = int(multiplier * int(2 * 4 * dim / 3))
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x.float(), (x.shape[-1],), self.weight.float(), self.eps).to(x.dtype)


def rope_angles(head_dim: int, theta: float, positions: Tensor,
                scaling: Llama3RopeScaling | None = None) -> tuple[Tensor, Tensor]:
    """cos and sin [T, head_dim/2] (float32) for integer positions [T]."""
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=positions.device)[: head_dim // 2].float() / head_dim))
    if scaling is not None:
        freqs = scaling(freqs)
    angles = torch.outer(positions.float(), freqs)
    return angles.cos(), angles.sin()


def apply_rope(x: Tensor, rope: tuple[Tensor, Tensor]) -> Tensor:
    """Rotate interleaved pairs (x[2m], x[2m+1]) of x [B, H, T, hd] in float32."""
    cos, sin = rope
    xf = x.float().unflatten(-1, (-1, 2))
    x0, x1 = xf[..., 0], xf[..., 1]
    out = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)
    return out.flatten(-2).to(x.dtype)


@dataclass
class CausalMask:
    """Which keys each query may see: causal, optionally a sliding window and documents (EOS resets).

    Keys are numbered 0..Tk-1 (cached ones first); the queries are the last Tq of them. `doc` [B, Tk] is
    the document index of each key, as in Meta's block-diagonal xformers masks.
    """

    window: int | None = None
    doc: Tensor | None = None

    def dense(self, q_idx: Tensor, k_idx: Tensor) -> Tensor:
        """Boolean mask [B or 1, 1, len(q_idx), len(k_idx)] for absolute key indices of queries and keys."""
        q, k = q_idx[:, None], k_idx[None, :]
        allowed = k <= q
        if self.window is not None:
            allowed = allowed & (k > q - self.window)
        allowed = allowed[None]
        if self.doc is not None:
            allowed = allowed & (self.doc[:, q_idx][:, :, None] == self.doc[:, k_idx][:, None, :])
        return allowed[:, None]


def fused_linear(x: Tensor, *layers: nn.Linear) -> list[Tensor]:
    """x through several bias-free linears that read the same input (q/k/v, the feed-forward's w1/w3). In a step
    compiled for a CPU the weights are frozen into the graph, so their concatenation is folded once, at compile
    time: one product then reads all the weights in one pass, where separate ones each start a new read from
    memory (on a 2-core EPYC, 7 layers' q/k/v, 5.5 MB in float32, read cold in 0.68 ms fused against 0.92
    apart). Eagerly the concatenation would copy the weights at every call, so the products stay apart; on a
    GPU too, where compiled steps are not frozen: with freezing there, benchmarks/check_cuda.py found compiled
    bytes that differ from eager ones (freezing may take the caches that CUDA graphs keep at fixed addresses for
    constants), so the GPU keeps the path it verified."""
    if not (torch.compiler.is_compiling() and x.device.type == "cpu"):
        return [layer(x) for layer in layers]
    fused = F.linear(x, torch.cat([layer.weight for layer in layers]))
    return list(fused.split([layer.out_features for layer in layers], dim=-1))


def softmax_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, broadcast: bool = False) -> Tensor:
    """softmax(q·kᵀ/√hd, where `mask` allows)·v in float32 (as the flash kernels accumulate), written out for
    inductor to fuse into its own kernels: as batched products, or (`broadcast`) as elementwise products summed,
    which needs no GEMM at all (a varying step's symbolic sizes have none that inductor can template)."""
    dtype, (q, k, v) = q.dtype, (q.float(), k.float(), v.float())
    if broadcast:
        scores = (q[..., :, None, :] * k[..., None, :, :]).sum(-1) * q.shape[-1] ** -0.5
    else:
        scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf)
    weights = scores.softmax(-1)
    out = (weights[..., None] * v[..., None, :, :]).sum(-2) if broadcast else weights @ v
    return out.to(dtype)


def attend_one(q: Tensor, k: Tensor, v: Tensor, visible: Tensor) -> Tensor:
    """Attention of one query per head [B, H, 1, hd] over a cache's slots [B, H_kv, S, hd], where `visible` [S]
    marks the slots it sees. Grouped heads share their keys without copies; no slot order is assumed (a ring's
    slots are not in position order)."""
    B, H, _, hd = q.shape
    qg = q.view(B, k.shape[1], H // k.shape[1], hd)
    return softmax_attention(qg, k, v, visible).view(B, H, 1, hd)


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    """Scaled dot-product attention; grouped kv heads are repeated; rows with no visible key give 0. Compiled
    for a CPU, the products are written out: torch's flash kernel is an extern call with a fixed cost far above
    a step's few queries and keys (the shipped BLT's decoder step called it twice a byte, the pooling once a
    patch; with the hash's powers as constants too, a same-process A/B gave bfloat16 bytes 1.345 → 1.276 ms,
    float32 2.381 → 2.334, the same bytes)."""
    if k.shape[1] != q.shape[1]:
        rep = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    if torch.compiler.is_compiling() and q.device.type == "cpu":
        out = softmax_attention(q, k, v, mask, broadcast=True)
    else:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if mask is not None:
        out = torch.where(mask.any(-1, keepdim=True), out, 0.0)
    return out


class Attention(nn.Module):
    """Causal self-attention with RoPE. With a sliding window of w keys, inputs run block by block: a block of B
    queries scores the B+w-1 keys its queries see, of which each needs w, so memory grows with T·(B+w) rather
    than T². Smaller blocks score fewer masked keys (w=512: B=512 scores 2× the keys needed, B=128 1.25×) but
    pay more per block: on a 2-core EPYC, B from 32 to 256 read 10 KB within a few % of each other and B=512
    ~10 % slower (benchmarks/bench_entropy_model.py)."""

    block_size = 128

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.wq = nn.Linear(cfg.dim, cfg.n_heads * cfg.head_dim, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.wv = nn.Linear(cfg.dim, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.wo = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.dim, bias=False)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor], mask: CausalMask, cache: KVCache | None = None) -> Tensor:
        """`cache`: earlier positions' keys and values (cached generation); this call's are appended to it."""
        B, T, _ = x.shape
        q = apply_rope(self.wq(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2), rope)
        k = apply_rope(self.wk(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2), rope)
        v = self.wv(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        if cache is not None:
            k, v = cache.append(k, v)  # key i and query i keep their distance, which is all the mask needs
        Tk = k.shape[2]
        q_idx = torch.arange(Tk - T, Tk, device=x.device)
        if mask.window is None or T <= self.block_size:
            out = attend(q, k, v, mask.dense(q_idx, torch.arange(Tk, device=x.device)))
        else:
            blocks = []
            for s in range(0, T, self.block_size):
                qi = q_idx[s : s + self.block_size]
                k0, k1 = max(0, int(qi[0]) - mask.window + 1), int(qi[-1]) + 1
                ki = torch.arange(k0, k1, device=x.device)
                blocks.append(attend(q[:, :, s : s + len(qi)], k[:, :, k0:k1], v[:, :, k0:k1], mask.dense(qi, ki)))
            out = torch.cat(blocks, dim=2)
        return self.wo(out.transpose(1, 2).reshape(B, T, -1))

    def step(self, x: Tensor, rope: tuple[Tensor, Tensor], pos: Tensor, cache: KVCache) -> Tensor:
        """One position [B, 1, D] at `pos` (0-d tensor) on a cache with room for it and its slots to read set
        (`one_position`): fixed shapes but for that count of slots (a symbol), no Python numbers, so a compiled
        step is one graph whatever the position."""
        B = x.shape[0]
        q, k, v = fused_linear(x, self.wq, self.wk, self.wv)
        q = apply_rope(q.view(B, 1, self.n_heads, self.head_dim).transpose(1, 2), rope)
        k = apply_rope(k.view(B, 1, self.n_kv_heads, self.head_dim).transpose(1, 2), rope)
        v = v.view(B, 1, self.n_kv_heads, self.head_dim).transpose(1, 2)
        keys, values, visible = cache.write(k, v, pos)
        return self.wo(attend_one(q, keys, values, visible).transpose(1, 2).reshape(B, 1, -1))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = fused_linear(x, self.w1, self.w3)
        return self.w2(F.silu(gate) * up)


class TransformerBlock(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.attention = Attention(cfg)
        self.feed_forward = FeedForward(cfg.dim, cfg.ffn_dim)
        self.attention_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor], mask: CausalMask, cache: KVCache | None = None) -> Tensor:
        h = x + self.attention(self.attention_norm(x), rope, mask, cache)
        return h + self.feed_forward(self.ffn_norm(h))

    def step(self, x: Tensor, rope: tuple[Tensor, Tensor], pos: Tensor, cache: KVCache) -> Tensor:
        h = x + self.attention.step(self.attention_norm(x), rope, pos, cache)
        return h + self.feed_forward(self.ffn_norm(h))


class TransformerStack(nn.Module):
    """`n_layers` blocks with their RoPE; the body of every model in this project."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.layers = nn.ModuleList(TransformerBlock(cfg) for _ in range(cfg.n_layers))

    def rope(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        return rope_angles(self.cfg.head_dim, self.cfg.rope_theta, positions, self.cfg.rope_scaling)

    def mask(self, doc: Tensor | None) -> CausalMask:
        return CausalMask(self.cfg.sliding_window, doc)

    def new_cache(self, capacity: int = 64) -> list[KVCache]:
        """Per-layer caches for cached generation of one sequence, allocated now (pass them as `cache`; they fill
        in place). Without a sliding window they hold `capacity` positions before they grow."""
        like = next(self.parameters()).new_empty(1, self.cfg.n_kv_heads, 0, self.cfg.head_dim)
        caches = [KVCache(self.cfg.sliding_window, capacity) for _ in self.layers]
        for c in caches:
            c.reserve(0, like)
        return caches

    def forward(self, x: Tensor, positions: Tensor, doc: Tensor | None = None,
                cache: list[KVCache] | None = None) -> Tensor:
        rope, mask = self.rope(positions), self.mask(doc)
        for i, layer in enumerate(self.layers):
            x = layer(x, rope, mask, None if cache is None else cache[i])
        return x

    def step(self, x: Tensor, pos: Tensor, cache: list[KVCache]) -> Tensor:
        """One position [B, 1, D] at `pos` (0-d tensor), at fixed shapes (Attention.step). The caches must have
        room for it (`KVCache.reserve`); the caller counts it (`KVCache.length`)."""
        rope = self.rope(pos.view(1))
        for layer, c in zip(self.layers, cache):
            x = layer.step(x, rope, pos, c)
        return x


class CrossAttention(nn.Module):
    """Pre-normed cross-attention without RoPE; returns x + attention, as Meta's module does."""

    def __init__(self, dim: int, n_heads: int, n_kv_heads: int | None = None, norm_eps: float = 1e-5):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = n_heads, n_kv_heads or n_heads, dim // n_heads
        self.cross_attn_norm_q = RMSNorm(dim, norm_eps)
        self.cross_attn_norm_kv = RMSNorm(dim, norm_eps)
        self.wq = nn.Linear(dim, n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(dim, self.n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(dim, self.n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(n_heads * self.head_dim, dim, bias=False)

    def keys_values(self, kv: Tensor) -> KV:
        """Keys and values of the attended states; a generator computes them once per patch and caches them."""
        B, S, _ = kv.shape
        k, v = fused_linear(self.cross_attn_norm_kv(kv), self.wk, self.wv)
        return (k.view(B, S, self.n_kv_heads, self.head_dim).transpose(1, 2),
                v.view(B, S, self.n_kv_heads, self.head_dim).transpose(1, 2))

    def forward(self, x: Tensor, kv: Tensor | KV, mask: Tensor | None) -> Tensor:
        B, T, _ = x.shape
        k, v = self.keys_values(kv) if isinstance(kv, Tensor) else kv
        q = self.wq(self.cross_attn_norm_q(x)).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        out = attend(q, k, v, mask)
        return x + self.wo(out.transpose(1, 2).reshape(B, T, -1))
