"""The explorer page's rendering: escaping, byte ↔ character alignment, colour scale, patch marks, and the
explorer functions behind the page (re-patching without the model, fitting, exports, uploads)."""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser

import numpy as np
import pytest
import torch

import model
from app import explorer, plots, render
from model.analysis.reading import Segmentation, analyze, report, segment
from model.bpe import train_tokenizer

XSS = ('<script>window.__xss=1</script><img src=x onerror="window.__xss=1"> <a href="javascript:window.__xss=1">x</a> '
       "<svg onload=window.__xss=1> ${window.__xss=1} {{constructor.constructor('window.__xss=1')()}} \"' &amp;")
MIXED = "Grüße, 中文 and 👩\u200d💻!\n\tNUL\x00 RLO\u202eevil\u202c BOM\ufeff end"


def tiny_models() -> tuple[model.EntropyModel, dict]:
    """A random entropy model with varied entropies (sharpened output layer) and a small BPE tokenizer: fast,
    and independent of the shipped assets."""
    torch.manual_seed(0)
    em = model.EntropyModel(model.EntropyModelConfig(dim=32, n_layers=1, n_heads=2, sliding_window=64)).eval()
    with torch.no_grad():
        em.output.weight.mul_(10)
    corpus = ["The famous composer from Salzburg known as Mozart wrote music. " * 4, "def f(x):\n    return x + 1\n",
              MIXED, "Die Donaudampfschifffahrtsgesellschaft fährt. " * 3]
    return em, {"shipped baseline": train_tokenizer(corpus, 300)}


@pytest.fixture(scope="module")
def models():
    return tiny_models()


@pytest.fixture(scope="module")
def em(models):
    return models[0]


class Tags(HTMLParser):
    """Every tag and attribute in a piece of HTML."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def assert_inert(markup: str) -> None:
    """Only the renderer's own tags, no raw < or > inside an attribute, no event handler or script URL."""
    assert not any(set(v) & {"<", ">"} for v in re.findall(r'="([^"]*)"', markup))
    tags = Tags(markup).tags
    assert {t for t, _ in tags} <= {"div", "span", "i", "b", "br", "p"}
    for _, attrs in tags:
        assert not any(k.startswith("on") for k in attrs), attrs
        assert not any("javascript:" in (v or "") for k, v in attrs.items() if k in ("href", "src")), attrs


def cut_inside(data: bytes, char: str) -> Segmentation:
    """Patches cut inside the first occurrence of a multi-byte character (after its first byte)."""
    at = data.index(char.encode()) + 1
    return Segmentation("entropy", [(0, at), (at, len(data))])


# --- escaping -------------------------------------------------------------------------------------------


def test_user_text_is_escaped_everywhere(em, models):
    reading = explorer.read(XSS, em, "tiny", models[1])
    v = explorer.view(reading, explorer.Settings())
    for markup in (v.text, v.comparison, v.summary, v.notice):
        assert "<script" not in markup and "<img" not in markup and "<svg" not in markup
        assert_inert(markup)
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in render.comparison_view(reading.analysis.data, [
        ("all", Segmentation("x", [(0, len(reading.analysis.data))]), "")], 10_000).replace('<span class="w">⋅</span>', " ")
    table = explorer.table(reading, explorer.Settings())
    assert "<script>window.__xss=1</script>" in "".join(table["text"])  # plain text: Gradio escapes cells


def test_messages_and_labels_are_escaped():
    assert render.message('<img src=x onerror="alert(1)">', "error") == \
        '<div class="blt-msg error" role="status">&lt;img src=x onerror=&quot;alert(1)&quot;&gt;</div>'
    assert render.message("") == ""
    row = render.comparison_view(b"ab", [("<b>label</b>", None, "<i>why</i>")], 10)
    assert "&lt;b&gt;label&lt;/b&gt;" in row and "&lt;i&gt;why&lt;/i&gt;" in row


def test_tooltips_hold_no_raw_control_or_bidi_characters(em):
    a = analyze(MIXED, em)
    out = render.text_view(a, segment(a), 1.9)
    assert_inert(out)
    assert not re.search("[\x00-\x08\x0b-\x1f\u202a-\u202e\u2066-\u2069\ufeff]", out)
    for glyph in ("⋅", "↵", "⇥", "␀", "RLO", "PDF", "ZWJ", "BOM"):
        assert glyph in out
    assert out.count("<br>") == MIXED.count("\n")


def test_lone_surrogates_are_refused_with_the_reason(em, models):
    with pytest.raises(ValueError, match=r"lone surrogate U\+D800 at character 1: it is half of a UTF-16 pair"):
        explorer.read("a\ud800b", em, "tiny", models[1])


def test_chart_labels_are_escaped(em):
    a = analyze("<b>bold</b> é", em)
    fig = plots.entropy_chart(a, segment(a), 1.9)
    labels = list(fig.data[1].text)
    assert "&lt; 3C" in labels and "b 62" in labels and "é C3" in labels and "é A9" in labels
    assert not any("<" in t for t in labels)


# --- byte ↔ character alignment --------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["plain ascii", MIXED, "中文字节" * 5, "🇩🇪👍🏿é"])
@pytest.mark.parametrize("stride", [1, 2, 3, 5])
def test_pieces_cover_every_byte_once(em, text, stride):
    a = analyze(text, em)
    seg = segment(a, "static", stride=stride)
    pieces = list(render.pieces(a.data, seg.spans))
    assert [p[1] for p in pieces] == [0] + [p[2] for p in pieces[:-1]] and pieces[-1][2] == len(a.data)
    unit = seg.unit_of_byte()
    for u, start, stop, whole in pieces:
        assert all(unit[i] == u for i in range(start, stop))
        if whole and stop - start > 1:
            assert len(a.data[start:stop].decode("utf-8")) == 1
        if not whole:
            assert stop - start == 1 and a.data[start] >= 0x80


def test_cut_character_is_drawn_as_bytes_never_dropped(em):
    a = analyze("café au lait", em)
    seg = cut_inside(a.data, "é")
    out = render.text_view(a, seg, None)
    cells = re.findall(r"<i [^>]*>(.*?)</i>", out)
    assert "".join(cells).count("&lt;C3&gt;") == 1 and "&lt;A9&gt;" in cells
    assert len(cells) == len("caf") + 2 + len(" au lait")
    assert "byte 1 of 2 of é (U+00E9), cut by a patch boundary" in out
    assert render.unit_text(a.data, *seg.spans[0]) == "caf<C3>"
    assert render.unit_text(a.data, *seg.spans[1]) == "<A9>⋅au⋅lait"
    whole = render.text_view(a, Segmentation("x", [(0, len(a.data))]), None)
    assert ">é</i>" in whole and "C3 A9 \u00b7 bytes 3\u20134" in whole


def test_text_cut_mid_character_by_the_size_cap(em, models):
    reading = explorer.read("ab" + "é" * 10, em, "tiny", models[1], max_bytes=5)  # a, b, é, then half of é
    assert reading.analysis.data == b"ab\xc3\xa9\xc3" and reading.analysis.truncated
    v = explorer.view(reading, explorer.Settings())
    assert "22 bytes; the size cap is 5 bytes" in v.notice and "first 5 bytes only (17 bytes not analysed)" in v.notice
    bpe = reading.bpe["shipped baseline"]
    assert bpe.spans[-1] == (4, 5) and "cut a character" in bpe.notes[0]
    assert "&lt;C3&gt;" in v.text


def test_a_window_of_a_long_text(em):
    a = analyze("é" + "The famous composer from Salzburg. " * 4 + "中文", em)
    seg = segment(a, "static", stride=5)
    out = render.text_view(a, seg, None, 22, len(a.data) - 4)  # starts inside a patch, ends inside 中
    u0 = next(u for u, (s, e) in enumerate(seg.spans) if s <= 22 < e)
    assert f'style="counter-reset:p {u0 - 1}"' in out and '<span class="p q"' in out  # steps to u0: numbered from 0
    assert f"Showing bytes 22\u2013{len(a.data) - 7:,} of {len(a.data)}" in out
    cells = len(re.findall(r"<i ", out))
    assert cells == len(list(render.pieces(a.data, seg.spans, 22, len(a.data) - 6)))
    assert "中" not in out and "&lt;E4&gt;" not in out
    inside = render.text_view(a, Segmentation("x", [(0, len(a.data))]), None, 1, 100)  # byte 1 is inside é
    assert ">é</i>" in inside and "Showing bytes 0\u2013" in inside
    assert "Showing" not in render.text_view(a, seg, None)


def test_comparison_preview_ends_at_a_character_boundary():
    data = "ab中".encode()
    out = render.comparison_view(data, [("x", Segmentation("x", [(0, len(data))]), "")], 3)
    assert "first 2 of 5 bytes" in out and "&lt;E4&gt;" not in out


def test_tooltip_guesses_are_the_models_top5_for_that_byte(em):
    a = analyze("hello", em)
    guesses = render.expectations(a, 0, len(a.data))
    ids, probs = a.top_ids[2].tolist(), a.top_probs[2].tolist()
    want = [f"{render.html.escape(model.tokenizer.byte_glyph(i))} {round(p * 100)}%" if round(p * 100) else
            f"{render.html.escape(model.tokenizer.byte_glyph(i))} &lt;1%" for i, p in zip(ids, probs)]
    assert guesses[2] == "  ".join(want)
    assert f"guesses: {guesses[2]}" in render.text_view(a, segment(a), 1.9)


# --- colour scale and patch marks -----------------------------------------------------------------------


def test_colour_scale_is_monotonic_and_clamped():
    bits = np.array([-1.0, 0.0, 0.01, 1.0, 2.5, render.SCALE_MAX_BITS, 9.0, float("nan")])
    idx = render.colour_index(bits)
    assert idx[0] == 0 and idx[1] == 0 and idx[-1] == 0
    assert idx[5] == idx[6] == render.N_COLOURS - 1
    assert np.all(np.diff(render.colour_index(np.linspace(0, 7, 200))) >= 0)
    assert len(set(render.PALETTE)) == render.N_COLOURS
    assert render.PALETTE[0] == "#f8fafc" and render.PALETTE[-1] == "#f0506e"  # the scale's end stops


def test_cells_take_the_colour_of_their_entropy(em):
    a = analyze("abcdefgh", em)
    out = render.text_view(a, segment(a), 1.9)
    classes = [int(c) for c in re.findall(r'<i tabindex=0 class="h(\d+)', out)]
    assert classes == render.colour_index(a.byte_entropies.numpy() / math.log(2)).tolist()
    for k, c in enumerate(render.PALETTE):
        assert f".h{k}{{background:{c}}}" in render.STYLE


def test_patch_marks_follow_the_segmentation(em):
    a = analyze("The famous composer from Salzburg", em)
    seg = segment(a, "static", stride=5)
    out = render.text_view(a, seg, None)
    lengths = re.findall(r"<span class=\"p\" style=\"--n:'(\d+) bytes?'\">", out)
    assert [int(n) for n in lengths] == [e - s for s, e in seg.spans]
    assert len(re.findall(r'<i tabindex=0 class="h\d+ s', out)) == seg.units  # each patch's first cell is marked


def test_legend_spans_the_whole_scale():
    stops = re.search(r"linear-gradient\(90deg,([^)]*)\)", render.legend(None)).group(1).split(",")
    positions = [float(stop.split()[1].rstrip("%")) for stop in stops]
    assert positions[0] == 0 and positions[-1] == 100 and positions == sorted(positions)
    assert stops[0].split()[0] == render.PALETTE[0] and stops[-1].split()[0] == render.PALETTE[-1]


def test_legend_marks_the_threshold():
    assert "θ = 1.927 bits" in render.legend(1.927) and 'style="left:32.12%"' in render.legend(1.927)
    assert "theta" not in render.legend(None)
    assert 'left:100%' in render.legend(50.0)  # clamped to the scale


def test_chart_has_threshold_line_and_a_vertical_per_patch(em):
    a = analyze("The famous composer from Salzburg", em)
    seg = segment(a)
    fig = plots.entropy_chart(a, seg, 1.5)
    assert fig.layout.shapes[0].y0 == fig.layout.shapes[0].y1 == 1.5
    assert list(fig.data[0].x) == [s for s in seg.starts for _ in range(3)]
    assert list(fig.data[0].y[:3]) == [0, pytest.approx(fig.layout.yaxis.range[1]), 0]
    assert list(fig.data[1].customdata) == [u + 1 for u in seg.unit_of_byte()]
    hist = plots.size_histogram([("p", seg)])
    assert sum(hist.data[0].y) == seg.units


# --- the explorer functions behind the page -------------------------------------------------------------


class Counting(torch.nn.Module):
    """An entropy model that counts its passes (a whole pass, or one window of a windowed reading)."""

    def __init__(self, inner: model.EntropyModel):
        super().__init__()
        self.inner, self.calls, self.config = inner, 0, inner.config

    def forward(self, tokens):
        self.calls += 1
        return self.inner(tokens)

    def new_cache(self):
        return self.inner.new_cache()

    def extend(self, tokens, start, cache):
        self.calls += 1
        return self.inner.extend(tokens, start, cache)


def test_repatching_and_fitting_never_run_the_model(em, models):
    counting = Counting(em)
    reading = explorer.read(MIXED * 3, counting, "tiny", models[1])
    counts = {explorer.view(reading, explorer.Settings(t, r, k)).summary
              for t, r, k in [(0.5, 0.5, 2), (1.9, 1.0, 4), (3.0, 2.0, 8)]}
    settings, note = explorer.fit(reading, 3.0)
    assert counting.calls == 1 and len(counts) == 3
    assert "Fitted to 3 bytes per patch" in note and settings.stride == 3
    patches = segment(reading.analysis, "entropy", settings.threshold_bits * math.log(2))
    assert abs(patches.bytes_per_unit - 3.0) < 0.5


def test_every_scheme_is_compared(em, models):
    reading = explorer.read("The famous composer from Salzburg known as Mozart.", em, "tiny", models[1],
                            {"Llama 3": "gated"})
    rows = explorer.schemes(reading, explorer.Settings(1.9, 1.0, 4))
    labels = [label for label, _, _ in rows]
    assert labels[:4] == ["Entropy, global threshold θ = 1.90 bits", "Entropy, monotonic: rise > 1.00 bits",
                          "Static, every 4 bytes", "Space patching"]
    assert labels[4:] == ["BPE tokens: shipped baseline", "BPE tokens: Llama 3"]
    assert rows[-1][1] is None and rows[-1][2] == "gated"
    assert explorer.counts(rows)[-1] == {"scheme": "bpe", "label": "BPE tokens: Llama 3", "error": "gated"}
    for _, seg, _ in rows[:-1]:
        assert seg.spans[-1][1] == len(reading.analysis.data)
    out = render.comparison_view(reading.analysis.data, rows, 20)
    assert out.count('<div class="row">') == 6 and "not available: gated" in out
    assert "first 20 of 50 bytes" in out


def test_summary_numbers(em, models):
    reading = explorer.read("hello world, hello world", em, "tiny", models[1])
    v = explorer.view(reading, explorer.Settings())
    patches = segment(reading.analysis)
    assert f'<b id="blt-patches">{patches.units}</b>' in v.summary
    assert f'<b id="blt-bytes">{len(reading.analysis.data)}</b>' in v.summary
    assert f'<b id="blt-bpb">{reading.analysis.bits_per_byte:.3f}</b>' in v.summary
    table = explorer.table(reading, explorer.Settings())
    assert list(table["bytes"]) == [e - s for s, e in patches.spans]
    bits = reading.analysis.byte_entropies.numpy() / math.log(2)
    assert list(table["mean H (bits)"]) == [round(float(bits[s:e].mean()), 3) for s, e in patches.spans]
    first = render.patch_table(reading.analysis, patches, 2)
    assert len(first) == 2 and first["mean H (bits)"][1] == table["mean H (bits)"][1]


def test_exports(em, models, tmp_path):
    reading = explorer.read(MIXED, em, "tiny", models[1])
    csv, js, chart = explorer.export(reading, explorer.Settings(), tmp_path)
    import pandas as pd

    table = pd.read_csv(csv, keep_default_na=False)
    assert list(table.columns) == ["byte", "hex", "char", "glyph", "entropy_nats", "entropy_bits", "patch", "starts_patch"]
    assert len(table) == len(MIXED.encode()) and "".join(table["char"]) == MIXED  # the real characters
    assert table["glyph"][MIXED.encode().index(b" ")] == "⋅"
    doc = json.loads(js.read_text(encoding="utf-8"))
    assert doc["summary"]["model"] == "tiny" and len(doc["bytes"]) == len(table)
    assert [r["scheme"] for r in doc["schemes"]] == ["entropy", "monotonic", "static", "space", "bpe"]
    assert "<html>" in chart.read_text() and "plotly" in chart.read_text()
    assert 'src="https://cdn.plot.ly' not in chart.read_text() and len(chart.read_bytes()) > 1_000_000  # plotly embedded: offline


def test_downloaded_patches_are_exact_where_a_boundary_cuts_a_character(em):
    a = analyze("字字", em)
    doc = report(a, Segmentation("x", [(0, 1), (1, 4), (4, 6)]))
    assert bytes.fromhex("".join(p["hex"] for p in doc["patches"])) == "字字".encode()
    assert [p["text"] for p in doc["patches"]] == ["\\xe5", "\\xad\\x97\\xe5", "\\xad\\x97"]
    assert "\ufffd" not in json.dumps(doc, ensure_ascii=False)
    assert [r["char"] for r in doc["bytes"]] == ["字", "", "", "字", "", ""]


def test_uploads_are_decoded_when_the_encoding_is_clear():
    assert explorer.decode_upload("Grüße\n".encode(), "a.txt") == ("Grüße\n", "")
    for encoding, name in [("utf-16", "UTF-16"), ("utf-8-sig", "UTF-8"), ("utf-32", "UTF-32")]:
        text, note = explorer.decode_upload("Grüße 字\n".encode(encoding), "b.txt")
        assert text == "Grüße 字\n" and f"b.txt is {name} (byte-order mark)" in note
    text, note = explorer.decode_upload("Grüße\n".encode("latin-1"), "c.txt")
    assert text == "Grüße\n" and "read as Latin-1" in note and "0xFC at offset 2" in note
    with pytest.raises(ValueError, match="NUL byte at offset 8: it looks like a binary file"):
        explorer.decode_upload(b"\x89PNG\r\n\x1a\n\x00\x00", "x.png")
    with pytest.raises(ValueError, match="UTF-16/32 text without a byte-order mark"):
        explorer.decode_upload("hello world".encode("utf-16-le"), "u.txt")
    with pytest.raises(ValueError, match="0x93 at offset 0 is a control character in Latin-1"):
        explorer.decode_upload("“quoted”".encode("cp1252"), "w.txt")


def test_empty_text_is_refused_clearly(em):
    with pytest.raises(ValueError, match="empty"):
        explorer.read(" \n\t ", em, "tiny", {})
