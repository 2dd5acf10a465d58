"""Hugging Face Spaces entry point: `python app.py` serves BLT Explorer on http://localhost:7860."""

import sys

from app.ui import LAUNCH, build_app
from model import CheckpointError

try:
    demo = build_app()
except CheckpointError as e:
    sys.exit(f"BLT Explorer cannot start: the shipped entropy model did not load ({e}). The models ship in "
             "assets/blt and assets/baseline; `python -m model.training.ship` puts freshly trained ones there.")

if __name__ == "__main__":
    demo.launch(**LAUNCH)
