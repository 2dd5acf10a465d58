"""The BPE tokenizers that BLT's patches are compared with: the shipped baseline's, and Llama 3's when it loads.

Llama 3's tokenizer lives in a gated Hub repo, so it is optional: without access (or offline) the explorer
says why and compares with the shipped tokenizer alone.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from tokenizers import Tokenizer

from .analysis import Analysis, Segmentation, segment
from .baseline import DEFAULT_BASELINE, token_byte_lengths
from .loading import CheckpointError, _hub, hub_reachable

LLAMA3_REPO = os.environ.get("BLT_EXPLORER_LLAMA3_TOKENIZER", "meta-llama/Meta-Llama-3-8B")
SHIPPED = "shipped baseline"
LLAMA3 = "Llama 3"


def shipped_tokenizer(folder: str | os.PathLike | None = None) -> Tokenizer:
    """The BPE baseline's tokenizer (tokenizer.json beside the baseline model)."""
    path = Path(folder or DEFAULT_BASELINE) / "tokenizer.json"
    if not path.exists():
        raise CheckpointError(f"{path} does not exist: the shipped BPE baseline is not installed")
    return Tokenizer.from_file(str(path))


def llama3_tokenizer(repo_id: str = LLAMA3_REPO) -> Tokenizer:
    """Llama 3's tokenizer.json from the Hub (gated: needs a token with access, or a cached copy)."""
    from huggingface_hub import hf_hub_download

    offline = not hub_reachable()
    return Tokenizer.from_file(_hub(lambda: hf_hub_download(repo_id, "tokenizer.json", local_files_only=offline), repo_id))


def load_bpe_tokenizers() -> tuple[dict[str, Tokenizer], dict[str, str]]:
    """({name: tokenizer} for those that load, {name: why not} for the others); never raises."""
    loaded, missing = {}, {}
    for name, load in ((SHIPPED, shipped_tokenizer), (LLAMA3, llama3_tokenizer)):
        try:
            loaded[name] = load()
        except Exception as e:  # noqa: BLE001 - optional: any failure (gated, offline, network) means "not available"
            missing[name] = str(e)
    return loaded, missing


def bpe_segmentation(analysis: Analysis, tokenizer: Tokenizer) -> Segmentation:
    """The analysed bytes cut into `tokenizer`'s tokens (a byte-level BPE).

    When the analysed text was cut inside a character, its leading bytes at the end cannot be tokenised as
    text; each counts as one token, as a byte-fallback tokenizer would, and a note says so.
    """
    text = analysis.data.decode("utf-8", errors="ignore")  # only a character cut at the end can be invalid
    dangling = len(analysis.data) - len(text.encode("utf-8"))
    lengths = token_byte_lengths(tokenizer, text) + [1] * dangling
    if sum(lengths) != len(analysis.data):
        raise ValueError("this tokenizer's tokens do not map to bytes: only byte-level BPE tokenizers are supported")
    seg = segment(replace(analysis, bpe_lengths=lengths), "bpe")
    if dangling:
        seg.notes.append(f"the last {dangling} byte(s) cut a character and count as one token each")
    return seg
