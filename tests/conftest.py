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

# Under pytest-xdist each worker is a process with torch's default of one thread per core:
# N workers on N cores would run N*N threads and spend their time switching. Share the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
