"""What reading and generating text costs: matmul FLOPs per component, per byte, for the BLT and a BPE model.

FLOPs count matrix products only (2·m·n·k each), as torch's FlopCounterMode does: projections, feed-forward
layers, attention scores and value sums over the keys actually attended (a sliding window caps them),
cross-attention, output heads. Embedding lookups (bytes, hash n-grams, BPE tokens) cost nothing. Each term
below is what one cached step of model/generate.py's batched path computes, so `blt_flops` must equal what
FlopCounterMode measures on the same run (tests/test_cost.py), and the paper-scale projection uses the very
same terms with the released BLT configurations. (The fixed-shape steps also score a cache's empty slots,
masked, until its window fills: a little more arithmetic for shapes that never change.)

Small models decode at the speed of memory, not arithmetic: `step_weight_bytes` counts the bytes of weights
each step reads (`step_weights`), which over the measured memory bandwidth is the fastest a step can be.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from .. import patcher
from ..blt import BLT, BLTConfig, blt_1b_config, blt_7b_config
from ..bpe import LLAMA3, SHIPPED, token_byte_lengths
from ..entropy_model import EntropyModelConfig
from ..generate import (
    BASELINE,
    ENTROPY_MODEL,
    GLOBAL_TRANSFORMER,
    LOCAL_DECODER,
    LOCAL_ENCODER,
    ByteEvent,
    PromptEvent,
    TokenEvent,
)
from ..layers import TransformerConfig
from ..tokenizer import encode

if TYPE_CHECKING:
    from tokenizers import Tokenizer

BLT_COMPONENTS = (ENTROPY_MODEL, LOCAL_ENCODER, GLOBAL_TRANSFORMER, LOCAL_DECODER)

# --- the terms ------------------------------------------------------------------------------------------------


def stack_flops(cfg: TransformerConfig, context: float) -> float:
    """One position through a transformer stack: q/k/v/o projections, SwiGLU, and attention to `context` keys."""
    hd = cfg.head_dim
    projections = 2 * cfg.dim * hd * (2 * cfg.n_heads + 2 * cfg.n_kv_heads)
    return cfg.n_layers * (projections + 6 * cfg.dim * cfg.ffn_dim + 4 * cfg.n_heads * hd * context)


def lm_flops(cfg: TransformerConfig, vocab: int, context: float) -> float:
    """One position through a decoder-only language model: its stack and its output head."""
    return stack_flops(cfg, context) + 2 * cfg.dim * vocab


def window_context(position: int, window: int | None) -> int:
    """Keys a query at `position` (from 0) attends to under a sliding window (None: all before it)."""
    return position + 1 if window is None else min(position + 1, window)


def _cross_attn(dim: int, heads: int, kv_heads: int) -> tuple[int, int, int]:
    """(FLOPs per query for its q and output projections, per key for its k and v, per query-key pair)."""
    hd = dim // heads
    return 4 * dim * heads * hd, 4 * dim * kv_heads * hd, 4 * heads * hd


def _cross_attn_shape(config: BLTConfig, side: str) -> tuple[int, int, int, int]:
    """(dim, heads, kv heads, cross-attending layers) of the encoder's or decoder's cross-attention."""
    local = getattr(config, f"local_{side}")
    heads = getattr(config, f"cross_attn_heads_{side}") or local.n_heads
    kv_heads = getattr(config, f"cross_attn_kv_heads_{side}") or heads
    layers = local.n_layers if getattr(config, f"cross_attn_all_layers_{side}") else 1
    return local.dim, heads, kv_heads, layers


def entropy_byte_flops(cfg: EntropyModelConfig, context: float) -> float:
    return lm_flops(cfg.transformer(), cfg.vocab_size, context)


def encoder_byte_flops(config: BLTConfig, context: float) -> float:
    return stack_flops(config.local_encoder, context)


def encoder_patch_flops(config: BLTConfig, seen_bytes: float) -> float:
    """Closing a patch: project its pooled bytes to k slots, which cross-attend to `seen_bytes` bytes."""
    dim, heads, kv_heads, layers = _cross_attn_shape(config, "encoder")
    per_query, per_key, per_pair = _cross_attn(dim, heads, kv_heads)
    k = config.cross_attn_k
    return 2 * dim * k * dim + layers * (k * per_query + seen_bytes * per_key + k * seen_bytes * per_pair)


def global_patch_flops(config: BLTConfig, context: float) -> float:
    """One global step: the optional input projection (k·D_E ≠ D_G) and the stack over `context` patches."""
    in_dim, g = config.cross_attn_k * config.local_encoder.dim, config.global_transformer
    return (2 * in_dim * g.dim if in_dim != g.dim else 0) + stack_flops(g, context)


def decoder_patch_flops(config: BLTConfig) -> float:
    """After a global step: project its output to k decoder slots and their cross-attention keys/values."""
    dim, heads, kv_heads, layers = _cross_attn_shape(config, "decoder")
    k = config.cross_attn_k
    return 2 * config.global_transformer.dim * k * dim + layers * k * _cross_attn(dim, heads, kv_heads)[1]


def decoder_byte_flops(config: BLTConfig, context: float, seen_patches: int) -> float:
    """One byte: cross-attention to the slots of `seen_patches` patches, the stack, the 260-way head."""
    dim, heads, kv_heads, layers = _cross_attn_shape(config, "decoder")
    per_query, _, per_pair = _cross_attn(dim, heads, kv_heads)
    cross = layers * (per_query + config.cross_attn_k * seen_patches * per_pair)
    return cross + lm_flops(config.local_decoder, config.vocab_size, context)


# --- a run, from its events ---------------------------------------------------------------------------------


def blt_flops(config: BLTConfig, closes: Sequence[bool], first: int = 0) -> dict[str, float]:
    """FLOPs per component of reading positions first..len(closes)-1 one at a time, as CachedBLT does;
    closes[t] says whether byte t closed its patch (the earlier positions shape the contexts)."""
    enc_window = config.cross_attn_window_encoder or 1
    dec_window = config.cross_attn_window_decoder or 1
    em = config.entropy_model if config.patching.mode == "entropy" else None
    totals = dict.fromkeys(BLT_COMPONENTS, 0)
    starts, patches = [0], 0  # as CachedBLT: the open patch's start and those of the patches its slots see
    for t, close in enumerate(closes):
        counts = t >= first
        if close:
            if counts:
                totals[LOCAL_ENCODER] += encoder_patch_flops(config, t + 1 - starts[0])
                totals[GLOBAL_TRANSFORMER] += global_patch_flops(
                    config, window_context(patches, config.global_transformer.sliding_window))
                totals[LOCAL_DECODER] += decoder_patch_flops(config)
            starts = (starts + [t + 1])[-enc_window:]
            patches += 1
        if counts:
            if em is not None:
                totals[ENTROPY_MODEL] += entropy_byte_flops(em, window_context(t % em.max_seqlen, em.sliding_window))
            totals[LOCAL_ENCODER] += encoder_byte_flops(config, window_context(t, config.local_encoder.sliding_window))
            totals[LOCAL_DECODER] += decoder_byte_flops(
                config, window_context(t, config.local_decoder.sliding_window), min(dec_window, patches))
    return totals


def baseline_flops(cfg: TransformerConfig, vocab: int, positions: range) -> float:
    return sum(lm_flops(cfg, vocab, window_context(p, cfg.sliding_window)) for p in positions)


# --- weights read per step: the memory-bandwidth bound ------------------------------------------------------

# parameters that the BLT reads once per patch in generation (patch close, global step, the slots' keys/values)
_PER_PATCH = ("local_encoder.patch_embedding_projection.", "local_encoder.cross_attn_layers.", "global_transformer.",
              "local_decoder.patch_embedding_projection.", "local_decoder.cross_attn_layers.{}.cross_attn_norm_kv.",
              "local_decoder.cross_attn_layers.{}.wk.", "local_decoder.cross_attn_layers.{}.wv.")


def _read(name: str, p: torch.Tensor, lookups: tuple[str, ...]) -> torch.Tensor:
    """What a step reads of parameter `name`: of a table that is only looked up, one row."""
    return p[:1] if name.startswith(lookups) else p


def step_weights(model: torch.nn.Module) -> dict[str, list[torch.Tensor]]:
    """The weights a generation step reads, in the model's order. A BLT: {"byte": per byte (entropy model, local
    encoder and its hash n-gram rows, local decoder), "patch": per patch (the encoder's pooling, global
    transformer, patch slots)}; a BPE model: {"token": per token}. Of embedding tables, the row looked up; an
    output head tied to them reads all of it."""
    if not isinstance(model, BLT):
        tied = model.output.weight is model.tok_embeddings.weight
        lookups = () if tied else ("tok_embeddings.",)
        return {"token": [_read(n, p, lookups) for n, p in model.named_parameters(remove_duplicate=False)
                          if n != "tok_embeddings.weight" or not tied]}
    layers = range(len(model.local_decoder.cross_attn_layers))
    per_patch = tuple(prefix.format(i) for prefix in _PER_PATCH for i in layers)
    lookups = ("entropy_model.tok_embeddings.", "local_encoder.tok_embeddings.", "encoder_hash_tok_embedding.")
    out: dict[str, list[torch.Tensor]] = {"byte": [], "patch": []}
    for name, p in model.named_parameters():
        out["patch" if name.startswith(per_patch) else "byte"].append(_read(name, p, lookups))
    return out


def step_weight_bytes(model: torch.nn.Module) -> dict[str, int]:
    """Bytes of `step_weights`: over the memory bandwidth, the fastest a step can be."""
    return {part: sum(t.nbytes for t in weights) for part, weights in step_weights(model).items()}


@dataclass
class GenerationCost:
    """One generation's bill, per generated byte (prompt reading excluded; its score is kept)."""

    model: str
    new_bytes: int
    seconds: float  # inside the generator: model steps and sampling
    steps: dict[str, int]  # component calls while generating
    flops_per_byte: dict[str, float]  # analytic
    measured_flops_per_byte: dict[str, float]  # FlopCounterMode; empty unless the run counted FLOPs
    ms_per_byte: dict[str, float]
    kv_bytes: dict[str, int]  # cache memory at the end
    prompt_bits_per_byte: float
    prompt_ms: float  # reading the prompt

    @property
    def bytes_per_s(self) -> float:
        return self.new_bytes / self.seconds if self.seconds > 0 else float("nan")

    @property
    def total_flops_per_byte(self) -> float:
        return sum(self.flops_per_byte.values())


def _split(events: Sequence[PromptEvent | ByteEvent | TokenEvent]) -> tuple[PromptEvent, list]:
    if not events or not isinstance(events[0], PromptEvent):
        raise ValueError("pass all of a generation's events, its PromptEvent first")
    return events[0], list(events[1:])


def _per_byte(sums: dict[str, float], n: int) -> dict[str, float]:
    return {k: v / max(n, 1) for k, v in sums.items()}


def _summed(steps: Sequence, attr: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for e in steps:
        for k, v in getattr(e.cost, attr).items():
            out[k] = out.get(k, 0) + v
    return out


def blt_generation_cost(config: BLTConfig, events: Sequence[PromptEvent | ByteEvent]) -> GenerationCost:
    """The bill of a `generate` run, from its events."""
    prompt, steps = _split(events)
    closes = prompt.starts_patch + [e.starts_patch for e in steps]
    if len(prompt.ids) > 1 and len(prompt.starts_patch) != len(prompt.ids) - 1:
        raise ValueError("these events do not come from a BLT generation (its prompt has no patch starts)")
    flops = blt_flops(config, closes, first=len(prompt.ids) - 1)
    n = len(steps)
    entropy_steps = n if config.patching.mode == "entropy" else 0
    return GenerationCost(
        "BLT", n, sum(e.cost.wall_ms for e in steps) / 1000,
        {ENTROPY_MODEL: entropy_steps, LOCAL_ENCODER: n, GLOBAL_TRANSFORMER: sum(e.starts_patch for e in steps), LOCAL_DECODER: n},
        _per_byte(flops, n), _per_byte(_summed(steps, "flops"), n), _per_byte(_summed(steps, "ms"), n),
        steps[-1].cost.kv_bytes if steps else prompt.cost.kv_bytes, prompt.bits_per_byte, prompt.cost.wall_ms)


def baseline_generation_cost(cfg: TransformerConfig, vocab: int, events: Sequence[PromptEvent | TokenEvent]) -> GenerationCost:
    """The bill of a `generate_baseline` run, from its events; per byte = per token / its bytes."""
    prompt, steps = _split(events)
    n_bytes = sum(len(e.data) for e in steps)
    first = len(prompt.ids) - 1
    flops = {BASELINE: baseline_flops(cfg, vocab, range(first, first + len(steps)))}
    return GenerationCost(
        "BPE baseline", n_bytes, sum(e.cost.wall_ms for e in steps) / 1000, {BASELINE: len(steps)},
        _per_byte(flops, n_bytes), _per_byte(_summed(steps, "flops"), n_bytes), _per_byte(_summed(steps, "ms"), n_bytes),
        steps[-1].cost.kv_bytes if steps else prompt.cost.kv_bytes, prompt.bits_per_byte, prompt.cost.wall_ms)


# --- paper scale ------------------------------------------------------------------------------------------------

LLAMA3_VOCAB = 128256
LLAMA3_8B = TransformerConfig(4096, 32, 32, 8, 14336, rope_theta=500000.0)
LLAMA32_1B = TransformerConfig(2048, 16, 32, 8, 8192, rope_theta=500000.0)
# (BLT, its shape, its Hub repo, the Llama it is measured against, that Llama's shape, its Hub repo)
PAPER_PAIRS = (("BLT-1B", blt_1b_config, "facebook/blt-1b", "Llama 3.2 1B", LLAMA32_1B, "meta-llama/Llama-3.2-1B"),
               ("BLT-7B", blt_7b_config, "facebook/blt-7b", "Llama 3 8B", LLAMA3_8B, "meta-llama/Llama-3.1-8B"))

FORMULAS = [
    "stack(ctx) = L · [2·d·d_h·(2·h + 2·h_kv) + 6·d·d_ff + 4·h·d_h·ctx]   (q,k,v,o; SwiGLU; scores and values over ctx keys)",
    "head = 2·d·V   (embedding lookups are free)",
    "BLT per byte = entropy model [stack(ctx_w) + head] + local encoder [stack(ctx_w)] + local decoder "
    "[cross-attn to k slots + stack(ctx_w) + head]",
    "       + ( global transformer [stack(ctx_patches)] + encoder pooling and cross-attn over the patch's bytes "
    "+ decoder slot projection and keys/values ) / patch size",
    "BPE per byte = ( stack(ctx_tokens) + head ) / (bytes per token)",
    "ctx_w = keys a byte attends to in the 512-byte window, ctx_patches / ctx_tokens = patches / tokens before it, "
    "each averaged over the text",
]


@dataclass
class ProjectionRow:
    model: str
    flops_per_byte: float
    components: dict[str, float]  # per byte
    formula: str  # the terms with this model's numbers


@dataclass
class Projection:
    """Inference FLOPs per byte for a text at paper scale: BLT against Llama 3 of a matching size."""

    text_bytes: int
    patch_size: float  # average bytes per patch measured on the text
    bytes_per_token: float
    tokenizer: str  # which tokenizer counted the tokens
    pairs: list[tuple[ProjectionRow, ProjectionRow]]  # (BLT, Llama)
    formulas: list[str] = field(default_factory=lambda: list(FORMULAS))
    assumptions: list[str] = field(default_factory=list)

    def saving(self, i: int, with_entropy_model: bool = True) -> float:
        """Fraction of the Llama model's FLOPs per byte that pair i's BLT saves."""
        blt, llama = self.pairs[i]
        flops = blt.flops_per_byte - (0 if with_entropy_model else blt.components[ENTROPY_MODEL])
        return 1 - flops / llama.flops_per_byte


def mean_context(n: int, window: int | None, period: int | None = None) -> float:
    """Keys attended per position, averaged over positions 0..n-1 (the context restarting every `period`)."""
    return sum(window_context(t % period if period else t, window) for t in range(n)) / max(n, 1)


def blt_flops_per_byte(config: BLTConfig, n_bytes: int, patch_size: float) -> dict[str, float]:
    """Per-byte FLOPs of each component when reading n_bytes in patches of `patch_size` bytes on average
    (the terms are linear in the contexts, so averaging the contexts averages the FLOPs)."""
    em = config.entropy_model if config.patching.mode == "entropy" else None
    ctx = mean_context(n_bytes, config.local_encoder.sliding_window)
    patches = n_bytes / patch_size
    out = {ENTROPY_MODEL: 0.0 if em is None else entropy_byte_flops(em, mean_context(n_bytes, em.sliding_window, em.max_seqlen)),
           LOCAL_ENCODER: encoder_byte_flops(config, ctx) + encoder_patch_flops(config, patch_size) / patch_size,
           GLOBAL_TRANSFORMER: global_patch_flops(config, (patches + 1) / 2) / patch_size,
           LOCAL_DECODER: decoder_byte_flops(config, ctx, 1) + decoder_patch_flops(config) / patch_size}
    return out


def lm_flops_per_byte(cfg: TransformerConfig, vocab: int, n_bytes: int, bytes_per_token: float) -> float:
    tokens = n_bytes / bytes_per_token
    return lm_flops(cfg, vocab, (tokens + 1) / 2) / bytes_per_token


# --- training compute ---------------------------------------------------------------------------------------

TRAIN_PASSES = 3  # a training step costs about three forward passes: the forward, and twice that backward


def blt_training_flops(config: BLTConfig, rows: int, seq_len: int, patches: int) -> float:
    """Training FLOPs of a batch of `rows` × seq_len bytes cut into `patches` patches in all. The frozen
    entropy model only reads (it patches the batch); it is counted apart, as the paper does."""
    parts = blt_flops_per_byte(config, seq_len, rows * seq_len / max(patches, 1))
    return TRAIN_PASSES * rows * seq_len * sum(v for k, v in parts.items() if k != ENTROPY_MODEL)


def lm_training_flops(cfg: TransformerConfig, vocab: int, rows: int, seq_len: int) -> float:
    """Training FLOPs of a batch of `rows` × seq_len positions of a decoder-only LM (entropy model, baseline)."""
    return TRAIN_PASSES * rows * seq_len * lm_flops(cfg, vocab, (seq_len + 1) / 2)


def _g(x: float) -> str:
    return f"{x:.3g}"


def paper_projection(n_bytes: int, patch_size: float, bytes_per_token: float, tokenizer: str,
                     loaded: dict[str, BLTConfig | tuple[TransformerConfig, int]] | None = None) -> Projection:
    """BLT-1B and BLT-7B (released shapes, with the 100M entropy model) against Llama 3.2 1B and Llama 3 8B,
    reading n_bytes of text at `patch_size` bytes per patch and `bytes_per_token` bytes per BPE token.
    `loaded` gives the real configurations of loaded models by Hub id (a BLTConfig for Meta's BLTs, (shape,
    vocabulary) for Llamas): their pair uses them instead of the paper's shapes."""
    if n_bytes < 1 or patch_size < 1 or bytes_per_token <= 0:
        raise ValueError(f"need n_bytes >= 1, patch_size >= 1 and bytes_per_token > 0; got {n_bytes}, {patch_size}, {bytes_per_token}")
    loaded = loaded or {}
    pairs, used = [], []
    for blt_name, make_config, blt_repo, llama_name, llama, llama_repo in PAPER_PAIRS:
        config, vocab = make_config(), LLAMA3_VOCAB
        if isinstance(loaded.get(blt_repo), BLTConfig):
            blt_name, config = f"{blt_repo} (loaded)", loaded[blt_repo]
            used.append(f"{blt_repo}: the loaded model's configuration")
        if isinstance(loaded.get(llama_repo), tuple):
            llama_name, (llama, vocab) = f"{llama_repo} (loaded)", loaded[llama_repo]
            used.append(f"{llama_repo}: the loaded model's configuration")
        parts = blt_flops_per_byte(config, n_bytes, patch_size)
        blt_formula = (f"{blt_name}: {_g(parts[ENTROPY_MODEL])} (entropy model) + {_g(parts[LOCAL_ENCODER])} (local encoder) "
                       f"+ {_g(parts[LOCAL_DECODER])} (local decoder) + {_g(parts[GLOBAL_TRANSFORMER] * patch_size)} "
                       f"(global step) / {patch_size:.2f} = {_g(sum(parts.values()))} FLOPs/byte")
        llama_total = lm_flops_per_byte(llama, vocab, n_bytes, bytes_per_token)
        llama_formula = (f"{llama_name}: {_g(llama_total * bytes_per_token)} per token / {bytes_per_token:.2f} bytes per token "
                         f"= {_g(llama_total)} FLOPs/byte")
        pairs.append((ProjectionRow(blt_name, sum(parts.values()), parts, blt_formula),
                      ProjectionRow(llama_name, llama_total, {BASELINE: llama_total}, llama_formula)))
    assumptions = [
        "BLT-1B/7B shapes: model.blt.blt_1b_config / blt_7b_config; entropy model: 14 layers × 768, window 512 (≈100M)",
        "Llama 3 8B: 32 layers, d 4096, 32 heads, 8 kv heads, FFN 14336, vocabulary 128256",
        "Llama 3.2 1B (paired with BLT-1B): 16 layers, d 2048, 32 heads, 8 kv heads, FFN 8192, vocabulary 128256",
        f"patch size {patch_size:.2f} bytes measured on this text; {bytes_per_token:.2f} bytes per token from {tokenizer}",
        "inference reads the text once with caches: each position attends to the keys before it (512 at most for "
        "byte-level models)",
        *used,
    ]
    return Projection(n_bytes, patch_size, bytes_per_token, tokenizer, pairs, assumptions=assumptions)


def text_projection(text: str, blt: BLT, tokenizers: dict[str, Tokenizer],
                    loaded: dict[str, BLTConfig | tuple[TransformerConfig, int]] | None = None) -> Projection:
    """`paper_projection` for a text: the patch size `blt`'s patching gives it, and its bytes per token
    under Llama 3's tokenizer when it loaded, else the shipped BPE's (labelled so). `tokenizers` is what
    model.bpe.load_bpe_tokenizers() returns; `loaded` as in paper_projection."""
    ids = torch.tensor([encode(text)], device=next(blt.parameters()).device)
    if ids.shape[1] < 2:
        raise ValueError("the text is empty: there is nothing to project")
    if LLAMA3 in tokenizers:
        name, tokenizer = LLAMA3, tokenizers[LLAMA3]
    elif SHIPPED in tokenizers:
        name, tokenizer = f"{SHIPPED} (Llama 3's tokenizer is not available)", tokenizers[SHIPPED]
    else:
        raise ValueError(f"no BPE tokenizer to count tokens with: need {LLAMA3!r} or {SHIPPED!r}")
    patch_size = patcher.average_patch_size(blt.internal_patch_lengths(ids))
    n_bytes = ids.shape[1] - 1
    return paper_projection(n_bytes, patch_size, n_bytes / len(token_byte_lengths(tokenizer, text)), name, loaded)
