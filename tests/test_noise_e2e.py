"""The Noise lab and the hash n-gram view in real Chromium (the server, browser and page of test_app_e2e):
clean beside noisy, hostile text that must stay inert, picking a byte by click and by keyboard, and the
/noise and /ngrams endpoints."""

from __future__ import annotations

import pytest
import test_app_e2e
from reference import direct_blt
from test_app_render import MIXED, XSS

from model.analysis import ngrams
from model.analysis.noise import add_noise
from model.patcher import PatchingConfig

server, browser, page = test_app_e2e.server, test_app_e2e.browser, test_app_e2e.page  # its fixtures, shared
HOSTILE = (XSS + ' </textarea><script>window.__xss=1</script> ' + MIXED + " \u202egnp.exe \U0001F469\u200D\U0001F469\u200D\U0001F467"
           + " \x01\x1b[31m\x7f end")


def noise_tab(pg, text: str, kind: str, seed: int) -> None:
    """Noise `text` on the page; each test uses its own seed, so the notice that names it is this run's."""
    pg.get_by_role("tab", name="Noise lab").click()
    pg.fill("#noise-input textarea", text)
    pg.locator("#noise-kind input").click()
    pg.get_by_role("option", name=kind).click()
    pg.fill("#noise-seed input", str(seed))
    pg.click("#noise-run")
    pg.wait_for_function("s => { const t = document.querySelector('#noise-notice').textContent;"
                         " return t.includes(s) && !t.includes('processing'); }", arg=f"seed {seed}: ")


def test_noise_tab_shows_clean_beside_noisy(page):
    text = "The famous composer from Salzburg known as Mozart wrote music."
    noise_tab(page, text, "Drop (remove characters)", 1)
    assert page.input_value("#noise-text textarea") == add_noise(text, "drop", 0.1, 1).text
    assert page.locator("#noise-clean-blt .blt-text .p").count() >= 2
    assert page.locator("#noise-noisy-tokens .u").count() >= 2
    table = page.inner_text("#noise-table")
    assert all(m in table for m in ("BLT bits/byte", "baseline bits/byte", "entropy model bits/byte", "bytes / patch"))
    page.wait_for_selector("#noise-chart .js-plotly-plot")
    assert "BLT global steps" in page.inner_text("#noise-steps") and "on the noised region" in page.inner_text("#noise-steps")


def test_hostile_text_in_the_noise_lab_stays_text(page):
    fired: list[str] = []
    page.on("dialog", lambda d: (fired.append(d.message), d.dismiss()))
    noise_tab(page, HOSTILE, "UpperCase", 2)
    assert page.input_value("#noise-text textarea") == page.input_value("#noise-input textarea").upper()
    assert page.evaluate("window.__xss") is None and not fired
    for view in ("#noise-clean-blt", "#noise-noisy-blt", "#noise-clean-tokens", "#noise-noisy-tokens", "#noise-notice"):
        assert page.locator(f"{view} script, {view} img, {view} svg, {view} a").count() == 0
    shown = page.inner_text("#noise-noisy-blt .blt-text").replace("⋅", " ")
    assert "<SCRIPT>WINDOW.__XSS=1</SCRIPT>" in shown and "RLO" in shown and "ZWJ" in shown and "␀" in shown


def test_a_lone_surrogate_is_refused_with_a_message(page):
    """JavaScript strings can hold a lone surrogate, which UTF-8 cannot: refused, as on every tab and endpoint."""
    page.get_by_role("tab", name="Noise lab").click()
    page.locator("#noise-input textarea").evaluate(
        "el => { el.value = 'a\\uD800b'; el.dispatchEvent(new Event('input', {bubbles: true})); }")
    page.locator("#noise-kind input").click()
    page.get_by_role("option", name="UpperCase").click()
    page.fill("#noise-seed input", "4")
    page.click("#noise-run")
    page.wait_for_function("() => document.querySelector('#noise-notice').textContent.includes('lone surrogate U+D800')")


def test_click_and_keyboard_pick_a_byte_for_its_hash_ngrams(page, server):
    blt_config = server_blt_config(server)
    noise_tab(page, "abcabc <b>abc</b>", "Repeat (up to 4×)", 3)
    noisy = page.input_value("#noise-text textarea")
    cell = page.locator("#noise-noisy-blt .blt-text i").nth(5)
    position = int(cell.get_attribute("data-b"))
    cell.click()
    page.wait_for_function("p => document.querySelector('#noise-ngram-view').textContent.includes('Byte ' + p + ':')",
                           arg=str(position))
    buckets = [r["bucket"] for r in ngrams.ngram_records(noisy, position, blt_config)]
    rows = page.locator("#noise-ngram-view tbody tr")
    assert rows.count() == len(buckets)
    assert [int(rows.nth(i).locator("td b").inner_text().replace(",", "")) for i in range(rows.count())] == buckets
    assert "distinct n-grams share a bucket" in page.inner_text("#noise-ngram-view")
    box = page.locator("#noise-ngram-pos input")  # the keyboard's way: type a position, arrows step it
    box.fill("2")
    box.press("ArrowUp")
    page.wait_for_function("() => document.querySelector('#noise-ngram-view').textContent.includes('Byte 3:')")
    assert page.locator("#noise-ngram-view script, #noise-ngram-view b ~ b").count() == 0


def test_explore_picks_a_byte_too(page):
    page.get_by_role("tab", name="Explore").click()
    page.fill("#blt-input textarea", "the cat and the hat")
    page.wait_for_function("() => document.querySelector('#blt-bytes')?.textContent === '19'")
    page.locator("#blt-text-view .blt-text i").nth(14).click()
    page.wait_for_function("() => document.querySelector('#ngram-view').textContent.includes('Byte 14:')")
    assert "the" in page.inner_text("#ngram-view")  # "the" ends at byte 14 and at byte 2
    assert page.inner_text("#blt-blt-bpb") not in ("", "–") and page.inner_text("#blt-baseline-bpb") not in ("", "–")


def server_blt_config(server):
    """The hash tables of the BLT test_app_e2e's server runs (the same seed and settings)."""
    return direct_blt(21, PatchingConfig(threshold=1.0)).config


def test_api_noise_and_ngrams(server):
    from gradio_client import Client

    client = Client(server[0], verbose=False)
    out = client.predict("hello world", "uppercase", api_name="/noise")
    assert out["noisy_text"] == "HELLO WORLD"
    clean, noisy = out["records"]
    assert clean["text"] == "clean" and noisy["bytes"] == 11 and noisy["global_steps_on_noise"] >= 1
    assert {"patches", "bytes_per_patch", "tokens", "bytes_per_token", "entropy_model_bpb", "blt_bpb",
            "baseline_bpb"} <= set(noisy)
    with pytest.raises(Exception, match="unknown BLT '/etc'"):  # names from the page's lists only, never a path
        client.predict("x", "drop", None, 0, "/etc", api_name="/noise")
    got = client.predict("abcabc", 5, api_name="/ngrams")
    assert got["records"][0]["same_at"] == [2] and got["summary"]["blt_1b_vocab"] == 500_002
