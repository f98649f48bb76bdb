"""The examples in the library's docstrings run and print what they say. They are shown to
learners in their exercise stubs, so a wrong example is a wrong lesson."""

from __future__ import annotations

import doctest
import importlib

import pytest
import torch

MODULES = [
    "mlab.testing",
    "mlab.inspect.stats",
    "mlab.inspect.record",
    "mlab.inspect.cli",
    "mlab.tensor.strides",
    "mlab.tensor.indexing",
    "mlab.tensor.reductions",
    "mlab.tensor.gather",
    "mlab.tensor.einsum_einops",
    "mlab.tensor.vectorised",
    "mlab.tensor.cppn",
    "mlab.images",
    "mlab.data.idx",
    "mlab.data.batching",
    "mlab.data.datasets",
    "mlab.optim.schedules",
    "mlab.train.loops",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, extraglobs={"torch": torch}, optionflags=doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted > 0, (
        f"{name} has no docstring example that runs (an example marked +SKIP does not): add "
        "one, or take the module off MODULES"
    )
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"
