"""Tokenizer, input checks, Meta-side semantics where transformers differs, and the loader's errors."""

import json

import pytest
import torch
from reference import long_text, save_hf_blt

import model
from model.entropy_model import EntropyModel, EntropyModelConfig
from model.layers import Attention
from model.tokenizer import EOS_ID, decode, encode, utf8_char_spans


@pytest.fixture(scope="module")
def blt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blt")
    save_hf_blt(folder, seed=7)
    return model.load_blt(folder)


def test_encode_decode_ids():
    assert encode("Hello, world!") == [1, 76, 105, 112, 112, 115, 48, 36, 123, 115, 118, 112, 104, 37]
    assert encode("") == [1]
    assert decode(encode("naïve 東京 👩‍👧")) == "naïve 東京 👩‍👧"
    assert encode("\ud800")[1:] == [b + 4 for b in "\ufffd".encode()]  # a lone surrogate is kept, as U+FFFD


def test_decode_never_drops_a_cut_character():
    ids = encode("é")[:2]  # BOS and only the lead byte C3
    assert decode(ids) == "\ufffd"
    assert utf8_char_spans("aé".encode()[:2]) == [(0, 1), (1, 2)]
    assert utf8_char_spans("aé👍".encode()) == [(0, 1), (1, 3), (3, 7)]


def test_bad_token_input_is_a_clear_value_error(blt):
    for bad, message in [([[1, 2]], "LongTensor"), (torch.tensor([[1.0, 5.0]]), "dtype"),
                         (torch.tensor([1, 5]), "shape"), (torch.zeros(1, 0, dtype=torch.long), "empty"),
                         (torch.tensor([[1, 300]]), "outside|lie in"), (torch.tensor([[1, -1]]), "lie in")]:
        with pytest.raises(ValueError, match=message):
            blt(bad)
        with pytest.raises(ValueError, match=message):
            blt.entropy_model.entropies(bad)
    ids = torch.tensor([encode("Hello")])
    with pytest.raises(ValueError, match="sum to the sequence length"):
        blt(ids, patch_lengths=torch.tensor([[1, 2, 1]]))
    with pytest.raises(ValueError, match="outside"):
        decode([1, 999])


def test_hash_powers_wrap_as_torchs_int64_pow():
    """The n-gram hash's powers are Python numbers (constants in a compiled step) that wrap around exactly as
    torch's int64 pow does."""
    from model.blt import HASH_PRIMES, int64_powers

    for prime in HASH_PRIMES:
        assert int64_powers(prime, 8) == (torch.tensor(prime) ** torch.arange(8)).tolist()


def test_batch_rows_do_not_see_each_other(blt):
    """Meta's calculate_entropies concatenates rows (blt#123); here each row is its own document."""
    a, b = encode("The quick brown fox jumps"), encode("Über den Wolken, 東京 und 😀!!")
    n = min(len(a), len(b))
    batch = torch.tensor([a[:n], b[:n]])
    for row in range(2):
        alone = batch[row : row + 1]
        assert (blt.entropy_model.entropies(batch)[row] - blt.entropy_model.entropies(alone)[0]).abs().max() < 1e-5
        assert (blt(batch)[row] - blt(alone)[0]).abs().max() < 1e-4
        assert torch.equal(blt.patch_lengths(alone)[0], blt.patch_lengths(batch)[row, : blt.patch_lengths(alone).shape[1]])


def test_eos_starts_a_new_document_in_the_entropy_model(blt):
    """Meta's block-diagonal masks: what comes after an EOS does not see what came before it."""
    first, second = encode("first document"), encode("second one")[1:]
    joined = torch.tensor([first + [EOS_ID] + second])
    other = torch.tensor([encode("something else entirely!")[: len(first)] + [EOS_ID] + second])
    ent_a, ent_b = blt.entropy_model.entropies(joined), blt.entropy_model.entropies(other)
    tail = len(first) + 1
    assert (ent_a[0, tail:] - ent_b[0, tail:]).abs().max() < 1e-5  # RoPE is relative: positions cancel out
    assert (ent_a[0, :tail] - ent_b[0, :tail]).abs().max() > 1e-3


def test_context_restarts_every_max_seqlen_bytes():
    """As Meta's calculate_entropies: chunks of max_seqlen, positions from 0 in each."""
    torch.manual_seed(0)
    em = EntropyModel(EntropyModelConfig(dim=32, n_layers=2, n_heads=2, max_seqlen=64)).eval()
    ids = torch.tensor([encode(long_text(200))])
    ent = em.entropies(ids)
    assert (ent[0, 64:128] - em.entropies(ids[:, 64:128])[0]).abs().max() < 1e-6


def test_blockwise_sliding_window_equals_dense_attention(monkeypatch):
    torch.manual_seed(0)
    em = EntropyModel(EntropyModelConfig(dim=32, n_layers=2, n_heads=2, sliding_window=40)).eval()
    ids = torch.tensor([encode(long_text(700))])
    monkeypatch.setattr(Attention, "block_size", 16)
    blocked = em.entropies(ids)
    monkeypatch.setattr(Attention, "block_size", 10**6)
    assert (blocked - em.entropies(ids)).abs().max() < 1e-5


def test_patch_lengths_round_trip_and_future_slot(blt):
    ids = torch.tensor([encode(long_text(300))])
    lengths = blt.patch_lengths(ids)
    assert lengths.sum() == ids.shape[1] and lengths[0, 0] == 1
    assert torch.equal(blt(ids), blt(ids, patch_lengths=lengths))


def test_loader_errors_name_what_is_wrong(tmp_path, blt):
    with pytest.raises(model.CheckpointError, match="neither a local folder nor a Hub repo id"):
        model.load_blt(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(model.CheckpointError, match="holds no BLT checkpoint"):
        model.load_blt(tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(model.CheckpointError, match="model_type is 'llama'"):
        model.load_blt(tmp_path / "other")
    folder = model.save_blt(blt, tmp_path / "saved")
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    broken = dict(state)
    broken.pop("model.local_decoder.norm.weight")
    broken["model.extra.weight"] = torch.zeros(2)
    broken["lm_head.weight"] = torch.zeros(3, 3)
    save_file(broken, str(folder / "model.safetensors"))
    with pytest.raises(model.CheckpointError) as err:
        model.load_blt(folder)
    text = str(err.value)
    assert "missing tensors: local_decoder.norm.weight" in text and "unexpected" in text and "extra.weight" in text
    assert "local_decoder.output.weight: checkpoint (3, 3)" in text
    (folder / "model.safetensors").unlink()
    with pytest.raises(model.CheckpointError, match="model.safetensors is missing"):
        model.load_blt(folder)


def test_hub_errors_say_what_to_do(monkeypatch):
    import httpx
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError

    url = "https://huggingface.co/api/models/facebook/blt-1b"

    def gated(*args, **kwargs):
        raise GatedRepoError("gated", response=httpx.Response(403, request=httpx.Request("GET", url)))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", gated)
    with pytest.raises(model.CheckpointError, match="request access|Request access"):
        model.load_blt("facebook/blt-1b")


def test_offline_hub_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(model.CheckpointError, match="offline|cannot be reached"):
        model.load_entropy_model("facebook/blt-entropy")


def test_unreachable_hub_falls_back_to_the_cache_at_once(monkeypatch, tmp_path):
    """No network, no offline flag: one quick probe, then the local cache, not half a minute of retries."""
    import time

    import huggingface_hub.constants as constants

    from model.bpe import llama3_tokenizer
    from model.loading import hub_reachable

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    assert not hub_reachable()
    start = time.perf_counter()
    for load in (lambda: model.load_entropy_model("facebook/blt-entropy"), llama3_tokenizer):
        with pytest.raises(model.CheckpointError, match="cannot be reached"):
            load()
    assert time.perf_counter() - start < 10


def test_save_and_load_round_trip_in_transformers_layout(tmp_path, blt):
    folder = model.save_blt(blt, tmp_path / "again")
    again = model.load_blt(folder)
    ids = torch.tensor([encode("round trip ✓")])
    assert torch.equal(again(ids), blt(ids))
    from transformers import BltForCausalLM

    ref = BltForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        assert (ref(ids, use_cache=False).logits - blt(ids)).abs().max() < 1e-4
