"""Corpus build and sampling. Uses only the interpreter's own stdlib (no network, no apt)."""
import json
from pathlib import Path

import numpy as np
import pytest

from model.training.corpus import (
    GROUP_WEIGHTS,
    VAL_MIN,
    Corpus,
    Part,
    Source,
    build,
    licence_table_markdown,
    write_manifest,
    write_source,
)

TINY = 200_000


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict, dict]:
    """The CI build, done twice into different folders."""
    a, b = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    first = build(a / "corpus", a / "cache", "python_stdlib", TINY)
    second = build(b / "corpus", b / "cache", "python_stdlib", TINY)
    return a / "corpus", first, second


def test_build_is_deterministic(tiny):
    path, first, second = tiny
    assert first["corpus_sha256"] == second["corpus_sha256"]
    assert first == second
    assert json.loads((path / "manifest.json").read_text()) == first


def test_manifest(tiny):
    path, manifest, _ = tiny
    m = manifest["sources"]["python_stdlib"]
    assert (m["group"], m["language"], m["licence"]) == ("code", "python", "PSF-2.0")
    assert manifest["groups"] == {"code": {"weight": GROUP_WEIGHTS["code"], "sources": ["python_stdlib"]}}
    assert manifest["failed"] == {}
    assert m["train_bytes"] + m["val_bytes"] <= TINY
    assert m["val_bytes"] >= VAL_MIN
    assert m["train_bytes"] == (path / "python_stdlib.train.txt").stat().st_size


def test_train_and_val_are_disjoint_clean_text(tiny):
    path = tiny[0]
    train = (path / "python_stdlib.train.txt").read_bytes()
    val = (path / "python_stdlib.val.txt").read_bytes()
    assert val not in train and val[:4096] not in train
    for data in (train, val):
        text = data.decode("utf-8")  # valid UTF-8
        assert "\r" not in text and text.endswith("\n")


def test_sample_batch_and_validation(tiny):
    corpus = Corpus.load(tiny[0])
    assert corpus.groups == {"code": ["python_stdlib"]}
    assert corpus.sources["python_stdlib"].licence == "PSF-2.0"
    batch = corpus.sample_batch(np.random.default_rng(0), batch_size=8, seq_len=256)
    assert batch.shape == (8, 256) and batch.dtype == np.uint8
    train = (tiny[0] / "python_stdlib.train.txt").read_bytes()
    assert all(row.tobytes() in train for row in batch)
    again = corpus.sample_batch(np.random.default_rng(0), batch_size=8, seq_len=256)
    assert np.array_equal(batch, again)

    val = corpus.validation(max_bytes_per_source=1000)
    assert set(val) == {"python_stdlib"} and 0 < len(val["python_stdlib"]) <= 1000
    val["python_stdlib"].decode("utf-8")  # cut at a character boundary


def letters(letter: str, lines: int = 2000) -> str:
    return "".join(f"{letter * 40}\n" for _ in range(lines))


@pytest.fixture()
def synthetic(tmp_path) -> Path:
    """Three sources made of one letter each, in three groups; one of them in two parts."""
    def source(name: str, group: str, parts: list[Part]) -> tuple[str, dict]:
        return name, write_source(tmp_path, Source(name, group, "xx", lambda inp: parts), parts, {"pkg": "1"})

    entries = dict([
        source("aa", "en_prose", [Part(letters("a"), ("pkg",), "PD")]),
        source("bb", "code", [Part(letters("b"), ("pkg",), "MIT")]),
        source("cc", "multilingual", [Part(letters("c", 500), ("pkg",), "GPL"),
                                      Part(letters("ç", 500), ("pkg2",), "MIT")]),
    ])
    write_manifest(tmp_path, entries)
    return tmp_path


def test_rows_never_straddle_sources_and_follow_weights(synthetic):
    corpus = Corpus.load(synthetic)
    batch = corpus.sample_batch(np.random.default_rng(1), batch_size=4000, seq_len=64)
    kinds = [set(row.tobytes().decode("utf-8", "ignore").replace("\n", "")) for row in batch]
    assert all(k in ({"a"}, {"b"}, {"c"}, {"ç"}, {"c", "ç"}) for k in kinds)  # cc's two parts may meet
    share_a = sum(k == {"a"} for k in kinds) / len(kinds)
    w = GROUP_WEIGHTS
    assert share_a == pytest.approx(w["en_prose"] / (w["en_prose"] + w["code"] + w["multilingual"]), abs=0.04)


def test_every_part_gets_held_out_text_and_licences_are_listed(synthetic):
    manifest = json.loads((synthetic / "manifest.json").read_text())
    val = Corpus.load(synthetic).validation()["cc"].decode("utf-8")
    assert "c" in val and "ç" in val
    assert manifest["sources"]["cc"]["packages"] == {"pkg": "1", "pkg2": "?"}
    assert manifest["sources"]["cc"]["licence"] == "GPL [pkg]; MIT [pkg2]"
    table = licence_table_markdown(manifest)
    assert table.startswith("| source | group | language | licence | package | train MB |")
    assert "| bb | code | xx | MIT | pkg 1 |" in table
