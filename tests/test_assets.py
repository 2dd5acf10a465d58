"""The shipped models in assets/: they load through the same functions as Meta's checkpoints, with no network;
their bits per byte on the held-out samples stay within 0.05 of the model card's; transformers' BltForCausalLM
and LlamaForCausalLM read the same files and give the same logits."""

import json

import pytest
import torch
from reference import hf_logits, hf_patcher

import model
from model.baseline import load_baseline
from model.bpe import shipped_tokenizer
from model.defaults import ASSETS, SHIPPED_BLT
from model.training.ship import HELDOUT, heldout_samples, score_shipped

TEXT = ("The famous composer from Salzburg known as Mozart wrote music.\n"
        "def patch(x):\n    return x + 1  # Über den Wolken, 東京\n")
TOLERANCE = 0.05  # bits per byte over the recorded figure


@pytest.fixture(scope="module")
def blt():
    return model.load_blt()


@pytest.fixture(scope="module")
def baseline():
    return load_baseline()


def test_assets_fit_the_budget():
    total = sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file())
    assert total <= 60 * 2**20, f"assets/ is {total / 2**20:.1f} MB, over the 60 MB budget"
    for folder in ("blt", "baseline"):
        assert (ASSETS / folder / "config.json").exists() and (ASSETS / folder / "model.safetensors").exists()


def test_defaults_load_the_shipped_models(blt):
    """No argument, no network, no token: the shipped BLT, its entropy model and the baseline."""
    entropy_model = model.load_entropy_model()
    ids = torch.tensor([model.encode(TEXT)])
    assert torch.equal(entropy_model.entropies(ids), blt.entropy_model.entropies(ids))
    assert torch.equal(model.load_blt(SHIPPED_BLT)(ids), blt(ids))
    net, tokenizer = load_baseline()
    assert tokenizer.get_vocab_size() == net.config.vocab_size == shipped_tokenizer().get_vocab_size()



def test_blt_patches_english_near_its_target_size(blt):
    """Its threshold was set for 4.5 bytes per patch on held-out English prose (the paper's BLT-Entropy)."""
    english = heldout_samples()["en_prose"][:4096].decode("utf-8", errors="ignore")
    lengths = blt.patch_lengths(torch.tensor([model.encode(english)]))[0]
    assert 3.5 < (lengths.sum() - 1) / ((lengths > 0).sum() - 1) < 6


def test_heldout_bits_per_byte_stay_within_the_model_card():
    recorded = json.loads((HELDOUT / "bpb.json").read_text())
    measured = score_shipped(heldout_samples())
    for name, scores in recorded.items():
        for group, bpb in scores.items():
            assert measured[name][group] <= bpb + TOLERANCE, (name, group, measured[name][group], bpb)
    assert measured["entropy_model"]["en_prose"] < measured["entropy_model"]["multilingual"]
    card = (ASSETS / "README.md").read_text()
    assert f"{recorded['blt']['en_prose']:.3f}" in card


def test_blt_gives_the_same_logits_in_transformers(blt):
    from transformers import BltForCausalLM

    ref = BltForCausalLM.from_pretrained(SHIPPED_BLT, dtype=torch.float32).eval()
    ids = torch.tensor([model.encode(TEXT)])
    ref_entropies, ref_lengths = hf_patcher(ref, ids)
    assert (blt.entropy_model.entropies(ids) - ref_entropies).abs().max() < 1e-4
    lengths = blt.patch_lengths(ids)
    assert torch.equal(lengths, ref_lengths)
    assert (blt(ids) - hf_logits(ref, ids, lengths)).abs().max() < 1e-3


def test_baseline_gives_the_same_logits_in_transformers(baseline):
    from transformers import LlamaForCausalLM

    net, tokenizer = baseline
    ref = LlamaForCausalLM.from_pretrained(ASSETS / "baseline", dtype=torch.float32).eval()
    ids = torch.tensor([tokenizer.encode(TEXT, add_special_tokens=False).ids])
    with torch.no_grad():
        expected = ref(ids, use_cache=False).logits.float()
    assert (net(ids).float() - expected).abs().max() < 1e-3


def test_blt_and_baseline_were_trained_to_the_same_flops():
    """The bits-per-byte comparison on the card and the Generate tab is at matched training compute."""
    from app.generation import training_table
    from model.defaults import shipped_records

    records = shipped_records()
    assert set(records) == {"entropy model", "BLT", "BPE baseline"}
    assert abs(records["BPE baseline"]["train_flops"] / records["BLT"]["train_flops"] - 1) < 0.05
    table = training_table(records).set_index("model")
    assert table.loc["BLT", "training FLOPs"] == f"{records['BLT']['train_flops']:.3g}"
    assert table.loc["BPE baseline", "bytes seen"] == f"{records['BPE baseline']['bytes_seen'] / 1e6:.1f} MB"
