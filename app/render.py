"""HTML for the explorer: the text coloured by entropy with patch marks, the legend, the summary and the
comparison of patching schemes. The page only draws what `model.analysis` computed.

Everything pasted is data. Every character, glyph and tooltip goes through `html.escape`; a cell's details
are data-* attributes that CSS draws with attr(), which always yields text, never markup; nothing the user
typed reaches JavaScript (a click reads only a cell's byte index, data-b, which this module writes). Cells are
focusable, so the details open on hover, on a click or tap and from the keyboard (Tab), pinned to the bottom of
the window so that no cell's details run off it.

A character is drawn whole when it lies inside one patch. When a patch boundary cuts a multi-byte UTF-8
character, each of its bytes is drawn on its own as hex (<C3>), so no byte is ever dropped.
"""

from __future__ import annotations

import bisect
import functools
import html
import math
import unicodedata
from collections.abc import Iterator

import numpy as np
import pandas as pd

from model.analysis.reading import Analysis, Segmentation
from model.tokenizer import OFFSET, byte_glyph, utf8_char_spans

LN2 = math.log(2)
SCALE_MAX_BITS = 6.0  # top of the colour scale; higher entropies take the top colour
N_COLOURS = 48
_STOPS = [(0.0, "#f8fafc"), (0.2, "#fef3c7"), (0.45, "#fcd34d"), (0.7, "#fb923c"), (1.0, "#f0506e")]

# Invisible or direction-changing characters get a name instead of being applied to the page.
_NAMED = {0x00A0: "NBSP", 0x00AD: "SHY", 0x061C: "ALM", 0x200B: "ZWSP", 0x200C: "ZWNJ", 0x200D: "ZWJ",
          0x200E: "LRM", 0x200F: "RLM", 0x2028: "LS", 0x2029: "PS", 0x202A: "LRE", 0x202B: "RLE", 0x202C: "PDF",
          0x202D: "LRO", 0x202E: "RLO", 0x2060: "WJ", 0x2066: "LRI", 0x2067: "RLI", 0x2068: "FSI", 0x2069: "PDI",
          0xFE0E: "VS15", 0xFE0F: "VS16", 0xFEFF: "BOM"}
_INVISIBLE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"}


def _hex_to_rgb(c: str) -> np.ndarray:
    return np.array([int(c[i : i + 2], 16) for i in (1, 3, 5)], dtype=float)


def _palette(n: int) -> list[str]:
    """n colours evenly spaced along the scale (linear interpolation between the stops)."""
    xs = np.array([x for x, _ in _STOPS])
    rgb = np.stack([_hex_to_rgb(c) for _, c in _STOPS])
    t = np.linspace(0, 1, n)
    out = np.stack([np.interp(t, xs, rgb[:, k]) for k in range(3)], axis=1).round().astype(int)
    return ["#{:02x}{:02x}{:02x}".format(*c) for c in out]


PALETTE = _palette(N_COLOURS)


def colour_index(bits: np.ndarray) -> np.ndarray:
    """Palette index of each entropy (bits): linear from 0 to SCALE_MAX_BITS, clamped at both ends."""
    x = np.nan_to_num(np.asarray(bits, dtype=float), nan=0.0) / SCALE_MAX_BITS
    return np.clip(np.rint(x * (N_COLOURS - 1)), 0, N_COLOURS - 1).astype(int)


@functools.lru_cache(maxsize=8192)
def char_glyph(ch: str) -> str:
    """A visible stand-in for one character: whitespace as ⋅ ↵ ⇥, controls and invisible or bidi characters
    by name (ZWJ, RLO, U+0085), everything else as itself."""
    cp = ord(ch)
    if cp < 0x80:
        return byte_glyph(cp + OFFSET)
    if cp in _NAMED:
        return _NAMED[cp]
    if unicodedata.category(ch) in _INVISIBLE_CATEGORIES:
        return f"U+{cp:04X}"
    return ch


def is_marker(glyph: str, ch: str) -> bool:
    """Whether the glyph stands in for an invisible character (drawn dimmed, so it is not taken for text)."""
    return glyph != ch


def _char_label(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X} {name}".rstrip()


# --- pieces: how the bytes of each unit are drawn --------------------------------------------------------


def char_span(data: bytes, i: int) -> tuple[int, int]:
    """The (start, stop) of the character holding byte i; an invalid byte is a character of its own."""
    a = i
    while a > 0 and i - a < 3 and 0x80 <= data[a] < 0xC0:
        a -= 1
    for s, e in utf8_char_spans(data[a : a + 4]):
        if a + s <= i < a + e:
            return a + s, a + e
    return i, i + 1


def char_start(data: bytes, i: int) -> int:
    """The start of the character holding byte i (i itself at a character boundary or at the end)."""
    return char_span(data, i)[0] if i < len(data) else len(data)


def pieces(data: bytes, spans: list[tuple[int, int]], start: int = 0,
           end: int | None = None) -> Iterator[tuple[int, int, int, bool]]:
    """(unit, start, stop, whole) for bytes [start, end) of `data` (character boundaries), in order: one piece
    per character lying inside one unit (whole=True), one per byte of a character that a unit boundary cuts."""
    end = len(data) if end is None else min(end, len(data))
    u = bisect.bisect_right(spans, (start, len(data) + 1)) - 1  # the unit holding byte `start`
    unit_end = spans[u][1]
    for a, b in utf8_char_spans(data[start:end]):
        a, b = a + start, b + start
        while a >= unit_end:
            u += 1
            unit_end = spans[u][1]
        if b <= unit_end:
            yield u, a, b, True
            continue
        for i in range(a, b):
            while i >= unit_end:
                u += 1
                unit_end = spans[u][1]
            yield u, i, i + 1, False


_ID_TEXT = [html.escape(byte_glyph(i)) for i in range(256 + OFFSET)]  # escaped glyph of each byte id
_BYTE_HTML = _ID_TEXT[OFFSET:]  # ... and of each byte
_MARK = [" w" if b < 0x80 and byte_glyph(b + OFFSET) != chr(b) else "" for b in range(256)]  # dimmed stand-ins
_BREAK = ["<br>" if b == 0x0A else "" for b in range(256)]


def _guess_text(token_id: int, pct: int) -> str:
    return f"{_ID_TEXT[token_id]} {pct}%" if pct else f"{_ID_TEXT[token_id]} &lt;1%"


_GUESSES = [_guess_text(i, p) for i in range(256 + OFFSET) for p in range(101)]  # by id * 101 + percent


def expectations(analysis: Analysis, start: int, stop: int) -> list[str]:
    """The entropy model's top-5 guesses for each of bytes start..stop-1, as escaped text ("e 41%  ⋅ 20%  …")."""
    pct = np.rint(analysis.top_probs[start:stop].float().numpy() * 100).astype(np.int64)
    codes = (analysis.top_ids[start:stop].numpy().astype(np.int64) * 101 + pct).tolist()
    g = _GUESSES
    return [f"{g[a]}  {g[b]}  {g[c]}  {g[d]}  {g[e]}" for a, b, c, d, e in codes]


def text_view(analysis: Analysis, seg: Segmentation, threshold_bits: float | None, start: int = 0,
              stop: int | None = None) -> str:
    """The text (bytes start..stop, moved to character boundaries) coloured by the entropy of each byte's
    prediction, patches marked, a tooltip per cell. A window of a long text keeps the page light."""
    data = analysis.data
    start, stop = char_start(data, max(0, start)), char_start(data, len(data) if stop is None else min(stop, len(data)))
    bits = (analysis.byte_entropies[start:stop].float() / LN2).numpy()
    h = [f"{b:.2f}" for b in bits.tolist()]
    cls = colour_index(bits).tolist()
    expect = expectations(analysis, start, stop)
    spans = seg.spans
    out = [legend(threshold_bits)]
    if (start, stop) != (0, len(data)):
        out.append(message(f"Showing bytes {start:,}\u2013{stop - 1:,} of {len(data):,} (move \u201cText view from byte\u201d "
                           "to page through it); the counts, charts and downloads cover every byte."))
    u0 = bisect.bisect_right(spans, (start, len(data) + 1)) - 1
    out.append(f'<div class="blt-text" dir="auto" style="counter-reset:p {u0 - 1}">')  # patches count from 0
    current = -1
    for u, a, b, whole in pieces(data, spans, start, stop):
        first = ""
        if u != current:  # the patch number comes from a CSS counter; its length rides in a CSS variable
            n = spans[u][1] - spans[u][0]
            opens = a == spans[u][0]  # a window can begin inside a patch: no start mark there
            out.append(f"{'</span>' * (current >= 0)}<span class=\"p{'' if opens else ' q'}\" "
                       f"style=\"--n:'{n} byte{'s' * (n != 1)}'\">")
            current, first = u, " s" * opens
        i = a - start  # index into this window's per-byte lists
        if b - a == 1 and whole:  # an ASCII character
            x = data[a]
            glyph = _BYTE_HTML[x]
            out.append(f'<i tabindex=0 class="h{cls[i]}{first}{_MARK[x]}" data-b="{a}" data-t="{glyph} \u00b7 {x:02X} \u00b7 byte {a} \u00b7 H {h[i]} bits'
                       f'&#10;guesses: {expect[i]}">{glyph}</i>{_BREAK[x]}')
        elif whole:  # a multi-byte character inside one patch: a stripe of colour per byte
            ch = data[a:b].decode("utf-8")
            glyph = html.escape(char_glyph(ch))
            w = 100 / (b - a)
            stripes = ",".join(f"{PALETTE[cls[i + k]]} {k * w:.3g}% {(k + 1) * w:.3g}%" for k in range(b - a))
            out.append(f'<i tabindex=0 class="{first}{" w" * is_marker(char_glyph(ch), ch)}" style="background:linear-gradient(90deg,{stripes})" data-b="{b - 1}" '
                       f'data-t="{glyph} \u00b7 {html.escape(_char_label(ch))}&#10;{data[a:b].hex(" ").upper()} \u00b7 '
                       f'bytes {a}\u2013{b - 1} \u00b7 H {" + ".join(h[i : i + b - a])} bits&#10;guesses for byte {a}: {expect[i]}">'
                       f"{glyph}</i>")
        else:  # one byte of a character that a patch boundary cuts
            ca, cb = char_span(data, a)
            ch = data[ca:cb].decode("utf-8", errors="replace")
            glyph = html.escape(char_glyph(ch))
            label = f' data-c="{glyph}"' if a == ca else ""  # the character, drawn above its first byte
            out.append(f'<i tabindex=0 class="h{cls[i]}{first} b"{label} data-b="{a}" data-t="{data[a]:02X} \u00b7 byte {a} \u00b7 H {h[i]} bits&#10;'
                       f"byte {a - ca + 1} of {cb - ca} of {glyph} (U+{ord(ch):04X}), cut by a patch boundary&#10;"
                       f'guesses: {expect[i]}">{_BYTE_HTML[data[a]]}</i>')
    out.append("</span></div>" if current >= 0 else "</div>")
    return "".join(out)


def legend(threshold_bits: float | None) -> str:
    """The colour scale in bits, with the threshold marked when there is one."""
    stops = ",".join(f"{PALETTE[j]} {100 * j / (N_COLOURS - 1):.3g}%" for j in range(0, N_COLOURS, N_COLOURS // 12))
    ticks = "".join(f'<span style="left:{100 * t / SCALE_MAX_BITS:.4g}%">{t:g}{"+" * (t == SCALE_MAX_BITS)}</span>'
                    for t in range(int(SCALE_MAX_BITS) + 1))
    mark = ""
    if threshold_bits is not None:
        left = 100 * min(max(threshold_bits, 0.0), SCALE_MAX_BITS) / SCALE_MAX_BITS
        mark = f'<i class="theta" style="left:{left:.4g}%" title="threshold θ = {threshold_bits:.3f} bits"></i>'
    theta_key = ' &nbsp;<b class="tk"></b> θ' if threshold_bits is not None else ""
    return (f'<div class="blt-legend"><span class="lbl">entropy of each byte\'s prediction (bits): predictable</span>'
            f'<span class="bar" style="background:linear-gradient(90deg,{stops},{PALETTE[-1]} 100%)">{mark}<span class="ticks">{ticks}'
            f'</span></span><span class="lbl">surprising</span><span class="key"><b class="mark"></b> patch start'
            f'{theta_key}</span></div>')


def unit_text(data: bytes, start: int, stop: int) -> str:
    """Plain (unescaped) text of bytes [start, stop) with visible whitespace; cut characters as <XX> bytes."""
    try:
        return "".join(map(char_glyph, data[start:stop].decode("utf-8")))
    except UnicodeDecodeError:  # a unit boundary cuts a character: lone bytes as <XX>
        part = data[start:stop]
        return "".join(char_glyph(part[a:b].decode("utf-8")) if b - a > 1 else byte_glyph(part[a] + OFFSET)
                       for a, b in utf8_char_spans(part))


def comparison_view(data: bytes, rows: list[tuple[str, Segmentation | None, str]], preview_bytes: int) -> str:
    """The same text cut by each scheme, one above the other: (label, segmentation or None, note) per row."""
    shown = char_start(data, min(len(data), preview_bytes))
    out = ['<div class="blt-cmp">']
    if shown < len(data):
        out.append(f'<p class="note">Each row draws the first {shown:,} of {len(data):,} bytes; '
                   f"the counts cover all {len(data):,} bytes.</p>")
    for label, seg, note in rows:
        out.append(f'<div class="row"><div class="head"><b>{html.escape(label)}</b>')
        if seg is None:
            out.append(f'<span class="na">not available: {html.escape(note)}</span></div></div>')
            continue
        notes = "; ".join(filter(None, [note, *seg.notes]))
        out.append(f'<span class="n"><b class="units">{seg.units:,}</b> units \u00b7 <b>{seg.bytes_per_unit:.2f}</b> '
                   f'bytes/unit</span>{f"<span class=na>{html.escape(notes)}</span>" if notes else ""}</div>'
                   '<div class="strip" dir="auto">')
        current = -1
        for u, a, b, whole in pieces(data, seg.spans, 0, shown):
            if u != current:
                out.append(f'{"</span>" * (current >= 0)}<span class="u">')
                current = u
            if whole and b - a == 1:
                x = data[a]
                out.append(f'<span class="w">{_BYTE_HTML[x]}</span>{_BREAK[x]}' if _MARK[x] else _BYTE_HTML[x])
            elif whole:
                ch = data[a:b].decode("utf-8")
                glyph = char_glyph(ch)
                out.append(f'<span class="w">{html.escape(glyph)}</span>' if is_marker(glyph, ch) else html.escape(glyph))
            else:
                out.append(f'<span class="b">{_BYTE_HTML[data[a]]}</span>')
        out.append("</span></div></div>" if current >= 0 else "</div></div>")
    out.append("</div>")
    return "".join(out)


def summary_view(analysis: Analysis, seg: Segmentation, bpe: Segmentation | None, bpe_label: str,
                 models_bpb: tuple[float | None, float | None, str] = (None, None, "")) -> str:
    """Headline numbers: bytes, patches, bytes per patch, BPE tokens, bits per byte of the entropy model and
    (`models_bpb`: BLT, baseline, a note on what they read) of the BLT and the baseline."""
    blt, baseline, note = models_bpb
    cards = [("bytes", f"{len(analysis.data):,}", "UTF-8 bytes analysed"),
             ("patches", f"{seg.units:,}", "entropy patches (global threshold)"),
             ("patch-size", f"{seg.bytes_per_unit:.2f}", "bytes per patch"),
             ("bpe-tokens", f"{bpe.units:,}" if bpe else "–", f"BPE tokens ({bpe_label} tokenizer)"),
             ("bpe-size", f"{bpe.bytes_per_unit:.2f}" if bpe else "–", "bytes per BPE token"),
             ("bpb", f"{analysis.bits_per_byte:.3f}", "entropy model's bits per byte on this text"),
             ("blt-bpb", _bits(blt), f"BLT's bits per byte{note}"),
             ("baseline-bpb", _bits(baseline), f"BPE baseline's bits per byte{note}")]
    body = "".join(f'<div class="card"><b id="blt-{k}">{v}</b><span>{html.escape(d)}</span></div>' for k, v, d in cards)
    return f'<div class="blt-summary">{body}</div>'


def _bits(x: float | None) -> str:
    return "–" if x is None or math.isnan(x) else f"{x:.3f}"


NGRAMS_LISTED = 12  # other places listed per bucket (the counts cover all)


def ngram_view(records: list[dict], summary: str) -> str:
    """The hash n-grams ending at one byte: per table its n-gram, bucket, and where else the bucket is hit."""
    if not records:
        return ""
    r0 = records[0]
    rows = []
    for r in records:
        same = ", ".join(map(str, r["same_at"][:NGRAMS_LISTED])) + (" …" if len(r["same_at"]) > NGRAMS_LISTED else "")
        hits = ", ".join(f"{c['ngram']} @ {c['ends_at']}" for c in r["collides_at"][:NGRAMS_LISTED])
        hits += " …" if len(r["collides_at"]) > NGRAMS_LISTED else ""
        rows.append(f"<tr><td>{r['n']}</td><td>{r['hash_function']} (prime {r['prime']})</td>"
                    f"<td class=g>{html.escape(r['ngram'])}</td><td>{html.escape(r['hex'])}</td><td><b>{r['bucket']:,}</b></td>"
                    f"<td>{len(r['same_at'])}{': ' * bool(same)}{html.escape(same)}</td>"
                    f"<td>{len(r['collides_at'])}{': ' * bool(hits)}<span class=g>{html.escape(hits)}</span></td></tr>")
    return (f'<div class="blt-ngrams"><p>Byte <b>{r0["end"] - 1}</b>: the n-grams that end there, each hashed into '
            f'one of {r0["vocab"]:,} buckets of its table (positions are the byte where an n-gram ends; −1 is BOS).</p>'
            "<table><thead><tr><th>n</th><th>hash function</th><th>n-gram</th><th>bytes</th><th>bucket</th>"
            "<th>same n-gram also at</th><th>different n-grams in this bucket</th></tr></thead><tbody>"
            f'{"".join(rows)}</tbody></table><p class="sum">{html.escape(summary)}</p></div>')


def message(text: str, kind: str = "info") -> str:
    """A notice in the page (kind: info, warn, error); the text is escaped."""
    return f'<div class="blt-msg {kind}" role="status">{html.escape(text)}</div>' if text else ""


def patch_table(analysis: Analysis, seg: Segmentation, limit: int) -> pd.DataFrame:
    """One row per patch (the first `limit`): where it starts, its bytes, text and entropies in bits."""
    bits = (analysis.byte_entropies.double() / LN2).numpy()
    spans = seg.spans[:limit]
    starts = np.array([s for s, _ in spans])
    sizes = np.array([e - s for s, e in spans])
    return pd.DataFrame({"patch": np.arange(len(spans)), "start byte": starts, "bytes": sizes,
                         "text": [unit_text(analysis.data, s, e) for s, e in spans],
                         "opening H (bits)": bits[starts].round(3),
                         "mean H (bits)": (np.add.reduceat(bits[: spans[-1][1]], starts) / sizes).round(3)})


_H_RULES = "".join(f".blt-text .h{k}{{background:{c}}}" for k, c in enumerate(PALETTE))

STYLE = f"""<style>
.blt-text{{font:15px/2.2 ui-monospace,SFMono-Regular,Menlo,Consolas,"Noto Sans Mono",monospace;background:#fff;
  color:#111;padding:10px 12px 6.5em;border:1px solid #d0d7de;border-radius:8px;overflow-wrap:anywhere;max-height:36em;
  overflow-y:auto}}
.blt-text .p{{border-inline-start:2px solid #1f2937;padding-inline-start:1px;box-shadow:inset 0 -2px #cbd5e1}}
.blt-text .p:nth-child(even){{box-shadow:inset 0 -2px #64748b}}
.blt-text .p.q{{border-inline-start:none}}
.blt-text .p:hover{{outline:1px dashed #334155}}
.blt-text i{{font-style:normal;position:relative;border-radius:2px}}
.blt-text i:hover,.blt-text i:focus{{outline:2px solid #0f172a;z-index:2}}
.blt-text{{counter-reset:p}}
.blt-text .p{{counter-increment:p}}
.blt-text i:hover::after,.blt-text i:focus::after{{content:"patch " counter(p) " · " var(--n) "\\A" attr(data-t);position:fixed;
  left:12px;bottom:12px;max-width:calc(100vw - 24px);box-sizing:border-box;overflow-wrap:anywhere;
  z-index:1000;white-space:pre-wrap;background:#0f172a;color:#f8fafc;font:12px/1.45 ui-monospace,monospace;padding:6px 8px;
  border-radius:6px;pointer-events:none;box-shadow:0 4px 14px rgba(0,0,0,.25);direction:ltr;text-align:left}}
.blt-text i.s:hover::after,.blt-text i.s:focus::after{{content:"patch " counter(p) " · " var(--n) " · starts here" "\\A" attr(data-t)}}
.blt-text i[data-c]::before{{content:attr(data-c);position:absolute;inset-inline-start:0;bottom:1.15em;font-size:.75em;
  line-height:1;color:#334155;pointer-events:none}}
.blt-text .w,.blt-cmp .w{{color:#64748b;font-size:.85em}}
.blt-text .b,.blt-cmp .b{{font-size:.7em;vertical-align:.15em;letter-spacing:-.02em}}
{_H_RULES}
.blt-legend{{display:flex;align-items:center;gap:10px;flex-wrap:wrap;font-size:13px;margin:0 0 14px}}
.blt-legend .bar{{position:relative;display:inline-block;width:260px;height:14px;border:1px solid #94a3b8;border-radius:3px}}
.blt-legend .ticks span{{position:absolute;top:15px;transform:translateX(-50%);font-size:11px}}
.blt-legend .theta{{position:absolute;top:-4px;bottom:-4px;width:0;border-left:2px dashed #b91c1c}}
.blt-legend .mark{{display:inline-block;width:0;height:12px;border-left:2px solid #1f2937}}
.blt-legend .tk{{display:inline-block;width:0;height:12px;border-left:2px dashed #b91c1c}}
.blt-summary{{display:flex;flex-wrap:wrap;gap:8px}}
.blt-summary .card{{flex:1 1 120px;border:1px solid #d0d7de;border-radius:8px;padding:6px 10px}}
.blt-summary .card b{{display:block;font-size:22px}}
.blt-summary .card span{{font-size:12px;opacity:.8}}
.blt-msg{{padding:8px 12px;border-radius:8px;margin:4px 0;font-size:14px}}
.blt-msg.info{{background:#e0f2fe;color:#0c4a6e}}
.blt-msg.warn{{background:#fef3c7;color:#78350f}}
.blt-msg.error{{background:#fee2e2;color:#7f1d1d}}
.blt-cmp .row{{margin:0 0 12px}}
.blt-cmp .head{{display:flex;gap:12px;align-items:baseline;flex-wrap:wrap;font-size:14px}}
.blt-cmp .na{{opacity:.75;font-size:12px}}
.blt-cmp .note{{font-size:12px;opacity:.8}}
.blt-cmp .strip{{font:13px/1.8 ui-monospace,monospace;background:#fff;color:#111;padding:6px 8px;border:1px solid #d0d7de;
  border-radius:6px;overflow-wrap:anywhere;max-height:9em;overflow-y:auto}}
.blt-cmp .u{{border-inline-start:2px solid #1f2937;background:#e0e7ff}}
.blt-cmp .u:nth-child(even){{background:#fde68a}}
.blt-gen{{font:14px/1.7 ui-monospace,monospace;white-space:pre-wrap;overflow-wrap:anywhere;background:#fff;color:#111;
  padding:8px 10px;border:1px solid #d0d7de;border-radius:6px;max-height:24em;overflow-y:auto}}
.blt-gen .prompt{{color:#6b7280}}
.blt-text i[data-b]{{cursor:pointer}}
.blt-ngrams table{{border-collapse:collapse;font-size:13px;width:100%}}
.blt-ngrams th,.blt-ngrams td{{border:1px solid #d0d7de;padding:3px 6px;text-align:left;vertical-align:top}}
.blt-ngrams .g{{font-family:ui-monospace,monospace;white-space:pre-wrap;overflow-wrap:anywhere}}
.blt-ngrams .sum{{font-size:13px;opacity:.85}}
.blt-gen .caret{{color:#2563eb}}
</style>"""
