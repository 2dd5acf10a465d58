"""Hosting on Hugging Face Spaces: the front matter and files the Hub accepts, ZeroGPU's decorator on every
function that runs a model (with the `spaces` package installed, as on a Space), and a page whose visitors can
name only the models on its lists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import spaces
import yaml
from packaging.requirements import Requirement

import app.ui
from app import models, zerogpu

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
ZEROGPU_TORCH = ["2.8.0", "2.9.1", "2.10.0", "2.11.0"]  # hub-docs, August 2026
ZEROGPU_PYTHON = ("3.10", "3.12")


def front_matter() -> dict:
    return yaml.safe_load(README.split("---\n")[1])


def test_front_matter_is_what_the_hub_and_zerogpu_accept():
    meta = front_matter()
    assert meta["sdk"] == "gradio" and (ROOT / meta["app_file"]).exists()
    assert len(meta["short_description"]) <= 60
    assert meta["python_version"] in ZEROGPU_PYTHON
    assert {"facebook/blt-1b", "facebook/blt-7b", "facebook/blt-entropy", "meta-llama/Llama-3.2-1B",
            "meta-llama/Llama-3.1-8B"} <= set(meta["models"])
    assert set(meta["models"]) == {*models.HUB["entropy model"], *models.HUB["BLT"], *models.HUB["baseline"]}


def test_requirements_install_a_torch_that_zerogpu_supports_and_keep_the_local_pin():
    reqs = [Requirement(line.split("#")[0]) for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line.split("#")[0].strip()]
    names = {r.name for r in reqs}
    assert {"spaces", "gradio", "torch", "safetensors", "huggingface-hub"} <= names

    def torch_ok(python: str, version: str) -> bool:
        env = {"python_version": python, "python_full_version": python + ".0"}
        return all(r.specifier.contains(version) for r in reqs
                   if r.name == "torch" and (r.marker is None or r.marker.evaluate(env)))

    space_python = front_matter()["python_version"]
    allowed = [v for v in ["2.4.0", *ZEROGPU_TORCH, "2.12.0", "2.13.0"] if torch_ok(space_python, v)]
    assert allowed and set(allowed) <= set(ZEROGPU_TORCH)
    assert torch_ok("3.11", "2.13.0")  # the README's CPU install (torch==2.13.0 first) stays as it is


def test_every_large_tracked_file_goes_through_lfs():
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    large = [f.decode() for f in files if f and (ROOT / f.decode()).is_file()
             and (ROOT / f.decode()).stat().st_size > 10_000_000]
    assert large  # the shipped weights
    attrs = subprocess.run(["git", "check-attr", "filter", "--", *large], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout
    assert all(line.endswith(": filter: lfs") for line in attrs.splitlines()), attrs


def test_the_hosting_commands_use_options_the_hf_cli_has():
    section = README[README.index("## Host it on a Space"):]
    commands = [line for block in re.findall(r"^```bash\n(.*?)^```", section, re.S | re.M)
                for line in block.splitlines() if line.startswith("hf ")]
    assert any(" upload " in c and "--repo-type space" in c for c in commands)
    for command in commands:
        words = command.split()
        sub = words[1:3] if words[1] == "repos" else words[1:2]
        helptext = subprocess.run(["hf", *sub, "--help"], capture_output=True, text=True, check=True).stdout
        for flag in (w for w in words if w.startswith("--")):
            assert flag in helptext, (command, flag)


def test_every_function_that_runs_a_model_asks_for_the_gpu_for_what_its_request_needs(monkeypatch):
    asked: dict[str, object] = {}

    def recording_gpu(fn, duration):  # noqa: ANN001, ANN202 - stands in for spaces.GPU
        asked[fn.__name__] = duration
        return fn

    monkeypatch.setattr(spaces, "GPU", recording_gpu)
    app.ui.build_app()
    assert {"analyse", "switch_model", "api_analyze", "api_compare", "generate_both", "api_generate", "api_noise",
            "noise_and_read"} <= set(asked)
    assert asked["generate_both"] is zerogpu.for_generation
    short, long = zerogpu.for_generation("Hi", 16), zerogpu.for_generation("Hi", 1024)
    assert zerogpu.MIN_S <= short < long <= zerogpu.MAX_S
    assert zerogpu.for_generation("Hi", max_new_bytes=1024) == long  # the API's keyword
    assert zerogpu.for_text("x" * 100_000) > zerogpu.for_text("x")
    assert zerogpu.for_generation(None, "lots") == zerogpu.seconds()  # bad values are the function's to refuse


def test_off_zerogpu_the_decorator_changes_nothing():
    def f(x: int) -> int:
        return x

    assert not zerogpu.ON_ZEROGPU and zerogpu.gpu(zerogpu.for_text)(f) is f


@pytest.mark.parametrize("name", ["/etc", "../assets/blt", "assets/baseline", "gpt2", "facebook/blt-entropy"])
def test_a_visitor_names_only_models_on_the_lists(name):
    with pytest.raises(ValueError, match="unknown BLT"):
        models.check_name("BLT", name)


def test_the_owner_adds_a_model_and_chooses_the_default(monkeypatch, tmp_path):
    monkeypatch.setenv("BLT_EXPLORER_BLT", str(tmp_path))
    assert models.default("BLT") == str(tmp_path)
    assert models.choices("BLT") == [models.SHIPPED, str(tmp_path), *models.HUB["BLT"]]
    assert models.source("BLT", str(tmp_path)) == str(tmp_path)
    assert models.source("baseline", models.SHIPPED_BASELINE) is None
    monkeypatch.setenv("BLT_EXPLORER_BASELINE", "meta-llama/Llama-3.2-1B")
    assert models.choices("baseline") == [models.SHIPPED_BASELINE, *models.HUB["baseline"]]  # listed once

