"""Hugging Face Spaces entry point: `python app.py` serves BLT Explorer on http://localhost:7860."""

from app.ui import LAUNCH, build_app

demo = build_app()

if __name__ == "__main__":
    demo.launch(**LAUNCH)
