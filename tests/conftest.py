import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(min(2, torch.get_num_threads()))
# The tests compare algorithms number for number (cached against no-cache, ours against transformers): in float32
# on every machine, also where model.devices would pick bf16 (CPUs with AVX-512 BF16 or AMX). Subprocesses inherit it.
os.environ["BLT_EXPLORER_DTYPE"] = "float32"
