"""The README tells the truth: its code samples run as written and print what it says they print, and the
CLI, the page, the API and the benchmarks cut the same text into the same patches (one source of defaults)."""

from __future__ import annotations

import contextlib
import doctest
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import huggingface_hub.constants
import pytest
from test_app_e2e import CHROMIUM_ARGS, WAIT_MS, analyse, patches, serve

from app import build_app, explorer
from app.render import LN2
from app.ui import load_examples
from model import load_entropy_model
from model.__main__ import main as cli
from model.bpe import SHIPPED, shipped_tokenizer
from model.defaults import default_threshold, shipped_records

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
README_URL = "http://localhost:7860/"
MOZART = load_examples()[0][1]


def blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README, re.S | re.M)


@pytest.fixture(scope="module")
def shipped_server():
    """The app as `python app.py` serves it (the shipped models), on a free port."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        demo = build_app()
        with serve(demo) as url:
            yield url


def run_doctest(source: str, name: str) -> None:
    test = doctest.DocTestParser().get_doctest(source, {}, name, str(ROOT / "README.md"), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = io.StringIO()
    runner.run(test, out=report.write)
    assert runner.failures == 0, report.getvalue()


def test_the_readme_has_python_and_shell_samples():
    assert sum(">>>" in b for b in blocks("python")) >= 2 and blocks("console")


def test_python_samples_print_what_the_readme_says(shipped_server):
    samples = [b for b in blocks("python") if ">>>" in b]
    for i, source in enumerate(samples):
        run_doctest(source.replace(README_URL, shipped_server + "/"), f"README python sample {i}")


def test_shell_samples_print_what_the_readme_says():
    """Each `$ command` in a console block runs in the repository root; the lines after it are its output."""
    checker = doctest.OutputChecker()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    for block in blocks("console"):
        for command, expected in re.findall(r"^\$ (.*)\n((?:(?!\$ ).*\n)*)", block, re.M):
            out = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
            assert out.returncode == 0, f"{command}\n{out.stderr}"
            assert checker.check_output(expected, out.stdout, doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE), \
                f"$ {command}\nREADME says:\n{expected}\nit printed:\n{out.stdout}"


def test_cli_page_api_and_benchmark_cut_the_same_patches(shipped_server):
    from gradio_client import Client
    from playwright.sync_api import sync_playwright

    text = MOZART
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert cli(["analyze", "--json", text]) == 0
    from_cli = json.loads(printed.getvalue())
    from_api = Client(shipped_server, verbose=False).predict(text, api_name="/analyze")
    reading = explorer.read(text, load_entropy_model(), SHIPPED, {SHIPPED: shipped_tokenizer()}, {}, explorer.MAX_BYTES)
    from_benchmark = explorer.patches(reading, explorer.Settings(threshold_bits=default_threshold() / LN2))
    spans = [(p["start"], p["end"]) for p in from_cli["patches"]]
    assert spans == [(p["start"], p["end"]) for p in from_api["patches"]] == list(from_benchmark.spans)
    assert from_cli["summary"] == from_api["summary"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(shipped_server)
        page.wait_for_selector("#blt-patches")
        analyse(page, text + " ")
        analyse(page, text)
        assert patches(page) == f"{len(spans):,}"
        browser.close()


def test_shipped_models_table_is_the_training_records():
    """The README's comparison of the shipped BLT and baseline quotes their training records, at equal FLOPs."""
    records = shipped_records()
    groups = {"English prose": "en_prose", "code": "code", "multilingual": "multilingual"}
    for name in ("BLT", "BPE baseline"):
        r = records[name]
        row = re.search(rf"^\| {name} \| ([^|]+) \| ([\d.]+) MB \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", README, re.M)
        assert row, f"no README row for {name}"
        assert float(row[1]) == pytest.approx(r["train_flops"], rel=0.005)
        assert float(row[2]) == round(r["bytes_seen"] / 1e6, 1)
        assert [float(x) for x in row.groups()[2:]] == [round(r["held_out_bpb_by_group"][g], 3) for g in groups.values()]
    assert records["BPE baseline"]["train_flops"] == pytest.approx(records["BLT"]["train_flops"], rel=0.02)


def test_the_speed_table_is_the_benchmark_result_with_its_machine():
    """README's Speed figures are benchmarks/results/app.txt's, and the README names the machine it ran on."""
    result = (ROOT / "benchmarks" / "results" / "app.txt").read_text()
    machine = re.search(r"^machine: ([^,]+), (\d+) cores", result, re.M)
    assert machine and f"{machine[1]}, {machine[2]} cores" in README
    measured = {m[1]: [float(x) for x in m.groups()[1:6]] for m in re.finditer(
        r"^\s+(\d+)KB\s+[\d,]+\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", result, re.M)}
    quoted = {m[1]: [float(x) for x in m.groups()[1:6]] for m in re.finditer(
        r"^\| (\d+) KB \| ([\d.]+) s \| ([\d.]+) s \| ([\d.]+) s \| ([\d.]+) s \| ([\d.]+) s \|", README, re.M)}
    assert set(quoted) == set(measured) == {"1", "10", "100"}
    for size, row in quoted.items():
        assert row == pytest.approx(measured[size], rel=0.05, abs=0.005), size


def test_noise_lab_numbers_are_the_committed_output():
    """The README's noise-lab table is a verbatim slice of benchmarks/results/noise.txt, which benchmarks/noise_lab.py
    wrote, and so is its collision count."""
    committed = (ROOT / "benchmarks" / "results" / "noise.txt").read_text(encoding="utf-8").splitlines()
    table = next(b for b in blocks("text") if "antspeak" in b).splitlines()
    start = committed.index(table[0])
    assert committed[start : start + len(table)] == table and len(table) == 2 + 6
    assert committed[-1].split(": ", 1)[1] in README
