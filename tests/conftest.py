"""Triton reads TRITON_INTERPRET when it is first imported, and lightning imports it, i.e. before any
test module is collected. So on a machine without CUDA the interpreter is chosen here, and
tests/test_triton_gdn.py runs the kernels on CPU tensors. Nothing else runs Triton kernels on a CPU,
so nothing else changes; with CUDA the variable is left alone and the kernels compile."""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
