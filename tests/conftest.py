"""Shared test settings and fixtures."""

from __future__ import annotations

import os

# Tests never reach the network: HuggingFace loads only what is cached or shipped in a package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
