"""Patching rules on hand-worked examples (shared/blt-reference.md §3), every mode and edge."""

import pytest
import torch

from model import encode
from model.patcher import (
    PatchingConfig,
    internal_lengths,
    patch_lengths,
    public_lengths,
    split_long,
    threshold_for_patch_size,
)

HELLO = torch.tensor([encode("Hello")])  # [BOS, H, e, l, l, o]: T = 6


def lengths(cfg: PatchingConfig, entropies: list[float] | None = None, tokens: torch.Tensor = HELLO) -> list[int]:
    ent = None if entropies is None else torch.tensor([entropies])
    out = patch_lengths(tokens, cfg, ent)
    assert int(out.sum()) == tokens.shape[1] + 1  # Meta's convention: the next byte's slot is included
    return out[0].tolist()


def test_global_threshold_reference_example():
    # reference §3.1: H = [9, 2, .1, .1, 2, .1], θ = 1 → starts 0, 1, 2, 5 → [1, 1, 3, 2]
    assert lengths(PatchingConfig(threshold=1.0), [9, 2, .1, .1, 2, .1]) == [1, 1, 3, 2]
    # a high entropy at the last byte opens a patch that holds only the next byte
    assert lengths(PatchingConfig(threshold=1.0), [9, 2, .1, .1, 2, 3]) == [1, 1, 3, 1, 1]


def test_public_convention_sums_to_T_and_round_trips():
    meta = torch.tensor([[1, 1, 3, 1, 1]])
    public = public_lengths(meta)
    assert public.tolist() == [[1, 1, 3, 1, 0]]
    assert internal_lengths(public, 6).tolist() == meta.tolist()
    assert internal_lengths(torch.tensor([[1, 1, 3, 1]]), 6).tolist() == [[1, 1, 3, 2]]
    assert internal_lengths(meta, 6).tolist() == meta.tolist()  # Meta's convention is accepted as is


def test_threshold_extremes():
    ent = [5.0, 3.0, 0.5, 4.0, 0.2, 1.0]
    assert lengths(PatchingConfig(threshold=-1.0), ent) == [1] * 7  # every byte its own patch
    assert lengths(PatchingConfig(threshold=100.0), ent) == [1, 6]  # one patch after BOS


def test_monotonicity_uses_rises_and_always_starts_at_2():
    # e = H[1:] = [3, .5, 4, .2, 1]; slice 0 always starts (position 2); rises: -2.5, 3.5, -3.8, .8
    assert lengths(PatchingConfig(threshold=1.0, monotonicity=True), [5, 3, .5, 4, .2, 1]) == [1, 1, 2, 3]
    # relative threshold 0.5: the rise of .8 at slice 4 also fires (position 6 = the next byte)
    assert lengths(PatchingConfig(threshold=0.5, monotonicity=True), [5, 3, .5, 4, .2, 1]) == [1, 1, 2, 2, 1]


def test_global_and_monotonic_variant_never_starts_at_3():
    # e = H[1:] = [0, 5, 1, 4, .1]: slice 0 always starts (position 2); slice 1 rises by 5 above θ but can
    # never start; slice 3 rises by 3 > threshold_add and 4 > θ, so position 5 starts
    ent = [0, 0, 5, 1, 4, .1]
    assert lengths(PatchingConfig(threshold=1.0, threshold_add=0.0), ent) == [1, 1, 3, 2]
    assert lengths(PatchingConfig(threshold=1.0), ent) == [1, 2, 2, 2]  # the plain global rule for contrast
    # e = [0, 0, 5, .2, 3]: slice 2 (position 4) and slice 4 (the next byte's slot, position 6) start
    assert lengths(PatchingConfig(threshold=1.0, threshold_add=0.0), [0, 0, 0, 5, .2, 3]) == [1, 1, 2, 2, 1]


def test_max_patch_length_splits_from_each_start_including_the_future_slot():
    # reference §3.2: official [..., 20] with m = 8 becomes [..., 8, 8, 4]
    assert split_long(torch.tensor([1, 1, 20]), 8).tolist() == [1, 1, 8, 8, 4]
    assert lengths(PatchingConfig(threshold=100.0, max_patch_length=2), [0] * 6) == [1, 2, 2, 2]


def test_static_stride_counts_bos_like_meta():
    assert lengths(PatchingConfig("static", patch_size=4)) == [4, 3]
    assert lengths(PatchingConfig("static", patch_size=4.5)) == [4, 3]  # 4.5 truncated as Meta's long tensor


def test_space_patching_ends_patches_after_the_first_space_like_byte():
    tokens = torch.tensor([encode("ab  cd,e")])  # BOS a b ' ' ' ' c d , e
    # starts: 0, 1, then after the first space (position 4) and after ',' (position 8); the second space
    # is not "first" in its run, so it joins the next word
    assert lengths(PatchingConfig("space"), tokens=tokens) == [1, 3, 4, 2]
    # UTF-8 lead bytes are space-like and continuation bytes are not, so Meta's rule cuts "é" (C3 A9) in two:
    # BOS | a C3 | A9 ' ' | b + next
    tokens = torch.tensor([encode("aé b")])
    assert lengths(PatchingConfig("space"), tokens=tokens) == [1, 2, 2, 2]


def test_bpe_delimiter_mode_and_byte_mode():
    tokens = torch.tensor([[1, 3, 70, 71, 3, 72]])  # delimiters at 1 and 4 → starts 0, 1, 2, 5
    assert lengths(PatchingConfig("bpe"), tokens=tokens) == [1, 1, 3, 2]
    assert lengths(PatchingConfig("byte")) == [1] * 7


def test_one_byte_and_empty_text():
    bos_only = torch.tensor([encode("")])
    assert lengths(PatchingConfig(threshold=1.0), [3.0], tokens=bos_only) == [1, 1]
    assert public_lengths(torch.tensor([[1, 1]])).tolist() == [[1, 0]]
    one = torch.tensor([encode("a")])
    assert lengths(PatchingConfig(threshold=1.0), [3.0, 0.1], tokens=one) == [1, 2]
    assert lengths(PatchingConfig(threshold=1.0), [3.0, 2.0], tokens=one) == [1, 1, 1]


def test_batches_are_padded_with_zeros_row_by_row():
    tokens = torch.cat([HELLO, HELLO])
    ent = torch.tensor([[9, 2, .1, .1, 2, .1], [9, 9, 9, 9, 9, 9]])
    out = patch_lengths(tokens, PatchingConfig(threshold=1.0), ent)
    assert out.tolist() == [[1, 1, 3, 2, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]]


def test_threshold_solver_hits_the_target_size():
    ent = torch.rand(2000, generator=torch.Generator().manual_seed(0)) * 4
    theta, size = threshold_for_patch_size(ent, 4.5)
    assert abs(size - 4.5) < 0.1
    assert lengths(PatchingConfig(threshold=theta), ent.tolist(), torch.full((1, 2000), 70)) is not None


def test_bad_configs_and_lengths_are_clear_errors():
    with pytest.raises(ValueError, match="unknown patching mode"):
        PatchingConfig("words")
    with pytest.raises(ValueError, match="max_patch_length"):
        PatchingConfig(max_patch_length=0)
    with pytest.raises(ValueError, match="sum to the sequence length"):
        internal_lengths(torch.tensor([[1, 2]]), 6)
    with pytest.raises(ValueError, match="BOS"):
        internal_lengths(torch.tensor([[2, 4]]), 6)
    with pytest.raises(ValueError, match="LongTensor"):
        internal_lengths(torch.tensor([[1.0, 5.0]]), 6)
    with pytest.raises(ValueError, match="entropies"):
        patch_lengths(HELLO, PatchingConfig())
