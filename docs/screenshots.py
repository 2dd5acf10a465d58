"""Take the README's screenshots of the running app with the shipped models, in headless Chromium.

    python docs/screenshots.py      # writes docs/screenshot.png (explorer), docs/generate.png (Generate & compare)
                                    # and docs/noise.png (Noise lab, a byte's hash n-grams open)
"""

from __future__ import annotations

import shutil
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import build_app  # noqa: E402
from app.ui import LAUNCH  # noqa: E402

PROMPT = "The famous composer from Salzburg known as Mozart"


def main() -> None:
    from playwright.sync_api import sync_playwright

    demo = build_app()
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **LAUNCH)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox", "--headless"])
            page = browser.new_page(viewport={"width": 1280, "height": 1000}, device_scale_factor=1)
            page.set_default_timeout(120_000)
            page.goto(url)
            page.wait_for_selector("#blt-patches")
            page.locator("#blt-text-view .blt-text i").nth(30).hover()
            page.wait_for_timeout(500)
            page.screenshot(path=str(ROOT / "docs" / "screenshot.png"), full_page=False)
            page.get_by_role("tab", name="Generate & compare").click()
            page.fill("#gen-prompt textarea", PROMPT)
            page.click("#gen-run")
            page.wait_for_function("() => document.querySelector('#gen-notice').textContent.trim().startsWith('Done')")
            page.wait_for_selector("#gen-flops .js-plotly-plot")
            page.wait_for_timeout(1000)
            page.locator("#gen-notice").scroll_into_view_if_needed()
            page.screenshot(path=str(ROOT / "docs" / "generate.png"), full_page=True)
            page.get_by_role("tab", name="Noise lab").click()
            page.locator("#noise-kind input").click()
            page.get_by_role("option", name="Repeat (up to 4×)").click()
            page.click("#noise-run")
            page.wait_for_function("() => document.querySelector('#noise-notice').textContent.includes('edits')"
                                   " && !document.querySelector('#noise-notice').textContent.includes('processing')")
            page.wait_for_selector("#noise-chart .js-plotly-plot")
            page.locator("#noise-noisy-blt .blt-text i").nth(40).click()
            page.wait_for_selector("#noise-ngram-view table")
            page.wait_for_timeout(1000)
            page.screenshot(path=str(ROOT / "docs" / "noise.png"), full_page=True)
            browser.close()
    finally:
        demo.close()


if __name__ == "__main__":
    main()
