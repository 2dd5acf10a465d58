"""transformers' BltForCausalLM as the reference implementation: small random configurations."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from model.baseline import BaselineConfig, BPEBaseline
from model.blt import BLT, BLTConfig
from model.bpe import train_tokenizer
from model.entropy_model import EntropyModelConfig
from model.layers import TransformerConfig
from model.patcher import PatchingConfig

if TYPE_CHECKING:
    from tokenizers import Tokenizer

PARITY_TEXTS = {
    "ascii": "The famous composer from Salzburg known as Mozart wrote operas.",
    "multibyte": "Crème brûlée, 東京タワー, 👩‍👩‍👧 and naïve façades — ½ ∑ ✓",
    "single_byte": "a",
}


def long_text(n_bytes: int = 1400) -> str:
    """Varied text longer than a 512-byte local window."""
    words = "byte latent transformer patches entropy Zürich 😀 global local decoder encoder".split()
    g = torch.Generator().manual_seed(0)
    out = []
    while len(" ".join(out).encode()) < n_bytes:
        out.append(words[int(torch.randint(len(words), (1,), generator=g))])
    return " ".join(out)


def hf_blt_config(*, hash_functions: int = 1, cross_attn_k: int = 2, max_patch_length: int | None = None,
                  window: int | None = 512, threshold: float = 1.335442066192627, enc_layers: int = 1,
                  kv_heads: int | None = None):
    from transformers import BltConfig

    local = dict(hidden_size=32, num_attention_heads=4, num_key_value_heads=kv_heads, intermediate_size=96,
                 cross_attn_k=cross_attn_k, hidden_size_global=64)
    return BltConfig(
        vocab_size=260, patch_in_forward=True, patching_mode="entropy", patch_size=4, patching_threshold=threshold,
        max_patch_length=max_patch_length, local_attention_window_len=window, cross_attn_k=cross_attn_k,
        encoder_hash_byte_group_size=[3, 4, 5, 6, 7, 8], encoder_hash_byte_group_vocab=101,
        encoder_hash_byte_group_nb_functions=hash_functions,
        encoder_config=dict(num_hidden_layers=enc_layers, cross_attn_all_layers=False, **local),
        decoder_config=dict(num_hidden_layers=2, cross_attn_all_layers=True, **local),
        global_config=dict(hidden_size=64, num_attention_heads=4, num_hidden_layers=2, intermediate_size=160),
        patcher_config=dict(hidden_size=24, num_attention_heads=2, num_hidden_layers=2, intermediate_size=64,
                            sliding_window=window),
    )


def randomize(module: torch.nn.Module, seed: int = 0, std: float = 0.3) -> None:
    """Weights far from a fresh init, so that norms matter; the patcher's head is scaled up so that its
    entropies spread around the released threshold (0 to 3.5 nats) and patches vary in length."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(module.named_parameters()):
            if name.endswith("norm.weight") or "layernorm" in name:
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g) / max(1, p.shape[-1]) ** 0.25)
            if name == "model.patcher.lm_head.weight":
                p.mul_(8.0)


def save_hf_blt(folder: Path, seed: int = 0, **config_kwargs) -> "torch.nn.Module":
    from transformers import BltForCausalLM

    torch.manual_seed(seed)
    ref = BltForCausalLM(hf_blt_config(**config_kwargs)).eval()
    randomize(ref, seed)
    ref.save_pretrained(folder)
    return ref


def hf_logits(ref, ids: torch.Tensor, patch_lengths: torch.Tensor | None = None) -> torch.Tensor:
    with torch.no_grad():
        if patch_lengths is None:
            return ref(ids, use_cache=False).logits.float()
        hidden = ref.model(ids, patch_lengths=patch_lengths, use_cache=False).last_hidden_state
        return ref.lm_head(hidden).float()


def hf_patcher(ref, ids: torch.Tensor):
    """(entropies, patch lengths) from transformers' patcher with the model's own settings."""
    c = ref.config
    with torch.no_grad():
        ent, lengths, _ = ref.model.patcher(ids, patch_size=c.patch_size, threshold=c.patching_threshold,
                                            max_patch_length=c.max_patch_length)
    return ent.float(), lengths.long()


# --- Meta's two layouts, written from a transformers checkpoint with the documented key mapping ---------

HF_TO_META = [(".self_attn.", ".attention."), (".mlp.", ".feed_forward."), (".input_layernorm.", ".attention_norm."),
              (".post_attention_layernorm.", ".ffn_norm."), (".embed_tokens.", ".tok_embeddings."),
              (".q_norm.", ".cross_attn_norm_q."), (".k_norm.", ".cross_attn_norm_kv."), (".gate_proj.", ".w1."),
              (".down_proj.", ".w2."), (".up_proj.", ".w3."), (".q_proj.", ".wq."), (".k_proj.", ".wk."),
              (".v_proj.", ".wv."), (".o_proj.", ".wo."), (".lm_head.", ".output.")]


def _meta_name(key: str) -> str:
    key = "." + key
    for a, b in HF_TO_META:
        key = key.replace(a, b)
    return key[1:]


def meta_state_dicts(ref) -> tuple[dict, dict]:
    """(BLT, entropy model) state dicts with Meta's key names, from a BltForCausalLM (reference §5.2)."""
    c = ref.config
    n_tables = c.encoder_hash_byte_group_nb_functions * len(c.encoder_hash_byte_group_size)
    blt, entropy = {}, {}
    for k, v in ref.state_dict().items():
        v = v.detach().clone().contiguous()
        if k == "lm_head.weight":
            blt["local_decoder.output.weight"] = v
        elif k == "model.encoder_hash_tok_embedding.weight":
            for t, table in enumerate(v.chunk(n_tables)):
                blt[f"encoder_hash_tok_embedding.{t}.weight"] = table.clone()
        elif k.startswith("model.patcher."):
            entropy[_meta_name(k[len("model.patcher."):])] = v
        else:
            blt[_meta_name(k[len("model."):])] = v
    return blt, entropy


def meta_args(ref) -> tuple[dict, dict, dict]:
    """(ByteLatentTransformerArgs, LMTransformerArgs, PatcherArgs) dumps with Meta's field names."""
    c = ref.config
    enc, dec, glob, pat = c.encoder_config, c.decoder_config, c.global_config, c.patcher_config
    model_args = {
        "dim": glob.hidden_size, "dim_local_encoder": enc.hidden_size, "dim_local_decoder": dec.hidden_size,
        "dim_global": glob.hidden_size, "n_layers_local_encoder": enc.num_hidden_layers,
        "n_layers_local_decoder": dec.num_hidden_layers, "n_layers_global": glob.num_hidden_layers,
        "n_heads_local_encoder": enc.num_attention_heads, "n_heads_local_decoder": dec.num_attention_heads,
        "n_heads_global": glob.num_attention_heads, "n_kv_heads": enc.num_key_value_heads,
        "n_kv_heads_global": glob.num_key_value_heads, "cross_attn_encoder": True, "cross_attn_decoder": True,
        "cross_attn_k": c.cross_attn_k, "cross_attn_nheads": enc.num_attention_heads,
        "cross_attn_all_layers_encoder": enc.cross_attn_all_layers,
        "cross_attn_all_layers_decoder": dec.cross_attn_all_layers, "cross_attn_init_by_pooling": True,
        "cross_attn_window_encoder": None, "cross_attn_window_decoder": None, "downsampling_by_pooling": "max",
        "encoder_hash_byte_group_size": list(c.encoder_hash_byte_group_size),
        "encoder_hash_byte_group_vocab": c.encoder_hash_byte_group_vocab,
        "encoder_hash_byte_group_nb_functions": c.encoder_hash_byte_group_nb_functions,
        "local_attention_window_len": c.local_attention_window_len,
        "rope_theta": enc.rope_parameters["rope_theta"], "norm_eps": 1e-5,
        "multiple_of": 256, "ffn_dim_multiplier": 1.0, "vocab_size": 260, "attn_bias_type": "causal",
        "patching_mode": "entropy", "patch_in_forward": True, "max_seqlen": 1024, "max_encoder_seq_length": 24576,
    }
    entropy_args = {"dim": pat.hidden_size, "n_layers": pat.num_hidden_layers, "n_heads": pat.num_attention_heads,
                    "max_seqlen": 8192, "vocab_size": 260, "ffn_dim_multiplier": 1.0}
    patcher_args = {"patching_mode": "entropy", "threshold": c.patching_threshold, "threshold_add": None,
                    "monotonicity": False, "max_patch_length": c.max_patch_length, "patch_size": 4.5}
    return model_args, entropy_args, patcher_args


def write_meta_hub(ref, folder: Path) -> Path:
    """facebook/blt-1b's layout: config.json {"args"}, model.safetensors, train_args.json, entropy_model/."""
    import json

    from safetensors.torch import save_file

    blt, entropy = meta_state_dicts(ref)
    model_args, entropy_args, patcher_args = meta_args(ref)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"args": model_args}))
    (folder / "train_args.json").write_text(json.dumps({"model": model_args, "data": {"patcher_args": patcher_args}}))
    save_file(blt, str(folder / "model.safetensors"))
    (folder / "entropy_model").mkdir(exist_ok=True)
    (folder / "entropy_model" / "params.json").write_text(json.dumps({"entropy_model": entropy_args}))
    torch.save({"model": entropy}, folder / "entropy_model" / "consolidated.pth")
    return folder


def write_meta_consolidated(ref, root: Path) -> Path:
    """facebook/blt's layout: blt_1b/ and entropy_model/ side by side, params.json + consolidated.pth."""
    import json

    blt, entropy = meta_state_dicts(ref)
    model_args, entropy_args, patcher_args = meta_args(ref)
    (root / "blt_1b").mkdir(parents=True, exist_ok=True)
    (root / "entropy_model").mkdir(exist_ok=True)
    (root / "blt_1b" / "params.json").write_text(json.dumps(
        {"model": model_args, "data": {"patcher_args": patcher_args}, "distributed": {"model_dtype": "bf16"}}))
    torch.save({"model": blt}, root / "blt_1b" / "consolidated.pth")
    (root / "entropy_model" / "params.json").write_text(json.dumps({"entropy_model": entropy_args}))
    torch.save({"model": entropy}, root / "entropy_model" / "consolidated.pth")
    return root / "blt_1b"


def direct_blt(seed: int, patching: PatchingConfig, window: int | None = 16, **kw) -> BLT:
    """A random BLT with what transformers cannot express: monotonic patching, cross-attention windows,
    all-layer encoder cross-attention, a global input projection, a short entropy-model context."""
    def stack(dim: int, layers: int) -> TransformerConfig:
        return TransformerConfig(dim, layers, 4, n_kv_heads=2, ffn_dim=3 * dim, sliding_window=window)

    entropy = EntropyModelConfig(24, 2, 2, ffn_dim=64, sliding_window=window, max_seqlen=48)
    config = BLTConfig(stack(32, 2), TransformerConfig(64, 2, 4, ffn_dim=160), stack(32, 2), hash_vocab=101,
                       hash_ngram_sizes=(3, 4, 5), patching=patching,
                       entropy_model=entropy if patching.mode == "entropy" else None, **kw)
    blt = BLT(config).eval().requires_grad_(False)
    randomize(blt, seed)
    if blt.entropy_model is not None:
        blt.entropy_model.output.weight.mul_(8.0)  # entropies spread across the thresholds
    return blt


def tiny_baseline(seed: int = 5) -> tuple[BPEBaseline, "Tokenizer"]:
    """A random BPE baseline with a small BPE tokenizer trained on the parity texts."""
    tokenizer = train_tokenizer([PARITY_TEXTS["ascii"], PARITY_TEXTS["multibyte"], long_text(3000)] * 3, 300)
    torch.manual_seed(0)
    net = BPEBaseline(BaselineConfig(TransformerConfig(32, 2, 4, n_kv_heads=2, ffn_dim=64), tokenizer.get_vocab_size()))
    randomize(net, seed)
    return net.eval().requires_grad_(False), tokenizer
