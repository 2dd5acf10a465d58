"""The entropy threshold each checkpoint patches with: the explorer's default θ for each model.

The shipped BLT was trained with a threshold tuned to its own entropy model (about 4.5 bytes per patch on
English prose); Meta's models use Meta's global threshold. The threshold lives in the BLT's config, so it is
read without loading any weights.
"""

from __future__ import annotations

import os
from pathlib import Path

from .loading import DEFAULT_BLT, _read_json
from .patcher import DEFAULT_THRESHOLD


def shipped_threshold(folder: str | os.PathLike = DEFAULT_BLT) -> float:
    """Global entropy threshold (nats) of a BLT saved in transformers' layout; Meta's default if it names none."""
    path = Path(folder) / "config.json"
    config = _read_json(path) if path.exists() else {}
    return float(config.get("patching_threshold") or DEFAULT_THRESHOLD)
