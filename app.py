"""Hugging Face Spaces entry point: `python app.py` serves BLT Explorer on http://localhost:7860."""

import sys

import spaces  # noqa: F401 - first: on ZeroGPU it must patch torch before torch is imported

from app.ui import LAUNCH, build_app
from model import CheckpointError

try:
    demo = build_app()
except CheckpointError as e:
    sys.exit(f"BLT Explorer cannot start: a model it starts with did not load ({e}). The shipped models are in "
             "assets/blt and assets/baseline (`python -m model.training.ship` puts freshly trained ones there); "
             "BLT_EXPLORER_ENTROPY_MODEL, BLT_EXPLORER_BLT and BLT_EXPLORER_BASELINE choose others.")

if __name__ == "__main__":
    demo.launch(**LAUNCH)
