"""Real Llama checkpoints as the baseline: random Llamas saved by transformers itself (GQA, head_dim ≠ dim/heads,
llama3 RoPE scaling, tied and untied, sharded, both RoPE spellings) give transformers' logits and greedy tokens;
meta-llama/Llama-3.2-1B loads from a fake offline Hub cache and writes transformers' greedy text; bad input says why."""

import copy
import json
import subprocess
import sys
from dataclasses import replace
from functools import cache
from pathlib import Path

import pytest
import torch
from fakehub import (
    LLAMA_3_2_1B,
    LLAMA_3_2_1B_CONFIG,
    TRAINING_TEXT,
    llama3_tokenizer,
    random_llama,
    saved_files,
    tokenizer_files,
    write_llama_3_2_1b,
    write_snapshot,
)
from safetensors import safe_open

from model.baseline import baseline_config, baseline_parameter_count, load_baseline
from model.bpe import ByteLevelTokens
from model.defaults import SHIPPED_BLT
from model.generate import TokenEvent, generate_baseline
from model.loading import CheckpointError

N_REGULAR = 400  # small tokenizers: 400 BPE tokens, then Llama 3's 256 special ones
BOS, EOS = N_REGULAR, N_REGULAR + 1
LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 64}
SMALL = {"model_type": "llama", "vocab_size": N_REGULAR + 256, "intermediate_size": 96, "num_hidden_layers": 2,
         "bos_token_id": BOS, "eos_token_id": EOS, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5}
CONFIGS = {  # (config.json, max_shard_size)
    "gqa_head_dim_llama3_untied_sharded_v5": (
        {**SMALL, "hidden_size": 48, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
         "rope_parameters": {**LLAMA3_ROPE, "rope_theta": 10000.0}, "tie_word_embeddings": False}, "60KB"),
    "mqa_llama3_tied_v4": (
        {**SMALL, "hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 1, "rope_theta": 500000.0,
         "rope_scaling": LLAMA3_ROPE, "tie_word_embeddings": True}, None),
    "mha_default_rope_untied_sharded_v4": (
        {**SMALL, "hidden_size": 32, "num_attention_heads": 2, "rope_theta": 10000.0, "rope_scaling": None,
         "tie_word_embeddings": False, "eos_token_id": [EOS, BOS + 9]}, "40KB"),
}
LLAMA_3_1_8B = {"model_type": "llama", "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
                "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-5,
                "rope_theta": 500000.0, "rope_scaling": {**LLAMA3_ROPE, "original_max_position_embeddings": 8192},
                "max_position_embeddings": 131072, "tie_word_embeddings": False, "bos_token_id": 128000,
                "eos_token_id": 128001}


@cache
def small_tokenizer():
    return llama3_tokenizer(N_REGULAR)


def save_llama(folder, config: dict, max_shard_size=None, seed=0, dtype=torch.float32):
    """transformers' random Llama as a user's folder: its own safetensors, our config.json spelling, a tokenizer."""
    net = random_llama(config, seed, dtype)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in {**saved_files(net, max_shard_size), **tokenizer_files(small_tokenizer())}.items():
        (folder / name).write_bytes(data if isinstance(data, bytes) else data.encode())
    (folder / "config.json").write_text(json.dumps(config))
    return net


@pytest.fixture(scope="module", params=list(CONFIGS))
def pair(request, tmp_path_factory):
    """(transformers' model, ours loaded from its files, the folder)."""
    config, shards = CONFIGS[request.param]
    folder = tmp_path_factory.mktemp(request.param)
    ref = save_llama(folder, config, shards, seed=len(request.param))
    if shards:
        assert (folder / "model.safetensors.index.json").exists() and len(list(folder.glob("model-*"))) > 1
    net, tokenizer = load_baseline(folder)
    return ref, net, tokenizer, folder


def prompt_ids(tokenizer, n: int = 300) -> torch.Tensor:
    ids = tokenizer.encode(TRAINING_TEXT).ids[:n]
    assert len(ids) == n and ids[0] == BOS
    return torch.tensor([ids])


def test_logits_equal_transformers(pair):
    ref, net, tokenizer, _ = pair
    ids = prompt_ids(tokenizer)
    with torch.no_grad():
        expected = ref(ids, use_cache=False).logits
    assert (net(ids) - expected).abs().max() <= 1e-4
    assert net.config.tie_embeddings == (net.output.weight is net.tok_embeddings.weight)
    if net.cfg.rope_scaling is not None:  # positions 0..299 lie far beyond original_max_position_embeddings / factor
        unscaled = copy.copy(net)
        unscaled.cfg = replace(net.cfg, rope_scaling=None)
        assert (unscaled(ids) - expected).abs().max() > 1e-2


def test_cached_greedy_generation_equals_transformers(pair):
    ref, net, tokenizer, _ = pair
    prompt = TRAINING_TEXT[:200]
    events = list(generate_baseline(net, tokenizer, prompt, 150))
    ours = [e.id for e in events[1:]]
    assert events[0].ids == tokenizer.encode(prompt).ids and events[0].ids[0] == BOS
    with torch.no_grad():
        theirs = ref.generate(torch.tensor([events[0].ids]), do_sample=False, max_new_tokens=len(ours))
    assert theirs[0, len(events[0].ids):].tolist() == ours


def test_eos_ends_generation_as_in_transformers(pair):
    """Any of the config's EOS ids (an int or a list in config.json) ends generation, after it is yielded."""
    ref, net, tokenizer, _ = pair
    free = [e.id for e in list(generate_baseline(net, tokenizer, "Mozart", 60))[1:]]
    stop = free[4]
    early = copy.copy(net)
    early.config = replace(net.config, eos_ids=(EOS, stop))
    events = list(generate_baseline(early, tokenizer, "Mozart", 60))
    assert [e.id for e in events[1:]] == free[: free.index(stop) + 1]
    with torch.no_grad():
        theirs = ref.generate(torch.tensor([events[0].ids]), do_sample=False, max_new_tokens=60, eos_token_id=[EOS, stop])
    assert theirs[0, len(events[0].ids):].tolist() == [e.id for e in events[1:]]


def test_eos_ids_from_config_and_generation_config():
    assert baseline_config(CONFIGS["mha_default_rope_untied_sharded_v4"][0]).eos_ids == (EOS, BOS + 9)
    assert baseline_config(SMALL | {"hidden_size": 32, "num_attention_heads": 2}).eos_ids == (EOS,)
    assert baseline_config(SMALL | {"hidden_size": 32, "num_attention_heads": 2}, {"eos_token_id": [7, 8]}).eos_ids == (7, 8)


def test_parameter_count_from_the_config_alone(pair):
    ref, net, _, folder = pair
    count = baseline_parameter_count(json.loads((folder / "config.json").read_text()))
    assert count == ref.num_parameters() == sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("config, expected", [(LLAMA_3_2_1B_CONFIG | {"hidden_size": 2048, "intermediate_size": 8192,
                                                "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
                                                "head_dim": 64}, 1_235_814_400), (LLAMA_3_1_8B, 8_030_261_248)],
                         ids=["Llama-3.2-1B", "Llama-3.1-8B"])
def test_parameter_count_of_the_real_llamas(config, expected):
    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        theirs = LlamaForCausalLM(LlamaConfig(**config)).num_parameters()
    assert baseline_parameter_count(config) == theirs == expected


PEAK_MEMORY = """
import sys
from model.baseline import load_baseline
def rss(field):
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith(field))
load_baseline()  # the first load's one-off costs (imports, allocator pools) are not the model's
open("/proc/self/clear_refs", "w").write("5")  # restart the peak (VmHWM) from here
before = rss("VmRSS")
net, _ = load_baseline(sys.argv[1])
print(sum(p.nbytes for p in net.parameters()), rss("VmHWM") - before)
"""


def test_loading_keeps_no_second_copy(tmp_path):
    """bf16 shards into a float32 model: the peak memory of loading is the model's plus a tensor or two, not
    the model's plus a copy of the files (reading everything first would need 1.5x, then converting 2.5x)."""
    config = SMALL | {"hidden_size": 512, "intermediate_size": 1536, "num_hidden_layers": 8, "num_attention_heads": 8}
    save_llama(tmp_path, config, "20MB", dtype=torch.bfloat16)
    out = subprocess.run([sys.executable, "-c", PEAK_MEMORY, str(tmp_path)], capture_output=True, text=True,
                         cwd=Path(__file__).parent.parent, check=True)
    size, peak = map(int, out.stdout.split())
    assert size > 100 * 2**20 and peak < 1.25 * size, (size, peak)


# --- meta-llama/Llama-3.2-1B from a fake, offline Hub cache -------------------------------------------------------


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    cache_dir = tmp_path_factory.mktemp("hub")
    return cache_dir, write_llama_3_2_1b(cache_dir)


@pytest.fixture
def offline(monkeypatch, hub_cache):
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache[0]))
    return hub_cache[1]


def test_llama_3_2_1b_loads_offline_and_writes_transformers_greedy_text(offline):
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    net, tokenizer = load_baseline(LLAMA_3_2_1B)
    assert net.config.tie_embeddings and net.output.weight is net.tok_embeddings.weight
    assert net.cfg.rope_scaling.factor == 32 and net.cfg.head_dim == 16 and net.config.eos_ids == (128001,)
    ref = LlamaForCausalLM.from_pretrained(offline, dtype=torch.float32).eval()
    hf_tokenizer = PreTrainedTokenizerFast.from_pretrained(offline)
    prompt = "The famous composer from Salzburg"
    ids = hf_tokenizer(prompt).input_ids
    assert ids[0] == 128000 and tokenizer.encode(prompt).ids == ids

    long = torch.tensor([hf_tokenizer(TRAINING_TEXT).input_ids[:400]])  # past 8192 / 32 = 256
    with torch.no_grad():
        assert (net(long) - ref(long, use_cache=False).logits).abs().max() <= 1e-4

    events = list(generate_baseline(net, tokenizer, prompt, 100))
    steps = events[1:]
    assert events[0].ids == ids and all(isinstance(e, TokenEvent) for e in steps)
    with torch.no_grad():
        out = ref.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=len(steps))
    theirs = out[0, len(ids):].tolist()
    assert theirs == [e.id for e in steps]
    text = hf_tokenizer.decode(theirs, skip_special_tokens=True).encode()
    assert b"".join(e.data for e in steps) == text[:100] and len(text) >= 100
    assert events[0].scored_bytes == len(prompt.encode())  # BOS covers no bytes; every text token is scored


def test_weights_keep_the_checkpoint_dtype_when_asked(offline):
    """bf16 in the files: kept as they are in bf16, converted per tensor to float32 (CPU's default)."""
    key = "model.layers.1.mlp.down_proj.weight"
    shard = json.loads((offline / "model.safetensors.index.json").read_text())["weight_map"][key]
    with safe_open(str(offline / shard), framework="pt") as f:
        stored = f.get_tensor(key)
    assert stored.dtype == torch.bfloat16
    for dtype in (torch.bfloat16, None):
        net, _ = load_baseline(LLAMA_3_2_1B, dtype=dtype)
        assert {p.dtype for p in net.parameters()} == {dtype or torch.float32}
        assert not any(p.is_meta for p in net.parameters())
        assert torch.equal(net.layers[1].feed_forward.w2.weight, stored.to(dtype or torch.float32))


def test_special_tokens_and_ids_without_a_token_cover_no_bytes(offline):
    _, tokenizer = load_baseline(LLAMA_3_2_1B)
    token_bytes = ByteLevelTokens(tokenizer)
    assert token_bytes(128000) == token_bytes(128001) == token_bytes(200000) == b""  # 200000: no token at all
    assert b"".join(map(token_bytes, tokenizer.encode("Über 東京").ids)) == "Über 東京".encode()


# --- bad input ---------------------------------------------------------------------------------------------------


def test_unknown_repo_offline(offline):
    with pytest.raises(CheckpointError, match="not in the local Hugging Face cache"):
        load_baseline("meta-llama/Llama-9-404B")


def test_folder_without_a_model(tmp_path):
    with pytest.raises(CheckpointError, match="holds no Llama model: expected config.json"):
        load_baseline(tmp_path)


def test_config_that_is_not_llama():
    with pytest.raises(CheckpointError, match="not a Llama configuration \\(model_type 'blt'\\)"):
        load_baseline(SHIPPED_BLT)


def test_unsupported_llama_variants():
    base = SMALL | {"hidden_size": 32, "num_attention_heads": 2}
    with pytest.raises(CheckpointError, match="RoPE type 'yarn' is not supported"):
        baseline_config(base | {"rope_parameters": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4}})
    with pytest.raises(CheckpointError, match="attention_bias=True"):
        baseline_config(base | {"attention_bias": True})
    with pytest.raises(CheckpointError, match="lacks 'hidden_size'"):
        baseline_config({k: v for k, v in base.items() if k != "hidden_size"})


def test_tokenizer_that_does_not_fit_its_model(tmp_path):
    config, _ = CONFIGS["mqa_llama3_tied_v4"]
    save_llama(tmp_path, config | {"vocab_size": N_REGULAR + 100})
    with pytest.raises(CheckpointError, match=f"token ids up to {N_REGULAR + 255}, beyond the model's vocabulary of "
                                              f"{N_REGULAR + 100}"):
        load_baseline(tmp_path)


def test_missing_weights_and_shards(tmp_path):
    config, _ = CONFIGS["mha_default_rope_untied_sharded_v4"]
    save_llama(tmp_path, config, "40KB")
    next(iter(sorted(tmp_path.glob("model-*")))).unlink()
    with pytest.raises(CheckpointError, match="model-00001-of-.*is missing"):
        load_baseline(tmp_path)
    for shard in tmp_path.glob("model*"):
        shard.unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        load_baseline(tmp_path)


def test_write_snapshot_lays_out_the_hub_cache(tmp_path):
    snapshot = write_snapshot(tmp_path, "someone/tiny", {"config.json": "{}", "sub/a.bin": b"\x00"})
    repo = tmp_path / "models--someone--tiny"
    assert (repo / "refs" / "main").read_text() == snapshot.name
    assert (snapshot / "sub" / "a.bin").is_symlink() and (snapshot / "sub" / "a.bin").read_bytes() == b"\x00"
    assert (snapshot / "config.json").resolve().parent == repo / "blobs"
