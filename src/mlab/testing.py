"""Assertion helpers used by every course check and every test.

On a mismatch they say *what* differs and *where*: shape, dtype, device, the first mismatching
index with expected vs got, the largest absolute and relative errors, and whether NaN or inf
appear. Every helper raises :class:`mlab.errors.MismatchError` (an ``AssertionError``) whose
message holds all the numbers, so it survives any re-raise; the numbers are also kept in
``err.details``.

    >>> import torch
    >>> assert_close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5]))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mlab.errors.MismatchError: output: 1 of 2 values differ (rtol=1.3e-06, atol=1e-05).
      first mismatch at index [1]: expected 2.5, got 2
    ...

``case`` wraps a block so that any failure inside also names the input it was checking.
"""

from __future__ import annotations

import inspect
import math
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mlab.errors import MismatchError

__all__ = [
    "assert_close",
    "assert_equal",
    "assert_no_python_loop",
    "assert_not_shares_storage",
    "assert_raises",
    "assert_shape",
    "assert_shares_storage",
    "assert_unchanged",
    "case",
    "chi_square_p_value",
    "describe",
    "expect",
    "generator",
    "python_lines_run",
    "randint",
    "randn",
]

# torch.testing's defaults: tight enough to catch an off-by-a-little, loose enough for
# a different but valid order of floating-point operations.
_DEFAULT_TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float16: (1e-3, 1e-5),
    torch.bfloat16: (1.6e-2, 1e-5),
    torch.float32: (1.3e-6, 1e-5),
    torch.float64: (1e-7, 1e-7),
    torch.complex64: (1.3e-6, 1e-5),
    torch.complex128: (1e-7, 1e-7),
}


# ----------------------------------------------------------------------------------------------
# Seeded inputs: every check and test draws from its own generator, so results never depend on
# what ran before.


def generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Standard normal values of ``shape`` from ``generator(seed)``."""
    return torch.randn(*shape, generator=generator(seed), dtype=dtype)


def randint(low: int, high: int, *shape: int, seed: int) -> Tensor:
    """int64 values in ``[low, high)`` of ``shape`` from ``generator(seed)``."""
    return torch.randint(low, high, shape, generator=generator(seed))


# ----------------------------------------------------------------------------------------------
# Describing values


def _short_number(v: Any) -> str:
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, complex):
        return f"{v.real:.6g}{v.imag:+.6g}j"
    return repr(v)


def describe(x: Any, *, max_items: int = 6) -> str:
    """A one-line description of a value, for messages: shape, dtype, layout, a few values.

    >>> describe(torch.zeros(2, 3).t())
    'Tensor(shape=(3, 2), dtype=float32, stride=(1, 3) non-contiguous, values=[0, 0, 0, 0, 0, 0])'
    """
    if isinstance(x, Tensor):
        parts = [f"shape={tuple(x.shape)}", f"dtype={str(x.dtype).removeprefix('torch.')}"]
        if x.device.type != "cpu":
            parts.append(f"device={x.device}")
        if not x.is_contiguous():
            parts.append(f"stride={x.stride()} non-contiguous")
        if x.requires_grad:
            parts.append("requires_grad=True")
        if x.numel() == 0:
            parts.append("empty")
        elif x.numel() <= 1_000_000:
            flat = x.detach().reshape(-1)[: max_items + 1].cpu().tolist()
            shown = ", ".join(_short_number(v) for v in flat[:max_items])
            more = ", ..." if x.numel() > max_items else ""
            parts.append(f"values=[{shown}{more}]")
        return f"Tensor({', '.join(parts)})"
    if isinstance(x, np.ndarray):
        return f"ndarray(shape={x.shape}, dtype={x.dtype})"
    if isinstance(x, (list, tuple)):
        open_, close = ("[", "]") if isinstance(x, list) else ("(", ")")
        items = [describe(v, max_items=max_items) for v in x[:max_items]]
        more = ", ..." if len(x) > max_items else ""
        trailing = "," if isinstance(x, tuple) and len(x) == 1 else ""
        return f"{open_}{', '.join(items)}{trailing}{more}{close}"
    if isinstance(x, (bool, int, float, complex)):
        return _short_number(x)
    text = repr(x)
    return text if len(text) <= 80 else text[:77] + "..."


@contextmanager
def case(description: str, **inputs: Any) -> Iterator[None]:
    """Name the input being checked: any exception raised inside gets a note saying which.

    >>> with case("a 3x4 matrix, transposed", x=torch.ones(3, 4).t()):
    ...     pass
    """
    try:
        yield
    except BaseException as exc:
        lines = [f"while checking: {description}"]
        lines += [f"  {name} = {describe(value)}" for name, value in inputs.items()]
        exc.add_note("\n".join(lines))
        raise


def expect(condition: bool, message: str) -> None:
    """Raise ``MismatchError(message)`` unless ``condition`` holds. The message says what was
    expected and what was found."""
    if not condition:
        raise MismatchError(message)


# ----------------------------------------------------------------------------------------------
# Comparing values


def _as_tensor(x: Any) -> Tensor | None:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    return None


def _fail(what: str, message: str, **details: Any) -> MismatchError:
    err = MismatchError(f"{what}: {message}")
    err.details = details  # type: ignore[attr-defined]
    return err


def _index_str(flat_index: int, shape: Sequence[int]) -> str:
    if not shape:
        return "()"
    idx = np.unravel_index(flat_index, tuple(shape))
    return "[" + ", ".join(str(int(i)) for i in idx) + "]"


def _nonfinite_summary(t: Tensor) -> str:
    if not (t.is_floating_point() or t.is_complex()):
        return ""
    n_nan = int(torch.isnan(t).sum())
    n_inf = int(torch.isinf(t).sum())
    bits = []
    if n_nan:
        bits.append(f"{n_nan} NaN")
    if n_inf:
        bits.append(f"{n_inf} inf")
    return ", ".join(bits)


def _compare_tensors(
    actual: Tensor,
    expected: Tensor,
    *,
    rtol: float | None,
    atol: float | None,
    equal_nan: bool,
    check_dtype: bool,
    check_device: bool,
    what: str,
) -> None:
    if tuple(actual.shape) != tuple(expected.shape):
        hint = ""
        if actual.numel() == expected.numel():
            hint = " (same number of elements: a missing reshape, or a transpose?)"
        elif actual.dim() == expected.dim() + 1 and 1 in actual.shape:
            hint = " (an extra size-1 dimension: keepdim, or a missing squeeze?)"
        elif actual.dim() + 1 == expected.dim() and 1 in expected.shape:
            hint = " (a size-1 dimension is missing: keepdim=True?)"
        raise _fail(
            what,
            f"shape {tuple(actual.shape)} but expected {tuple(expected.shape)}{hint}",
            actual_shape=tuple(actual.shape),
            expected_shape=tuple(expected.shape),
        )
    if check_dtype and actual.dtype != expected.dtype:
        raise _fail(
            what,
            f"dtype {actual.dtype} but expected {expected.dtype}",
            actual_dtype=str(actual.dtype),
            expected_dtype=str(expected.dtype),
        )
    if check_device and actual.device != expected.device:
        raise _fail(
            what,
            f"on device {actual.device} but expected {expected.device}",
            actual_device=str(actual.device),
            expected_device=str(expected.device),
        )
    if expected.numel() == 0:
        return

    a = actual.detach().cpu()
    e = expected.detach().cpu()
    exact = not (e.is_floating_point() or e.is_complex()) and not (
        a.is_floating_point() or a.is_complex()
    )
    if exact:
        rtol_, atol_ = 0.0, 0.0
        mismatch = a != e
        a64 = a.to(torch.float64) if a.dtype != torch.bool else a.to(torch.int64)
        e64 = e.to(torch.float64) if e.dtype != torch.bool else e.to(torch.int64)
    else:
        default = _DEFAULT_TOLERANCES.get(e.dtype, _DEFAULT_TOLERANCES[torch.float32])
        rtol_ = default[0] if rtol is None else rtol
        atol_ = default[1] if atol is None else atol
        wide = torch.complex128 if (a.is_complex() or e.is_complex()) else torch.float64
        a64, e64 = a.to(wide), e.to(wide)
        # The verdict in the inputs' own (common) dtype, as torch.testing.assert_close computes
        # it: in float64 a float16 value just past atol would fail here yet pass there.
        common = torch.promote_types(a.dtype, e.dtype)
        close = torch.isclose(
            a.to(common), e.to(common), rtol=rtol_, atol=atol_, equal_nan=equal_nan
        )
        mismatch = ~close
    n_bad = int(mismatch.sum())
    if n_bad == 0:
        return

    flat_bad = mismatch.reshape(-1).nonzero()
    first = int(flat_bad[0, 0])
    a_flat, e_flat = a64.reshape(-1), e64.reshape(-1)
    diff = (a_flat - e_flat).abs()
    finite = (
        torch.isfinite(diff)
        if diff.is_floating_point()
        else torch.ones_like(diff, dtype=torch.bool)
    )
    # The first mismatch in its own dtype: an int64 shown through float64 would read "1e+09".
    expected_first = e.reshape(-1)[first].item()
    actual_first = a.reshape(-1)[first].item()
    lines = [
        f"{n_bad} of {e.numel()} values differ"
        + ("." if exact else f" (rtol={rtol_:.2g}, atol={atol_:.2g})."),
        f"  first mismatch at index {_index_str(first, e.shape)}: "
        f"expected {_short_number(expected_first)}, got {_short_number(actual_first)}",
    ]
    details: dict[str, Any] = {
        "n_mismatched": n_bad,
        "numel": e.numel(),
        "first_index": _index_str(first, e.shape),
        "expected_value": expected_first,
        "actual_value": actual_first,
    }
    if bool(finite.any()):
        d = torch.where(finite, diff, torch.zeros_like(diff))
        worst = int(d.argmax())
        max_abs = float(d[worst])
        rel = d / e_flat.abs()  # inf where 0 was expected: no relative error is small there
        rel = torch.where(finite & (d > 0), rel, torch.zeros_like(rel))
        max_rel = float(rel.max())
        lines.append(
            f"  max abs error {max_abs:.3g} at index {_index_str(worst, e.shape)}; "
            f"max rel error {max_rel:.3g}"
        )
        details.update(max_abs_error=max_abs, max_rel_error=max_rel)
    nf_actual, nf_expected = _nonfinite_summary(a), _nonfinite_summary(e)
    if nf_actual or nf_expected:
        lines.append(
            f"  non-finite values: got {nf_actual or 'none'}; expected {nf_expected or 'none'}"
        )
    if n_bad < e.numel() and e.dim() >= 1:
        bad_rows = mismatch.reshape(e.shape[0], -1).any(dim=1).nonzero().reshape(-1)
        if 0 < len(bad_rows) < e.shape[0]:
            rows = ", ".join(str(int(r)) for r in bad_rows[:8])
            more = ", ..." if len(bad_rows) > 8 else ""
            lines.append(f"  along dim 0, only these indices differ: {rows}{more}")
    raise _fail(what, "\n".join(lines), **details)


def assert_close(
    actual: Any,
    expected: Any,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    equal_nan: bool = False,
    check_dtype: bool = True,
    check_device: bool = True,
    what: str = "output",
) -> None:
    """Check that ``actual`` matches ``expected``: tensors, arrays, numbers, and (nested)
    tuples, lists and dicts of them. Floats compare with torch.testing's default tolerances
    for the expected dtype unless ``rtol``/``atol`` are given; integers and bools exactly.

    ``what`` names the value in the message ("output", "grad of x", "output[1]").
    """
    exp_t = _as_tensor(expected)
    if exp_t is not None:
        act_t = _as_tensor(actual)
        if act_t is None:
            raise _fail(
                what,
                f"expected a tensor like {describe(expected)}, got {type(actual).__name__} "
                f"{describe(actual)}",
            )
        _compare_tensors(
            act_t,
            exp_t,
            rtol=rtol,
            atol=atol,
            equal_nan=equal_nan,
            check_dtype=check_dtype,
            check_device=check_device,
            what=what,
        )
        return
    kwargs: dict[str, Any] = dict(
        rtol=rtol,
        atol=atol,
        equal_nan=equal_nan,
        check_dtype=check_dtype,
        check_device=check_device,
    )
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            raise _fail(what, f"expected a mapping, got {type(actual).__name__}")
        if set(actual) != set(expected):
            missing = sorted(map(str, set(expected) - set(actual)))
            extra = sorted(map(str, set(actual) - set(expected)))
            raise _fail(what, f"keys differ: missing {missing}, unexpected {extra}")
        for key in expected:
            assert_close(actual[key], expected[key], what=f"{what}[{key!r}]", **kwargs)
        return
    if isinstance(expected, (tuple, list)):
        if not isinstance(actual, (tuple, list)):
            raise _fail(
                what,
                f"expected a {type(expected).__name__} of {len(expected)} items, "
                f"got {type(actual).__name__} {describe(actual)}",
            )
        if len(actual) != len(expected):
            raise _fail(
                what,
                f"{len(actual)} items but expected {len(expected)}: got {describe(actual)}, "
                f"expected {describe(expected)}",
            )
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_close(a, e, what=f"{what}[{i}]", **kwargs)
        return
    if isinstance(expected, (bool, int)) and not isinstance(expected, float):
        if isinstance(actual, Tensor) and actual.numel() == 1:
            actual = actual.item()
        ok = (
            isinstance(actual, (bool, int, np.integer, np.bool_))
            and not isinstance(actual, float)
            and actual == expected
        )
        if not ok:
            raise _fail(
                what,
                f"expected {expected!r}, got {describe(actual)}"
                + (f" ({type(actual).__name__})" if not isinstance(actual, int) else ""),
                expected_value=expected,
                actual_value=actual,
            )
        return
    if isinstance(expected, float):
        if isinstance(actual, Tensor) and actual.numel() == 1:
            actual = actual.item()
        if not isinstance(actual, (int, float, np.floating, np.integer)):
            raise _fail(what, f"expected a number like {expected!r}, got {describe(actual)}")
        r = 1.3e-6 if rtol is None else rtol
        a_ = 1e-5 if atol is None else atol
        both_nan = equal_nan and math.isnan(expected) and math.isnan(float(actual))
        if not both_nan and not math.isclose(float(actual), expected, rel_tol=r, abs_tol=a_):
            raise _fail(
                what,
                f"expected {expected:.8g}, got {float(actual):.8g} "
                f"(abs error {abs(float(actual) - expected):.3g}, rtol={r:.2g}, atol={a_:.2g})",
                expected_value=expected,
                actual_value=float(actual),
            )
        return
    if actual != expected:
        raise _fail(what, f"expected {describe(expected)}, got {describe(actual)}")


def assert_equal(actual: Any, expected: Any, *, what: str = "output") -> None:
    """Like :func:`assert_close` with zero tolerance, dtype checked."""
    assert_close(actual, expected, rtol=0.0, atol=0.0, what=what)


def assert_shape(t: Any, shape: Sequence[int], *, what: str = "output") -> None:
    """Check that ``t`` is a tensor of exactly ``shape``."""
    if not isinstance(t, Tensor):
        raise _fail(what, f"expected a tensor of shape {tuple(shape)}, got {describe(t)}")
    if tuple(t.shape) != tuple(shape):
        raise _fail(
            what,
            f"shape {tuple(t.shape)} but expected {tuple(shape)}",
            actual_shape=tuple(t.shape),
            expected_shape=tuple(shape),
        )


# ----------------------------------------------------------------------------------------------
# Views and storage


def _storage_ptr(t: Tensor) -> int:
    return int(t.untyped_storage().data_ptr())


def assert_shares_storage(view: Any, base: Tensor, *, what: str = "output") -> None:
    """Check that ``view`` is a view of ``base``: no copy was made."""
    if not isinstance(view, Tensor):
        raise _fail(what, f"expected a tensor (a view of the input), got {describe(view)}")
    if _storage_ptr(view) != _storage_ptr(base):
        raise _fail(
            what,
            "is a copy, but it should be a view sharing the input's storage. Operations such "
            "as indexing with a tensor, .contiguous(), .clone(), .reshape() of a "
            "non-contiguous tensor and torch.flip copy; slicing, .view(), .t(), .expand(), "
            ".narrow(), .diagonal() and .as_strided() do not.",
        )


def assert_not_shares_storage(t: Any, base: Tensor, *, what: str = "output") -> None:
    """Check that ``t`` does not share storage with ``base``: writing to it cannot change the
    input."""
    if not isinstance(t, Tensor):
        raise _fail(what, f"expected a tensor, got {describe(t)}")
    if _storage_ptr(t) == _storage_ptr(base):
        raise _fail(
            what,
            "shares storage with the input, so writing to one changes the other; "
            "it should be a copy (.clone() or .contiguous() of a non-contiguous tensor).",
        )


def assert_unchanged(x: Tensor, before: Tensor, *, what: str = "the input") -> None:
    """Check that ``x`` still equals ``before`` (a clone taken before the call): the code under
    check must not write into its input."""
    same = bool(torch.equal(x, before))
    if not same and (x.is_floating_point() or x.is_complex()):
        same = bool(torch.allclose(x, before, rtol=0.0, atol=0.0, equal_nan=True))
    if not same:
        raise _fail(
            what,
            "was modified in place; compute a new tensor instead (torch.where, or .clone() "
            "first). Writing into an argument changes the caller's data.",
        )


# ----------------------------------------------------------------------------------------------
# Statistics


def chi_square_p_value(counts: Tensor, probs: Tensor) -> float:
    """The p-value of Pearson's chi-square goodness-of-fit test of observed ``counts`` per
    class against ``probs``, over the classes of nonzero probability: the chance of a fit
    this bad if the samples really followed ``probs``. (The chi-square survival function is
    the regularised upper incomplete gamma function, ``gammaincc(df / 2, stat / 2)``.)"""
    keep = probs > 0
    if int(keep.sum()) < 2:
        return 1.0
    expected = (probs[keep] / probs.sum() * counts.sum()).to(torch.float64)
    observed = counts[keep].to(torch.float64)
    stat = ((observed - expected) ** 2 / expected).sum()
    df = torch.tensor(float(keep.sum() - 1), dtype=torch.float64)
    return float(torch.special.gammaincc(df / 2, stat / 2))


# ----------------------------------------------------------------------------------------------
# Exceptions


def assert_raises(
    fn: Callable[..., Any],
    *args: Any,
    exc: type[BaseException] | tuple[type[BaseException], ...] = Exception,
    match: str | None = None,
    what: str = "call",
    **kwargs: Any,
) -> BaseException:
    """Check that ``fn(*args, **kwargs)`` raises ``exc`` (with ``match`` in its message)."""
    try:
        result = fn(*args, **kwargs)
    except Exception as err:
        if isinstance(err, NotImplementedError) and not isinstance(err, exc):
            raise  # an unfinished exercise is "not started", not a wrong exception
        if not isinstance(err, exc):
            raise _fail(
                what,
                f"raised {type(err).__name__}({str(err)!r}) but should raise "
                f"{_exception_names(exc)}",
            ) from err
        if match is not None and match not in str(err):
            raise _fail(
                what,
                f"raised {type(err).__name__}({str(err)!r}), "
                f"but its message should mention {match!r}",
            ) from err
        return err
    raise _fail(what, f"should raise {_exception_names(exc)} but returned {describe(result)}")


def _exception_names(exc: type[BaseException] | tuple[type[BaseException], ...]) -> str:
    return exc.__name__ if isinstance(exc, type) else " or ".join(e.__name__ for e in exc)


# ----------------------------------------------------------------------------------------------
# Vectorisation


def python_lines_run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Run ``fn(*args, **kwargs)`` and count the Python lines executed in ``fn``'s own source
    file (helpers defined beside it included; torch's and numpy's own code excluded)."""
    code = getattr(inspect.unwrap(fn), "__code__", None)
    if code is None:
        raise TypeError(f"{fn!r} is not a Python function; cannot count its lines")
    filename = code.co_filename
    count = 0

    def local_trace(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return local_trace

    def global_trace(frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename == filename:
            return local_trace
        return None

    previous = sys.gettrace()
    sys.settrace(global_trace)
    try:
        fn(*args, **kwargs)
    finally:
        sys.settrace(previous)
    return count


def assert_no_python_loop(
    fn: Callable[..., Any],
    make_args: Callable[[int], tuple[Any, ...]],
    *,
    sizes: tuple[int, int] = (8, 200),
    what: str = "function",
) -> None:
    """Check that ``fn`` does not loop in Python over its data: the number of Python lines it
    runs must not grow with the input size. ``make_args(n)`` builds arguments of size ``n``.

    Robust to how the loop is written (``for``, ``while``, comprehensions, ``map`` with a
    lambda, recursion, a helper in the same file): they all execute more lines on more data.
    """
    small, large = sizes
    n_small = python_lines_run(fn, *make_args(small))
    n_large = python_lines_run(fn, *make_args(large))
    if n_large > n_small:
        raise _fail(
            what,
            f"ran {n_small} lines of Python for an input of size {small} but {n_large} for "
            f"size {large}: it loops in Python over the data. Replace the loop with tensor "
            "operations (broadcasting, indexing, reductions) so the work happens inside torch.",
            lines_small=n_small,
            lines_large=n_large,
        )
