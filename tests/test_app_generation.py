"""The "Generate & compare" tab's functions: both models generate as they would alone, the views draw what the
events say (escaped), the cost table matches the events, stopping and bad input."""

import html
import itertools

import pytest
from reference import direct_blt, tiny_baseline

from app import generation
from model.bpe import SHIPPED
from model.generate import generate, generate_baseline
from model.patcher import PatchingConfig
from model.tokenizer import OFFSET

XSS = "<img src=x onerror=alert(1)> <script>alert(2)</script>"


@pytest.fixture(scope="module")
def models():
    blt = direct_blt(21, PatchingConfig(threshold=1.0))
    baseline, tokenizer = tiny_baseline()
    return blt, baseline, tokenizer


def duel_of(models, prompt: str, n: int = 40, **kw) -> generation.Duel:
    blt, baseline, tokenizer = models
    duel = None
    for duel in generation.run(blt, baseline, tokenizer, generation.Request(prompt, n, **kw)):
        pass
    return duel


def test_side_by_side_generation_equals_each_model_alone(models):
    blt, baseline, tokenizer = models
    duel = duel_of(models, "The famous composer", 40)
    alone = list(generate(blt, "The famous composer", 40, seed=0))
    assert [e.id for e in duel.blt[1:]] == [e.id for e in alone[1:]]
    assert [e.starts_patch for e in duel.blt[1:]] == [e.starts_patch for e in alone[1:]]
    base_alone = list(generate_baseline(baseline, tokenizer, "The famous composer", 40, seed=0))
    assert duel.baseline_bytes == b"".join(e.data for e in base_alone[1:])
    assert len(duel.baseline_bytes) == 40
    assert duel.prompt_bytes == b"The famous composer"


def test_both_grow_together(models):
    blt, baseline, tokenizer = models
    gaps = [abs(len(d.blt_bytes) - len(d.baseline_bytes))
            for d in generation.run(blt, baseline, tokenizer, generation.Request("Mozart", 60))]
    longest_token = max(len(tokenizer.id_to_token(i)) for i in range(tokenizer.get_vocab_size()))
    assert max(gaps) <= longest_token


def test_finished_views_costs_and_trace(models):
    blt, baseline, tokenizer = models
    duel = duel_of(models, "Salzburg " + XSS, 32)
    r = generation.finish(duel, blt, baseline, tokenizer, {SHIPPED: tokenizer})
    for view in (r.blt_text, r.baseline_text, *generation.streaming(duel)):
        assert "<img" not in view and "<script" not in view
    assert html.escape("<") in r.baseline_text
    steps = duel.blt_steps
    patches = sum(duel.blt[0].starts_patch) + sum(e.starts_patch for e in steps if e.id >= OFFSET)
    assert r.blt_text.count('class="p"') == patches  # one patch per start generation decided
    blt_row, base_row = r.costs.to_dict(orient="records")
    assert blt_row["bytes generated"] == len(duel.blt_bytes)
    assert blt_row["big-model steps"] == sum(e.global_step for e in steps)
    assert base_row["big-model steps"] == len(duel.baseline) - 1
    assert base_row["bytes generated"] == 32
    assert list(r.trace["opens patch"]) == [e.starts_patch for e in steps]
    assert len(r.projection) == 2 and "Llama 3 8B" in set(r.projection["Llama"])
    assert "FLOPs/byte" in r.formulas
    assert {t.name for t in r.flops.data} >= {"global transformer", "baseline transformer", "entropy model"}
    assert {t.name for t in r.time.data} == {t.name for t in r.flops.data}  # the same components, timed
    assert [t.name for t in r.latency.data] == ["BLT", "BPE baseline"]


def test_empty_prompt_starts_the_blt_from_bos(models):
    blt, baseline, tokenizer = models
    duel = duel_of(models, "", 16)
    assert duel.prompt_bytes == b"" and duel.baseline == [] and "needs a prompt" in duel.baseline_error
    r = generation.finish(duel, blt, baseline, tokenizer, {SHIPPED: tokenizer})
    assert len(r.costs) == 1 and "needs a prompt" in r.baseline_text


def test_stop_ends_early_and_closes_both_generators(models):
    blt, baseline, tokenizer = models
    calls = itertools.count()
    duels = list(generation.run(blt, baseline, tokenizer, generation.Request("Mozart", 200), lambda: next(calls) >= 10))
    duel = duels[-1]
    assert duel.stopped and len(duel.blt_bytes) + len(duel.baseline_bytes) < 40
    assert "Stopped" in generation.status(duel, generation.Request("Mozart", 200))


def test_stop_before_the_baseline_starts_still_draws(models):
    """The BLT steps first (its prompt, then a byte): Stop at once leaves the baseline without events, and the
    page still draws what there is (a visitor's Stop at 0 s raised IndexError in the server)."""
    blt, baseline, tokenizer = models
    calls = itertools.count()
    duel = list(generation.run(blt, baseline, tokenizer, generation.Request("Mozart", 200), lambda: next(calls) >= 2))[-1]
    assert duel.stopped and len(duel.blt) == 2 and duel.baseline == []
    r = generation.finish(duel, blt, baseline, tokenizer, {SHIPPED: tokenizer})
    assert "Stopped before the BPE baseline" in r.baseline_text and len(r.costs) == 1 and len(r.trace) == 1


@pytest.mark.parametrize("kw, message", [
    (dict(max_new_bytes=0), "from 1 to"), (dict(max_new_bytes=generation.MAX_NEW_BYTES + 1), "from 1 to"),
    (dict(max_new_bytes=2.5), "whole number"), (dict(temperature=-1.0), "temperature"), (dict(top_p=0.0), "top_p"),
    (dict(top_k=-3), "top_k"), (dict(prompt="x" * 9000), "over the cap"),
])
def test_bad_settings_say_what_is_wrong(models, kw, message):
    blt, baseline, tokenizer = models
    req = generation.Request(**{"prompt": "Mozart", **kw})
    with pytest.raises(ValueError, match=message):  # at the call, before anything runs
        generation.run(blt, baseline, tokenizer, req)


def test_settings_from_the_page_are_normalised():
    req = generation.Request("x", 64.0, 0.7, 0.0, 1.0, 3.0).check()
    assert (req.max_new_bytes, req.top_k, req.top_p, req.seed) == (64, None, None, 3)


def test_throttled_keeps_the_last():
    assert list(generation.throttled(iter(range(1000)), every_s=60))[-1] == 999
    assert list(generation.throttled(iter(range(3)), every_s=0)) == [0, 1, 2]
