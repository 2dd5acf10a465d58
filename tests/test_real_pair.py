"""Generate & compare with Meta's BLT and a real Llama, offline: fake Hub caches laid out as facebook/blt-1b
(Meta's layout) and meta-llama/Llama-3.2-1B (llama3 RoPE, tied, sharded, Llama 3's tokenizer), small random
weights. The page generates with every pair, in Chromium too; the baseline's greedy text through /generate is
transformers' greedy text on the same files; a model that cannot load leaves the page with the models it had."""

from __future__ import annotations

import gc
import shutil
import weakref

import huggingface_hub.constants
import pytest
import torch
from fakehub import LLAMA_3_2_1B, fake_blt_1b, write_llama_3_2_1b
from test_app_e2e import CHROMIUM_ARGS, WAIT_MS, serve

from app import models
from app.ui import build_app
from model.devices import NotEnoughMemoryError

PAIRS = [(models.SHIPPED, models.SHIPPED_BASELINE), ("facebook/blt-1b", models.SHIPPED_BASELINE),
         (models.SHIPPED, LLAMA_3_2_1B), ("facebook/blt-1b", LLAMA_3_2_1B)]
PROMPT = "The famous composer from Salzburg"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    cache = tmp_path_factory.mktemp("hub")
    fake_blt_1b(cache)
    return cache, write_llama_3_2_1b(cache)


@pytest.fixture(scope="module")
def server(hub):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        mp.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub[0]))
        demo = build_app()
        with serve(demo) as url:
            yield url


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server, verbose=False)


@pytest.mark.parametrize("blt_model,baseline_model", PAIRS)
def test_every_pair_generates_through_the_api(client, blt_model, baseline_model):
    out = client.predict(PROMPT, 24, blt_model=blt_model, baseline_model=baseline_model, api_name="/generate")
    costs = {c["model"]: c for c in out["costs"]}
    assert set(costs) == {"BLT", "BPE baseline"} and costs["BLT"]["big-model steps"] >= 1
    assert len(out["blt"].encode("utf-8", "replace")) >= 1 and costs["BPE baseline"]["big-model steps"] >= 1


def test_the_llama_baseline_writes_transformers_greedy_text(client, hub):
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    out = client.predict(PROMPT, 40, blt_model=models.SHIPPED, baseline_model=LLAMA_3_2_1B, api_name="/generate")
    ref = LlamaForCausalLM.from_pretrained(hub[1], dtype=torch.float32).eval()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(hub[1])
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        greedy = ref.generate(ids, do_sample=False, max_new_tokens=40)[0, ids.shape[1]:]
    text = tokenizer.decode(greedy, skip_special_tokens=True).encode()
    assert out["baseline"].encode() == text[:40] and len(text) >= 40


@pytest.mark.parametrize("blt_model,baseline_model,why", [
    ("facebook/blt-7b", models.SHIPPED_BASELINE, "facebook/blt-7b"),   # not in the cache, offline
    ("/etc", models.SHIPPED_BASELINE, "unknown BLT"),                  # a visitor cannot name a path
    (models.SHIPPED, "meta-llama/Llama-3.1-8B", "Llama-3.1-8B"),
    (models.SHIPPED, "gpt2", "unknown baseline")])
def test_a_model_that_cannot_load_gets_a_message_and_the_page_keeps_working(client, blt_model, baseline_model, why):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=why):
        client.predict(PROMPT, 8, blt_model=blt_model, baseline_model=baseline_model, api_name="/generate")
    out = client.predict(PROMPT, 8, blt_model="facebook/blt-1b", baseline_model=LLAMA_3_2_1B, api_name="/generate")
    assert {c["model"] for c in out["costs"]} == {"BLT", "BPE baseline"}


def test_the_page_generates_with_meta_and_llama_in_a_browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(WAIT_MS * 3)
        page.goto(server)
        page.get_by_role("tab", name="Generate & compare").click()
        for box, name in (("#gen-blt-model", "facebook/blt-1b"), ("#gen-baseline-model", LLAMA_3_2_1B)):
            page.locator(f"{box} input").click()
            page.get_by_role("option", name=name).click()
        page.fill("#gen-prompt textarea", PROMPT)
        box = page.locator("#gen-length input[type=number]")
        box.fill("24")
        box.press("Enter")
        page.click("#gen-run")
        page.wait_for_function("() => document.querySelector('#gen-notice').textContent.trim().startsWith('Done')")
        assert page.locator("#gen-baseline .u").count() >= 2
        page.wait_for_function("() => document.querySelector('#gen-projection').innerText.includes('(loaded)')")
        projection = page.inner_text("#gen-projection")
        assert "facebook/blt-1b (loaded)" in projection and "meta-llama/Llama-3.2-1B (loaded)" in projection
        browser.close()


class Net(torch.nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(n))


def test_one_large_model_per_role_and_switching_frees_the_one_before(monkeypatch):
    monkeypatch.setenv(models.ENV["BLT"], "owner/big")
    loads: list[str | None] = []
    alive: list[weakref.ref] = []

    def load(src: str | None) -> Net:  # a machine of 12 000 bytes
        loads.append(src)
        need = {"facebook/blt-1b": 4_000, "facebook/blt-7b": 9_000, "owner/big": 50_000}.get(src, 0)
        gc.collect()
        free = 12_000 - sum(4 * r().w.numel() for r in alive if r() is not None)
        if need > free:
            raise NotEnoughMemoryError(f"{src} needs {need}", need, free)
        alive.append(weakref.ref(net := Net(need // 4)))
        return net

    role = models.Resident("BLT", load)
    first = role.get("facebook/blt-1b")
    assert role.get("facebook/blt-1b") is first and loads == ["facebook/blt-1b"]  # loaded once, shared
    gone = weakref.ref(first)
    del first  # 9 000 bytes fit only once blt-1b's 4 000 are given back
    seven = role.get("facebook/blt-7b")
    gc.collect()
    assert gone() is None and isinstance(seven, Net) and loads[-2:] == ["facebook/blt-7b", "facebook/blt-7b"]
    with pytest.raises(NotEnoughMemoryError, match="keeps facebook/blt-7b"):
        role.get("owner/big")  # does not fit even with blt-7b gone: blt-7b stays
    assert role.get("facebook/blt-7b") is seven
    assert role.get(models.SHIPPED) is role.get(models.SHIPPED) and loads[-1] is None  # the shipped one, once
    with pytest.raises(ValueError, match="unknown BLT"):
        role.get("facebook/blt-3b")


def test_the_noise_lab_reads_with_meta_and_llama(client):
    out = client.predict("The famous composer", "uppercase", None, 0, "facebook/blt-1b", LLAMA_3_2_1B, api_name="/noise")
    clean, noisy = out["records"]
    assert out["noisy_text"] == "THE FAMOUS COMPOSER" and noisy["bytes"] == clean["bytes"] == 19
    assert noisy["tokens"] >= 1 and noisy["patches"] >= 1
    got = client.predict("abcabc", 5, "facebook/blt-1b", api_name="/ngrams")
    assert got["records"] and got["summary"]["blt_1b_vocab"] == 500_002
