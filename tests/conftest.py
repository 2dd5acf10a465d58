import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(min(2, torch.get_num_threads()))
# The tests compare algorithms number for number (cached against no-cache, ours against transformers): in float32
# on every machine, also where model.devices would pick bf16 (CPUs with AVX-512 BF16 or AMX). Subprocesses inherit it.
os.environ["BLT_EXPLORER_DTYPE"] = "float32"
# The page compiles its decode steps in the background; the page's tests run without (tests/test_steps.py
# compiles them on purpose).
os.environ["BLT_EXPLORER_COMPILE"] = "0"
# cpp_wrapper (the default on a CPU) doubles the compile time of the many tiny models the tests compile: they
# compile without it, and tests/test_steps.py compiles the shipped pair with it.
import model.steps  # noqa: E402

model.steps.CPP_WRAPPER = False
# Many small test models compile the same step methods: allow them all, and fail loudly rather than let dynamo
# fall back to eager in silence (a test that asks for the compiled path gets it, or fails).
torch._dynamo.config.recompile_limit = 64
torch._dynamo.config.fail_on_recompile_limit_hit = True
