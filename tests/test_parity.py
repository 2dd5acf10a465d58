"""model/ against transformers' BltForCausalLM: random small configurations saved with save_pretrained."""

import pytest
import torch
from reference import (
    PARITY_TEXTS,
    hf_logits,
    hf_patcher,
    long_text,
    save_hf_blt,
    write_meta_consolidated,
    write_meta_hub,
)

import model

CONFIGS = {
    "default": {},
    "two_hash_functions_k4": dict(hash_functions=2, cross_attn_k=4),
    "max_patch_length": dict(max_patch_length=3),
    "no_sliding_window": dict(window=None),
    "two_encoder_layers_gqa": dict(enc_layers=2, kv_heads=2),
}
TEXTS = {**PARITY_TEXTS, "longer_than_window": long_text(1400)}


@pytest.fixture(scope="module", params=list(CONFIGS))
def pair(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    ref = save_hf_blt(folder, seed=len(request.param), **CONFIGS[request.param])
    return request.param, ref, model.load_blt(folder)


@pytest.mark.parametrize("text", list(TEXTS))
def test_logits_entropies_and_patches_match_transformers(pair, text):
    name, ref, blt = pair
    ids = torch.tensor([model.encode(TEXTS[text])])
    ref_entropies, ref_lengths = hf_patcher(ref, ids)
    entropies, lengths = blt.entropy_model.entropies(ids), blt.patch_lengths(ids)
    assert (entropies - ref_entropies).abs().max() < 1e-5
    assert lengths.sum() == ids.shape[1]
    closed_last = bool(lengths[0, -1] == 0)
    if name == "max_patch_length" and closed_last:
        # transformers' process_patch_lengths drops the empty patch that the next byte opens, so it forgets
        # that the last byte closed its patch; Meta's split keeps it (reference §3.2). Everything else agrees.
        assert torch.equal(lengths[:, :-1], ref_lengths)
    else:
        assert torch.equal(lengths, ref_lengths)
    # explicit lengths with the empty future patch are read the same by both: logits must agree everywhere
    assert (blt(ids) - hf_logits(ref, ids, lengths)).abs().max() < 1e-4
    assert (blt(ids, patch_lengths=lengths) - blt(ids)).abs().max() == 0


def test_patching_is_not_trivial(pair):
    """Guard against a vacuous parity: the random patcher must cut patches of several sizes."""
    _, _, blt = pair
    lengths = blt.patch_lengths(torch.tensor([model.encode(TEXTS["longer_than_window"])]))
    assert len(set(lengths[0, 1:].tolist())) >= 3


def test_meta_layouts_give_the_same_logits(tmp_path):
    ref = save_hf_blt(tmp_path / "hf", seed=3)
    hf_blt = model.load_blt(tmp_path / "hf")
    ids = torch.tensor([model.encode(TEXTS["multibyte"] + TEXTS["longer_than_window"])])
    expected = hf_blt(ids)
    for folder in (write_meta_hub(ref, tmp_path / "meta_hub"), write_meta_consolidated(ref, tmp_path / "meta")):
        blt = model.load_blt(folder)
        assert torch.equal(blt.patch_lengths(ids), hf_blt.patch_lengths(ids))
        assert (blt(ids) - expected).abs().max() < 1e-5
        entropy_model = model.load_entropy_model(folder)
        assert (entropy_model.entropies(ids) - hf_blt.entropy_model.entropies(ids)).abs().max() < 1e-6
    assert (model.load_entropy_model(tmp_path / "meta" / "entropy_model").entropies(ids)
            - hf_blt.entropy_model.entropies(ids)).abs().max() < 1e-6
