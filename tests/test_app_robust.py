"""Issue 10, "a public page that never stalls", item by item in real Chromium: two browser contexts are two
visitors. A fitted θ stays inside its controls; a short text does not wait behind a long one; typing into a
long text reads only the new bytes; Stop ends a queued run; bad input (a lone surrogate, out-of-range values)
gets one clear message everywhere; a closed page stops its run; downloads are exact; details open by
hover, click or keyboard and stay inside the view; uploads in other encodings are decoded; one numbering.

Timing is asserted as order (the short text comes back before the long one ends), never as seconds: the CPU
here is shared. benchmarks/bench_page.py measures the ratios."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from gradio.state_holder import StateHolder
from reference import tiny_baseline
from test_app_e2e import WAIT_MS, browser, serve, slow_blt  # noqa: F401 (browser is a fixture)
from test_app_render import tiny_models

import model
from app import build_app, explorer, lanes
from app.explorer import Reading
from app.models import SHIPPED, SHIPPED_BASELINE
from model.analysis.reading import analyze_bytes

MAX_BYTES = 120_000
LONG = ("The famous composer from Salzburg known as Mozart wrote music for the court. " * 1300)[:100_000]
SHORT = "A short text from another visitor, about two hundred bytes long. " * 3


class Positions(torch.nn.Module):
    """An entropy model slow enough that a 100 KB text takes a few seconds (40 µs a position, on top of its own
    arithmetic, which keeps getting faster), counting the positions it reads."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.inner = model.EntropyModel(model.EntropyModelConfig(dim=128, n_layers=2, n_heads=4, sliding_window=64)).eval()
        self.config, self.read = self.inner.config, 0

    def forward(self, tokens):
        self.read += tokens.shape[1]
        time.sleep(4e-5 * tokens.shape[1])
        return self.inner(tokens)

    def new_cache(self):
        return self.inner.new_cache()

    def extend(self, tokens, start, cache):
        self.read += tokens.shape[1]
        time.sleep(4e-5 * tokens.shape[1])
        return self.inner.extend(tokens, start, cache)


@pytest.fixture(scope="module")
def server():
    em = Positions()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        mp.setattr(explorer, "VIEW_BYTES", 2000)
        demo = build_app(em, tiny_models()[1], max_bytes=MAX_BYTES, blt=slow_blt(), baseline=tiny_baseline())
        with serve(demo) as url:
            yield url, em, demo


def open_page(browser, url):  # noqa: F811
    ctx = browser.new_context(viewport={"width": 1000, "height": 800}, accept_downloads=True)
    pg = ctx.new_page()
    pg.set_default_timeout(WAIT_MS * 3)
    pg.goto(url)
    pg.wait_for_selector("#blt-patches")
    return pg


@pytest.fixture(scope="module")
def page(browser, server):  # noqa: F811
    pg = open_page(browser, server[0])
    yield pg
    pg.context.close()


@pytest.fixture
def other(browser, server):  # noqa: F811
    """A second visitor."""
    pg = open_page(browser, server[0])
    yield pg
    if not pg.is_closed():
        pg.context.close()


def bytes_shown(pg, n: int) -> None:
    pg.wait_for_function("n => document.querySelector('#blt-bytes')?.textContent === n", arg=f"{n:,}")


def analyse(pg, text: str) -> None:
    pg.fill("#blt-input textarea", text)
    bytes_shown(pg, len(text.encode()))


def notice(pg, sel: str = "#blt-notice") -> str:
    return pg.inner_text(sel)


def wait_notice(pg, words: str, sel: str = "#blt-notice") -> None:
    pg.wait_for_function("([s, w]) => document.querySelector(s).textContent.includes(w)", arg=[sel, words])


def submit(pg, sel: str, value) -> None:
    box = pg.locator(sel)
    box.fill(str(value))
    box.press("Enter")


# 1. Fit θ keeps every control inside its range ------------------------------------------------------------


def test_1_fitted_controls_stay_in_range_and_nothing_is_blocked(page):
    analyse(page, "The famous composer from Salzburg known as Mozart wrote music.")
    submit(page, "#blt-target input", 20)
    wait_notice(page, "Fitted to 20 bytes")
    assert page.input_value("#blt-stride input[type=number]") == "16" and "(the largest, 16)" in notice(page)
    analyse(page, "After fitting, a new text is still analysed.")  # the page is not blocked
    submit(page, "#blt-threshold input[type=number]", 2.0)
    page.wait_for_function("() => !document.querySelector('#blt-notice').textContent.includes('Error')")
    submit(page, "#blt-target input", 1)
    wait_notice(page, "Fitted to 1 byte per patch")
    assert 0 <= float(page.input_value("#blt-threshold input[type=number]")) <= 8.1
    assert page.inner_text("#blt-patches") == f"{len('After fitting, a new text is still analysed.'):,}"
    submit(page, "#blt-target input", 1000)
    wait_notice(page, "out of reach on this text")
    submit(page, "#blt-target input", 0.5)
    wait_notice(page, "at least 1, got 0.5")
    analyse(page, "And the page still works.")


# 2. A short text does not wait behind a long one; typing reads only the new bytes --------------------------


def test_2_a_short_text_does_not_wait_behind_a_long_one(page, other, server):
    analyse(other, SHORT)  # warm
    start = time.perf_counter()
    analyse(other, SHORT + " (alone)")
    alone = time.perf_counter() - start
    page.fill("#blt-input textarea", LONG)
    wait_notice(page, "Reading the text: the first")  # the first window shows while the rest is read
    start = time.perf_counter()
    analyse(other, SHORT + " (during)")
    during = time.perf_counter() - start
    assert "Reading the text" in notice(page), "the long text ended first: the short one waited behind it"
    bytes_shown(page, len(LONG))
    assert during < max(5 * alone, alone + 3), (during, alone)  # generous: the CPU is shared; the bench has the 3×


def test_2_the_text_box_keeps_its_height_for_a_long_text(page):
    """A box that grows with its text measures all of it on every change (1.5 s for 100 KB, before the text is
    sent): the box keeps its height and scrolls."""
    box = page.locator("#blt-input textarea")
    analyse(page, "A short text.")
    height = box.bounding_box()["height"]
    analyse(page, LONG[:20_000])
    assert box.bounding_box()["height"] == height
    assert box.evaluate("e => e.scrollHeight > e.clientHeight && getComputedStyle(e).overflowY !== 'hidden'")


def test_2_typing_into_a_long_text_reads_only_the_new_bytes(page, server):
    em = server[1]
    text = LONG[:8000]
    analyse(page, text)
    before = em.read
    box = page.locator("#blt-input textarea")
    box.press("End")
    box.press_sequentially("abcde", delay=60)
    bytes_shown(page, len(text) + 5)
    assert em.read - before < 5 * (2 * 63 + 10) < len(text) // 5  # each keystroke: its byte and its context


# 3. Stop ends a queued run ------------------------------------------------------------------------------------


def gen(pg, prompt: str, length: int) -> None:
    pg.get_by_role("tab", name="Generate & compare").click()
    pg.fill("#gen-prompt textarea", prompt)
    pg.fill("#gen-length input", str(length))
    pg.click("#gen-run")


def test_3_stop_ends_a_queued_run(page, other):
    gen(page, "A long story begins", 1024)
    wait_notice(page, "Generating", "#gen-notice")
    gen(other, "Queued behind it", 1024)
    other.click("#gen-stop")
    page.click("#gen-stop")
    wait_notice(page, "Stopped", "#gen-notice")
    wait_notice(other, "Stopped before it started", "#gen-notice")
    page.get_by_role("tab", name="Explore").click()


# 4. A lone surrogate is refused with the reason, everywhere ---------------------------------------------------


def test_4_lone_surrogate_is_refused_everywhere(page, server):
    page.get_by_role("tab", name="Generate & compare").click()
    page.evaluate("""() => { const t = document.querySelector('#gen-prompt textarea');
        t.value = 'abc\\ud800def'; t.dispatchEvent(new Event('input', {bubbles: true})); }""")
    page.click("#gen-run")
    wait_notice(page, "lone surrogate U+D800 at character 3", "#gen-notice")
    page.get_by_role("tab", name="Explore").click()
    page.evaluate("""() => { const t = document.querySelector('#blt-input textarea');
        t.value = 'abc\\ud800def'; t.dispatchEvent(new Event('input', {bubbles: true})); }""")
    wait_notice(page, "lone surrogate U+D800 at character 3")
    bad = "abc\ud800def"  # gradio_client cannot send a lone surrogate; JSON can (\\ud800)
    for api, data in [("analyze", [bad, None, None, "entropy", 4, SHIPPED]), ("generate", [bad, 8, 0.0, None, None, 0, SHIPPED, SHIPPED_BASELINE])]:
        assert "lone surrogate U+D800 at character 3" in raw_call(server[0], api, data)


def raw_call(url: str, api: str, data: list) -> str:
    """Gradio's REST API called by hand: the answer's event stream, as text."""
    import urllib.request

    body = json.dumps({"data": data}).encode()  # ensure_ascii: a lone surrogate travels as \\ud800
    req = urllib.request.Request(f"{url}gradio_api/call/{api}", body, {"Content-Type": "application/json"})
    event = json.loads(urllib.request.urlopen(req, timeout=30).read())["event_id"]
    return urllib.request.urlopen(f"{url}gradio_api/call/{api}/{event}", timeout=60).read().decode()


# 5. A closed page stops its run; readings stay within their budget -------------------------------------------


def test_5_a_closed_page_stops_its_generation(other, server):
    from gradio_client import Client

    gen(other, "A long story begins", 1024)
    wait_notice(other, "Generating", "#gen-notice")
    other.context.close()  # the heartbeat ends: the server's unload stops the run
    start = time.perf_counter()
    Client(server[0], verbose=False).predict("Mozart", 8, api_name="/generate")  # queued behind it if it ran on
    assert time.perf_counter() - start < 30


def test_5_gradio_keeps_nothing_of_a_closed_page_or_an_api_call(browser, page, server):  # noqa: F811
    """Gradio keeps every session's last inputs and outputs (the text, its view, its chart; /analyze's report) until
    1000 newer sessions push them out: once the page is idle, only open pages keep theirs."""
    from gradio_client import Client

    url, _, demo = server
    held = demo.state_holder.session_data
    before = set(held)
    closing = open_page(browser, url)
    analyse(closing, SHORT + " (then closed)")
    client = Client(url, verbose=False)
    client.predict(LONG[:20_000], api_name="/analyze")
    assert client.session_hash in held and len(set(held) - before - {client.session_hash}) == 1
    closing.context.close()
    deadline = time.monotonic() + 60  # the unload, then 5 s without work
    while set(held) - before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert set(held) - before == set() and len(held) == 1  # the open page's state, and nothing else
    analyse(page, "The open page still works.")


def test_5_pages_forget_only_sessions_without_an_open_page():
    holder = StateHolder()
    for session in ("open", "closed", "api"):
        holder.session_data[session], holder.time_last_used[session] = object(), 0
    pages = lanes.Pages()
    pages.opened("open"), pages.opened("closed"), pages.closed("closed")
    pages.forget_others(holder)
    assert list(holder.session_data) == ["open"] and list(holder.time_last_used) == ["open"]


def test_5_readings_stay_within_their_budget():
    em, _ = tiny_models()
    kept = lanes.Readings(budget=100_000)
    for i in range(20):
        kept.put(f"s{i}", Reading(analyze_bytes(b"x" * 1000, em), "tiny"))
    assert kept.nbytes <= 100_000 and kept.get("s19") is not None and kept.get("s0") is None


ARENAS = """
import ctypes, sys, threading
from app import lanes
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
if sys.argv[1] == "limit":
    lanes.limit_arenas()
done = threading.Event()
def hold():
    block = libc.malloc(4096)
    done.wait()
    libc.free(block)
threads = [threading.Thread(target=hold) for _ in range(8)]
for t in threads:
    t.start()
libc.malloc_stats()  # one "Arena n:" per arena, on stderr
done.set()
"""


@pytest.mark.parametrize("mode", ["limit", "default"])
def test_5_threads_share_two_malloc_arenas(mode):
    """Freed memory is kept per arena, and by default each thread gets one: the page keeps two for all."""
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run([sys.executable, "-c", ARENAS, mode], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).resolve().parent.parent, timeout=120, check=True)
    arenas = out.stderr.count("Arena ")
    assert arenas == lanes.MALLOC_ARENAS if mode == "limit" else arenas > 8


# 6. Downloads are self-contained and exact ---------------------------------------------------------------------


def test_6_downloads_are_exact_and_work_offline(page, tmp_path):
    text = "字节的补丁 and more 字节"
    analyse(page, text)
    submit(page, "#blt-threshold input[type=number]", 0)  # every byte a patch: every character is cut
    page.get_by_role("button", name="Prepare downloads").click()
    got = {}
    for name in ("blt-report.json", "blt-bytes.csv", "blt-entropy-chart.html"):
        page.wait_for_selector(f'#blt-files a[download="{name}"]')
        with page.expect_download() as d:
            page.click(f'#blt-files a[download="{name}"]')
        got[name] = tmp_path / name
        d.value.save_as(got[name])
    doc = json.loads(got["blt-report.json"].read_text(encoding="utf-8"))
    assert bytes.fromhex("".join(p["hex"] for p in doc["patches"])).decode() == text
    assert "\ufffd" not in got["blt-report.json"].read_text(encoding="utf-8") and doc["patches"][0]["text"] == "\\xe5"
    assert "".join(r["char"] for r in doc["bytes"]) == text and doc["bytes"][0]["glyph"] == "<E5>"
    assert 'src="https://cdn.plot.ly' not in got["blt-entropy-chart.html"].read_text(encoding="utf-8")
    submit(page, "#blt-threshold input[type=number]", 2.0)


# 7. Out-of-range values get the same message from the page and the API ----------------------------------------


def test_7_out_of_range_values_say_what_is_allowed(page, server):
    from gradio_client import Client

    page.get_by_role("tab", name="Generate & compare").click()
    page.fill("#gen-prompt textarea", "Mozart")
    for sel, bad, words in [("#gen-length input", 0, "from 1 to 1024, got 0"), ("#gen-top-p input", 0, "top_p must be in (0, 1]"),
                            ("#gen-seed input", 2**70, "from 0 to 2**63-1")]:
        page.fill(sel, str(bad))
        page.click("#gen-run")
        wait_notice(page, words, "#gen-notice")
        page.fill(sel, {"#gen-length input": "16", "#gen-top-p input": "1", "#gen-seed input": "0"}[sel])
    page.get_by_role("tab", name="Explore").click()
    client = Client(server[0], verbose=False)
    with pytest.raises(Exception, match=re.escape("from 0 to 2**63-1")):
        client.predict("Mozart", 8, seed=2**70, api_name="/generate")
    with pytest.raises(Exception, match="from 1 to 1024, got 0"):
        client.predict("Mozart", 0, api_name="/generate")
    with pytest.raises(Exception, match="BPE tokens are counted by /compare"):
        client.predict("Mozart", scheme="bpe", api_name="/analyze")
    with pytest.raises(Exception, match="stride must be a whole number of bytes from 1 to 16, got 20"):
        client.predict("Mozart", scheme="static", stride=20, api_name="/analyze")


# 8. Details by hover, click and keyboard, inside the view; uploads; numbering; wording -----------------------


def tip(pg, i: int) -> str:
    return pg.locator("#blt-text-view .blt-text i").nth(i).evaluate("e => getComputedStyle(e, '::after').content")


def test_8_details_inside_the_view_by_hover_click_and_keyboard(page):
    analyse(page, "The famous composer from Salzburg known as Mozart. " * 6)
    cells = page.locator("#blt-text-view .blt-text i")
    box = page.locator("#blt-text-view .blt-text").bounding_box()
    last = max(range(cells.count()), key=lambda i: cells.nth(i).bounding_box()["x"])  # at the end of a line
    assert cells.nth(last).bounding_box()["x"] > box["x"] + box["width"] - 60
    cells.nth(last).hover()
    style = cells.nth(last).evaluate("e => { const s = getComputedStyle(e, '::after'); return [s.position, s.left, s.maxWidth] }")
    assert style[0] == "fixed" and style[1] == "12px"  # pinned inside the viewport, whatever the cell
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    reset = page.locator("#blt-text-view .blt-text").evaluate("e => e.style.counterReset")
    assert reset == "p -1"  # the first patch counts to 0: numbered from 0, as in the downloads and the API
    page.mouse.move(5, 5)
    assert tip(page, 3) == "none"
    cells.nth(3).click()  # a click or tap keeps the details open
    page.mouse.move(5, 5)
    assert "byte 3" in tip(page, 3)
    page.keyboard.press("Tab")  # the keyboard moves to the next cell
    assert "byte 4" in tip(page, 4) and tip(page, 3) == "none"


def test_8_uploads_in_other_encodings_are_decoded(page, tmp_path):
    for name, data, words in [("latin.txt", "Grüße aus Salzburg\n".encode("latin-1"), "read as Latin-1"),
                              ("wide.txt", "Grüße 字\n".encode("utf-16"), "UTF-16 (byte-order mark)")]:
        (tmp_path / name).write_bytes(data)
        page.locator("#blt-upload input[type=file]").set_input_files(str(tmp_path / name))
        wait_notice(page, words)
        assert page.input_value("#blt-input textarea").startswith("Grüße")


def test_8_numbering_and_wording(page, server):
    from gradio_client import Client

    analyse(page, "The famous composer from Salzburg known as Mozart.")
    out = Client(server[0], verbose=False).predict("The famous composer", api_name="/analyze")
    assert out["bytes"][0]["patch"] == 0
    reading = explorer.read("The famous composer", tiny_models()[0], "tiny", {})
    assert explorer.table(reading, explorer.Settings())["patch"].tolist()[0] == 0  # the page's patch table
    gen(page, "Mozart", 16)
    wait_notice(page, "Done", "#gen-notice")
    projection = page.inner_text("#gen-projection")
    assert re.search(r"(saves \d+%|costs \d+% more)", projection) and "-" not in re.sub(r"[A-Za-z]-", "", projection.split("\n", 1)[1]).replace("–", "")
    page.get_by_role("tab", name="Explore").click()
