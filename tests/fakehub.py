"""Fake Hugging Face caches laid out exactly as huggingface_hub writes them, for offline tests of real repo ids.

    <cache>/models--<org>--<name>/blobs/<sha256>              file contents
    <cache>/models--<org>--<name>/snapshots/<commit>/<path>   relative symlinks to the blobs
    <cache>/models--<org>--<name>/refs/main                   the commit

Point HF_HUB_CACHE at <cache> and set HF_HUB_OFFLINE=1 (and huggingface_hub.constants, read at import):
`snapshot_download(repo_id, local_files_only=True)` and `hf_hub_download` then find these files.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from reference import meta_args, meta_state_dicts, save_hf_blt
from safetensors.torch import save_file


def write_snapshot(cache_dir: Path, repo_id: str, files: dict[str, bytes | str | Path]) -> Path:
    """One repo snapshot: `files` maps a path in the repo to its contents (bytes, text, or a file to copy).
    Returns the snapshot folder."""
    repo = Path(cache_dir) / f"models--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        data = content.read_bytes() if isinstance(content, Path) else content.encode() if isinstance(content, str) else content
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(Path(*[".."] * (len(Path(name).parts) + 1), "blobs", blob.name))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def _safetensors(state: dict[str, torch.Tensor], tmp: Path) -> Path:
    """Weights stored in bf16, as Meta's released files are."""
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in state.items()}, str(tmp), metadata={"format": "pt"})
    return tmp


def fake_blt_1b(cache_dir: Path, seed: int = 0) -> torch.nn.Module:
    """facebook/blt-1b and facebook/blt-entropy in Meta's hub layout (config.json {"args": …}, model.safetensors
    in bf16, train_args.json), with small random shapes. Returns transformers' BltForCausalLM holding the same
    (bf16-rounded) weights, in float32: the reference to compare with."""
    cache_dir = Path(cache_dir)
    work = cache_dir / ".work"
    ref = save_hf_blt(work / "hf", seed=seed)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    blt, entropy = meta_state_dicts(ref)
    model_args, entropy_args, patcher_args = meta_args(ref)
    train_args = {"model": model_args, "entropy_model": entropy_args, "distributed": {"model_dtype": "bf16"},
                  "data": {"patcher_args": patcher_args, "tokenizer_args": {"name": "blt"}}}
    write_snapshot(cache_dir, "facebook/blt-1b", {
        "config.json": json.dumps({"args": model_args}), "train_args.json": json.dumps(train_args),
        "model.safetensors": _safetensors(blt, work / "blt.safetensors")})
    write_snapshot(cache_dir, "facebook/blt-entropy", {
        "config.json": json.dumps({"args": entropy_args}), "train_args.json": json.dumps(train_args),
        "model.safetensors": _safetensors(entropy, work / "entropy.safetensors")})
    return ref
