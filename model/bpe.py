"""BPE tokenization, in one place: the tokenizers BLT's patches are compared with (the shipped baseline's,
and Llama 3's when it loads), the bytes each token covers, and training a byte-level BPE.

Llama 3's tokenizer lives in a gated Hub repo, so it is optional: without access (or offline) the explorer
says why and compares with the shipped tokenizer alone.
"""

from __future__ import annotations

import os
from pathlib import Path

from tokenizers import Tokenizer

from .defaults import SHIPPED_BASELINE
from .loading import CheckpointError, _hub, hub_reachable

LLAMA3_REPO = os.environ.get("BLT_EXPLORER_LLAMA3_TOKENIZER", "meta-llama/Meta-Llama-3-8B")
SHIPPED = "shipped baseline"
LLAMA3 = "Llama 3"


def shipped_tokenizer(folder: str | os.PathLike | None = None) -> Tokenizer:
    """The BPE baseline's tokenizer (tokenizer.json beside the baseline model)."""
    path = Path(folder or SHIPPED_BASELINE) / "tokenizer.json"
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


def token_byte_lengths(tokenizer: "Tokenizer", text: str) -> list[int]:
    """UTF-8 bytes covered by each BPE token of `text`; they sum to len(text.encode()).

    In byte-level BPE every character of a token string stands for exactly one byte, so a token that ends
    inside a multi-byte character is still counted exactly. Special tokens (Llama 3's <|begin_of_text|>)
    cover no text and are left out.
    """
    return [len(tok) for tok in tokenizer.encode(text, add_special_tokens=False).tokens]


def train_tokenizer(texts: list[str], vocab_size: int) -> "Tokenizer":
    """Byte-level BPE (GPT-2/Llama 3 style) trained with the `tokenizers` library."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[], show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return tok


class ByteLevelTokens:
    """The bytes a byte-level BPE token stands for: each character of its string is one byte (GPT-2's map).
    Special tokens (Llama 3's <|begin_of_text|>, <|end_of_text|>) stand for none, as decoding skips them;
    other added tokens for their text."""

    def __init__(self, tokenizer: "Tokenizer"):
        printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
        others = [b for b in range(256) if b not in printable]
        self.byte_of = {chr(b): b for b in printable} | {chr(256 + i): b for i, b in enumerate(others)}
        self.added = {i: b"" if t.special else t.content.encode() for i, t in tokenizer.get_added_tokens_decoder().items()}
        self.tokenizer = tokenizer

    def __call__(self, token_id: int) -> bytes:
        if token_id in self.added:
            return self.added[token_id]
        token = self.tokenizer.id_to_token(token_id)  # None: an id of a padded model vocabulary, not a token
        return b"" if token is None else bytes(self.byte_of[c] for c in token)
