"""One loader for every BLT checkpoint layout, from a Hub repo id or a local folder.

Layouts (shared/blt-reference.md §5):
- transformers: config.json with model_type "blt" + model.safetensors (HF key names, fused hash tables);
- Meta hub (facebook/blt-1b, blt-7b, blt-entropy): config.json {"args": ...} + model.safetensors (Meta key
  names) + train_args.json (patcher settings); the entropy model in entropy_model/ or facebook/blt-entropy;
- Meta consolidated (facebook/blt: blt_1b/, blt_7b/, entropy_model/): params.json + consolidated.pth.

Modules in this package use Meta's key names, so Meta checkpoints load as they are and transformers
checkpoints go through the documented key mapping. Weights are read with safetensors or
`torch.load(weights_only=True)` only.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from .blt import BLT, BLTConfig
from .defaults import META_ENTROPY_REPO, SHIPPED_BLT
from .entropy_model import EntropyModel, EntropyModelConfig
from .layers import TransformerConfig, ffn_hidden_dim
from .patcher import DEFAULT_THRESHOLD, PatchingConfig


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded; the message says why and what to do."""


# --- finding the files ------------------------------------------------------------------------------


def resolve(source: str | os.PathLike) -> tuple[Path, str | None]:
    """A local folder for `source`: the folder itself, or a Hub snapshot of its configs.

    Returns (folder, "repo_id/subfolder" or None); weights are fetched later, only the ones needed.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        return path, None
    if path.exists():
        raise CheckpointError(f"{source} is a file; pass the folder that holds the checkpoint")
    parts = str(source).strip("/").split("/")
    if len(parts) < 2 or str(source).startswith((".", "/", "~")):
        raise CheckpointError(f"{source} is neither a local folder nor a Hub repo id like facebook/blt-1b")
    repo_id, sub = "/".join(parts[:2]), "/".join(parts[2:])
    from huggingface_hub import snapshot_download

    patterns = [f"{sub}/*.json", "entropy_model/*.json"] if sub else ["*.json"]
    offline = not hub_reachable()
    root = _hub(lambda: snapshot_download(repo_id, allow_patterns=patterns, local_files_only=offline), repo_id)
    return Path(root) / sub, str(source).strip("/")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Can the Hub be reached? Offline, huggingface_hub retries every request for about half a minute; asking
    first lets an offline machine go straight to its local cache (and to a clear message)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout):
            return True
    except OSError:
        return False


def _hub(call, repo_id: str):  # noqa: ANN001, ANN202 - a thin error translator around huggingface_hub calls
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return call()
    except GatedRepoError as e:
        raise CheckpointError(
            f"{repo_id} is gated and this token has no access. Request access at https://huggingface.co/{repo_id}, "
            "then log in with `hf auth login` or set HF_TOKEN, and try again.") from e
    except RepositoryNotFoundError as e:
        raise CheckpointError(
            f"{repo_id} was not found on the Hub (or it is private and no token with access is set: "
            "log in with `hf auth login` or set HF_TOKEN).") from e
    except RevisionNotFoundError as e:
        raise CheckpointError(f"{repo_id}: revision not found") from e
    except LocalEntryNotFoundError as e:
        raise CheckpointError(
            f"{repo_id} is not in the local Hugging Face cache and the Hub cannot be reached (offline?). "
            "Connect once to download it, or pass a local folder.") from e
    except EntryNotFoundError as e:
        raise CheckpointError(f"{repo_id} lacks a file the checkpoint needs: {e}") from e


def _fetch(folder: Path, hub_path: str | None, name: str) -> Path:
    """A file of the checkpoint: present in the folder, or downloaded from the same repo and subfolder."""
    path = folder / name
    if path.exists():
        return path
    if hub_path is None:
        raise CheckpointError(f"{path} is missing: the checkpoint folder needs it")
    parts = hub_path.split("/")
    repo_id, sub = "/".join(parts[:2]), "/".join(parts[2:])
    from huggingface_hub import hf_hub_download

    offline = not hub_reachable()
    return Path(_hub(lambda: hf_hub_download(repo_id, f"{sub}/{name}" if sub else name, local_files_only=offline),
                     repo_id))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from e


def detect_layout(folder: Path) -> str:
    """'transformers', 'meta-hub' or 'meta-consolidated'."""
    if (folder / "config.json").exists():
        cfg = _read_json(folder / "config.json")
        if cfg.get("model_type") == "blt":
            return "transformers"
        if "args" in cfg:
            return "meta-hub"
        raise CheckpointError(f"{folder}/config.json is neither a transformers BLT (model_type 'blt') nor Meta's "
                              f"hub layout (an 'args' entry); model_type is {cfg.get('model_type')!r}")
    if (folder / "params.json").exists():
        return "meta-consolidated"
    present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    raise CheckpointError(f"{folder} holds no BLT checkpoint: expected config.json (transformers or Meta hub "
                          f"layout) or params.json + consolidated.pth (Meta's consolidated layout); found {present}")


def read_tensors(path: Path) -> dict[str, Tensor]:
    if path.suffix == ".safetensors":
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return state.get("model", state) if isinstance(state, dict) else state


def _weights_file(folder: Path, repo_id: str | None, layout: str) -> Path:
    if layout == "meta-consolidated":
        for name in ("consolidated/consolidated.pth", "consolidated.pth"):
            if (folder / name).exists():
                return folder / name
        return _fetch(folder, repo_id, "consolidated.pth")
    if (folder / "model.safetensors.index.json").exists():
        return folder / "model.safetensors.index.json"
    return _fetch(folder, repo_id, "model.safetensors")


def safetensors_files(folder: Path, repo_id: str | None) -> list[Path]:
    """The checkpoint's safetensors files: the shards that model.safetensors.index.json names, or model.safetensors
    (fetched from the Hub where they are not in the folder yet)."""
    path = _weights_file(folder, repo_id, "transformers")
    if path.name.endswith(".index.json"):
        return [_fetch(folder, repo_id, shard) for shard in sorted(set(_read_json(path)["weight_map"].values()))]
    return [path]


def _read_weights(folder: Path, repo_id: str | None, layout: str) -> dict[str, Tensor]:
    if layout == "meta-consolidated":
        return read_tensors(_weights_file(folder, repo_id, layout))
    state: dict[str, Tensor] = {}
    for path in safetensors_files(folder, repo_id):
        state.update(read_tensors(path))
    return state


# --- key mapping (Meta ↔ transformers), shared/blt-reference.md §5.2 -----------------------------------

_META_TO_HF = [(".attention.", ".self_attn."), (".feed_forward.", ".mlp."), (".attention_norm.", ".input_layernorm."),
               (".ffn_norm.", ".post_attention_layernorm."), (".tok_embeddings.", ".embed_tokens."),
               (".cross_attn_norm_q.", ".q_norm."), (".cross_attn_norm_kv.", ".k_norm."), (".w1.", ".gate_proj."),
               (".w2.", ".down_proj."), (".w3.", ".up_proj."), (".wq.", ".q_proj."), (".wk.", ".k_proj."),
               (".wv.", ".v_proj."), (".wo.", ".o_proj."), (".output.", ".lm_head.")]


def _rename(key: str, pairs: list[tuple[str, str]]) -> str:
    key = "." + key
    for a, b in pairs:
        key = key.replace(a, b)
    return key[1:]


def meta_to_hf(blt_state: dict[str, Tensor], entropy_state: dict[str, Tensor] | None, hash_tables: int) -> dict[str, Tensor]:
    """Meta key names (BLT and entropy model) → one transformers BltForCausalLM state dict."""
    out = {}
    for k, v in blt_state.items():
        if k.startswith("encoder_hash_tok_embedding."):
            continue
        name = _rename(k, _META_TO_HF)
        out["lm_head.weight" if name == "local_decoder.lm_head.weight" else "model." + name] = v
    if hash_tables:
        out["model.encoder_hash_tok_embedding.weight"] = torch.cat(
            [blt_state[f"encoder_hash_tok_embedding.{t}.weight"] for t in range(hash_tables)])
    for k, v in (entropy_state or {}).items():
        out["model.patcher." + _rename(k, _META_TO_HF)] = v
    return out


def hf_to_meta(state: dict[str, Tensor], hash_tables: int) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """transformers BltForCausalLM state dict → (BLT, entropy model) state dicts with Meta key names."""
    back = [(b, a) for a, b in reversed(_META_TO_HF)]
    blt, entropy = {}, {}
    for k, v in state.items():
        if k == "lm_head.weight":
            blt["local_decoder.output.weight"] = v
        elif k == "model.encoder_hash_tok_embedding.weight":
            for t, table in enumerate(v.chunk(hash_tables)):
                blt[f"encoder_hash_tok_embedding.{t}.weight"] = table
        elif k.startswith("model.patcher."):
            entropy[_rename(k[len("model.patcher."):], back)] = v
        elif k.startswith("model."):
            blt[_rename(k[len("model."):], back)] = v
        else:
            blt[k] = v  # unknown: reported as unexpected by the strict load
    return blt, entropy


# --- configurations ----------------------------------------------------------------------------------


def _ffn(state: dict[str, Tensor], prefix: str, fallback: int) -> int:
    """FFN width read from the weights themselves: configs disagree on rounding (reference §5.2)."""
    w = state.get(f"{prefix}layers.0.feed_forward.w1.weight")
    return int(w.shape[0]) if w is not None else fallback


def _theta(sub: dict, default: float) -> float:
    rope = sub.get("rope_parameters") or {}
    return float(rope.get("rope_theta", sub.get("rope_theta", default)))


def _hf_stack(sub: dict, window: int | None, state: dict, prefix: str) -> TransformerConfig:
    return TransformerConfig(sub["hidden_size"], sub["num_hidden_layers"], sub["num_attention_heads"],
                             sub.get("num_key_value_heads"), _ffn(state, prefix, sub.get("intermediate_size") or 0) or None,
                             sub.get("rms_norm_eps", 1e-5), _theta(sub, 10000.0), window)


def entropy_config_from_hf(p: dict, state: dict) -> EntropyModelConfig:
    return EntropyModelConfig(p["hidden_size"], p["num_hidden_layers"], p["num_attention_heads"], p.get("num_key_value_heads"),
                              _ffn(state, "", p.get("intermediate_size") or 0) or None, p.get("vocab_size", 260),
                              p.get("rms_norm_eps", 1e-5), _theta(p, 10000.0), p.get("sliding_window", 512),
                              p.get("max_position_embeddings", 8192))


def blt_config_from_hf(c: dict, state: dict, entropy_state: dict) -> BLTConfig:
    window = c.get("local_attention_window_len")
    enc, dec, glob = c["encoder_config"], c["decoder_config"], c["global_config"]
    entropy_mode = c.get("patching_mode") == "entropy" and c.get("patch_in_forward", True) and c.get("patch_size") is not None
    patching = PatchingConfig("entropy" if entropy_mode else "byte", c.get("patching_threshold") or DEFAULT_THRESHOLD,
                              c.get("patching_threshold_add"), bool(c.get("monotonicity", False)),
                              max_patch_length=c.get("max_patch_length"))
    return BLTConfig(
        _hf_stack(enc, window, state, "local_encoder."), _hf_stack(glob, None, state, "global_transformer."),
        _hf_stack(dec, window, state, "local_decoder."), cross_attn_k=c.get("cross_attn_k", 2),
        cross_attn_kv_heads_encoder=enc.get("num_key_value_heads"), cross_attn_kv_heads_decoder=dec.get("num_key_value_heads"),
        cross_attn_all_layers_encoder=bool(enc.get("cross_attn_all_layers", False)),
        cross_attn_all_layers_decoder=bool(dec.get("cross_attn_all_layers", True)),
        hash_ngram_sizes=tuple(c.get("encoder_hash_byte_group_size") or (3, 4, 5, 6, 7, 8)),
        hash_vocab=c.get("encoder_hash_byte_group_vocab", 500002),
        hash_functions=c.get("encoder_hash_byte_group_nb_functions", 1), vocab_size=c.get("vocab_size", 260),
        patching=patching,
        entropy_model=entropy_config_from_hf(c["patcher_config"], entropy_state) if entropy_state else None)


def entropy_config_from_meta(a: dict, state: dict) -> EntropyModelConfig:
    """As Meta's `load_entropy_model`: only these fields are read; window 512 and theta 10000 are fixed."""
    ffn = ffn_hidden_dim(a["dim"], a.get("ffn_dim_multiplier") or 1.0, a.get("multiple_of", 256))
    return EntropyModelConfig(a["dim"], a["n_layers"], a["n_heads"], a.get("n_kv_heads"), _ffn(state, "", ffn),
                              a.get("vocab_size", 260), a.get("norm_eps", 1e-5), 10000.0, 512, a.get("max_seqlen", 8192))


def patching_from_meta(p: dict) -> PatchingConfig:
    mode = p.get("patching_mode") or "static"
    if mode not in ("entropy", "space", "bpe", "byte", "static"):
        raise CheckpointError(f"patching mode {mode!r} of this checkpoint is not supported")
    return PatchingConfig(mode, p.get("threshold", DEFAULT_THRESHOLD), p.get("threshold_add"), bool(p.get("monotonicity", False)),
                          p.get("patch_size", 4.5), p.get("max_patch_length"))


def blt_config_from_meta(a: dict, patcher_args: dict, state: dict, entropy: EntropyModelConfig | None) -> BLTConfig:
    window, theta, eps = a.get("local_attention_window_len"), a.get("rope_theta", 10000.0), a.get("norm_eps", 1e-5)

    def stack(part: str, dim_key: str, n_kv: int | None, win: int | None) -> TransformerConfig:
        dim = a[f"dim_{dim_key}"]
        fallback = ffn_hidden_dim(dim, a.get("ffn_dim_multiplier") or 1.0, a.get("multiple_of", 256))
        return TransformerConfig(dim, a[f"n_layers_{dim_key}"], a[f"n_heads_{dim_key}"], n_kv,
                                 _ffn(state, f"{part}.", fallback), eps, theta, win)

    heads = a.get("cross_attn_nheads")
    return BLTConfig(
        stack("local_encoder", "local_encoder", a.get("n_kv_heads"), window),
        stack("global_transformer", "global", a.get("n_kv_heads_global"), None),
        stack("local_decoder", "local_decoder", a.get("n_kv_heads"), window),
        cross_attn_k=a.get("cross_attn_k") or 1, cross_attn_heads_encoder=heads, cross_attn_heads_decoder=heads,
        cross_attn_all_layers_encoder=bool(a.get("cross_attn_all_layers_encoder")),
        cross_attn_all_layers_decoder=bool(a.get("cross_attn_all_layers_decoder")),
        cross_attn_window_encoder=a.get("cross_attn_window_encoder"), cross_attn_window_decoder=a.get("cross_attn_window_decoder"),
        hash_ngram_sizes=tuple(_int_list(a.get("encoder_hash_byte_group_size"))),
        hash_vocab=a.get("encoder_hash_byte_group_vocab", 30000), hash_functions=a.get("encoder_hash_byte_group_nb_functions", 3),
        global_document_mask=a.get("attn_bias_type") == "block_causal", vocab_size=a.get("vocab_size", 260),
        patching=patching_from_meta({**patcher_args, "patching_mode": patcher_args.get("patching_mode", a.get("patching_mode"))}),
        entropy_model=entropy)


def _int_list(v: object) -> list[int]:
    if v is None:
        return []
    return [int(x) for x in v.split(",")] if isinstance(v, str) else [int(x) for x in v]  # type: ignore[union-attr]


# --- building and loading ------------------------------------------------------------------------------


def default_device_dtype(device: str | torch.device | None, dtype: torch.dtype | None) -> tuple[torch.device, torch.dtype]:
    """CPU in float32, CUDA in bfloat16 unless told otherwise."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return device, dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)


def load_state(module: nn.Module, state: dict[str, Tensor], what: str, assign: bool = False) -> None:
    """Strict load whose error names every missing, unexpected and mis-shaped tensor; `assign`: the tensors
    become the module's (a module built on the meta device), rather than being copied into it."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or extra or shapes:
        lines = ([f"missing tensors: {', '.join(missing[:20])}{' …' if len(missing) > 20 else ''}"] if missing else []) + \
                ([f"unexpected tensors: {', '.join(extra[:20])}{' …' if len(extra) > 20 else ''}"] if extra else []) + \
                ([f"mis-shaped tensors: {'; '.join(shapes[:20])}"] if shapes else [])
        raise CheckpointError(f"{what} does not match its configuration: " + " | ".join(lines))
    module.load_state_dict(state, strict=True, assign=assign)


def _finish(module: nn.Module, device: str | torch.device | None, dtype: torch.dtype | None) -> nn.Module:
    device, dtype = default_device_dtype(device, dtype)
    return module.to(device=device, dtype=dtype).eval().requires_grad_(False)


def _build(cls: type, config: object, state: dict[str, Tensor], what: str) -> nn.Module:
    with torch.device("meta"):
        module = cls(config)
    module.to_empty(device="cpu")
    load_state(module, {k: v.float() for k, v in state.items()}, what)
    return module


def _meta_entropy_state(folder: Path, repo_id: str | None) -> tuple[EntropyModelConfig, dict[str, Tensor]]:
    layout = detect_layout(folder)
    if layout == "meta-hub":
        args = _read_json(folder / "config.json")["args"]
        state = _read_weights(folder, repo_id, layout)
    elif layout == "meta-consolidated":
        params = _read_json(folder / "params.json")
        args = params.get("entropy_model") or params.get("model") or params
        state = _read_weights(folder, repo_id, layout)
    else:
        cfg, state = _hf_entropy(folder, repo_id)
        return cfg, state
    return entropy_config_from_meta(args, state), state


def _hf_entropy(folder: Path, repo_id: str | None) -> tuple[EntropyModelConfig, dict[str, Tensor]]:
    c = _read_json(folder / "config.json")
    _, entropy = hf_to_meta(_read_weights(folder, repo_id, "transformers"), _n_hash_tables_hf(c))
    if not entropy:
        raise CheckpointError(f"{folder} holds a BLT without its entropy model (no model.patcher.* tensors)")
    return entropy_config_from_hf(c["patcher_config"], entropy), entropy


def _n_hash_tables_hf(c: dict) -> int:
    return c.get("encoder_hash_byte_group_nb_functions", 1) * len(c.get("encoder_hash_byte_group_size") or range(6))


def _find_meta_entropy(folder: Path, repo_id: str | None) -> tuple[EntropyModelConfig, dict[str, Tensor]] | None:
    """Meta keeps the entropy model beside the BLT: entropy_model/ inside the folder or next to it, or the
    facebook/blt-entropy repo for Meta's hub checkpoints."""
    inside = None if repo_id is None else f"{repo_id}/entropy_model"
    beside = None if repo_id is None or repo_id.count("/") < 2 else f"{repo_id.rsplit('/', 1)[0]}/entropy_model"
    for candidate, hub_path in ((folder / "entropy_model", inside), (folder.parent / "entropy_model", beside)):
        if (candidate / "params.json").exists() or (candidate / "config.json").exists():
            return _meta_entropy_state(candidate, hub_path)
    if repo_id is not None:
        if repo_id.startswith("facebook/"):
            sub, rid = resolve(META_ENTROPY_REPO)
            return _meta_entropy_state(sub, rid)
    return None


def load_blt(source: str | os.PathLike | None = None, device: str | torch.device | None = None,
             dtype: torch.dtype | None = None) -> BLT:
    """A BLT (with its entropy model) from a Hub repo id or local folder in any layout; None: the shipped model."""
    folder, repo_id = resolve(SHIPPED_BLT if source is None else source)
    layout = detect_layout(folder)
    if layout == "transformers":
        c = _read_json(folder / "config.json")
        state, entropy = hf_to_meta(_read_weights(folder, repo_id, layout), _n_hash_tables_hf(c))
        config = blt_config_from_hf(c, state, entropy)
        if config.entropy_model is None and config.patching.mode == "entropy":
            raise CheckpointError(f"{source}: entropy patching is configured but no model.patcher.* tensors are present")
    else:
        if layout == "meta-hub":
            args = _read_json(folder / "config.json")["args"]
            train = _read_json(folder / "train_args.json") if (folder / "train_args.json").exists() else {}
        else:
            train = _read_json(folder / "params.json")
            args = train.get("model", {})
        if "dim_local_encoder" not in args:
            raise CheckpointError(f"{folder} holds an entropy model, not a BLT: use load_entropy_model")
        state = _read_weights(folder, repo_id, layout)
        patcher_args = (train.get("data") or {}).get("patcher_args") or {}
        found = _find_meta_entropy(folder, repo_id)
        mode = patcher_args.get("patching_mode", args.get("patching_mode"))
        if found is None and mode == "entropy":
            raise CheckpointError(f"{source}: no entropy model found (looked for entropy_model/ beside the weights"
                                  f"{' and ' + META_ENTROPY_REPO if repo_id else ''})")
        config = blt_config_from_meta(args, patcher_args, state, found[0] if found else None)
        entropy = found[1] if found else {}
    blt = _build(BLT, config, {**state, **{f"entropy_model.{k}": v for k, v in entropy.items()}}, f"BLT checkpoint {source}")
    device_, dtype_ = default_device_dtype(device, dtype)
    blt = _finish(blt, device_, dtype_)
    if blt.entropy_model is not None and device_.type == "cuda":
        blt.entropy_model.float()  # as Meta's hub path: entropies and threshold comparisons in float32
    return blt  # type: ignore[return-value]


def load_entropy_model(source: str | os.PathLike | None = None, device: str | torch.device | None = None,
                       dtype: torch.dtype | None = None) -> EntropyModel:
    """The entropy model alone: a Meta entropy checkpoint, or the one inside a BLT checkpoint of any layout."""
    folder, repo_id = resolve(SHIPPED_BLT if source is None else source)
    layout = detect_layout(folder)
    if layout == "transformers":
        config, state = _hf_entropy(folder, repo_id)
    else:
        meta_cfg = _read_json(folder / ("config.json" if layout == "meta-hub" else "params.json"))
        args = meta_cfg.get("args", meta_cfg.get("model", {}))
        if "dim_local_encoder" in args:
            found = _find_meta_entropy(folder, repo_id)
            if found is None:
                raise CheckpointError(f"{source} is a BLT whose entropy model was not found beside it")
            config, state = found
        else:
            config, state = _meta_entropy_state(folder, repo_id)
    model = _build(EntropyModel, config, state, f"entropy model {source}")
    return _finish(model, device, dtype if dtype is not None else torch.float32)  # type: ignore[return-value]


# --- writing ----------------------------------------------------------------------------------------


def hf_config(config: BLTConfig) -> dict:
    """config.json for transformers' BltForCausalLM."""
    def stack(t: TransformerConfig, **extra: object) -> dict:
        return {"hidden_size": t.dim, "num_hidden_layers": t.n_layers, "num_attention_heads": t.n_heads,
                "num_key_value_heads": t.n_kv_heads, "intermediate_size": t.ffn_dim, "rms_norm_eps": t.norm_eps,
                "rope_parameters": {"rope_type": "default", "rope_theta": t.rope_theta}, **extra}

    for name, heads in (("encoder", config.cross_attn_heads_encoder), ("decoder", config.cross_attn_heads_decoder)):
        local = getattr(config, f"local_{name}")
        if heads not in (None, local.n_heads) or config.local_encoder.sliding_window != config.local_decoder.sliding_window:
            raise CheckpointError(f"the transformers layout cannot express this BLT's {name} cross-attention or windows")
    if config.cross_attn_window_encoder or config.cross_attn_window_decoder or config.global_document_mask:
        raise CheckpointError("the transformers layout cannot express cross-attention windows or document masks")
    p, e = config.patching, config.entropy_model
    k, enc, glob = config.cross_attn_k, config.local_encoder, config.global_transformer
    local_common = dict(cross_attn_k=k, hidden_size_global=glob.dim, vocab_size=config.vocab_size,
                        max_position_embeddings=24576)
    out = {
        "model_type": "blt", "architectures": ["BltForCausalLM"], "vocab_size": config.vocab_size,
        "max_position_embeddings": 4096, "patch_in_forward": p.mode == "entropy", "patch_size": 4,
        "patching_mode": "entropy" if p.mode == "entropy" else p.mode, "patching_threshold": p.threshold,
        "patching_threshold_add": p.threshold_add, "monotonicity": p.monotonicity, "patching_batch_size": 1,
        "max_patch_length": p.max_patch_length, "local_attention_window_len": enc.sliding_window,
        "cross_attn_k": k, "encoder_hash_byte_group_size": list(config.hash_ngram_sizes),
        "encoder_hash_byte_group_vocab": config.hash_vocab,
        "encoder_hash_byte_group_nb_functions": config.hash_functions, "tie_word_embeddings": False,
        "encoder_config": stack(enc, cross_attn_all_layers=config.cross_attn_all_layers_encoder,
                                sliding_window=enc.sliding_window, **local_common),
        "decoder_config": stack(config.local_decoder, cross_attn_all_layers=config.cross_attn_all_layers_decoder,
                                sliding_window=enc.sliding_window, **local_common),
        "global_config": stack(glob, max_position_embeddings=4096),
    }
    if e is not None:
        out["patcher_config"] = {**stack(e.transformer(), sliding_window=e.sliding_window),
                                 "vocab_size": e.vocab_size, "max_position_embeddings": e.max_seqlen}
    return out


def save_blt(blt: BLT, folder: str | os.PathLike, extra_config: dict | None = None) -> Path:
    """Write `blt` (with its entropy model) in the transformers layout: config.json + model.safetensors."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in blt.state_dict().items()}
    entropy = {k[len("entropy_model."):]: v for k, v in state.items() if k.startswith("entropy_model.")}
    body = {k: v for k, v in state.items() if not k.startswith("entropy_model.")}
    n_tables = blt.config.hash_functions * len(blt.config.hash_ngram_sizes)
    save_file(meta_to_hf(body, entropy, n_tables), str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps({**hf_config(blt.config), **(extra_config or {})}, indent=2))
    return folder
