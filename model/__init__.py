"""BLT Explorer's model package: Meta's Byte Latent Transformer on CPU or GPU.

Public API: `encode`, `decode`, `load_blt`, `load_entropy_model` (and the classes behind them).
"""

from .blt import BLT, BLTConfig
from .entropy_model import EntropyModel, EntropyModelConfig
from .loading import CheckpointError, load_blt, load_entropy_model, save_blt
from .patcher import PatchingConfig
from .tokenizer import decode, encode

__all__ = ["BLT", "BLTConfig", "CheckpointError", "EntropyModel", "EntropyModelConfig", "PatchingConfig",
           "decode", "encode", "load_blt", "load_entropy_model", "save_blt"]
