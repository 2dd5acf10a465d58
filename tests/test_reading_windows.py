"""Reading a text by windows (and again after an edit) gives the numbers of one whole pass; the input rules
that the page, the API and the CLI share say what is allowed."""

from __future__ import annotations

import re

import pytest
import torch

import model
from model.analysis.reading import analyze_bytes, context_positions, read_windows
from model.checks import (
    check_seed,
    check_stride,
    check_target_patch_size,
    check_text,
    check_threshold_bits,
)

TEXT = ("The famous composer from Salzburg known as Mozart wrote music. Grüße aus 中文 👩\u200d💻!\n" * 300).encode()


@pytest.fixture(scope="module")
def em():
    """Two layers of a 64-key sliding window and a context restart every 4 KB: a 22 KB text crosses five
    restarts, and a window (1 KB) is longer than the context a position can see (2·63)."""
    torch.manual_seed(0)
    m = model.EntropyModel(model.EntropyModelConfig(dim=32, n_layers=2, n_heads=2, sliding_window=64,
                                                    max_seqlen=4096)).eval()
    with torch.no_grad():
        m.output.weight.mul_(10)
    return m


def max_delta(a, b) -> float:
    return max(float((a.entropies - b.entropies).abs().max()), float((a.nats - b.nats).abs().max()),
               float((a.top_probs - b.top_probs).abs().max()))


@pytest.fixture(scope="module")
def whole(em):
    assert len(TEXT) > 20_000
    return analyze_bytes(TEXT, em)


def test_windows_equal_one_whole_pass(em, whole):
    parts = list(read_windows(TEXT, em, window=1000))
    assert [len(p.data) for p in parts[:2]] == [999, 1999]  # BOS is position 0
    assert parts[-1].data == TEXT and not parts[-1].truncated
    assert max_delta(parts[-1], whole) <= 1e-5 and torch.equal(parts[-1].top_ids, whole.top_ids)
    assert context_positions(em) == 2 * 63


@pytest.mark.parametrize("at", [0, 5000, 8191, len(TEXT) - 1])
def test_an_edit_reuses_the_numbers_before_it(em, whole, at):
    edited = TEXT[:at] + b"#" + TEXT[at + 1 :]
    counted = []
    real = em.extend
    em.extend = lambda tokens, start, cache: counted.append(tokens.shape[1]) or real(tokens, start, cache)
    try:
        out = list(read_windows(edited, em, window=1000, reuse=whole))[-1]
    finally:
        del em.extend
    assert max_delta(out, analyze_bytes(edited, em)) <= 1e-5
    assert sum(counted) <= len(edited) + 1 - at + context_positions(em)  # only from the edit on, with its context


def test_typing_at_the_end_reads_only_the_new_bytes(em, whole):
    longer = TEXT + b" and more"
    parts = list(read_windows(longer, em, reuse=whole))
    assert len(parts) == 1 and max_delta(parts[-1], analyze_bytes(longer, em)) <= 1e-5


def test_a_partial_reading_is_reused(em, whole):
    first = next(read_windows(TEXT, em, window=3000))
    assert max_delta(list(read_windows(TEXT, em, reuse=first))[-1], whole) <= 1e-5


@pytest.mark.parametrize("check, bad, message", [
    (check_text, "abc\ud800def", "lone surrogate U+D800 at character 3"),
    (check_text, " \n", "empty"),
    (check_seed, 2**70, "from 0 to 2**63-1"),
    (check_seed, -1, "from 0 to 2**63-1"),
    (check_seed, 1.5, "whole number"),
    (check_stride, 20, "from 1 to 16"),
    (check_threshold_bits, -1.43, "from 0 to 8.1"),
    (check_target_patch_size, 0.5, "at least 1"),
    (check_target_patch_size, float("nan"), "at least 1"),
])
def test_bad_input_says_what_is_allowed(check, bad, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        check(bad)


def test_good_input_passes():
    assert check_seed(None) is None and check_seed(2**63 - 1) == 2**63 - 1 and check_seed(3.0) == 3
    assert check_stride(16.0) == 16 and check_text("", "prompt", empty_ok=True) == ""
