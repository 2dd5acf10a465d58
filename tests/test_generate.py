"""Cached generation against Meta's no-cache algorithm, byte for byte and logit by logit; the BPE baseline's
KV cache against its full forward; sampling, limits and bad input."""

import gc
import math
import weakref

import pytest
import torch
from reference import PARITY_TEXTS, direct_blt, long_text, save_hf_blt, tiny_baseline

import model
from model.blt import BLT
from model.bpe import ByteLevelTokens
from model.checks import MAX_NEW_BYTES, MAX_PROMPT_BYTES
from model.generate import (
    ByteEvent,
    CachedBaseline,
    CachedBLT,
    PromptEvent,
    Sampling,
    TokenEvent,
    generate,
    generate_baseline,
    generate_nocache,
    patch_closes,
)
from model.layers import KVCache, one_position
from model.patcher import PatchingConfig, patch_lengths
from model.steps import ByteSteps, byte_steps, token_step
from model.tokenizer import BOS_ID, EOS_ID, OFFSET

HF_CONFIGS = {  # transformers' BltForCausalLM, saved and loaded as a user would
    "default": {},
    "two_hash_functions_k4": dict(hash_functions=2, cross_attn_k=4),
    "max_patch_length": dict(max_patch_length=3),
    "window16_two_encoder_layers_gqa": dict(window=16, enc_layers=2, kv_heads=2),
}


DIRECT_CONFIGS = {
    "monotonic_windows_all_layers": lambda: direct_blt(
        11, PatchingConfig(threshold=0.15, monotonicity=True), cross_attn_window_encoder=2,
        cross_attn_window_decoder=3, cross_attn_all_layers_encoder=True),
    "global_monotonic_max_length_projection": lambda: direct_blt(
        12, PatchingConfig(threshold=1.0, threshold_add=0.05, max_patch_length=5), cross_attn_k=3,
        cross_attn_all_layers_decoder=False),
    "byte_patching": lambda: direct_blt(13, PatchingConfig(mode="byte"), window=None),
}


def config_blt(name: str, tmp_path_factory):
    """The BLT of a named test configuration: built directly, or saved by transformers and loaded back."""
    if name in DIRECT_CONFIGS:
        return DIRECT_CONFIGS[name]()
    folder = tmp_path_factory.mktemp(name)
    save_hf_blt(folder, seed=len(name), **HF_CONFIGS[name])
    return model.load_blt(folder)


@pytest.fixture(scope="module", params=list(HF_CONFIGS) + list(DIRECT_CONFIGS))
def blt(request, tmp_path_factory):
    return config_blt(request.param, tmp_path_factory)


def byte_events(events: list) -> list[ByteEvent]:
    assert isinstance(events[0], PromptEvent)
    return events[1:]


# --- the patching rule, one byte at a time -------------------------------------------------------------------


@pytest.mark.parametrize("cfg", [
    PatchingConfig(threshold=1.0), PatchingConfig(threshold=1.0, max_patch_length=3),
    PatchingConfig(threshold=0.3, monotonicity=True), PatchingConfig(threshold=0.3, monotonicity=True, max_patch_length=4),
    PatchingConfig(threshold=1.0, threshold_add=0.2), PatchingConfig(mode="byte", max_patch_length=2),
], ids=["global", "global_max3", "monotonic", "monotonic_max4", "global_monotonic", "byte"])
def test_realtime_patching_equals_the_patcher_on_every_prefix(cfg):
    g = torch.Generator().manual_seed(0)
    assert_realtime_equals_patcher(2 * torch.rand(300, generator=g), cfg)


@pytest.mark.parametrize("cfg", [
    PatchingConfig(threshold=1 - 1e-11), PatchingConfig(threshold=1 - 1e-11, monotonicity=True),
    PatchingConfig(threshold=1 - 1e-11, threshold_add=1 - 1e-11),
], ids=["global", "monotonic", "global_monotonic"])
def test_realtime_patching_rounds_thresholds_and_rises_to_float32_as_the_patcher(cfg):
    """Entropies and rises of exactly 1 against a threshold just under 1: in float64 they pass it, in float32
    (the patcher's tensors) the threshold is 1 and they do not."""
    assert_realtime_equals_patcher(torch.tensor([0.0, 1.0, 2.0, 1.0, 1.0, 2.0, 3.0, 0.0, 1.0, 1.5] * 6), cfg)


def assert_realtime_equals_patcher(entropies, cfg):
    T_all = len(entropies)
    tokens = torch.full((1, T_all), OFFSET)
    closes, start, previous = [], 0, None
    for t, entropy in enumerate(entropies.tolist()):
        close = patch_closes(t, entropy, previous, t - start + 1, cfg)
        closes.append(close)
        start, previous = (t + 1 if close else start), entropy
    for T in sorted({1, 2, 3, 4, 17, T_all}):
        starts = [0] + [t + 1 for t in range(T) if closes[t]]
        lengths = [b - a for a, b in zip(starts, starts[1:] + [T + 1]) if b > a]
        assert lengths == patch_lengths(tokens[:, :T], cfg, entropies[None, :T])[0].tolist()


# --- cached = no-cache --------------------------------------------------------------------------------------


PATHS = ["batched", "eager", "compiled"]  # single bytes: through the batched path, the fixed-shape steps, compiled


def steps_for(blt, path: str) -> ByteSteps | None:
    return None if path == "batched" else byte_steps(blt, compile=path == "compiled")


@pytest.mark.parametrize("path", PATHS)
def test_cached_reading_equals_the_full_forward_at_every_byte(blt, path):
    """Teacher-forced: a batched prompt, single bytes, a batch mid-stream, single bytes again, past the
    16-byte windows, the 48-byte entropy context and many patches. By causality, the logits of the full
    forward at byte t are those Meta's no-cache algorithm computes when t is the newest byte."""
    ids = model.encode(PARITY_TEXTS["multibyte"][:30] + " " + long_text(30))
    cached, chunks, pos = CachedBLT(blt, steps=steps_for(blt, path)), [12] + [1] * 6 + [30] + [1] * 4 + [10], 0
    logits, entropies, closes = [], [], []
    for size in chunks + [1] * (len(ids) - sum(chunks)):
        out = cached.feed(ids[pos : pos + size])
        logits.append(out[0]), entropies.append(out[1]), closes.extend(out[2])
        pos += size
    full = torch.tensor([ids])
    assert (torch.cat(logits) - blt(full)[0]).abs().max() < 1e-4
    internal = patch_lengths(full, blt.config.patching, None if entropies[0] is None else blt.entropy_model.entropies(full))
    assert closes == [t in set((internal[0].cumsum(0) - 1).tolist()) for t in range(len(ids))]
    if entropies[0] is not None:
        assert (torch.cat(entropies) - blt.entropy_model.entropies(full)[0]).abs().max() < 1e-5
    if blt.config.patching.mode == "byte":
        assert cached.patches == len(ids)
    else:
        assert 6 <= cached.patches <= len(ids) * 2 // 3  # patching is not trivial
    if path == "compiled":
        assert cached.steps.compiled  # compiled for real, not fallen back to eager


def test_long_prompt_past_the_512_byte_window(tmp_path):
    """The released window: a prompt read block by block (over 1024 bytes), then bytes past it one by one."""
    save_hf_blt(tmp_path, seed=5)
    blt = model.load_blt(tmp_path)
    ids = model.encode(long_text(1300))
    reader = CachedBLT(blt, steps=ByteSteps(blt))
    logits = [reader.feed(ids[:1200])[0]] + [reader.feed([i])[0] for i in ids[1200:]]
    assert (torch.cat(logits) - blt(torch.tensor([ids]))[0]).abs().max() < 1e-4


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
def test_greedy_generation_equals_no_cache_byte_for_byte(blt, compile):
    prompt = "Crème brûlée, 東京"
    events = list(generate(blt, prompt, 16, compile=compile))
    slow = byte_events(list(generate_nocache(blt, prompt, 16)))
    prompt_event, fast = events[0], byte_events(events)
    assert [e.id for e in fast] == [e.id for e in slow]
    assert [e.starts_patch for e in fast] == [e.starts_patch for e in slow]
    assert all(math.isclose(a.entropy, b.entropy, abs_tol=1e-5) or math.isnan(a.entropy) for a, b in zip(fast, slow))
    # the events describe the run: the prompt's score is the full model's
    ids = torch.tensor([prompt_event.ids])
    nats = torch.nn.functional.cross_entropy(blt(ids)[0, :-1], ids[0, 1:], reduction="sum")
    assert math.isclose(prompt_event.bits_per_byte, float(nats) / math.log(2) / (ids.shape[1] - 1), rel_tol=1e-4)
    assert len(prompt_event.starts_patch) == ids.shape[1] - 1
    assert all(0 <= e.prob <= 1 and e.cost.wall_ms > 0 for e in fast)
    assert all(("global_transformer" in e.cost.ms) == e.global_step == e.starts_patch for e in fast)


@pytest.fixture(scope="module")
def small_blt() -> BLT:
    return DIRECT_CONFIGS["monotonic_windows_all_layers"]()


def test_generation_from_bos_only_and_seeded_sampling(small_blt):
    runs = []
    for prompt, seed in (("", 3), ([], 3), ("", 4)):
        events = list(generate(small_blt, prompt, 12, temperature=0.9, top_k=50, top_p=0.95, seed=seed))
        assert events[0].ids == [BOS_ID] and math.isnan(events[0].bits_per_byte)
        runs.append([e.id for e in events[1:]])
    assert runs[0] == runs[1] and runs[0] != runs[2]  # same seed, same bytes
    slow = list(generate_nocache(small_blt, "", 12, temperature=0.9, top_k=50, top_p=0.95, seed=3))
    assert [e.id for e in slow[1:]] == runs[0]


def test_caches_stay_within_their_windows(small_blt):
    reader = CachedBLT(small_blt, steps=ByteSteps(small_blt))
    kv = [reader.feed([i]) and reader.kv_bytes() for i in model.encode(long_text(70))]
    for part in ("entropy_model", "local_decoder"):  # sliding windows (and 3 patches' slots): bounded
        assert max(k[part] for k in kv) == max(k[part] for k in kv[:45])
    assert kv[-1]["global_transformer"] > kv[45]["global_transformer"]  # one entry per patch, no window


def test_a_one_position_step_reads_the_slots_written_so_far():
    """On a CPU, attention in a step reads the slots written (at least 2), the new one included, until the window
    fills; then every slot. Each slot read holds the key of a position in the window."""
    cache = KVCache(window=8)
    cache.reserve(0, torch.zeros(1, 2, 0, 4))
    for t in range(11):
        with one_position([cache]):
            key = torch.full((1, 2, 1, 4), float(t))
            keys, values, visible = cache.write(key, -key, torch.tensor(t))
        assert keys.shape[2] == values.shape[2] == visible.shape[0] == min(max(2, t + 1), 8)
        assert int(visible.sum()) == min(t + 1, 8) and keys[0, 0, t % 8, 0] == t
        assert sorted(keys[0, 0, visible, 0].tolist()) == list(range(max(0, t - 7), t + 1))


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
def test_shipped_model_cached_equals_no_cache(compile):
    blt = model.load_blt()
    for prompt in ("The famous composer from Salzburg", "Über den Wolken — 東京"):
        fast, slow = list(generate(blt, prompt, 48, compile=compile)), list(generate_nocache(blt, prompt, 48))
        assert [e.id for e in fast[1:]] == [e.id for e in slow[1:]]
        assert [e.starts_patch for e in fast[1:]] == [e.starts_patch for e in slow[1:]]
        assert 1 < sum(e.starts_patch for e in fast[1:]) < len(fast) - 1  # real patches, not one per byte


def test_compiled_steps_keep_their_shapes_from_byte_to_byte(small_blt):
    """No graph per byte, prompt or length: after one generation, others (whose global transformer's cache, which
    has no window, takes another size) compile nothing new."""
    list(generate(small_blt, "Hello", 5, compile=True))
    with torch.compiler.set_stance("fail_on_recompile"):
        for prompt, n in (("A longer prompt, of another size", 20), ("A third prompt, longer still, " * 3, 120)):
            events = list(generate(small_blt, prompt, n, compile=True))  # its cache reserved for n more bytes
            assert len(events) == n + 1 or events[-1].id == EOS_ID  # a random model may end early
    assert byte_steps(small_blt, compile=True).ready


# --- stopping, closing, bad input --------------------------------------------------------------------------


def test_stops_at_eos():
    blt = DIRECT_CONFIGS["byte_patching"]()
    bias = torch.zeros(260)
    bias[EOS_ID] = 1e4
    handle = blt.local_decoder.output.register_forward_hook(lambda module, args, out: out + bias)
    try:
        events = list(generate(blt, "Hi", 50))
    finally:
        handle.remove()
    assert [e.id for e in events[1:]] == [EOS_ID]


def test_closing_a_generation_frees_its_caches(small_blt):
    gen = generate(small_blt, "Hello", 100)
    next(gen), next(gen)
    reader = weakref.ref(gen.gi_frame.f_locals["reader"])
    assert reader().kv_bytes()["local_decoder"] > 0
    gen.close()
    gc.collect()
    assert reader() is None


@pytest.mark.parametrize("kwargs, message", [
    (dict(prompt="x" * (MAX_PROMPT_BYTES + 1)), "over the cap"),
    (dict(prompt=[BOS_ID, 40, EOS_ID, 50]), "contains EOS"),
    (dict(prompt=[1, 300]), "must lie in"),
    (dict(prompt=b"bytes"), "text \\(str\\) or a list"),
    (dict(max_new_bytes=0), "from 1 to"), (dict(max_new_bytes=MAX_NEW_BYTES + 1), "from 1 to"),
    (dict(max_new_bytes=2.5), "whole number"), (dict(max_new_bytes=True), "whole number"),
    (dict(temperature=-0.1), "temperature"), (dict(temperature=float("nan")), "temperature"),
    (dict(top_k=0), "top_k"), (dict(top_k=2.0), "top_k"),
    (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p"),
])
def test_bad_arguments_raise_clear_value_errors_at_call_time(small_blt, kwargs, message):
    args = dict(prompt="Hello", max_new_bytes=8) | kwargs
    for fn in (generate, generate_nocache):
        with pytest.raises(ValueError, match=message):
            fn(small_blt, **args)  # no iteration needed: checked before the generator starts


def test_sampling_rules():
    logits = torch.tensor([2.0, 1.9, 1.8, 0.0, -1.0, 5.0])
    g = torch.Generator().manual_seed(0)
    assert Sampling().sample(logits, g)[0] == 5
    assert Sampling(1.0, top_k=1).sample(logits, g)[0] == 5
    assert {Sampling(1.0, top_k=3).sample(logits, g)[0] for _ in range(200)} <= {5, 0, 1}
    assert {Sampling(1.0, top_p=0.5).sample(logits, g)[0] for _ in range(50)} == {5}  # p(5) ≈ 0.89
    seen = [Sampling(1.0).sample(logits, g)[0] for _ in range(2000)]
    assert abs(seen.count(5) / 2000 - float(torch.softmax(logits, 0)[5])) < 0.03
    _, prob = Sampling(1.0).sample(logits, g)
    assert 0 < prob < 1


# --- the BPE baseline -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def baseline():
    return tiny_baseline()


@pytest.mark.parametrize("path", PATHS)
def test_baseline_kv_cache_equals_the_full_forward(baseline, path):
    net, tokenizer = baseline
    ids = tokenizer.encode(PARITY_TEXTS["multibyte"] + long_text(200)).ids
    reader = CachedBaseline(net, step=None if path == "batched" else token_step(net, path == "compiled"))
    got = [reader.feed(ids[:10])[0]] + [reader.feed([i])[0] for i in ids[10:]]
    assert (torch.cat(got) - net(torch.tensor([ids]))[0]).abs().max() < 1e-4


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
def test_baseline_greedy_generation_and_its_bytes(baseline, compile):
    net, tokenizer = baseline
    events = list(generate_baseline(net, tokenizer, "Crème brûlée and", 40, compile=compile))
    prompt, steps = events[0], events[1:]
    assert all(isinstance(e, TokenEvent) for e in steps)
    ids = list(prompt.ids)
    for e in steps:  # each token is the argmax of the full, uncached forward
        assert e.id == int(net(torch.tensor([ids]))[0, -1].argmax())
        ids.append(e.id)
    token_bytes = ByteLevelTokens(tokenizer)
    assert b"".join(map(token_bytes, prompt.ids)) == "Crème brûlée and".encode()
    assert b"".join(e.data for e in steps) == b"".join(token_bytes(e.id) for e in steps)[:40]
    assert prompt.scored_bytes == len("Crème brûlée and".encode()) - len(tokenizer.id_to_token(prompt.ids[0]))
    with pytest.raises(ValueError, match="at least one character"):
        generate_baseline(net, tokenizer, "", 10)
