"""w1d6's Triton checks see in the interpreter what only a GPU would show: a sum that adds
to the total with a plain load and store (a race between programs) and a masked load without
``other=`` (undefined lanes). Both passed before: the interpreter runs programs one by one and
fills masked-off lanes with 0."""

from __future__ import annotations

import re
from typing import Any

import pytest

triton = pytest.importorskip("triton")

from mlab.course.engine.checks import checks_for  # noqa: E402
from mlab.course.engine.manifest import get_day  # noqa: E402
from mlab.course.engine.worker import _reference_namespace  # noqa: E402
from mlab.errors import MismatchError  # noqa: E402
from mlab.gpu.kernels import tl  # noqa: E402


@triton.jit  # type: ignore[untyped-decorator]
def sum_by_load_and_store(
    x_ptr: Any, out_ptr: Any, n_elements: Any, BLOCK_SIZE: tl.constexpr
) -> None:
    offsets = tl.program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    x = tl.load(x_ptr + offsets, mask=offsets < n_elements, other=0.0)
    tl.store(out_ptr, tl.load(out_ptr) + tl.sum(x, axis=0))


@triton.jit  # type: ignore[untyped-decorator]
def sum_without_other(x_ptr: Any, out_ptr: Any, n_elements: Any, BLOCK_SIZE: tl.constexpr) -> None:
    offsets = tl.program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    x = tl.load(x_ptr + offsets, mask=offsets < n_elements)
    tl.atomic_add(out_ptr, tl.sum(x, axis=0))


def _run_sum_checks(kernel: Any) -> None:
    ns = _reference_namespace(get_day("w1d6")).replace("sum_kernel", kernel)
    for c in checks_for("mlab.course.w1d6_gpus.checks_triton", "sum_kernel"):
        c.fn(ns)


def test_the_reference_sum_passes() -> None:
    _run_sum_checks(_reference_namespace(get_day("w1d6")).sum_kernel)


@pytest.mark.parametrize(
    ("kernel", "message"),
    [
        (sum_by_load_and_store, r"both wrote out_ptr \+ 0.*tl\.atomic_add"),
        (sum_without_other, r"got nan(.|\n)*no other="),
    ],
)
def test_a_gpu_only_mistake_fails_in_the_interpreter(kernel: Any, message: str) -> None:
    with pytest.raises(MismatchError) as info:
        _run_sum_checks(kernel)
    text = str(info.value) + "\n".join(getattr(info.value, "__notes__", []))
    assert re.search(message, text, flags=re.DOTALL), text
