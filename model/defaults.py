"""Every default in one place: which models load when none is named, and the threshold each patches with.

The CLI, the page, the API and the benchmarks all ask here, so the same text gets the same patches wherever
it is read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .patcher import DEFAULT_THRESHOLD

ASSETS = Path(__file__).resolve().parent.parent / "assets"
SHIPPED_BLT = ASSETS / "blt"  # the shipped BLT, its entropy model inside (model.patcher.*)
SHIPPED_BASELINE = ASSETS / "baseline"
META_ENTROPY_REPO = "facebook/blt-entropy"
DEFAULT_SCHEME = "entropy"
# How each shipped model was made (command, steps, bytes seen, training FLOPs, held-out bits per byte) is kept
# beside its weights, in its config.json under these keys.
SHIPPED_RECORDS = {"entropy model": ("blt", "blt_explorer_entropy_model"), "BLT": ("blt", "blt_explorer"),
                   "BPE baseline": ("baseline", "blt_explorer")}


def default_threshold(source: str | os.PathLike | None = None) -> float:
    """The global entropy threshold (nats) that the BLT at `source` patches with (None: the shipped BLT).

    A folder's own config names it (transformers' `patching_threshold`, or Meta's train_args.json); Meta's
    released models, and anything that names none, use Meta's 1.3354 nats. Reads no weights.
    """
    folder = SHIPPED_BLT if source is None else Path(source).expanduser()
    if not folder.is_dir():
        return DEFAULT_THRESHOLD  # a Hub id: Meta's released models all use Meta's threshold
    for name, keys in (("config.json", ("patching_threshold",)), ("train_args.json", ("data", "patcher_args", "threshold"))):
        value: object = _read(folder / name)
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, (int, float)):
            return float(value)
    return DEFAULT_THRESHOLD


def shipped_records() -> dict[str, dict]:
    """{model: its training record} for the models in assets/ (missing ones left out)."""
    configs = {folder: _read(ASSETS / folder / "config.json") for folder, _ in SHIPPED_RECORDS.values()}
    return {name: configs[folder][key] for name, (folder, key) in SHIPPED_RECORDS.items() if key in configs[folder]}


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
