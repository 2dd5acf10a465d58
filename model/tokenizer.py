"""BLT's byte "tokenizer": ids are bytes + 4, with four special ids below them.

Decoding never drops bytes: a patch boundary can cut a multi-byte UTF-8 character in two, and the
explorer must still show every byte of each half (see `byte_glyph`).
"""

from __future__ import annotations

from collections.abc import Iterable

BOE_ID, BOS_ID, EOS_ID, BPE_ID = 0, 1, 2, 3
OFFSET = 4
VOCAB_SIZE = 256 + OFFSET
SPECIAL_NAMES = {BOE_ID: "<boe>", BOS_ID: "<bos>", EOS_ID: "<eos>", BPE_ID: "<bpe>"}


def encode(text: str, add_bos: bool = True, add_eos: bool = False) -> list[int]:
    """UTF-8 bytes of `text` as BLT ids: BOS first, no EOS (as Meta's generate encodes prompts).

    Lone surrogates (which Python strings can hold but UTF-8 cannot) become U+FFFD rather than vanishing.
    """
    if not isinstance(text, str):
        raise ValueError(f"encode expects a str, got {type(text).__name__}")
    if _has_surrogates(text):
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    data = text.encode("utf-8")
    return ([BOS_ID] if add_bos else []) + [b + OFFSET for b in data] + ([EOS_ID] if add_eos else [])


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def ids_to_bytes(ids: Iterable[int]) -> bytes:
    """The bytes that byte ids stand for; special ids carry no byte and are skipped."""
    return bytes(i - OFFSET for i in _checked(ids) if i >= OFFSET)


def decode(ids: Iterable[int], stop_at_eos: bool = False) -> str:
    """Text of byte ids. Invalid or cut UTF-8 shows as U+FFFD, one per bad byte, never silently dropped."""
    ids = list(_checked(ids))
    if stop_at_eos and EOS_ID in ids:
        ids = ids[: ids.index(EOS_ID)]
    return ids_to_bytes(ids).decode("utf-8", errors="replace")


def _checked(ids: Iterable[int]) -> Iterable[int]:
    for i in ids:
        i = int(i)
        if not 0 <= i < VOCAB_SIZE:
            raise ValueError(f"token id {i} is outside BLT's vocabulary [0, {VOCAB_SIZE})")
        yield i


def utf8_char_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) byte spans of each UTF-8 character; an invalid byte is a span of its own.

    The explorer needs this to map bytes to characters even when the text is cut mid-character.
    """
    spans, i, n = [], 0, len(data)
    while i < n:
        b = data[i]
        width = 1 if b < 0x80 else 2 if 0xC2 <= b < 0xE0 else 3 if 0xE0 <= b < 0xF0 else 4 if 0xF0 <= b < 0xF5 else 1
        end = i + width
        if width > 1 and (end > n or not _is_valid(data[i:end])):
            end = i + 1
        spans.append((i, end))
        i = end
    return spans


def _is_valid(chunk: bytes) -> bool:
    try:
        chunk.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def byte_glyph(token_id: int) -> str:
    """A printable stand-in for one id on its own: the character for ASCII, `<E4>`-style hex otherwise."""
    if token_id < OFFSET:
        return SPECIAL_NAMES[token_id]
    b = token_id - OFFSET
    if b < 0x80:
        return VISIBLE_CONTROLS.get(b, chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}")
    return f"<{b:02X}>"


# Whitespace and control characters drawn visibly, as a text editor's "show whitespace" does.
VISIBLE_CONTROLS = {0x20: "⋅", 0x0A: "↵", 0x09: "⇥", 0x0D: "␍", 0x00: "␀", 0x7F: "␡"}
