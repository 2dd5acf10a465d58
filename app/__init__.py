"""BLT Explorer's web page: paste text, see how a Byte Latent Transformer reads and patches it."""

from .ui import build_app

__all__ = ["build_app"]
