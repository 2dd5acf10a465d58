"""The BPE baseline: a Llama-style transformer (RMSNorm, RoPE, SwiGLU) over BPE tokens.

Its transformer has the shape of the BLT's global transformer, so a comparison is fair: the same big
model, run once per BPE token instead of once per patch. It is saved in transformers' Llama layout (RoPE
weights permuted from Meta's interleaved pairs to Llama's halves) and loads in `LlamaForCausalLM`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from .defaults import SHIPPED_BASELINE
from .layers import KVCache, RMSNorm, TransformerConfig, TransformerStack

if TYPE_CHECKING:
    from tokenizers import Tokenizer

@dataclass
class BaselineConfig:
    transformer: TransformerConfig
    vocab_size: int
    max_seqlen: int = 2048


class BPEBaseline(TransformerStack):
    def __init__(self, config: BaselineConfig):
        super().__init__(config.transformer)
        self.config = config
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.transformer.dim)
        self.norm = RMSNorm(config.transformer.dim, config.transformer.norm_eps)
        self.output = nn.Linear(config.transformer.dim, config.vocab_size, bias=False)
        self.output.weight = self.tok_embeddings.weight  # tied, as small Llamas are

    def forward(self, tokens: Tensor) -> Tensor:
        """Next-token logits [B, T, vocab] (float32)."""
        if tokens.dim() != 2 or tokens.dtype != torch.long:
            raise ValueError(f"tokens must be a LongTensor [batch, length], got {tokens.dtype} {tuple(tokens.shape)}")
        h = super().forward(self.tok_embeddings(tokens), torch.arange(tokens.shape[1], device=tokens.device))
        return self.output(self.norm(h)).float()

    def extend(self, tokens: Tensor, start: int, cache: list[KVCache]) -> Tensor:
        """Logits for tokens at positions start.., continuing from the keys and values of the tokens before
        them in `cache` (cached generation), which this call's are appended to."""
        positions = torch.arange(start, start + tokens.shape[1], device=tokens.device)
        h = super().forward(self.tok_embeddings(tokens), positions, cache=cache)
        return self.output(self.norm(h)).float()


def _halves_from_pairs(w: Tensor, n_heads: int) -> Tensor:
    """Reorder q/k projection rows from interleaved RoPE pairs (Meta) to rotate-half order (Llama in HF)."""
    out_dim, in_dim = w.shape
    return w.view(n_heads, out_dim // n_heads // 2, 2, in_dim).transpose(1, 2).reshape(out_dim, in_dim)


def _pairs_from_halves(w: Tensor, n_heads: int) -> Tensor:
    out_dim, in_dim = w.shape
    return w.view(n_heads, 2, out_dim // n_heads // 2, in_dim).transpose(1, 2).reshape(out_dim, in_dim)


_LLAMA_NAMES = [("tok_embeddings", "model.embed_tokens"), ("output", "lm_head"), ("norm", "model.norm")]
_LAYER_NAMES = [("attention.wq", "self_attn.q_proj"), ("attention.wk", "self_attn.k_proj"),
                ("attention.wv", "self_attn.v_proj"), ("attention.wo", "self_attn.o_proj"),
                ("feed_forward.w1", "mlp.gate_proj"), ("feed_forward.w2", "mlp.down_proj"),
                ("feed_forward.w3", "mlp.up_proj"), ("attention_norm", "input_layernorm"),
                ("ffn_norm", "post_attention_layernorm")]


def _to_llama_key(key: str) -> str:
    for ours, theirs in _LLAMA_NAMES:
        if key == f"{ours}.weight":
            return f"{theirs}.weight"
    for ours, theirs in _LAYER_NAMES:
        key = key.replace(f".{ours}.", f".{theirs}.")
    return "model." + key


def llama_config(config: BaselineConfig) -> dict:
    t = config.transformer
    return {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": config.vocab_size,
            "hidden_size": t.dim, "intermediate_size": t.ffn_dim, "num_hidden_layers": t.n_layers,
            "num_attention_heads": t.n_heads, "num_key_value_heads": t.n_kv_heads, "rms_norm_eps": t.norm_eps,
            "rope_theta": t.rope_theta, "rope_parameters": {"rope_type": "default", "rope_theta": t.rope_theta},
            "max_position_embeddings": config.max_seqlen, "tie_word_embeddings": True, "hidden_act": "silu",
            "attention_bias": False, "mlp_bias": False, "bos_token_id": None, "eos_token_id": None}


def save_baseline(model: BPEBaseline, folder: str | os.PathLike, extra_config: dict | None = None) -> Path:
    """config.json + model.safetensors in transformers' Llama layout (the tokenizer is saved beside it)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    t = model.config.transformer
    state = {}
    for k, v in model.state_dict().items():
        if k == "output.weight":
            continue  # tied to the embeddings
        v = v.detach().cpu().contiguous()
        if k.endswith("attention.wq.weight"):
            v = _halves_from_pairs(v, t.n_heads)
        elif k.endswith("attention.wk.weight"):
            v = _halves_from_pairs(v, t.n_kv_heads)
        state[_to_llama_key(k)] = v.contiguous()
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps({**llama_config(model.config), **(extra_config or {})}, indent=2))
    return folder


def load_baseline(source: str | os.PathLike | None = None, device: str | torch.device | None = None,
                  dtype: torch.dtype | None = None) -> tuple[BPEBaseline, "Tokenizer"]:
    """The BPE baseline and its tokenizer from a folder in transformers' Llama layout; None: the shipped one."""
    from tokenizers import Tokenizer

    from .devices import compute_dtype, default_device
    from .loading import CheckpointError, load_state

    folder = Path(source or SHIPPED_BASELINE)
    if not (folder / "config.json").exists():
        raise CheckpointError(f"{folder} holds no baseline: expected config.json, model.safetensors, tokenizer.json")
    c = json.loads((folder / "config.json").read_text())
    if c.get("model_type") != "llama":
        raise CheckpointError(f"{folder}/config.json is not a Llama configuration (model_type {c.get('model_type')!r})")
    rope = (c.get("rope_parameters") or {}).get("rope_theta", c.get("rope_theta", 10000.0))
    config = BaselineConfig(TransformerConfig(c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"],
                                              c.get("num_key_value_heads"), c["intermediate_size"],
                                              c.get("rms_norm_eps", 1e-5), rope), c["vocab_size"],
                            c.get("max_position_embeddings", 2048))
    theirs_to_ours = {_to_llama_key(k): k for k in BPEBaseline(config).state_dict() if k != "output.weight"}
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        loaded = {k: f.get_tensor(k).float() for k in f.keys()}
    state = {}
    for k, v in loaded.items():
        ours = theirs_to_ours.get(k, k)
        if ours.endswith("attention.wq.weight"):
            v = _pairs_from_halves(v, config.transformer.n_heads)
        elif ours.endswith("attention.wk.weight"):
            v = _pairs_from_halves(v, config.transformer.n_kv_heads)
        state[ours] = v
    if "output.weight" not in state and "tok_embeddings.weight" in state:
        state["output.weight"] = state["tok_embeddings.weight"]
    model = BPEBaseline(config)
    load_state(model, state, f"baseline {folder}")
    device_ = default_device(device)
    return model.to(device_, dtype or compute_dtype(device_)).eval().requires_grad_(False), Tokenizer.from_file(str(folder / "tokenizer.json"))
