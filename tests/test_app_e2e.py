"""The explorer page end to end, in real Chromium driven by playwright: paste text, see colours and the patch
count, move the threshold and see the count change (without the model running again), examples, bad input,
an XSS payload that must stay inert, a gated model that cannot load, and the API under 20 concurrent users.

Needs Debian's chromium (`apt-get install chromium`; .ci/run installs it). Every wait is bounded."""

from __future__ import annotations

import contextlib
import math
import re
import shutil
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import gradio as gr
import huggingface_hub.constants
import pytest
from reference import direct_blt, tiny_baseline
from test_app_render import MIXED, XSS, Counting, tiny_models

from app import build_app, explorer, render
from app.models import SHIPPED
from app.ui import LAUNCH, load_examples
from model.analysis.reading import analyze, segment
from model.patcher import PatchingConfig

CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
WAIT_MS = 20_000
MAX_BYTES = 3000
VIEW_BYTES = 1000  # small, so that a long text pages
MOZART = load_examples()[0][1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(demo: gr.Blocks) -> Iterator[str]:
    """`demo` served in this process on a free port, as `python app.py` launches it; yields its URL."""
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                            **LAUNCH)
    try:
        yield url
    finally:
        demo.close()


@pytest.fixture(scope="module")
def server():
    """The app in this process on a free port, with tiny models; the entropy model counts its runs."""
    em, tokenizers = tiny_models()
    counting = Counting(em)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # Meta's models: fail fast, as offline
        mp.setattr(explorer, "VIEW_BYTES", VIEW_BYTES)
        demo = build_app(counting, tokenizers, max_bytes=MAX_BYTES, blt=direct_blt(21, PatchingConfig(threshold=1.0)),
                         baseline=tiny_baseline())
        with serve(demo) as url:
            yield url, counting, em


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium (the browser tests need it)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(browser, server):
    """One page for all tests (a page load costs seconds); each test sets the text it needs."""
    pg = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    pg.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(server[0])
    pg.wait_for_selector("#blt-patches")  # the first analysis ran on load
    yield pg
    pg.close()
    assert not errors, errors


def analyse(pg, text: str) -> None:
    """Replace the text and wait until the page shows its byte count."""
    pg.fill("#blt-input textarea", text)
    pg.wait_for_function("n => document.querySelector('#blt-bytes')?.textContent === n", arg=f"{len(text.encode()):,}")


def patches(pg) -> str:
    return pg.inner_text("#blt-patches")


def theta_bits(pg) -> float:
    return float(pg.input_value("#blt-threshold input[type=number]"))


def expected_patches(em, text: str, bits: float) -> str:
    return f"{segment(analyze(text, em), 'entropy', bits * math.log(2)).units:,}"


def test_paste_text_shows_colours_and_patch_count(page, server):
    text = "The famous composer from Salzburg known as Mozart wrote music."
    analyse(page, text)
    assert patches(page) == expected_patches(server[2], text, theta_bits(page))
    cells = page.locator("#blt-text-view .blt-text i")
    assert cells.count() == len(text)
    colours = {cells.nth(i).evaluate("e => getComputedStyle(e).backgroundColor") for i in range(0, len(text), 7)}
    assert len(colours) > 1 and "rgba(0, 0, 0, 0)" not in colours
    assert page.locator("#blt-text-view .p").count() == int(patches(page))
    page.wait_for_selector("#blt-chart .js-plotly-plot")  # the chart draws asynchronously


def test_hover_shows_bytes_entropy_patch_and_guesses(page):
    analyse(page, "café")
    cell = page.locator("#blt-text-view .blt-text i").nth(3)
    cell.hover()
    tip = cell.evaluate("e => getComputedStyle(e, '::after').content")
    assert "patch" in tip and "U+00E9" in tip and "C3" in tip and "guesses" in tip


def test_threshold_slider_repatches_without_the_model(page, server):
    _, counting, em = server
    text = "The famous composer from Salzburg known as Mozart wrote music."
    analyse(page, text)
    runs = counting.calls
    for bits in (3.0, 0.5):
        box = page.locator("#blt-threshold input[type=number]")
        box.fill(str(bits))
        box.press("Enter")
        want = expected_patches(em, text, bits)
        page.wait_for_function("n => document.querySelector('#blt-patches').textContent === n", arg=want)
    assert counting.calls == runs
    assert expected_patches(em, text, 3.0) != expected_patches(em, text, 0.5)


def test_target_patch_size_fits_the_threshold(page):
    analyse(page, MOZART)
    page.fill("#blt-target input", "6")
    page.locator("#blt-target input").press("Enter")
    page.wait_for_function("() => document.querySelector('#blt-notice').textContent.includes('Fitted to 6 bytes')")
    size = float(page.inner_text("#blt-patch-size"))
    assert abs(size - 6) < 1.5


def test_xss_payload_stays_text(page):
    analyse(page, XSS)
    page.get_by_text("Patch table").click()
    page.wait_for_selector("#blt-table table")
    assert page.evaluate("window.__xss") is None
    shown = page.inner_text("#blt-text-view .blt-text").replace("⋅", " ")
    assert "<script>window.__xss=1</script>" in shown and 'onerror="window.__xss=1"' in shown
    assert page.locator("#blt-text-view script, #blt-text-view img, #blt-text-view svg, #blt-comparison a").count() == 0


def test_control_characters_and_scripts_render_every_byte(page, server):
    text = MIXED + " مرحبا नमस्ते"
    analyse(page, text)
    shown = page.inner_text("#blt-text-view .blt-text")
    assert all(glyph in shown for glyph in "↵⇥␀")
    a = analyze(text, server[2])
    seg = segment(a, "entropy", theta_bits(page) * math.log(2))
    pieces = list(render.pieces(a.data, seg.spans))  # a character, or a byte of a cut one: never lost
    assert page.locator("#blt-text-view .blt-text i").count() == len(pieces)


def test_examples_fill_and_analyse(page):
    label, text = load_examples()[6]
    page.get_by_role("button", name=label, exact=True).click()
    page.wait_for_function("n => document.querySelector('#blt-bytes')?.textContent === n", arg=f"{len(text.encode()):,}")
    assert label == "Chinese" and "字" in page.inner_text("#blt-text-view")


def test_empty_text_gets_a_hint(page):
    page.fill("#blt-input textarea", "  \n ")
    page.wait_for_function("() => document.querySelector('#blt-notice').textContent.includes('Paste or type some text')")
    assert page.locator("#blt-text-view .blt-text").count() == 0


def test_over_the_cap_is_said_plainly(page):
    text = "0123456789" * 500
    page.fill("#blt-input textarea", text)
    page.wait_for_function("() => document.querySelector('#blt-notice').textContent.includes('size cap')")
    notice = page.inner_text("#blt-notice")
    assert f"This text is {len(text):,} bytes; the size cap is {MAX_BYTES:,} bytes" in notice
    assert page.inner_text("#blt-bytes") == f"{MAX_BYTES:,}"


def test_long_text_pages_without_the_model(page, server):
    text = "The famous composer from Salzburg known as Mozart wrote music. " * 40  # 2,520 bytes
    analyse(page, text)
    assert "Showing bytes 0\u2013999 of 2,520" in page.inner_text("#blt-text-view")
    runs = server[1].calls
    box = page.locator("#blt-view-from input[type=number]")
    box.fill("1500")
    box.press("Enter")
    page.wait_for_function("() => document.querySelector('#blt-text-view').textContent.includes('Showing bytes 1,500')")
    assert server[1].calls == runs and page.inner_text("#blt-bytes") == "2,520"


def test_binary_upload_is_refused(page, tmp_path):
    analyse(page, "keep me")
    binary = tmp_path / "picture.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    page.locator("#blt-upload input[type=file]").set_input_files(str(binary))
    page.wait_for_function("() => document.querySelector('#blt-notice').textContent.includes('looks like a binary file')")
    assert page.input_value("#blt-input textarea") == "keep me"


def test_text_upload_is_analysed(page, tmp_path):
    doc = tmp_path / "notes.md"
    doc.write_text("# Notes\nGrüße aus Salzburg.\n", encoding="utf-8")
    page.locator("#blt-upload input[type=file]").set_input_files(str(doc))
    page.wait_for_function("n => document.querySelector('#blt-bytes')?.textContent === n",
                           arg=str(len(doc.read_bytes())))


def test_gated_model_says_why_and_the_default_keeps_working(page):
    page.locator("#blt-model input").click()
    page.get_by_role("option", name="facebook/blt-entropy").click()
    page.wait_for_function("() => document.querySelector('#blt-notice').textContent.includes('Could not load')")
    assert "keeps using " + SHIPPED in page.inner_text("#blt-notice")
    assert page.input_value("#blt-model input") == SHIPPED
    analyse(page, "still working")


def test_downloads(page, tmp_path):
    analyse(page, "hello world")
    page.get_by_role("button", name="Prepare downloads").click()
    for name in ("blt-bytes.csv", "blt-report.json", "blt-entropy-chart.html"):
        page.wait_for_selector(f'#blt-files a[download="{name}"]')
    with page.expect_download() as download:
        page.click('#blt-files a[download="blt-bytes.csv"]')
    csv = tmp_path / "bytes.csv"
    download.value.save_as(csv)
    lines = csv.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "byte,hex,char,glyph,entropy_nats,entropy_bits,patch,starts_patch" and len(lines) == 1 + len("hello world")


def generate_tab(pg, prompt: str, length: int) -> None:
    pg.get_by_role("tab", name="Generate & compare").click()
    pg.fill("#gen-prompt textarea", prompt)
    box = pg.locator("#gen-length input[type=number]")
    box.fill(str(length))
    box.press("Enter")
    pg.click("#gen-run")


def test_generate_and_compare_streams_both_models_and_draws_the_cost(page):
    fired: list[str] = []
    page.on("dialog", lambda d: (fired.append(d.message), d.dismiss()))
    generate_tab(page, "Mozart " + XSS, 48)
    page.wait_for_function("() => document.querySelector('#gen-notice').textContent.trim().startsWith('Done')")
    notice = page.inner_text("#gen-notice")
    assert re.search(r"BLT \d+/48 bytes in \d+ global steps", notice)  # random weights may emit non-byte ids
    assert "baseline 48/48 bytes" in notice
    assert page.locator("#gen-blt .blt-text .p").count() >= 2  # patches drawn on the BLT's text
    assert page.locator("#gen-baseline .u").count() > 2  # the baseline's tokens
    page.wait_for_function("() => document.querySelector('#gen-costs').innerText.includes('BPE baseline')")
    assert "big-model steps" in page.inner_text("#gen-costs")
    page.wait_for_selector("#gen-flops .js-plotly-plot")
    assert "Llama 3 8B" in page.inner_text("#gen-projection")
    assert page.evaluate("window.__xss") is None and not fired
    assert page.locator("#gen-blt script, #gen-blt img, #gen-baseline script, #gen-baseline img").count() == 0


def test_generation_can_be_stopped(page):
    generate_tab(page, "A long story begins", 1024)
    page.wait_for_function("() => document.querySelector('#gen-notice').textContent.trim().startsWith('Generating')")
    page.click("#gen-stop")
    page.wait_for_function("() => document.querySelector('#gen-notice').textContent.trim().startsWith('Stopped')")
    page.wait_for_function("() => document.querySelector('#gen-costs').innerText.includes('BPE baseline')")
    assert int(re.search(r"BLT (\d+)/1024", page.inner_text("#gen-notice"))[1]) < 1024  # what came is measured
    page.get_by_role("tab", name="Explore").click()


def test_api_serves_twenty_people_at_once(server):
    from gradio_client import Client

    client = Client(server[0], verbose=False)
    texts = [f"Person {i} asks: how does BLT read this sentence number {i}?" for i in range(20)]
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda t: client.predict(t, api_name="/analyze"), texts))
    for text, out in zip(texts, results):
        assert out["summary"]["bytes"] == len(text.encode()) and len(out["bytes"]) == len(text.encode())
    compared = {r["label"]: r for r in client.predict("hello world", api_name="/compare")}
    assert compared["Space patching"]["units"] == 2 and compared["Space patching"]["scheme"] == "space"
    assert compared["BPE tokens: shipped baseline"]["bytes_per_unit"] > 0


def test_api_generates_with_both_models(server):
    from gradio_client import Client

    out = Client(server[0], verbose=False).predict("Mozart", 16, api_name="/generate")
    assert len(out["baseline"].encode()) >= 16 - 3 and {r["model"] for r in out["costs"]} == {"BLT", "BPE baseline"}
    assert out["costs"][0]["big-model steps"] >= 1
