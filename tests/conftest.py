"""Shared test settings and fixtures."""

from __future__ import annotations

import os

# Tests never reach the network: HuggingFace loads only what is cached or shipped in a package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Triton decides whether to interpret kernels on the CPU when triton.language is first
# imported, which torch itself may do early: decide before anything imports it.
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
