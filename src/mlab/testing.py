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
import re
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

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


def _short_number(v: Any, digits: int = 6) -> str:
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    if isinstance(v, complex):
        return f"{v.real:.{digits}g}{v.imag:+.{digits}g}j"
    return repr(v)


def _two_numbers(first: Any, second: Any) -> tuple[str, str]:
    """Both numbers with the fewest digits (6, 9 or 17) that tell them apart: a float32
    1.0000001 against 1 must not read "1" and "1"."""
    for digits in (6, 9):
        shown = _short_number(first, digits), _short_number(second, digits)
        if shown[0] != shown[1]:
            return shown
    return _short_number(first, 17), _short_number(second, 17)


def describe(x: Any, *, max_items: int = 6) -> str:
    """A one-line description of a value, for messages: shape, dtype, layout, a few values.

    >>> describe(torch.zeros(2, 3).t())
    'Tensor(shape=(3, 2), dtype=float32, stride=(1, 3) non-contiguous, values=[0, 0, 0, 0, 0, 0])'
    """
    if isinstance(x, Tensor):
        parts = [f"shape={tuple(x.shape)}", f"dtype={str(x.dtype).removeprefix('torch.')}"]
        if x.device.type != "cpu":
            parts.append(f"device={x.device}")
        strided = x.layout == torch.strided
        if not strided:
            parts.append(f"layout={str(x.layout).removeprefix('torch.')}")
        elif not x.is_contiguous():
            parts.append(f"stride={x.stride()} non-contiguous")
        if x.requires_grad:
            parts.append("requires_grad=True")
        if x.numel() == 0:
            parts.append("empty")
        elif strided and not x.is_meta and x.numel() <= 1_000_000:  # meta: shape, no data
            flat = x.detach().reshape(-1)[:max_items].cpu().tolist()
            shown = ", ".join(_short_number(v) for v in flat)
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


# The inputs of the case() blocks now open, innermost last: assert_unchanged names an input it
# finds here, and leaves listing it to case().
_OPEN_CASES: list[Mapping[str, Any]] = []

#: Called with each case's description as it opens: the check worker sends it to the runner,
#: so a check stopped for taking too long can say which input was running. None: no one
#: listens.
case_listener: Callable[[str], None] | None = None


def _shown_in(description: str, name: str, shown: str) -> bool:
    """Whether ``description`` already shows the input, as ``name=value`` or ``name value``
    ("shape (2, 3)"): listing it again would only repeat it."""
    return (
        re.search(rf"\b{re.escape(name)}[ =]{re.escape(shown)}(?![\w.])", description) is not None
    )


@contextmanager
def case(description: str, **inputs: Any) -> Iterator[None]:
    """Name the input being checked: any exception raised inside gets a note saying which.

    Tensors are described as they were on entry, before the code under check could write
    into them; one it changed also shows what it holds now, unless :func:`assert_unchanged`
    already listed the changes. (Tensor subclasses, which may watch every read, are described
    only on failure.) An input the description already shows (``shape (2, 3)``, ``k=2``) is
    not listed again.

    >>> with case("a 3x4 matrix, transposed", x=torch.ones(3, 4).t()):
    ...     pass
    """
    # Plain tensors only: a subclass may watch every read, and describing one is a read.
    plain = (Tensor, torch.nn.Parameter)
    given = {name: describe(v) for name, v in inputs.items() if type(v) in plain}
    if case_listener is not None:
        case_listener(description)
    _OPEN_CASES.append(inputs)
    try:
        yield
    except BaseException as exc:
        reported = getattr(exc, "changed_input", None)
        lines = [f"while checking: {description}"]
        for name, value in inputs.items():
            now = describe(value)
            was = given.get(name, now)
            if was == now and _shown_in(description, name, was):
                continue
            lines.append(f"  {name} = {was}")
            if was != now and value is not reported:
                lines.append(
                    f"    changed in place by the code under check; it now holds\n    {now}"
                )
        exc.add_note("\n".join(lines))
        raise
    finally:
        _OPEN_CASES.pop()


def expect(condition: bool, message: str) -> None:
    """Raise ``MismatchError(message)`` unless ``condition`` holds. The message says what was
    expected and what was found."""
    if not condition:
        raise MismatchError(message)


# ----------------------------------------------------------------------------------------------
# Comparing values


def _as_tensor(x: Any) -> Tensor | None:
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    return x if isinstance(x, Tensor) else None


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
    a = actual.detach().cpu()
    e = expected.detach().cpu()
    exact = not any(t.is_floating_point() or t.is_complex() for t in (a, e))
    if exact:
        mismatch = a != e
        tolerance = "."
        # Integers measured as integers: through float64, 2**60 + 1 and 2**60 would not differ.
        a64, e64 = a.to(torch.int64), e.to(torch.int64)
    else:
        default = _DEFAULT_TOLERANCES.get(e.dtype, _DEFAULT_TOLERANCES[torch.float32])
        rtol_ = default[0] if rtol is None else rtol
        atol_ = default[1] if atol is None else atol
        tolerance = f" (rtol={rtol_:.2g}, atol={atol_:.2g})."
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

    bad = mismatch.reshape(-1)
    first = int(bad.nonzero()[0])
    # The first mismatch in its own dtype: an int64 shown through float64 would read "1e+09".
    expected_first, actual_first = _two_numbers(
        e.reshape(-1)[first].item(), a.reshape(-1)[first].item()
    )
    lines = [
        f"{n_bad} of {e.numel()} values differ{tolerance}",
        f"  first mismatch at index {_index_str(first, e.shape)}: "
        f"expected {expected_first}, got {actual_first}",
    ]
    details: dict[str, Any] = {
        "n_mismatched": n_bad,
        "numel": e.numel(),
        "first_index": _index_str(first, e.shape),
        "expected_value": e.reshape(-1)[first].item(),
        "actual_value": a.reshape(-1)[first].item(),
    }
    # Errors are measured over the mismatches where both values are finite: NaN or inf on
    # either side has no size, and the matching elements would only pull the maximum to 0.
    a_flat, e_flat = a64.reshape(-1), e64.reshape(-1)
    measured = bad & torch.isfinite(a_flat) & torch.isfinite(e_flat)
    n_measured = int(measured.sum())
    if n_measured:
        where = measured.nonzero().flatten()
        d = (a_flat[where] - e_flat[where]).abs()
        worst = int(where[d.argmax()])
        max_abs = float(d.max())
        # inf where 0 was expected: no relative error is small there
        max_rel = float((d / e_flat[where].abs()).max())
        lines.append(
            f"  max abs error {max_abs:.3g} at index {_index_str(worst, e.shape)}; "
            f"max rel error {max_rel:.3g}"
        )
        details.update(max_abs_error=max_abs, max_rel_error=max_rel)
    if n_measured < n_bad:
        rest = "; errors measured on the rest" if n_measured else ""
        lines.append(
            f"  mismatches with NaN or inf on either side: {n_bad - n_measured} of {n_bad}{rest}"
        )
        details.update(n_nonfinite_mismatched=n_bad - n_measured)
    nf_actual, nf_expected = _nonfinite_summary(a), _nonfinite_summary(e)
    if nf_actual or nf_expected:
        lines.append(
            f"  non-finite values: got {nf_actual or 'none'}; expected {nf_expected or 'none'}"
        )
    if e.dim() >= 1:
        bad_rows = mismatch.reshape(e.shape[0], -1).any(dim=1).nonzero().flatten()
        if len(bad_rows) < e.shape[0]:
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
        _compare_names(list(actual), list(expected), "keys", what)
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
        if all(isinstance(v, str) for v in (*actual, *expected)):
            _compare_names(actual, expected, "items", what)  # names of keys, tokens, ...
        if len(actual) != len(expected):
            raise _fail(
                what,
                f"{len(actual)} items but expected {len(expected)}: got {describe(actual)}, "
                f"expected {describe(expected)}",
            )
        for i, e in enumerate(expected):
            assert_close(actual[i], e, what=f"{what}[{i}]", **kwargs)
        return
    kind = _number_kind(expected)
    if kind is not None:
        _compare_numbers(actual, expected, kind, what=what, **kwargs)
        return
    try:
        same = bool(actual == expected)
    except (TypeError, ValueError, RuntimeError):  # an array or tensor against something else
        same = False
    if not same:
        raise _fail(what, f"expected {describe(expected)}, got {describe(actual)}")


_LISTED = 10  # names listed in a message, at most
_WIDTH = 76  # columns a message line may take: what a rich panel leaves inside 80


def _name_list(label: str, names: list[Any]) -> str:
    """``  missing (12): 'a', 'b', ... (2 more)``, wrapped to fit the 76 columns inside a
    diagnostic panel at 80."""
    shown = ", ".join(repr(n) for n in names[:_LISTED])
    if len(names) > _LISTED:
        shown += f", ... ({len(names) - _LISTED} more)"
    return textwrap.fill(
        f"{label} ({len(names)}): {shown}",
        width=_WIDTH,
        initial_indent="  ",
        subsequent_indent="    ",
        break_long_words=False,
        break_on_hyphens=False,
    )


def _compare_names(actual: Sequence[Any], expected: Sequence[Any], noun: str, what: str) -> None:
    """Raise, listing the missing and the unexpected ones, if the two sets of names (the keys
    of a state dict, a sorted list of them) differ; ~100 names in full would bury the three
    that matter."""
    have, want = set(actual), set(expected)
    missing = [n for n in dict.fromkeys(expected) if n not in have]
    unexpected = [n for n in dict.fromkeys(actual) if n not in want]
    if not (missing or unexpected):
        return
    lines = [
        f"{noun} differ: {len(missing)} missing, {len(unexpected)} unexpected "
        f"({len(expected)} expected, {len(actual)} given)"
    ]
    if missing:
        lines.append(_name_list("missing", missing))
    if unexpected:
        lines.append(_name_list("unexpected", unexpected))
    raise _fail(what, "\n".join(lines), missing=missing, unexpected=unexpected)


# bool before int: True is an int to Python, but not the number 1 to a check.
_NUMBER_KINDS = (
    ("bool", (bool, np.bool_)),
    ("int", (int, np.integer)),
    ("float", (float, np.floating)),
)


def _number_kind(x: Any) -> str | None:
    """The kind of a Python or numpy scalar: "bool", "int" or "float"; else None."""
    return next((kind for kind, types in _NUMBER_KINDS if isinstance(x, types)), None)


def _compare_numbers(
    actual: Any,
    expected: Any,
    kind: str,
    *,
    rtol: float | None,
    atol: float | None,
    equal_nan: bool,
    check_dtype: bool,
    check_device: bool,
    what: str,
) -> None:
    given = actual.item() if isinstance(actual, Tensor) and actual.numel() == 1 else actual
    got = _number_kind(given)
    if got is None:
        raise _fail(what, f"expected a number like {expected!r}, got {describe(actual)}")
    if check_dtype and got != kind:
        source = f" from {describe(actual)}" if isinstance(actual, Tensor) else ""
        raise _fail(
            what,
            f"expected {expected!r} ({kind}), got {given!r} ({got}){source}",
            expected_type=kind,
            actual_type=got,
        )
    if "float" not in (kind, got):
        if given != expected:
            raise _fail(
                what,
                f"expected {expected!r}, got {given!r}",
                expected_value=expected,
                actual_value=given,
            )
        return
    r = 1.3e-6 if rtol is None else rtol
    a_ = 1e-5 if atol is None else atol
    g, e = float(given), float(expected)
    both_nan = equal_nan and math.isnan(e) and math.isnan(g)
    if not both_nan and not math.isclose(g, e, rel_tol=r, abs_tol=a_):
        shown_e, shown_g = _two_numbers(e, g)
        raise _fail(
            what,
            f"expected {shown_e}, got {shown_g} "
            f"(abs error {abs(g - e):.3g}, rtol={r:.2g}, atol={a_:.2g})",
            expected_value=e,
            actual_value=g,
        )


def assert_equal(actual: Any, expected: Any, *, what: str = "output") -> None:
    """Like :func:`assert_close` with zero tolerance, dtype checked: ``True`` is not ``1``,
    and ``1.0`` is not ``1``."""
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


def _same_storage(t: Tensor, base: Tensor) -> bool:
    """Whether ``t`` and ``base`` share memory: the same storage object, as every view has
    (an empty view of an empty tensor included), or storages at the same address. Empty
    storages all sit at address 0, so that alone would take an empty copy for a view."""
    mine, theirs = t.untyped_storage(), base.untyped_storage()
    if mine._cdata == theirs._cdata:
        return True
    return mine.nbytes() > 0 and mine.data_ptr() == theirs.data_ptr()


def assert_shares_storage(view: Any, base: Tensor, *, what: str = "output") -> None:
    """Check that ``view`` is a view of ``base``: no copy was made."""
    if not isinstance(view, Tensor):
        raise _fail(what, f"expected a tensor (a view of the input), got {describe(view)}")
    if not _same_storage(view, base):
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
    if _same_storage(t, base):
        raise _fail(
            what,
            "shares storage with the input, so writing to one changes the other; "
            "it should be a copy (.clone() or .contiguous() of a non-contiguous tensor).",
        )


def _case_name(x: Tensor) -> str | None:
    """The name under which an open :func:`case` lists ``x`` itself, innermost first."""
    names = (n for inputs in reversed(_OPEN_CASES) for n, v in inputs.items() if v is x)
    return next(names, None)


def assert_unchanged(x: Tensor, before: Tensor, *, what: str = "the input") -> None:
    """Check that ``x`` still equals ``before`` (a clone taken before the call): the code under
    check must not write into its input. The message names the input (as an open
    :func:`case` names it, when ``what`` is left as is), lists the elements that changed, and
    shows the value as it was unless that case lists it already."""
    name = _case_name(x)
    if what == "the input" and name is not None:
        what = name
    label = f"`{what}`" if what.isidentifier() else what
    hint = "  Never write into an argument: build a new tensor (torch.where, .clone())."
    listed = [] if name is not None else [f"  before: {describe(before)}"]
    if x.shape != before.shape or x.dtype != before.dtype:
        lines = [f"{label} was modified in place.", *listed, f"  after:  {describe(x)}"]
        details: dict[str, Any] = {}
    else:
        now, was = x.detach().reshape(-1), before.detach().reshape(-1)
        differ = (now != was) & ((now == now) | (was == was))  # NaN == NaN
        where = differ.nonzero().reshape(-1)
        changed = len(where)
        if changed == 0:
            return
        lines = [
            f"{label} was modified in place: {changed} of {was.numel()} values changed.",
            *listed,
        ]
        for i in where[:_LISTED].tolist():
            old, new = _two_numbers(was[i].item(), now[i].item())
            lines.append(f"  at index {_index_str(i, before.shape)}: was {old}, now {new}")
        if changed > _LISTED:
            lines.append(f"  ... and {changed - _LISTED} more")
        details = {"changed": changed}
    err = MismatchError("\n".join([*lines, hint]))
    err.details = details  # type: ignore[attr-defined]
    err.changed_input = x  # type: ignore[attr-defined]  # case() need not show it again
    raise err


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


class _TorchCalls(TorchFunctionMode):
    """Counts the calls of torch functions and tensor methods while active. One that runs
    more of them in torch's own Python code counts once: a mode is off inside its handler."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        self.count += 1
        return func(*args, **(kwargs or {}))


def _work(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[int, int]:
    """Run ``fn(*args, **kwargs)``; return the Python lines it ran in its own file and the
    torch calls it made."""
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
        return local_trace if frame.f_code.co_filename == filename else None

    previous = sys.gettrace()
    sys.settrace(global_trace)
    try:
        with _TorchCalls() as calls:
            fn(*args, **kwargs)
    finally:
        sys.settrace(previous)
    return count, calls.count


def python_lines_run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Run ``fn(*args, **kwargs)`` and count the Python lines executed in ``fn``'s own source
    file (helpers defined beside it included; torch's and numpy's own code excluded)."""
    return _work(fn, *args, **kwargs)[0]


def assert_no_python_loop(
    fn: Callable[..., Any],
    make_args: Callable[[int], tuple[Any, ...]],
    *,
    sizes: tuple[int, int] = (8, 200),
    what: str = "function",
) -> None:
    """Check that ``fn`` does not loop in Python over its data: neither the Python lines it
    runs in its own file nor the torch functions it calls may grow with the input size.
    ``make_args(n)`` builds arguments of size ``n``.

    Lines catch a loop whose body is Python (``for``, ``while``, comprehensions, ``map`` with
    a lambda, recursion, a helper in the same file); torch calls catch one driven from C
    (``map(torch.mul, a, b)``, ``functools.reduce(torch.add, rows)``, ``sum(x)``).
    """
    small, large = sizes
    lines_small, calls_small = _work(fn, *make_args(small))
    lines_large, calls_large = _work(fn, *make_args(large))
    if lines_large > lines_small or calls_large > calls_small:
        raise _fail(
            what,
            "loops in Python over the data: the work grows with the input.\n"
            f"  size {small}: {lines_small} Python lines run, {calls_small} torch calls\n"
            f"  size {large}: {lines_large} Python lines run, {calls_large} torch calls\n"
            "  A for or while loop, a comprehension, map, filter, functools.reduce or\n"
            "  sum() over a tensor does that. Replace it with tensor operations\n"
            "  (broadcasting, indexing, reductions) so the work happens inside torch.",
            lines_small=lines_small,
            lines_large=lines_large,
            torch_calls_small=calls_small,
            torch_calls_large=calls_large,
        )
