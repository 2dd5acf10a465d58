"""The Byte Latent Transformer, top to bottom as the paper draws it.

bytes ──► byte + hash n-gram embeddings ──► local encoder (bytes, sliding window)
             │                                    │ max-pool each patch, project to k slots,
             │                                    ▼ cross-attend slots → their patch's bytes
             │                          global transformer (one position per patch)
             ▼                                    │ project to k slots
        local decoder: each byte cross-attends the last patch that ended at or before it ──► next-byte logits

Numerics and masks follow Meta's `bytelatent` code (the released weights were trained with it); the
transformers port differs in places listed in shared/blt-reference.md §8, and this file takes Meta's side.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from . import patcher
from .checks import check_tokens
from .devices import compute_dtype, storage_dtype
from .entropy_model import EntropyModel, EntropyModelConfig, document_ids
from .layers import (
    KV,
    CrossAttention,
    KVCache,
    RMSNorm,
    TransformerConfig,
    TransformerStack,
)
from .patcher import PatchingConfig
from .tokenizer import EOS_ID, VOCAB_SIZE

HASH_PRIMES = (1000000007, 5915587277, 1500450271, 3267000013, 5754853343, 4093082899, 9576890767,
               3628273133, 2860486313, 5463458053, 3367900313)


@dataclass
class BLTConfig:
    local_encoder: TransformerConfig
    global_transformer: TransformerConfig
    local_decoder: TransformerConfig
    cross_attn_k: int = 2  # slots per patch
    cross_attn_heads_encoder: int | None = None  # default: the local model's heads
    cross_attn_heads_decoder: int | None = None
    cross_attn_kv_heads_encoder: int | None = None  # default: as many as query heads (Meta)
    cross_attn_kv_heads_decoder: int | None = None
    cross_attn_all_layers_encoder: bool = False
    cross_attn_all_layers_decoder: bool = True
    cross_attn_window_encoder: int | None = None  # patches a slot may see, its own included (None: only its own)
    cross_attn_window_decoder: int | None = None
    hash_ngram_sizes: tuple[int, ...] = (3, 4, 5, 6, 7, 8)
    hash_vocab: int = 500002
    hash_functions: int = 1
    global_document_mask: bool = False  # Meta's attn_bias_type "block_causal" for the global transformer
    vocab_size: int = VOCAB_SIZE
    patching: PatchingConfig = field(default_factory=PatchingConfig)
    entropy_model: EntropyModelConfig | None = field(default_factory=EntropyModelConfig)

    def __post_init__(self) -> None:
        if self.local_encoder.dim != self.local_decoder.dim:
            raise ValueError("the local decoder reads the encoder's byte states: their dims must match")
        if self.cross_attn_k < 1:
            raise ValueError("cross_attn_k must be at least 1")

    def to_dict(self) -> dict:
        d = asdict(self)
        for name in ("local_encoder", "global_transformer", "local_decoder"):
            d[name]["n_kv_heads"], d[name]["ffn_dim"] = getattr(self, name).n_kv_heads, getattr(self, name).ffn_dim
        if self.entropy_model is not None:
            d["entropy_model"] = self.entropy_model.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> BLTConfig:
        d = dict(d)
        for name in ("local_encoder", "global_transformer", "local_decoder"):
            d[name] = TransformerConfig(**d[name])
        d["patching"] = PatchingConfig(**d.get("patching", {}))
        d["entropy_model"] = EntropyModelConfig(**d["entropy_model"]) if d.get("entropy_model") else None
        d["hash_ngram_sizes"] = tuple(d.get("hash_ngram_sizes", (3, 4, 5, 6, 7, 8)))
        return cls(**d)


def blt_1b_config() -> BLTConfig:
    """facebook/blt-1b as transformers' defaults and converter describe it (the loader reads the real file)."""
    local = dict(n_heads=16, ffn_dim=2816, rope_theta=500000.0, sliding_window=512)
    return BLTConfig(TransformerConfig(1024, 1, **local),
                     TransformerConfig(2048, 25, 16, ffn_dim=5632, rope_theta=500000.0),
                     TransformerConfig(1024, 9, **local), cross_attn_k=2)


def blt_7b_config() -> BLTConfig:
    """facebook/blt-7b (the paper's BLT 8B) from the paper's appendix: k·1280 ≠ 4096 needs a projection."""
    local = dict(n_heads=20, ffn_dim=3584, rope_theta=500000.0, sliding_window=512)
    return BLTConfig(TransformerConfig(1280, 1, **local),
                     TransformerConfig(4096, 32, 32, ffn_dim=11008, rope_theta=500000.0),
                     TransformerConfig(1280, 6, **local), cross_attn_k=4)


# --- hash n-gram embeddings -------------------------------------------------------------------------


def is_lookup_table(name: str) -> bool:
    """Is parameter `name` a hash n-gram table? They are only indexed, never multiplied, so they may be kept
    narrower than the compute dtype (model/devices.py)."""
    return name.startswith("encoder_hash_tok_embedding.")


def hash_ngram_ids(tokens: Tensor, n: int, prime: int, vocab: int) -> Tensor:
    """Bucket of the n-gram ending at each position: Σ_j x_{i-n+1+j}·prime^j over int64 with wraparound
    (the oldest byte gets power 0; BOE ids pad the left), then mod vocab with a non-negative result."""
    padded = torch.cat([tokens.new_zeros(tokens.shape[0], n - 1), tokens], dim=1)
    windows = padded.unfold(1, n, 1)
    powers = torch.tensor(int64_powers(prime, n), dtype=torch.int64, device=tokens.device)
    return (windows * powers).sum(-1) % vocab


def int64_powers(prime: int, n: int) -> list[int]:
    """prime^0..prime^(n-1) as int64 arithmetic wraps them (exact mod 2^64, as torch's int64 pow): Python
    numbers, so that a compiled step holds them as constants rather than calling torch's pow at every byte (an
    extern call per n-gram size: 6 a byte in the shipped BLT's encoder step)."""
    wrapped = [pow(prime, j, 1 << 64) for j in range(n)]
    return [p - (1 << 64) if p >= 1 << 63 else p for p in wrapped]


def hash_ngram_buckets(config: BLTConfig, tokens: Tensor) -> dict[tuple[int, int], Tensor]:
    """{(hash function f, n): bucket of the n-gram ending at each position [B, T]}, in the order of the BLT's
    hash tables (f outer, n inner): the ids its embedding looks up, and the page's hash n-gram view shows."""
    return {(f, n): hash_ngram_ids(tokens, n, HASH_PRIMES[f % len(HASH_PRIMES)], config.hash_vocab)
            for f in range(config.hash_functions) for n in config.hash_ngram_sizes}


def patch_window_mask(query_patch: Tensor, key_patch: Tensor, window: int | None) -> Tensor:
    """Cross-attention mask [B, 1, Q, K]: a query of patch j sees keys of patch j, or of j-window+1..j."""
    if window is None:
        allowed = query_patch == key_patch
    else:
        allowed = (key_patch <= query_patch) & (key_patch > query_patch - window)
    return allowed[:, None]


# --- the three parts --------------------------------------------------------------------------------


class LocalEncoder(TransformerStack):
    """Byte-level transformer; after its last layer (or every layer) k slots per patch, initialised by
    max-pooling the patch's bytes, cross-attend to exactly those bytes."""

    def __init__(self, cfg: BLTConfig):
        super().__init__(cfg.local_encoder)
        d, k = cfg.local_encoder.dim, cfg.cross_attn_k
        self.k, self.all_layers, self.window = k, cfg.cross_attn_all_layers_encoder, cfg.cross_attn_window_encoder
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, d)
        self.patch_embedding_projection = nn.Linear(d, k * d, bias=False)
        heads = cfg.cross_attn_heads_encoder or cfg.local_encoder.n_heads
        self.cross_attn_layers = nn.ModuleList(
            CrossAttention(d, heads, cfg.cross_attn_kv_heads_encoder, cfg.local_encoder.norm_eps)
            for _ in range(cfg.local_encoder.n_layers if self.all_layers else 1))

    def pool(self, h: Tensor, pids: Tensor, num_patches: int) -> Tensor:
        """Max over each patch's bytes, projected to k slots [B, P·k, D]; an empty patch pools to 0, and bytes
        whose patch id lies outside 0..P-1 pool into none."""
        B, _, D = h.shape
        index = torch.where((pids >= 0) & (pids < num_patches), pids, num_patches)  # into a row that is dropped
        pooled = h.new_zeros(B, num_patches + 1, D).scatter_reduce(
            1, index[..., None].expand(-1, -1, D), h, "amax", include_self=False)[:, :num_patches]
        return self.patch_embedding_projection(pooled).reshape(B, num_patches * self.k, D)

    def forward(self, embeds: Tensor, doc: Tensor, pids: Tensor, num_patches: int) -> tuple[Tensor, Tensor]:
        positions = torch.arange(embeds.shape[1], device=embeds.device)
        rope, mask = self.rope(positions), self.mask(doc)
        h, states = embeds, []
        for i, layer in enumerate(self.layers):
            h = layer(h, rope, mask)
            if self.all_layers or i == len(self.layers) - 1:
                states.append(h)
        return h, self.patch_slots(states, pids, num_patches)

    def patch_slots(self, states: list[Tensor], pids: Tensor, num_patches: int) -> Tensor:
        """The k slots [B, P·k, D] of patches 0..P-1: max-pool each patch's own bytes in the first states, project,
        then cross-attend to the bytes of the patches in its window, layer by layer (`states`: the byte states
        after each cross-attending layer; `pids` [B, T]: each byte's patch, which may lie outside 0..P-1 for
        bytes a patch's window sees but which are not its own: a generator's earlier or open patches)."""
        slot_patch = torch.arange(num_patches * self.k, device=pids.device) // self.k
        cross_mask = patch_window_mask(slot_patch[None, :, None], pids[:, None, :], self.window)
        slots = self.pool(states[0], pids, num_patches)
        for cross_attn, h in zip(self.cross_attn_layers, states):
            slots = slots + cross_attn(slots, h, cross_mask)
        return slots

    def patch_step(self, states: list[Tensor], pids: Tensor) -> Tensor:
        """`patch_slots` of the one patch a generated byte closes, as the global transformer's input [B, 1, k·D]:
        its bytes' states (and those of the patches before it in its window, whose `pids` are negative). The byte
        count varies from patch to patch: a compiled step takes it as a symbol."""
        return self.patch_slots(states, pids, 1).reshape(states[0].shape[0], 1, -1)

    def extend(self, embeds: Tensor, start: int, cache: list[KVCache]) -> list[Tensor]:
        """Byte states for bytes at positions start.., continuing from the keys and values of earlier bytes in
        `cache` (cached generation). Returns the states after each layer that the slots cross-attend to (the
        last is the encoder's output)."""
        positions = torch.arange(start, start + embeds.shape[1], device=embeds.device)
        rope, mask = self.rope(positions), self.mask(None)
        h, states = embeds, []
        for i, layer in enumerate(self.layers):
            h = layer(h, rope, mask, cache[i])
            if self.all_layers or i == len(self.layers) - 1:
                states.append(h)
        return states

    def step(self, embeds: Tensor, pos: Tensor, cache: list[KVCache]) -> list[Tensor]:
        """`extend` for one byte [B, 1, D] at `pos` (0-d tensor), at fixed shapes (layers.Attention.step)."""
        rope, h, states = self.rope(pos.view(1)), embeds, []
        for i, (layer, c) in enumerate(zip(self.layers, cache)):
            h = layer.step(h, rope, pos, c)
            if self.all_layers or i == len(self.layers) - 1:
                states.append(h)
        return states


class GlobalTransformer(TransformerStack):
    """The large latent transformer: one position per patch, causal, no norm and no head of its own."""

    def __init__(self, cfg: BLTConfig):
        super().__init__(cfg.global_transformer)
        in_dim = cfg.cross_attn_k * cfg.local_encoder.dim
        self.token_embedding_projection = (
            nn.Linear(in_dim, cfg.global_transformer.dim, bias=False) if in_dim != cfg.global_transformer.dim else None)

    def forward(self, patches: Tensor, doc: Tensor | None = None) -> Tensor:
        if self.token_embedding_projection is not None:
            patches = self.token_embedding_projection(patches)
        return super().forward(patches, torch.arange(patches.shape[1], device=patches.device), doc)

    def extend(self, patches: Tensor, start: int, cache: list[KVCache]) -> Tensor:
        """Outputs for patches at positions start.., continuing from the keys and values of earlier patches:
        in cached generation the global transformer takes one step per patch, when the patch closes."""
        if self.token_embedding_projection is not None:
            patches = self.token_embedding_projection(patches)
        positions = torch.arange(start, start + patches.shape[1], device=patches.device)
        return TransformerStack.forward(self, patches, positions, cache=cache)

    def step(self, patch: Tensor, pos: Tensor, cache: list[KVCache]) -> Tensor:
        """`extend` for one patch [B, 1, k·D] at `pos` (0-d tensor), at fixed shapes (layers.Attention.step)."""
        if self.token_embedding_projection is not None:
            patch = self.token_embedding_projection(patch)
        return TransformerStack.step(self, patch, pos, cache)


class LocalDecoder(TransformerStack):
    """Byte-level transformer over the encoder's byte states; before its first (or every) layer each byte
    cross-attends to the k slots of the last patch that ended at or before it."""

    def __init__(self, cfg: BLTConfig):
        super().__init__(cfg.local_decoder)
        d, k = cfg.local_decoder.dim, cfg.cross_attn_k
        self.k, self.all_layers, self.window = k, cfg.cross_attn_all_layers_decoder, cfg.cross_attn_window_decoder
        self.patch_embedding_projection = nn.Linear(cfg.global_transformer.dim, k * d, bias=False)
        heads = cfg.cross_attn_heads_decoder or cfg.local_decoder.n_heads
        self.cross_attn_layers = nn.ModuleList(
            CrossAttention(d, heads, cfg.cross_attn_kv_heads_decoder, cfg.local_decoder.norm_eps)
            for _ in range(cfg.local_decoder.n_layers if self.all_layers else 1))
        self.norm = RMSNorm(d, cfg.local_decoder.norm_eps)
        self.output = nn.Linear(d, cfg.vocab_size, bias=False)

    def slots(self, global_out: Tensor) -> Tensor:
        """Global outputs [B, P, D_G] → decoder slots [B, P·k, D]."""
        B, P, _ = global_out.shape
        return self.patch_embedding_projection(global_out).reshape(B, P * self.k, -1)

    def forward(self, h: Tensor, global_out: Tensor, dpids: Tensor, doc: Tensor) -> Tensor:
        slots = self.slots(global_out)
        slot_patch = torch.arange(slots.shape[1], device=h.device) // self.k
        cross_mask = patch_window_mask(dpids[:, :, None], slot_patch[None, None, :], self.window)
        rope, mask = self.rope(torch.arange(h.shape[1], device=h.device)), self.mask(doc)
        for i, layer in enumerate(self.layers):
            if self.all_layers or i == 0:
                h = h + self.cross_attn_layers[i](h, slots, cross_mask)
            h = layer(h, rope, mask)
        return self.output(self.norm(h)).float()

    def slot_keys_values(self, global_out: Tensor) -> list[KV]:
        """Cross-attention keys and values of the slots of patches [B, P, D_G], one pair per cross-attending
        layer: cached generation computes them once per patch."""
        slots = self.slots(global_out)
        return [cross_attn.keys_values(slots) for cross_attn in self.cross_attn_layers]

    def extend(self, h: Tensor, start: int, cache: list[KVCache], slots: list[KV], cross_mask: Tensor | None) -> Tensor:
        """Next-byte logits for the encoder states of bytes at positions start.., continuing from the keys and
        values of earlier bytes in `cache`. `slots` (from `slot_keys_values`) are the patches these bytes may see;
        `cross_mask` [B, 1, T, slots] says which byte sees which (None: every byte sees them all)."""
        positions = torch.arange(start, start + h.shape[1], device=h.device)
        rope, mask = self.rope(positions), self.mask(None)
        for i, layer in enumerate(self.layers):
            if self.all_layers or i == 0:
                h = h + self.cross_attn_layers[i](h, slots[i], cross_mask)
            h = layer(h, rope, mask, cache[i])
        return self.output(self.norm(h)).float()


    def step(self, h: Tensor, pos: Tensor, cache: list[KVCache], slots: list[KV], visible: Tensor) -> Tensor:
        """`extend` for one byte [B, 1, D] at `pos` (0-d tensor), at fixed shapes: `slots` hold the keys and
        values of a fixed number of patch slots, `visible` [slots] marks those this byte sees."""
        rope, mask = self.rope(pos.view(1)), visible.view(1, 1, 1, -1)
        for i, (layer, c) in enumerate(zip(self.layers, cache)):
            if self.all_layers or i == 0:
                h = h + self.cross_attn_layers[i](h, slots[i], mask)
            h = layer.step(h, rope, pos, c)
        return self.output(self.norm(h)).float()


class BLT(nn.Module):
    def __init__(self, config: BLTConfig):
        super().__init__()
        self.config = config
        n_tables = config.hash_functions * len(config.hash_ngram_sizes)
        self.local_encoder = LocalEncoder(config)
        self.encoder_hash_tok_embedding = nn.ModuleList(
            nn.Embedding(config.hash_vocab, config.local_encoder.dim) for _ in range(n_tables))
        self.global_transformer = GlobalTransformer(config)
        self.local_decoder = LocalDecoder(config)
        self.entropy_model = EntropyModel(config.entropy_model) if config.entropy_model else None

    def embed(self, tokens: Tensor) -> Tensor:
        """Byte embedding plus one hashed n-gram embedding per (hash function, n), summed in Meta's order in the
        compute dtype (tables kept in bf16 are cast right after the lookup)."""
        e = self.local_encoder.tok_embeddings(tokens)
        for table, ids in zip(self.encoder_hash_tok_embedding, hash_ngram_buckets(self.config, tokens).values(), strict=True):
            e = e + table(ids).to(e.dtype)
        return e

    def encoder_step(self, window: Tensor, pos: Tensor, cache: list[KVCache]) -> list[Tensor]:
        """The local encoder's states (LocalEncoder.step) for the last byte of `window` [B, max n-gram size]: the ids
        its hash n-grams read, zeros before the first byte (as hashing pads)."""
        return self.local_encoder.step(self.embed(window)[:, -1:], pos, cache)

    def patch_step(self, patch: Tensor, pos: Tensor, cache: list[KVCache]) -> list[KV]:
        """The global transformer's step for one closed patch [B, 1, k·D] at `pos`, and from its output the
        decoder's cross-attention keys and values of the patch's slots: all a patch adds, in one call."""
        return self.local_decoder.slot_keys_values(self.global_transformer.step(patch, pos, cache))

    @torch.no_grad()
    def internal_patch_lengths(self, tokens: Tensor) -> Tensor:
        """Patch lengths in Meta's convention (rows sum to T+1, the next byte's slot included)."""
        cfg = self.config.patching
        entropies = None
        if cfg.mode == "entropy":
            if self.entropy_model is None:
                raise ValueError("this BLT patches by entropy but has no entropy model: pass patch_lengths")
            entropies = self.entropy_model.entropies(tokens)
        return patcher.patch_lengths(tokens, cfg, entropies)

    def patch_lengths(self, tokens: Tensor) -> Tensor:
        """The patches the forward pass would use, [B, num_patches], each row summing to T (BOS's patch first)."""
        check_tokens(tokens)
        return patcher.public_lengths(self.internal_patch_lengths(tokens))

    def forward(self, tokens: Tensor, patch_lengths: Tensor | None = None) -> Tensor:
        """Next-byte logits [B, T, 260] (float32). Patches come from the entropy model unless given."""
        check_tokens(tokens)
        B, T = tokens.shape
        if patch_lengths is None:
            lengths = self.internal_patch_lengths(tokens)
            if (lengths[:, 0] != 1).any():
                raise ValueError(f"{self.config.patching.mode} patching does not put BOS alone in the first patch, "
                                 "which the BLT requires")
        else:
            lengths = patcher.internal_lengths(patch_lengths.to(tokens.device), T)
        num_patches = lengths.shape[1]
        doc = document_ids(tokens)
        h, slots = self.local_encoder(self.embed(tokens), doc, patcher.patch_ids(lengths, T), num_patches)
        global_doc = None
        if self.config.global_document_mask:
            global_doc = document_ids(torch.where(self._patch_has_eos(tokens, lengths), EOS_ID, 0))
        global_out = self.global_transformer(slots.reshape(B, num_patches, -1), global_doc)
        return self.local_decoder(h, global_out, patcher.decoder_patch_ids(lengths, T), doc)

    @staticmethod
    def _patch_has_eos(tokens: Tensor, lengths: Tensor) -> Tensor:
        pids = patcher.patch_ids(lengths, tokens.shape[1])
        has = torch.zeros(lengths.shape, dtype=torch.long, device=tokens.device)
        return has.scatter_reduce(1, pids, (tokens == EOS_ID).long(), "amax").bool()


def blt_memory_bytes(config: BLTConfig, device: str | torch.device, dtype: torch.dtype | None = None) -> int:
    """Bytes the weights of a BLT (its entropy model included) take on `device` as `load_blt` stores them:
    the compute dtype, and the hash tables in the checkpoint's bf16 (as Meta ships them) where compute is
    wider. Counts parameters on the meta device: reads no weights, allocates nothing."""
    compute = dtype or compute_dtype(device)
    with torch.device("meta"):
        blt = BLT(config)
    return sum(p.numel() * storage_dtype(torch.bfloat16, compute, is_lookup_table(name)).itemsize
               for name, p in blt.named_parameters())
