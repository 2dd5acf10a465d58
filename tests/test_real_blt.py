"""Meta's real repo ids (facebook/blt-1b, facebook/blt-entropy) from a fake offline Hub cache in their layout;
precision and memory rules (model/devices.py); loading without a second copy of the model in memory."""

import copy
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from fakehub import fake_blt_1b
from reference import PARITY_TEXTS, hf_logits, hf_patcher, long_text

import model
from model import devices
from model.blt import BLT, BLTConfig, blt_1b_config, blt_memory_bytes, is_lookup_table
from model.entropy_model import EntropyModelConfig
from model.layers import TransformerConfig

TEXT = PARITY_TEXTS["multibyte"] + " " + long_text(700)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty offline Hub cache."""
    import huggingface_hub.constants as constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_blt_1b_from_the_hub_cache_matches_transformers(hub):
    ref = fake_blt_1b(hub)
    blt = model.load_blt("facebook/blt-1b", device="cpu", dtype=torch.float32)
    ids = torch.tensor([model.encode(TEXT)])
    ref_entropies, ref_lengths = hf_patcher(ref, ids)
    assert (blt.entropy_model.entropies(ids) - ref_entropies).abs().max() < 1e-5
    lengths = blt.patch_lengths(ids)
    assert torch.equal(lengths, ref_lengths) and len(set(lengths[0, 1:].tolist())) >= 3
    assert (blt(ids) - hf_logits(ref, ids, lengths)).abs().max() < 1e-4
    alone = model.load_entropy_model("facebook/blt-entropy", device="cpu", dtype=torch.float32)
    assert torch.equal(alone.entropies(ids), blt.entropy_model.entropies(ids))


def test_hash_tables_stay_bf16_and_give_exactly_the_fp32_numbers(hub):
    """Tables stored in bf16 are kept in bf16 and cast after each lookup: the same logits as an all-fp32
    model on the same checkpoint, at the memory blt_memory_bytes predicts."""
    fake_blt_1b(hub)
    mixed = model.load_blt("facebook/blt-1b", device="cpu", dtype=torch.float32)
    kinds = {(is_lookup_table(n), p.dtype) for n, p in mixed.named_parameters()}
    assert kinds == {(True, torch.bfloat16), (False, torch.float32)}
    fp32 = copy.deepcopy(mixed).float()
    ids = torch.tensor([model.encode(TEXT)])
    assert torch.equal(mixed(ids), fp32(ids))
    held = sum(p.nbytes for p in mixed.parameters())
    assert held == blt_memory_bytes(mixed.config, "cpu", torch.float32)
    assert held < sum(p.nbytes for p in fp32.parameters())


def test_bf16_compute_is_bf16_everywhere_the_entropy_model_included(hub):
    """What CUDA gets: every parameter in bf16, as Meta's demo runs BLT and its entropy model."""
    fake_blt_1b(hub)
    blt = model.load_blt("facebook/blt-1b", device="cpu", dtype=torch.bfloat16)
    assert {p.dtype for p in blt.parameters()} == {torch.bfloat16}
    ids = torch.tensor([model.encode("bf16 ✓")])
    assert blt(ids).dtype == torch.float32 and torch.isfinite(blt(ids)).all()


def test_memory_check_runs_before_any_weight_is_fetched(hub, monkeypatch):
    fake_blt_1b(hub)
    for blob in (hub / "models--facebook--blt-1b" / "snapshots").rglob("model.safetensors"):
        blob.unlink()  # only the configs are in the cache: the check must not need the weights
    monkeypatch.setattr(devices, "available_memory", lambda device: 10**6)
    with pytest.raises(devices.NotEnoughMemoryError, match=r"BLT facebook/blt-1b needs 0\.\d GB on cpu, 0\.0 GB are available"):
        model.load_blt("facebook/blt-1b", device="cpu")


def test_check_fits_names_the_numbers(monkeypatch):
    monkeypatch.setattr(devices, "available_memory", lambda device: 7.9e9)
    with pytest.raises(model.CheckpointError, match=r"^BLT facebook/blt-1b needs 12\.3 GB on cpu, 7\.9 GB are available"):
        devices.check_fits(int(12.3e9), "cpu", "BLT facebook/blt-1b")
    devices.check_fits(int(7.8e9), "cpu", "BLT facebook/blt-1b")


def test_blt_1b_needs_about_12_gb_on_a_cpu_and_9_in_bf16():
    config = blt_1b_config()
    fp32 = blt_memory_bytes(config, "cpu", torch.float32)
    bf16 = blt_memory_bytes(config, "cpu", torch.bfloat16)
    assert 11.5e9 < fp32 < 13e9  # 3.07B table parameters at 2 bytes, 1.56B others at 4
    assert 9.0e9 < bf16 < 9.5e9  # 4.63B parameters at 2 bytes


def test_bf16_only_where_the_hardware_is_fast(monkeypatch):
    monkeypatch.delenv(devices.DTYPE_ENV)  # the rule itself, not the suite's float32
    monkeypatch.setattr(devices, "cpu_flags", lambda: {"avx2", "fma"})
    assert not devices.fast_bf16("cpu") and devices.compute_dtype("cpu") == torch.float32
    monkeypatch.setattr(devices, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    assert devices.fast_bf16("cpu") and devices.compute_dtype("cpu") == torch.bfloat16
    monkeypatch.setenv(devices.DTYPE_ENV, "float32")  # the owner's choice wins over the hardware's
    assert devices.compute_dtype("cpu") == torch.float32
    monkeypatch.setenv(devices.DTYPE_ENV, "fp8")
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        devices.compute_dtype("cpu")
    assert devices.available_memory("cpu") > 0


def test_bad_sources_say_what_is_wrong(hub, tmp_path):
    with pytest.raises(model.CheckpointError, match="not in the local Hugging Face cache and the Hub cannot be reached"):
        model.load_blt("facebook/blt-1b")  # offline, nothing cached
    with pytest.raises(model.CheckpointError, match="not in the local Hugging Face cache"):
        model.load_entropy_model("facebook/blt-entropy")
    fake_blt_1b(hub)
    with pytest.raises(model.CheckpointError, match="facebook/blt-3b is not in the local Hugging Face cache"):
        model.load_blt("facebook/blt-3b")  # unknown id, offline
    with pytest.raises(model.CheckpointError, match="neither a local folder nor a Hub repo id"):
        model.load_blt("blt-1b")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README.md").write_text("no model here")
    with pytest.raises(model.CheckpointError, match=r"holds no BLT checkpoint.*found \['README.md'\]"):
        model.load_blt(tmp_path / "empty")
    for blob in (hub / "models--facebook--blt-1b" / "snapshots").rglob("model.safetensors"):
        blob.unlink()  # configs cached, weights not
    with pytest.raises(model.CheckpointError, match="not in the local Hugging Face cache"):
        model.load_blt("facebook/blt-1b")


# --- loading holds one copy of the model ------------------------------------------------------------------

_PEAK = textwrap.dedent("""
    import json, sys, torch
    import model
    def peak():  # VmHWM: ru_maxrss would start from the parent's peak (it survives exec)
        status = open("/proc/self/status").read()
        return int(status.split("VmHWM:")[1].split()[0]) * 1024
    before = peak()
    blt = model.load_blt(sys.argv[1], device="cpu", dtype=torch.float32)
    for p in blt.parameters():
        p.sum()  # tables stay mapped from the file until read: read every page so that all of them count
    peak = peak()
    print(json.dumps({"before": before, "peak": peak, "model": sum(p.nbytes for p in blt.parameters())}))
""")


def test_loading_peaks_near_the_final_size(tmp_path):
    """Hash tables of 150M parameters in bf16 (300 MB of a 343 MB model): reading the whole state dict and then
    building the model, as the loader once did, took 1.7 GB more than before loading; now the model's size."""
    local = dict(n_heads=4, ffn_dim=512, sliding_window=512)
    config = BLTConfig(TransformerConfig(256, 1, **local), TransformerConfig(512, 2, 8, ffn_dim=1024),
                       TransformerConfig(256, 2, **local), hash_vocab=100_000,
                       entropy_model=EntropyModelConfig(128, 2, 4, ffn_dim=256))
    blt = BLT(config)
    for table in blt.encoder_hash_tok_embedding:
        table.to(torch.bfloat16)
    model.save_blt(blt, tmp_path / "ckpt")
    del blt
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", _PEAK, str(tmp_path / "ckpt")], capture_output=True, text=True,
                         cwd=root, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["model"] > 300e6
    assert r["peak"] - r["before"] < 1.1 * r["model"] + 100e6, r  # libraries loaded on first use: tens of MB
