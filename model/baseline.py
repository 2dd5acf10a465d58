"""The BPE baseline: a Llama-style transformer (RMSNorm, RoPE, SwiGLU) over BPE tokens.

The shipped one has the shape of the BLT's global transformer, so a comparison is fair: the same big
model, run once per BPE token instead of once per patch. It is saved in transformers' Llama layout (RoPE
weights permuted from Meta's interleaved pairs to Llama's halves) and loads in `LlamaForCausalLM`.

The same loader reads real Llama 3 checkpoints (meta-llama/Llama-3.2-1B, Llama-3.1-8B), the baselines of
the BLT paper: sharded files, untied output, grouped-query attention, a head_dim of their own, Llama 3's
RoPE scaling, their tokenizer (which puts <|begin_of_text|> first) and their EOS ids.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from .defaults import SHIPPED_BASELINE
from .devices import check_fits, compute_dtype, default_device
from .layers import (
    KVCache,
    Llama3RopeScaling,
    RMSNorm,
    TransformerConfig,
    TransformerStack,
)
from .loading import (
    CheckpointError,
    _fetch,
    _read_json,
    _weight_files,
    load_state,
    resolve,
)

if TYPE_CHECKING:
    from tokenizers import Tokenizer


@dataclass
class BaselineConfig:
    transformer: TransformerConfig
    vocab_size: int
    max_seqlen: int = 2048
    tie_embeddings: bool = True  # small Llamas (ours, Llama 3.2 1B) share the embedding and output matrices
    eos_ids: tuple[int, ...] = ()  # any of these ends generation; ours has none


class BPEBaseline(TransformerStack):
    def __init__(self, config: BaselineConfig):
        super().__init__(config.transformer)
        self.config = config
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.transformer.dim)
        self.norm = RMSNorm(config.transformer.dim, config.transformer.norm_eps)
        self.output = nn.Linear(config.transformer.dim, config.vocab_size, bias=False)
        self.tie()

    def tie(self) -> None:
        """Share the output matrix with the embeddings where the config says so (again after a load by assignment)."""
        if self.config.tie_embeddings:
            self.output.weight = self.tok_embeddings.weight

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


    def step(self, tokens: Tensor, pos: Tensor, cache: list[KVCache]) -> Tensor:
        """`extend` for one token [B, 1] at `pos` (0-d tensor), at fixed shapes (layers.Attention.step)."""
        h = TransformerStack.step(self, self.tok_embeddings(tokens), pos, cache)
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
    """config.json for transformers' LlamaForCausalLM (transformers v5's spelling, rope_theta kept for v4)."""
    t, scaling = config.transformer, config.transformer.rope_scaling
    rope = {"rope_type": "default"} if scaling is None else {"rope_type": "llama3", **asdict(scaling)}
    eos = list(config.eos_ids) if len(config.eos_ids) > 1 else next(iter(config.eos_ids), None)
    return {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": config.vocab_size,
            "hidden_size": t.dim, "intermediate_size": t.ffn_dim, "num_hidden_layers": t.n_layers,
            "num_attention_heads": t.n_heads, "num_key_value_heads": t.n_kv_heads, "head_dim": t.head_dim,
            "rms_norm_eps": t.norm_eps, "rope_theta": t.rope_theta, "rope_parameters": {**rope, "rope_theta": t.rope_theta},
            "max_position_embeddings": config.max_seqlen, "tie_word_embeddings": config.tie_embeddings,
            "hidden_act": "silu", "attention_bias": False, "mlp_bias": False, "bos_token_id": None, "eos_token_id": eos}


def save_baseline(model: BPEBaseline, folder: str | os.PathLike, extra_config: dict | None = None) -> Path:
    """config.json + model.safetensors in transformers' Llama layout (the tokenizer is saved beside it)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    t = model.config.transformer
    state = {}
    for k, v in model.state_dict().items():
        if k == "output.weight" and model.config.tie_embeddings:
            continue
        v = v.detach().cpu().contiguous()
        if k.endswith("attention.wq.weight"):
            v = _halves_from_pairs(v, t.n_heads)
        elif k.endswith("attention.wk.weight"):
            v = _halves_from_pairs(v, t.n_kv_heads)
        state[_to_llama_key(k)] = v.contiguous()
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps({**llama_config(model.config), **(extra_config or {})}, indent=2))
    return folder


# --- reading transformers' Llama checkpoints (ours, Llama 3.x from the Hub) --------------------------------


def baseline_config(c: dict, generation: dict | None = None, where: str = "config.json") -> BaselineConfig:
    """Our configuration of a transformers Llama config.json (both RoPE spellings: v4's rope_theta +
    rope_scaling, v5's rope_parameters); `generation`: generation_config.json, whose EOS ids win, as in
    transformers. CheckpointError for anything this package cannot run."""
    if c.get("model_type") != "llama":
        raise CheckpointError(f"{where} is not a Llama configuration (model_type {c.get('model_type')!r}): the baseline "
                              "loads LlamaForCausalLM checkpoints (model_type 'llama'), such as meta-llama/Llama-3.2-1B")
    unsupported = [f"{k}={c[k]!r}" for k, ok in (("hidden_act", "silu"), ("attention_bias", False), ("mlp_bias", False))
                   if c.get(k, ok) != ok]
    if unsupported:
        raise CheckpointError(f"{where} asks for {', '.join(unsupported)}: only SwiGLU (silu) without biases is supported")
    try:
        rope = c.get("rope_parameters") or c.get("rope_scaling") or {}
        theta = float(rope.get("rope_theta", c.get("rope_theta", 10000.0)))
        kind = rope.get("rope_type", rope.get("type", "default"))
        if kind == "default":
            scaling = None
        elif kind == "llama3":
            scaling = Llama3RopeScaling(float(rope["factor"]), float(rope["low_freq_factor"]),
                                        float(rope["high_freq_factor"]), int(rope["original_max_position_embeddings"]))
        else:
            raise CheckpointError(f"{where}: RoPE type {kind!r} is not supported (only 'default' and 'llama3')")
        eos = (generation or {}).get("eos_token_id", c.get("eos_token_id"))
        transformer = TransformerConfig(c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"],
                                        c.get("num_key_value_heads"), c["intermediate_size"], c.get("rms_norm_eps", 1e-6),
                                        theta, head_dim=c.get("head_dim"), rope_scaling=scaling)
        return BaselineConfig(transformer, c["vocab_size"], c.get("max_position_embeddings", 2048),
                              bool(c.get("tie_word_embeddings", False)),
                              tuple(eos) if isinstance(eos, list) else () if eos is None else (eos,))
    except CheckpointError:
        raise
    except KeyError as e:
        raise CheckpointError(f"{where} lacks {e.args[0]!r}, which a Llama configuration needs") from e
    except ValueError as e:
        raise CheckpointError(f"{where} describes no model this package can build: {e}") from e


def baseline_parameter_count(config: dict) -> int:
    """Parameters of the model that a Llama config.json describes, tied matrices counted once; reads no
    weights (the model is built on the meta device), so memory can be checked before a download."""
    with torch.device("meta"):
        return sum(p.numel() for p in BPEBaseline(baseline_config(config)).parameters())


def _llama_tensors(files: list[Path], model: BPEBaseline, device: torch.device,
                   dtype: torch.dtype) -> Iterator[tuple[str, Tensor]]:
    """(our name, tensor) for `model`, one at a time from safetensors files in the Llama layout: converted to
    `device` and `dtype` as it is read (kept as it is where they already match), so no second copy exists."""
    config, t = model.config, model.config.transformer
    theirs_to_ours = {_to_llama_key(k): k for k in model.state_dict()}
    for path in files:
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
        for key in keys:
            ours = theirs_to_ours.get(key, key)
            if key.endswith("rotary_emb.inv_freq") or (ours == "output.weight" and config.tie_embeddings):
                continue  # computed from the config; tied to the embeddings
            # opened per tensor: the mapped file's pages leave the process with it, so a 2.5 GB shard never
            # sits in memory beside the model it fills (peak = the model: 5.18 GB for Llama-3.2-1B in fp32)
            with safe_open(str(path), framework="pt") as f:
                v = f.get_tensor(key)
            if ours.endswith("attention.wq.weight"):
                v = _pairs_from_halves(v, t.n_heads)
            elif ours.endswith("attention.wk.weight"):
                v = _pairs_from_halves(v, t.n_kv_heads)
            yield ours, v.to(device=device, dtype=dtype)


def _checked_tokenizer(path: Path, config: BaselineConfig) -> "Tokenizer":
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as e:  # noqa: BLE001 - tokenizers raises its own Exception type for a bad file
        raise CheckpointError(f"{path} is not a tokenizer.json that the tokenizers library can read: {e}") from e
    top = max(tokenizer.get_vocab(with_added_tokens=True).values(), default=-1)
    if top >= config.vocab_size:
        raise CheckpointError(f"{path} has token ids up to {top}, beyond the model's vocabulary of {config.vocab_size} "
                              "(vocab_size in config.json): the tokenizer belongs to another model")
    return tokenizer


def load_baseline(source: str | os.PathLike | None = None, device: str | torch.device | None = None,
                  dtype: torch.dtype | None = None) -> tuple[BPEBaseline, "Tokenizer"]:
    """A Llama-layout model and its tokenizer from a Hub repo id (meta-llama/Llama-3.2-1B) or a folder: config.json,
    model.safetensors or its shards (model.safetensors.index.json), tokenizer.json. None: the shipped baseline.

    Its memory is checked from config.json before the weights are fetched; the model is built on the meta device
    and each tensor assigned as it is read, in the compute dtype (model/devices.py: bf16 only where it is fast)."""
    folder, repo_id = resolve(SHIPPED_BASELINE if source is None else source)
    what = f"baseline {source or folder}"
    if not (folder / "config.json").exists():
        present = sorted(p.name for p in folder.iterdir())
        raise CheckpointError(f"{folder} holds no Llama model: expected config.json, model.safetensors (or "
                              f"model.safetensors.index.json and its shards) and tokenizer.json; found {present}")
    generation = folder / "generation_config.json"
    config = baseline_config(_read_json(folder / "config.json"), _read_json(generation) if generation.exists() else None,
                             f"{folder}/config.json")
    tokenizer = _checked_tokenizer(_fetch(folder, repo_id, "tokenizer.json"), config)
    device_ = default_device(device)
    dtype_ = dtype or compute_dtype(device_)
    with torch.device("meta"):
        model = BPEBaseline(config)
    check_fits(sum(p.numel() for p in model.parameters()) * dtype_.itemsize, device_, what)
    state = dict(_llama_tensors(_weight_files(folder, repo_id, "transformers"), model, device_, dtype_))
    if config.tie_embeddings and "tok_embeddings.weight" in state:
        state["output.weight"] = state["tok_embeddings.weight"]
    load_state(model, state, what, assign=True)
    model.tie()
    return model.eval().requires_grad_(False), tokenizer
