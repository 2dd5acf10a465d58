"""Fake Hugging Face Hub caches, laid out as huggingface_hub writes them, so that Hub ids load offline in tests
(HF_HUB_OFFLINE=1, HF_HUB_CACHE pointing here), and random Llamas saved by transformers itself.

    <cache>/models--<org>--<name>/blobs/<sha256>              the files' contents
    <cache>/models--<org>--<name>/snapshots/<commit>/<path>    links to the blobs
    <cache>/models--<org>--<name>/refs/main                    the commit

`write_snapshot` writes any repo; `write_llama_3_2_1b` writes meta-llama/Llama-3.2-1B with its real
config.json fields and Llama 3's tokenizer layout, but small random weights; `fake_blt_1b` writes facebook/blt-1b
and facebook/blt-entropy in Meta's hub layout, small and random.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import string
import tempfile
from pathlib import Path

import torch
from reference import meta_args, meta_state_dicts, save_hf_blt
from safetensors.torch import save_file

LLAMA_3_2_1B = "meta-llama/Llama-3.2-1B"
BEGIN_OF_TEXT, END_OF_TEXT = 128000, 128001  # Llama 3's ids: 128000 BPE tokens, then 256 special ones
# Llama 3's pre-tokenizer split (tokenizer.json of every Llama 3.x repo)
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
                  "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
                  "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"]
LLAMA3_SPECIAL += [f"<|reserved_special_token_{i}|>" for i in range(3, 3 + 256 - len(LLAMA3_SPECIAL))]
TRAINING_TEXT = ("The famous composer from Salzburg known as Mozart wrote music. A byte latent transformer reads bytes, "
                 "def patch(x):\n    return x + 1  # Über den Wolken, 東京 2024! Crème brûlée and ") * 20


def write_snapshot(cache_dir: str | os.PathLike, repo_id: str, files: dict[str, bytes | str | Path],
                   commit: str | None = None) -> Path:
    """Put `files` ({path in the repo: contents, or a file to copy}) into a Hub cache as the snapshot of
    `repo_id`'s main branch; returns the snapshot folder."""
    repo = Path(cache_dir) / f"models--{repo_id.replace('/', '--')}"
    commit = commit or hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    for name, content in files.items():
        data = content.encode() if isinstance(content, str) else content if isinstance(content, bytes) else Path(content).read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def llama3_tokenizer(n_regular: int = BEGIN_OF_TEXT) -> "Tokenizer":  # noqa: F821
    """A tokenizer shaped like Llama 3's: byte-level BPE with its split regex and ignore_merges, `n_regular` regular
    tokens (a few hundred trained, the rest filler words " abc", " abd", ... so every id decodes to text), then
    Llama 3's 256 special tokens and its post-processor, which puts <|begin_of_text|> first."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )

    pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    trained = Tokenizer(models.BPE())
    trained.pre_tokenizer = pre
    trained.train_from_iterator([TRAINING_TEXT], trainers.BpeTrainer(
        vocab_size=min(n_regular, 400), initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    bpe = json.loads(trained.to_str())["model"]
    vocab = bpe["vocab"]
    words = ("Ġ" + "".join(w) for n in itertools.count(3) for w in itertools.product(string.ascii_lowercase, repeat=n))
    while len(vocab) < n_regular:
        vocab.setdefault(next(words), len(vocab))
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m) for m in bpe["merges"]], ignore_merges=True))
    tokenizer.pre_tokenizer = pre
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in LLAMA3_SPECIAL])
    bos = LLAMA3_SPECIAL[0]
    tokenizer.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos}:1 $B:1", special_tokens=[(bos, n_regular)])])
    return tokenizer


def tokenizer_files(tokenizer: "Tokenizer") -> dict[str, str]:  # noqa: F821
    """tokenizer.json with Llama 3's tokenizer_config.json and special_tokens_map.json beside it."""
    special = {"bos_token": LLAMA3_SPECIAL[0], "eos_token": LLAMA3_SPECIAL[1]}
    config = {**special, "clean_up_tokenization_spaces": True, "model_input_names": ["input_ids", "attention_mask"],
              "model_max_length": 131072, "tokenizer_class": "PreTrainedTokenizerFast"}
    return {"tokenizer.json": tokenizer.to_str(), "tokenizer_config.json": json.dumps(config, indent=2),
            "special_tokens_map.json": json.dumps(special, indent=2)}


def random_llama(config: dict, seed: int = 0, dtype: torch.dtype = torch.float32) -> "LlamaForCausalLM":  # noqa: F821
    """transformers' LlamaForCausalLM of a config.json dict, with random weights large enough that greedy
    choices are clear (embeddings N(0, 1), matrices N(0, 1/fan_in), norms around 1)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    net = LlamaForCausalLM(LlamaConfig(**config))
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.normal_(0, 1 if "embed" in name else p.shape[1] ** -0.5)
    return net.to(dtype).eval()


def saved_files(net: "LlamaForCausalLM", max_shard_size: str | int | None = None) -> dict[str, bytes]:  # noqa: F821
    """The safetensors files (and index) that save_pretrained writes for `net`, sharded at max_shard_size."""
    with tempfile.TemporaryDirectory() as tmp:
        net.save_pretrained(tmp, **({"max_shard_size": max_shard_size} if max_shard_size else {}))
        return {p.name: p.read_bytes() for p in Path(tmp).iterdir() if p.name.startswith("model")}


# meta-llama/Llama-3.2-1B's config.json, shapes shrunk (real: hidden 2048, 16 layers, 32 heads, 8 kv heads, FFN 8192)
LLAMA_3_2_1B_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": BEGIN_OF_TEXT, "eos_token_id": END_OF_TEXT, "head_dim": 16, "hidden_act": "silu", "hidden_size": 64,
    "initializer_range": 0.02, "intermediate_size": 128, "max_position_embeddings": 131072, "mlp_bias": False,
    "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
    "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
    "transformers_version": "4.45.0.dev0", "use_cache": True, "vocab_size": 128256}
LLAMA_3_2_1B_GENERATION = {"_from_model_config": True, "bos_token_id": BEGIN_OF_TEXT, "do_sample": True,
                           "eos_token_id": END_OF_TEXT, "temperature": 0.6, "top_p": 0.9,
                           "transformers_version": "4.45.0.dev0"}


def write_llama_3_2_1b(cache_dir: str | os.PathLike, seed: int = 0) -> Path:
    """meta-llama/Llama-3.2-1B in a Hub cache: the real config fields (llama3 RoPE scaling, tied embeddings,
    bf16, vocab 128256) and tokenizer layout, small random weights in sharded safetensors with their index
    (the real repo holds one 2.5 GB model.safetensors; Llama 3.1 8B's is sharded). Returns the snapshot."""
    net = random_llama({k: v for k, v in LLAMA_3_2_1B_CONFIG.items() if k != "torch_dtype"}, seed, torch.bfloat16)
    files = {**saved_files(net, "8MB"), **tokenizer_files(llama3_tokenizer()),
             "config.json": json.dumps(LLAMA_3_2_1B_CONFIG, indent=2),
             "generation_config.json": json.dumps(LLAMA_3_2_1B_GENERATION, indent=2)}
    return write_snapshot(cache_dir, LLAMA_3_2_1B, files)


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
