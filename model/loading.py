"""One loader for every BLT checkpoint layout, from a Hub repo id or a local folder.

Layouts (shared/blt-reference.md §5):
- transformers: config.json with model_type "blt" + model.safetensors (HF key names, fused hash tables);
- Meta hub (facebook/blt-1b, blt-7b, blt-entropy): config.json {"args": ...} + model.safetensors (Meta key
  names) + train_args.json (patcher settings); the entropy model in entropy_model/ or facebook/blt-entropy;
- Meta consolidated (facebook/blt: blt_1b/, blt_7b/, entropy_model/): params.json + consolidated.pth.

Modules in this package use Meta's key names, so Meta checkpoints load as they are and transformers
checkpoints go through the documented key mapping, key by key. Weights are read with safetensors or
`torch.load(weights_only=True)` only.

Loading checks first, from the configuration files alone, that the model fits on the device (before any
weight is downloaded or read); then it builds the model on the meta device and reads the weights one tensor
at a time into their final dtype, so memory never holds a second copy of the model. Precision comes from
model/devices.py: fp32 on CPUs without bf16 units, with BLT's hash tables kept in the checkpoint's bf16;
bf16 everywhere on CUDA, the entropy model included (as Meta's demo runs it). safetensors maps the file
(copy-on-write), so a table kept as stored is paged in from the file as its rows are looked up.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from .blt import BLT, BLTConfig, blt_memory_bytes, is_lookup_table
from .checks import CheckpointError
from .defaults import META_ENTROPY_REPO, SHIPPED_BLT
from .devices import check_fits, compute_dtype, default_device, storage_dtype
from .entropy_model import EntropyModel, EntropyModelConfig
from .layers import TransformerConfig, ffn_hidden_dim
from .patcher import DEFAULT_THRESHOLD, PatchingConfig

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


class Checkpoint:
    """The tensors of a checkpoint's weight files (a safetensors file, its shards, or a .pth) by name. Shapes
    come from the headers; `read` loads one tensor (or a block of its rows)."""

    def __init__(self, files: list[Path]):
        self.files: dict[str, Path] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.pth: dict[str, Tensor] = {}
        for path in files:
            if path.suffix == ".safetensors":
                with safe_open(str(path), framework="pt") as f:
                    for k in f.keys():
                        self.files[k], self.shapes[k] = path, tuple(f.get_slice(k).get_shape())
            else:
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
                self.pth.update(state.get("model", state) if isinstance(state, dict) else state)
                self.shapes.update({k: tuple(v.shape) for k, v in self.pth.items()})

    def read(self, key: str, rows: slice | None = None) -> Tensor:
        if key in self.pth:
            return self.pth[key][rows or slice(None)].clone()  # a copy: the model must not keep the file mapped
        with safe_open(str(self.files[key]), framework="pt") as f:
            return f.get_tensor(key) if rows is None else f.get_slice(key)[rows]


Source = tuple[Checkpoint, str, "slice | None"]  # where a parameter lives: file, key, rows (a fused table's block)


def _shape(source: Source) -> tuple[int, ...]:
    ckpt, key, rows = source
    shape = ckpt.shapes[key]
    return shape if rows is None else (rows.stop - rows.start, *shape[1:])


def shapes(sources: dict[str, Source]) -> dict[str, tuple[int, ...]]:
    return {k: _shape(s) for k, s in sources.items()}


def _weight_files(folder: Path, repo_id: str | None, layout: str) -> list[Path]:
    """The weight files, fetched from the Hub if need be."""
    if layout == "meta-consolidated":
        for name in ("consolidated/consolidated.pth", "consolidated.pth"):
            if (folder / name).exists():
                return [folder / name]
        return [_fetch(folder, repo_id, "consolidated.pth")]
    if (folder / "model.safetensors.index.json").exists():
        shards = sorted(set(_read_json(folder / "model.safetensors.index.json")["weight_map"].values()))
        return [_fetch(folder, repo_id, shard) for shard in shards]
    return [_fetch(folder, repo_id, "model.safetensors")]


def _same_names(ckpt: Checkpoint) -> dict[str, Source]:
    return {k: (ckpt, k, None) for k in ckpt.shapes}


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


def hf_sources(ckpt: Checkpoint, hash_tables: int) -> tuple[dict[str, Source], dict[str, Source]]:
    """A transformers BltForCausalLM checkpoint under Meta's key names: (BLT, entropy model) sources. The fused
    hash table is read as one block of rows per table."""
    back = [(b, a) for a, b in reversed(_META_TO_HF)]
    blt, entropy = {}, {}
    for k, shape in ckpt.shapes.items():
        if k == "lm_head.weight":
            blt["local_decoder.output.weight"] = (ckpt, k, None)
        elif k == "model.encoder_hash_tok_embedding.weight" and hash_tables:
            rows = shape[0] // hash_tables
            for t in range(hash_tables):
                blt[f"encoder_hash_tok_embedding.{t}.weight"] = (ckpt, k, slice(t * rows, (t + 1) * rows))
        elif k.startswith("model.patcher."):
            entropy[_rename(k[len("model.patcher."):], back)] = (ckpt, k, None)
        elif k.startswith("model."):
            blt[_rename(k[len("model."):], back)] = (ckpt, k, None)
        else:
            blt[k] = (ckpt, k, None)  # unknown: reported as unexpected by the name check
    return blt, entropy


# --- configurations ----------------------------------------------------------------------------------


def _ffn(shapes: dict[str, tuple[int, ...]], prefix: str, fallback: int) -> int:
    """FFN width from the weights' shapes when known (configs disagree on rounding, reference §5.2), else
    from the configuration (the memory estimate, made before the weights are fetched)."""
    w = shapes.get(f"{prefix}layers.0.feed_forward.w1.weight")
    return int(w[0]) if w is not None else fallback


def _theta(sub: dict, default: float) -> float:
    rope = sub.get("rope_parameters") or {}
    return float(rope.get("rope_theta", sub.get("rope_theta", default)))


def _hf_stack(sub: dict, window: int | None, shapes: dict, prefix: str) -> TransformerConfig:
    return TransformerConfig(sub["hidden_size"], sub["num_hidden_layers"], sub["num_attention_heads"],
                             sub.get("num_key_value_heads"), _ffn(shapes, prefix, sub.get("intermediate_size") or 0) or None,
                             sub.get("rms_norm_eps", 1e-5), _theta(sub, 10000.0), window)


def entropy_config_from_hf(p: dict, shapes: dict) -> EntropyModelConfig:
    return EntropyModelConfig(p["hidden_size"], p["num_hidden_layers"], p["num_attention_heads"], p.get("num_key_value_heads"),
                              _ffn(shapes, "", p.get("intermediate_size") or 0) or None, p.get("vocab_size", 260),
                              p.get("rms_norm_eps", 1e-5), _theta(p, 10000.0), p.get("sliding_window", 512),
                              p.get("max_position_embeddings", 8192))


def blt_config_from_hf(c: dict, shapes: dict, entropy_shapes: dict | None) -> BLTConfig:
    """`entropy_shapes`: None when the checkpoint has no entropy model."""
    window = c.get("local_attention_window_len")
    enc, dec, glob = c["encoder_config"], c["decoder_config"], c["global_config"]
    entropy_mode = c.get("patching_mode") == "entropy" and c.get("patch_in_forward", True) and c.get("patch_size") is not None
    patching = PatchingConfig("entropy" if entropy_mode else "byte", c.get("patching_threshold") or DEFAULT_THRESHOLD,
                              c.get("patching_threshold_add"), bool(c.get("monotonicity", False)),
                              max_patch_length=c.get("max_patch_length"))
    return BLTConfig(
        _hf_stack(enc, window, shapes, "local_encoder."), _hf_stack(glob, None, shapes, "global_transformer."),
        _hf_stack(dec, window, shapes, "local_decoder."), cross_attn_k=c.get("cross_attn_k", 2),
        cross_attn_kv_heads_encoder=enc.get("num_key_value_heads"), cross_attn_kv_heads_decoder=dec.get("num_key_value_heads"),
        cross_attn_all_layers_encoder=bool(enc.get("cross_attn_all_layers", False)),
        cross_attn_all_layers_decoder=bool(dec.get("cross_attn_all_layers", True)),
        hash_ngram_sizes=tuple(c.get("encoder_hash_byte_group_size") or (3, 4, 5, 6, 7, 8)),
        hash_vocab=c.get("encoder_hash_byte_group_vocab", 500002),
        hash_functions=c.get("encoder_hash_byte_group_nb_functions", 1), vocab_size=c.get("vocab_size", 260),
        patching=patching,
        entropy_model=None if entropy_shapes is None else entropy_config_from_hf(c["patcher_config"], entropy_shapes))


def entropy_config_from_meta(a: dict, shapes: dict) -> EntropyModelConfig:
    """As Meta's `load_entropy_model`: only these fields are read; window 512 and theta 10000 are fixed."""
    ffn = ffn_hidden_dim(a["dim"], a.get("ffn_dim_multiplier") or 1.0, a.get("multiple_of", 256))
    return EntropyModelConfig(a["dim"], a["n_layers"], a["n_heads"], a.get("n_kv_heads"), _ffn(shapes, "", ffn),
                              a.get("vocab_size", 260), a.get("norm_eps", 1e-5), 10000.0, 512, a.get("max_seqlen", 8192))


def patching_from_meta(p: dict) -> PatchingConfig:
    mode = p.get("patching_mode") or "static"
    if mode not in ("entropy", "space", "bpe", "byte", "static"):
        raise CheckpointError(f"patching mode {mode!r} of this checkpoint is not supported")
    return PatchingConfig(mode, p.get("threshold", DEFAULT_THRESHOLD), p.get("threshold_add"), bool(p.get("monotonicity", False)),
                          p.get("patch_size", 4.5), p.get("max_patch_length"))


def blt_config_from_meta(a: dict, patcher_args: dict, shapes: dict, entropy: EntropyModelConfig | None) -> BLTConfig:
    window, theta, eps = a.get("local_attention_window_len"), a.get("rope_theta", 10000.0), a.get("norm_eps", 1e-5)

    def stack(part: str, dim_key: str, n_kv: int | None, win: int | None) -> TransformerConfig:
        dim = a[f"dim_{dim_key}"]
        fallback = ffn_hidden_dim(dim, a.get("ffn_dim_multiplier") or 1.0, a.get("multiple_of", 256))
        return TransformerConfig(dim, a[f"n_layers_{dim_key}"], a[f"n_heads_{dim_key}"], n_kv,
                                 _ffn(shapes, f"{part}.", fallback), eps, theta, win)

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


def check_names(own: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]], what: str) -> None:
    """Raise, naming every missing, unexpected and mis-shaped tensor, unless a checkpoint holds exactly the
    model's tensors (`own` and `found`: name → shape)."""
    missing = sorted(set(own) - set(found))
    extra = sorted(set(found) - set(own))
    mis = [f"{k}: checkpoint {tuple(found[k])} vs model {tuple(own[k])}" for k in own if k in found and found[k] != own[k]]
    if missing or extra or mis:
        lines = ([f"missing tensors: {', '.join(missing[:20])}{' …' if len(missing) > 20 else ''}"] if missing else []) + \
                ([f"unexpected tensors: {', '.join(extra[:20])}{' …' if len(extra) > 20 else ''}"] if extra else []) + \
                ([f"mis-shaped tensors: {'; '.join(mis[:20])}"] if mis else [])
        raise CheckpointError(f"{what} does not match its configuration: " + " | ".join(lines))


def load_state(module: nn.Module, state: dict[str, Tensor], what: str, assign: bool = False) -> None:
    """Strict load with check_names' message; `assign`: the tensors become the module's (a module built on the
    meta device), rather than being copied into it."""
    check_names({k: tuple(v.shape) for k, v in module.state_dict().items()}, {k: tuple(v.shape) for k, v in state.items()}, what)
    module.load_state_dict(state, strict=True, assign=assign)


def _fill(cls: Callable[..., nn.Module], config: object, sources: dict[str, Source], device: torch.device,
          compute: torch.dtype, what: str) -> nn.Module:
    """`cls(config)` built on the meta device, its names and shapes checked against the checkpoint, then filled
    one tensor at a time: each is read, converted to its storage dtype (model/devices.py) and moved to
    `device`, so memory never holds a second copy of the model."""
    with torch.device("meta"):
        module = cls(config)
    check_names({k: tuple(v.shape) for k, v in module.state_dict().items()}, shapes(sources), what)
    for name, (ckpt, key, rows) in sources.items():
        t = ckpt.read(key, rows)
        t = t.to(device=device, dtype=storage_dtype(t.dtype, compute, is_lookup_table(name)))
        owner, _, leaf = name.rpartition(".")
        module.get_submodule(owner).register_parameter(leaf, nn.Parameter(t, requires_grad=False))
    return module.eval()


def _entropy_config(folder: Path, shapes: dict[str, tuple[int, ...]]) -> EntropyModelConfig:
    """The configuration of the entropy model in `folder` (a transformers BLT holds one as its patcher)."""
    layout = detect_layout(folder)
    if layout == "transformers":
        return entropy_config_from_hf(_read_json(folder / "config.json")["patcher_config"], shapes)
    if layout == "meta-hub":
        return entropy_config_from_meta(_read_json(folder / "config.json")["args"], shapes)
    params = _read_json(folder / "params.json")
    return entropy_config_from_meta(params.get("entropy_model") or params.get("model") or params, shapes)


def _entropy_sources(folder: Path, repo_id: str | None) -> dict[str, Source]:
    layout = detect_layout(folder)
    ckpt = Checkpoint(_weight_files(folder, repo_id, layout))
    if layout != "transformers":
        return _same_names(ckpt)
    _, entropy = hf_sources(ckpt, _n_hash_tables_hf(_read_json(folder / "config.json")))
    if not entropy:
        raise CheckpointError(f"{folder} holds a BLT without its entropy model (no model.patcher.* tensors)")
    return entropy


def _n_hash_tables_hf(c: dict) -> int:
    return c.get("encoder_hash_byte_group_nb_functions", 1) * len(c.get("encoder_hash_byte_group_size") or range(6))


def _find_meta_entropy(folder: Path, repo_id: str | None) -> tuple[Path, str | None] | None:
    """Where a Meta BLT's entropy model is: entropy_model/ inside the folder or next to it, or the
    facebook/blt-entropy repo for Meta's hub checkpoints."""
    inside = None if repo_id is None else f"{repo_id}/entropy_model"
    beside = None if repo_id is None or repo_id.count("/") < 2 else f"{repo_id.rsplit('/', 1)[0]}/entropy_model"
    for candidate, hub_path in ((folder / "entropy_model", inside), (folder.parent / "entropy_model", beside)):
        if (candidate / "params.json").exists() or (candidate / "config.json").exists():
            return candidate, hub_path
    if repo_id is not None and repo_id.startswith("facebook/"):
        return resolve(META_ENTROPY_REPO)
    return None


def _meta_blt_args(folder: Path, layout: str) -> tuple[dict, dict]:
    """(model args, patcher args) of a Meta BLT checkpoint."""
    if layout == "meta-hub":
        args = _read_json(folder / "config.json")["args"]
        train = _read_json(folder / "train_args.json") if (folder / "train_args.json").exists() else {}
    else:
        train = _read_json(folder / "params.json")
        args = train.get("model", {})
    if "dim_local_encoder" not in args:
        raise CheckpointError(f"{folder} holds an entropy model, not a BLT: use load_entropy_model")
    return args, (train.get("data") or {}).get("patcher_args") or {}


def load_blt(source: str | os.PathLike | None = None, device: str | torch.device | None = None,
             dtype: torch.dtype | None = None) -> BLT:
    """A BLT (with its entropy model) from a Hub repo id or local folder in any layout; None: the shipped model.
    `device`: CUDA when there is one; `dtype`: the compute dtype, by default model.devices.compute_dtype's.
    Raises CheckpointError (NotEnoughMemoryError when it would not fit, before any weight is fetched)."""
    name = SHIPPED_BLT if source is None else source
    folder, repo_id = resolve(name)
    layout = detect_layout(folder)
    device = default_device(device)
    compute = dtype or compute_dtype(device)
    what = f"BLT {name}"
    if layout == "transformers":
        c = _read_json(folder / "config.json")
        entropy_at, has_entropy = None, "patcher_config" in c

        def configure(blt: dict, entropy: dict | None) -> BLTConfig:
            return blt_config_from_hf(c, blt, entropy)
    else:
        args, patcher_args = _meta_blt_args(folder, layout)
        entropy_at = _find_meta_entropy(folder, repo_id)
        has_entropy = entropy_at is not None
        if not has_entropy and patcher_args.get("patching_mode", args.get("patching_mode")) == "entropy":
            raise CheckpointError(f"{name}: no entropy model found (looked for entropy_model/ beside the weights"
                                  f"{' and ' + META_ENTROPY_REPO if repo_id else ''})")

        def configure(blt: dict, entropy: dict | None) -> BLTConfig:
            return blt_config_from_meta(args, patcher_args, blt, None if entropy is None else _entropy_config(entropy_at[0], entropy))

    check_fits(blt_memory_bytes(configure({}, {} if has_entropy else None), device, compute), device, what)
    ckpt = Checkpoint(_weight_files(folder, repo_id, layout))
    if layout == "transformers":
        blt, entropy = hf_sources(ckpt, _n_hash_tables_hf(c))
    else:
        blt, entropy = _same_names(ckpt), _entropy_sources(*entropy_at) if entropy_at else {}
    config = configure(shapes(blt), shapes(entropy) if entropy else None)
    if config.entropy_model is None and config.patching.mode == "entropy":
        raise CheckpointError(f"{name}: entropy patching is configured but no entropy model (model.patcher.* tensors) is present")
    blt.update({f"entropy_model.{k}": v for k, v in entropy.items()})
    return _fill(BLT, config, blt, device, compute, what)  # type: ignore[return-value]


def load_entropy_model(source: str | os.PathLike | None = None, device: str | torch.device | None = None,
                       dtype: torch.dtype | None = None) -> EntropyModel:
    """The entropy model alone: a Meta entropy checkpoint, or the one inside a BLT checkpoint of any layout.
    `device` and `dtype` as in load_blt."""
    name = SHIPPED_BLT if source is None else source
    folder, repo_id = resolve(name)
    at: tuple[Path, str | None] | None = (folder, repo_id)
    if detect_layout(folder) != "transformers" and "dim_local_encoder" in _meta_args(folder):
        at = _find_meta_entropy(folder, repo_id)
        if at is None:
            raise CheckpointError(f"{name} is a BLT whose entropy model was not found beside it")
    device = default_device(device)
    sources = _entropy_sources(*at)
    return _fill(EntropyModel, _entropy_config(at[0], shapes(sources)), sources, device,  # type: ignore[return-value]
                 dtype or compute_dtype(device), f"entropy model {name}")


def _meta_args(folder: Path) -> dict:
    if (folder / "config.json").exists():
        return _read_json(folder / "config.json").get("args", {})
    params = _read_json(folder / "params.json")
    return params.get("model") or params.get("entropy_model") or params


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
