"""The training recipe runs end to end on a tiny corpus: a few steps of each model, exported, reloaded."""

import json

import pytest
import torch

import model
from model.baseline import load_baseline
from model.training.corpus import build
from model.training.train import main


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    build(root / "corpus", root / "cache", "python_stdlib", 200_000)
    return root


def run(corpus, name, *extra):
    out = corpus / name
    args = [name, "--corpus", str(corpus / "corpus"), "--out", str(out), "--max-steps", "2", "--batch", "2",
            "--seq-len", "64", "--final-eval-bytes", "200", "--minutes", "5", *extra]
    record = main(args)
    assert record["steps"] == 2 and record["bytes_seen"] > 0
    assert json.loads((out / "record.json").read_text())["corpus_sha256"] == record["corpus_sha256"]
    assert all(0 < bpb < 40 for bpb in record["held_out_bpb"].values())
    return out / "export", record


def test_entropy_model_then_blt_then_baseline(corpus):
    entropy_export, _ = run(corpus, "entropy")
    ids = torch.tensor([model.encode("def f(x): return x")])
    entropy_model = model.load_entropy_model(entropy_export)
    assert entropy_model.entropies(ids).shape == ids.shape

    blt_export, record = run(corpus, "blt", "--entropy-model", str(entropy_export))
    blt = model.load_blt(blt_export)
    assert record["config"]["patching"]["threshold"] == pytest.approx(blt.config.patching.threshold)
    assert blt(ids).shape == (1, ids.shape[1], 260)
    # the BLT file carries its entropy model: the same weights as the one it was trained with
    assert torch.allclose(blt.entropy_model.entropies(ids), entropy_model.entropies(ids), atol=1e-5)
    assert torch.equal(blt.patch_lengths(ids).sum(-1), torch.tensor([ids.shape[1]]))

    baseline_export, _ = run(corpus, "baseline", "--vocab", "300")
    baseline, tokenizer = load_baseline(baseline_export)
    tok = torch.tensor([tokenizer.encode("def f(x): return x").ids])
    assert baseline(tok).shape == (1, tok.shape[1], tokenizer.get_vocab_size())


def test_training_resumes_from_its_checkpoint(corpus):
    out = corpus / "resume"
    common = ["entropy", "--corpus", str(corpus / "corpus"), "--out", str(out), "--batch", "2", "--seq-len", "64",
              "--final-eval-bytes", "200", "--minutes", "5"]
    assert main(common + ["--max-steps", "1"])["steps"] == 1
    assert main(common + ["--max-steps", "3"])["steps"] == 3  # picks up at step 1, trains two more
