"""The noise kinds on hand-worked examples, the edit script they keep, the steps counted on the noise, and the
hash n-gram records read against the buckets the BLT's own embedding looks up."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import replace

import pytest
import torch
from reference import direct_blt, tiny_baseline
from test_app_render import XSS, Tags

from app import render
from model.__main__ import main as cli
from model.analysis import ngrams, noise
from model.analysis.bpb import baseline_bpb, blt_bpb
from model.analysis.reading import Segmentation
from model.patcher import PatchingConfig
from model.tokenizer import encode

PANGRAM = "the quick brown fox jumps over the lazy dog"
MULTI = "Grüße aus 東京 👩\u200d💻 naïve ½"


def test_uppercase_is_str_upper():
    for text in (PANGRAM, "Straße Ǆ ǳ ﬁ", MULTI):
        assert noise.add_noise(text, "uppercase").text == text.upper()


def test_antspeak_upper_cases_and_spaces_every_character():
    assert noise.add_noise("ab c", "antspeak").text == "A B   C"
    assert noise.add_noise("é!", "antspeak").text == "É !"


def test_drop_removes_the_rate_of_characters():
    out = noise.add_noise(PANGRAM, "drop", seed=7)
    assert out.text == "the quickbrown fox umpsover the lazy dg"  # a fixed seed gives a fixed output
    assert len(PANGRAM) - len(out.text) == round(0.1 * len(PANGRAM))
    assert noise.add_noise("abcdefghij", "drop", 0.5, seed=1).text.__len__() == 5


def test_randomcase_upper_cases_the_rate_and_lower_cases_the_rest():
    out = noise.add_noise(PANGRAM, "randomcase", seed=7).text
    assert out == "tHE QuICk broWn fOX JumPs oVER THE lazy dog"
    assert out.lower() == PANGRAM
    letters = noise.add_noise("abcdefghijklmnopqrst", "randomcase", seed=2).text
    assert sum(c.isupper() for c in letters) == 10 and letters.lower() == "abcdefghijklmnopqrst"
    assert noise.add_noise("ABC", "randomcase", 0.0).text == "abc"


def test_repeat_writes_drawn_characters_two_to_four_times():
    out = noise.add_noise(PANGRAM, "repeat", seed=7)
    assert out.text == "the    qquiick  brown fox jjjumppps  over the  lazy  dog"
    repeated = [(a, b) for a, b in out.pieces if a != b]
    assert len(repeated) == round(0.2 * len(PANGRAM))
    assert all(set(b) == {a} and 2 <= len(b) <= noise.MAX_REPEAT for a, b in repeated)


def test_typos_swap_insert_delete():
    out = noise.add_noise("abcdefghijklmnopqrst", "typos", 0.3, seed=3)
    edits = [(a, b) for a, b in out.pieces if a != b]
    assert edits == [("e", ""), ("", "a"), ("l", ""), ("o", ""), ("rs", "sr")]


def test_same_seed_same_noise_other_seed_other_noise():
    for kind in ("drop", "randomcase", "repeat", "typos"):
        assert noise.add_noise(PANGRAM, kind, seed=3).text == noise.add_noise(PANGRAM, kind, seed=3).text
        assert noise.add_noise(PANGRAM, kind, seed=3).text != noise.add_noise(PANGRAM, kind, seed=4).text


@pytest.mark.parametrize("kind", noise.KINDS)
def test_noise_keeps_utf8_whole_and_its_edit_script(kind):
    with pytest.raises(ValueError, match="lone surrogate U\\+D800"):  # refused, never replaced
        noise.add_noise(MULTI + "\ud800", kind, 0.5, seed=1)
    out = noise.add_noise(MULTI, kind, 0.5, seed=1)
    assert out.clean == MULTI
    data = out.text.encode("utf-8")  # raises on a surrogate
    assert data.decode("utf-8") == out.text
    clean_mask, noisy_mask = out.masks()
    assert len(clean_mask) == len(out.clean.encode()) and len(noisy_mask) == len(data)
    cols = out.alignment()
    assert [c for c, _, _ in cols if c is not None] == list(range(len(out.clean.encode())))
    assert [n for _, n, _ in cols if n is not None] == list(range(len(data)))
    for c, n, hit in cols:  # unchanged columns pair equal bytes
        if not hit:
            assert out.clean.encode()[c] == data[n]


def test_a_deletion_marks_the_seam_on_the_noisy_side():
    out = noise.Noised("drop", 0.1, 0, [("a", "a"), ("b", ""), ("c", "c")])
    assert out.masks() == ([False, True, False], [False, True])
    end = noise.Noised("drop", 0.1, 0, [("a", "a"), ("b", "")])
    assert end.masks()[1] == [True]


def test_steps_on_the_noise_and_elsewhere():
    seg = Segmentation("entropy", [(0, 2), (2, 5), (5, 6)])
    steps = noise.region_steps(seg, [False, False, False, True, False, False])
    assert (steps.on_noise, steps.elsewhere, steps.total) == (1, 2, 3)


def test_bad_settings_say_what_is_allowed():
    with pytest.raises(ValueError, match="choose one of antspeak"):
        noise.add_noise("x", "shout")
    with pytest.raises(ValueError, match="from 0 to 1"):
        noise.add_noise("x", "drop", 1.5)
    with pytest.raises(ValueError, match="whole number"):
        noise.add_noise("x", "drop", 0.1, seed="a")
    with pytest.raises(ValueError, match="empty"):
        noise.add_noise("  ", "drop")
    assert noise.add_noise("x", "uppercase", 0.9).rate is None  # a kind without a rate ignores one


@pytest.fixture(scope="module")
def models():
    return direct_blt(3, PatchingConfig(threshold=1.0), hash_functions=2), *tiny_baseline()


def test_lab_reads_both_texts_with_every_model(models):
    blt, baseline, tokenizer = models
    lab = noise.lab(PANGRAM, "repeat", None, 0, blt, baseline, tokenizer)
    clean, noisy = lab.records()
    assert clean["text"] == "clean" and noisy["bytes"] == len(lab.noised.text.encode())
    assert clean["blt_bpb"] == round(blt_bpb(blt, PANGRAM.encode()), 4)
    assert noisy["baseline_bpb"] == round(baseline_bpb(baseline, tokenizer, lab.noised.text.encode()), 4)
    lengths = blt.patch_lengths(torch.tensor([encode(lab.noised.text)]))[0, 1:]
    assert noisy["patches"] == int((lengths > 0).sum())  # the BLT's own patches
    for r in (clean, noisy):
        assert r["global_steps_on_noise"] + r["global_steps_elsewhere"] == r["patches"]
        assert r["tokens_on_noise"] + r["tokens_elsewhere"] == r["tokens"]
    assert noisy["global_steps_on_noise"] > 0
    with pytest.raises(ValueError, match="up to 4,096 bytes"):
        noise.lab("x" * 5000, "drop", None, 0, blt, baseline, tokenizer)


def test_bucket_ids_are_the_ones_the_models_embedding_looks_up(models):
    blt = models[0]
    text = "abcabc " + MULTI
    looked_up = []
    hooks = [t.register_forward_hook(lambda m, inp, out: looked_up.append(inp[0][0])) for t in blt.encoder_hash_tok_embedding]
    try:
        blt(torch.tensor([encode(text)]))
    finally:
        for h in hooks:
            h.remove()
    assert len(looked_up) == 2 * 3  # two hash functions × n = 3, 4, 5, in the model's own order
    for p in range(len(text.encode())):
        records = ngrams.ngram_records(text, p, blt.config)
        assert [(r["hash_function"], r["n"]) for r in records] == [(f, n) for f in (0, 1) for n in (3, 4, 5)]
        assert [r["bucket"] for r in records] == [int(ids[p + 1]) for ids in looked_up]


def test_same_ngram_and_collisions(models):
    config = models[0].config
    r = ngrams.ngram_records("abcabc", 5, config)[0]
    assert (r["n"], r["ngram"], r["hex"], r["start"], r["same_at"]) == (3, "abc", "61 62 63", 3, [2])
    one_bucket = replace(config, hash_vocab=1)
    r = ngrams.ngram_records("abcd", 3, one_bucket)[0]
    assert r["same_at"] == [] and [c["ngram"] for c in r["collides_at"]] == ["<boe><boe><bos>", "<boe><bos>a", "<bos>ab", "abc"]
    c = ngrams.collisions("abcd", one_bucket)
    assert c["colliding"] == c["ngrams"] == 2 * 3 * 5 and c["blt_1b_vocab"] == 500_002
    assert ngrams.collisions("abcd", config)["colliding_at_blt_1b_vocab"] == 0
    with pytest.raises(ValueError, match="from 0 to 3"):
        ngrams.ngram_records("abcd", 4, config)


def test_cli_noise_and_ngrams(models, monkeypatch):
    import model.__main__ as main_module

    blt, baseline, tokenizer = models
    monkeypatch.setattr(main_module, "load_blt", lambda source=None: blt)
    monkeypatch.setattr(main_module, "load_baseline", lambda source=None: (baseline, tokenizer))
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert cli(["noise", "--kind", "uppercase", "--json", "hello world"]) == 0
    doc = json.loads(out.getvalue())
    assert doc["noisy_text"] == "HELLO WORLD" and [r["text"] for r in doc["records"]] == ["clean", "noisy"]
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert cli(["ngrams", "--position", "5", "--json", "abcabc"]) == 0
    assert json.loads(out.getvalue())["records"][0]["same_at"] == [2]
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert cli(["noise", "--kind", "drop", "--rate", "2", "x"]) == 2
    assert "error: the rate must be a number from 0 to 1" in err.getvalue()


def test_the_ngram_view_is_escaped(models):
    text = XSS + " " + XSS
    records = ngrams.ngram_records(text, len(text.encode()) - 1, models[0].config)
    markup = render.ngram_view(records, "<b>summary</b>")
    tags = Tags(markup).tags
    assert {t for t, _ in tags} <= {"div", "p", "b", "span", "table", "thead", "tbody", "tr", "th", "td"}
    assert not any(k.startswith("on") for _, attrs in tags for k in attrs)
    assert "&lt;b&gt;summary" in markup and any(r["same_at"] for r in records)
