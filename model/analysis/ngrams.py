"""The hash n-gram embeddings of one byte, as the BLT looks them up.

Besides its own embedding, each byte gets one embedding per hash table: the n-gram of the last n bytes (BOE
ids pad the left, BOS is the first id) hashed by Meta's rolling hash into one of `hash_vocab` buckets. Buckets
are shared: two different n-grams that hash alike get the same vector. The buckets come from
`model.blt.hash_ngram_buckets`, the very function the BLT's forward pass calls.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from ..blt import HASH_PRIMES, BLTConfig, blt_1b_config, hash_ngram_buckets
from ..checks import as_whole, check_text, whole
from ..tokenizer import (
    BOS_ID,
    OFFSET,
    SPECIAL_NAMES,
    byte_glyph,
    encode,
    utf8_char_spans,
)

BLT_1B_HASH_VOCAB = blt_1b_config().hash_vocab  # 500,002


def _ids(text: str | bytes) -> Tensor:
    """BLT ids of a text, or of raw bytes (a text cut by a size cap need not end on a character)."""
    if isinstance(text, bytes):
        return torch.tensor([[BOS_ID] + [b + OFFSET for b in text]])
    return torch.tensor([encode(check_text(text))])


def _windows(ids: Tensor, n: int) -> Tensor:
    """[T, n] the ids of the n-gram ending at each position, BOE (0) on the left, as the hash sees them."""
    return torch.cat([ids.new_zeros(1, n - 1), ids], dim=1)[0].unfold(0, n, 1)


def ngram_text(window: list[int]) -> str:
    """An n-gram's ids as text: <boe>/<bos> by name, characters whole, bytes of a cut character as <E4>."""
    head = "".join(SPECIAL_NAMES[i] for i in window if i < OFFSET)
    data = bytes(i - OFFSET for i in window if i >= OFFSET)
    return head + "".join(data[a:b].decode("utf-8") if b - a > 1 else byte_glyph(data[a] + OFFSET)
                          for a, b in utf8_char_spans(data))


def ngram_records(text: str | bytes, position: int, config: BLTConfig) -> list[dict]:
    """One record per hash table (function, n) for the n-gram ending at byte `position` of `text`: its bytes,
    its bucket, and every other place in the text whose n-gram lands in that bucket, split into the same
    n-gram (`same_at`) and different n-grams that collide (`collides_at`). Places are the byte where the
    n-gram ends; -1 is BOS."""
    ids = _ids(text)
    n_bytes = ids.shape[1] - 1
    position = as_whole(position)
    if not whole(position) or not 0 <= position < n_bytes:
        raise ValueError(f"the byte position must be a whole number from 0 to {n_bytes - 1}, got {position!r}")
    t = position + 1
    out = []
    for (f, n), buckets in hash_ngram_buckets(config, ids).items():
        b = buckets[0]
        windows = _windows(ids, n)
        mine = windows[t]
        same, collides = [], []
        for u in (b == b[t]).nonzero().flatten().tolist():
            if u == t:
                continue
            if torch.equal(windows[u], mine):
                same.append(u - 1)
            else:
                collides.append({"ends_at": u - 1, "ngram": ngram_text(windows[u].tolist())})
        data = bytes(i - OFFSET for i in mine.tolist() if i >= OFFSET)
        out.append({"n": n, "hash_function": f, "prime": HASH_PRIMES[f % len(HASH_PRIMES)], "vocab": config.hash_vocab,
                    "start": position - n + 1, "end": position + 1, "ngram": ngram_text(mine.tolist()),
                    "hex": data.hex(" ").upper(), "bucket": int(b[t]), "same_at": same, "collides_at": collides})
    return out


def collisions(text: str | bytes, config: BLTConfig) -> dict:
    """How many of the text's distinct n-grams (per table) share their bucket with a different n-gram, with the
    BLT's vocab and with BLT-1B's 500,002 buckets."""
    ids = _ids(text)
    out = {"ngrams": 0, "colliding": 0, "vocab": config.hash_vocab, "colliding_at_blt_1b_vocab": 0,
           "blt_1b_vocab": BLT_1B_HASH_VOCAB}
    for key, cfg in (("colliding", config), ("colliding_at_blt_1b_vocab", replace(config, hash_vocab=BLT_1B_HASH_VOCAB))):
        for (_, n), buckets in hash_ngram_buckets(cfg, ids).items():
            distinct, which = torch.unique(_windows(ids, n), dim=0, return_inverse=True)
            bucket = torch.zeros(len(distinct), dtype=torch.long).scatter_(0, which, buckets[0])
            _, slot, shared = torch.unique(bucket, return_inverse=True, return_counts=True)
            out[key] += int((shared[slot] > 1).sum())
            if key == "colliding":
                out["ngrams"] += len(distinct)
    return out


def summary_line(c: dict) -> str:
    return (f"{c['colliding']:,} of the text's {c['ngrams']:,} distinct n-grams share a bucket with a different "
            f"n-gram at this BLT's {c['vocab']:,} buckets per table; {c['colliding_at_blt_1b_vocab']:,} would at "
            f"BLT-1B's {c['blt_1b_vocab']:,}.")
