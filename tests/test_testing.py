"""mlab.testing: every helper raises on a difference, and its message says what and where."""

from __future__ import annotations

import functools
import math
import operator
import sys
import traceback

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mlab.errors import MismatchError
from mlab.testing import (
    assert_close,
    assert_equal,
    assert_no_python_loop,
    assert_not_shares_storage,
    assert_raises,
    assert_shape,
    assert_shares_storage,
    assert_unchanged,
    case,
    chi_square_p_value,
    describe,
    expect,
    python_lines_run,
    randint,
    randn,
)


def mismatch(actual, expected, **kwargs) -> MismatchError:
    """The error assert_close raises; fails the test if it raises nothing."""
    with pytest.raises(MismatchError) as info:
        assert_close(actual, expected, **kwargs)
    return info.value


# ----------------------------------------------------------------------------------------------
# Shapes, dtypes, devices


def test_shape_mismatch_names_both_shapes_and_hints_a_reshape() -> None:
    err = mismatch(torch.zeros(3, 2), torch.zeros(2, 3))
    assert "shape (3, 2) but expected (2, 3)" in str(err)
    assert "same number of elements" in str(err)
    assert err.details == {"actual_shape": (3, 2), "expected_shape": (2, 3)}


def test_shape_mismatch_hints_keepdim_and_squeeze() -> None:
    extra = mismatch(torch.zeros(3, 1, 4), torch.zeros(3, 5))
    assert "an extra size-1 dimension" in str(extra)
    missing = mismatch(torch.zeros(3, 5), torch.zeros(3, 1, 4))
    assert "a size-1 dimension is missing" in str(missing)
    plain = mismatch(torch.zeros(3), torch.zeros(4))
    assert "shape (3,) but expected (4,)" in str(plain)
    assert "same number" not in str(plain)


def test_dtype_mismatch_is_named_and_can_be_switched_off() -> None:
    err = mismatch(torch.zeros(2, dtype=torch.float64), torch.zeros(2))
    assert "dtype torch.float64 but expected torch.float32" in str(err)
    assert err.details["actual_dtype"] == "torch.float64"
    assert_close(torch.zeros(2, dtype=torch.float64), torch.zeros(2), check_dtype=False)


def test_device_mismatch_is_named_without_a_gpu() -> None:
    # The meta device needs no accelerator but is a different device all the same.
    err = mismatch(torch.empty(2, device="meta"), torch.zeros(2))
    assert "on device meta but expected cpu" in str(err)


def test_a_non_tensor_where_a_tensor_is_expected() -> None:
    err = mismatch([1.0, 2.0], torch.tensor([1.0, 2.0]))
    assert "expected a tensor like Tensor(shape=(2,)" in str(err)
    assert "got list" in str(err)


def test_numpy_arrays_compare_like_tensors() -> None:
    assert_close(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    err = mismatch(np.array([1.0, 2.0]), np.array([1.0, 3.0]))
    assert "index [1]: expected 3, got 2" in str(err)


# ----------------------------------------------------------------------------------------------
# Values


def test_first_mismatch_index_expected_got_and_errors() -> None:
    expected = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    actual = expected.clone()
    actual[1, 2] = 100.0
    actual[2, 3] = 10.5
    err = mismatch(actual, expected)
    text = str(err)
    assert text.startswith("output: 2 of 12 values differ (rtol=1.3e-06, atol=1e-05).")
    assert "first mismatch at index [1, 2]: expected 6, got 100" in text
    assert "max abs error 94 at index [1, 2]" in text
    assert "max rel error 15.7" in text
    assert "along dim 0, only these indices differ: 1, 2" in text
    assert err.details["n_mismatched"] == 2
    assert err.details["first_index"] == "[1, 2]"
    assert err.details["expected_value"] == 6.0
    assert err.details["actual_value"] == 100.0
    assert err.details["max_abs_error"] == pytest.approx(94.0)
    assert err.details["max_rel_error"] == pytest.approx(94.0 / 6.0)


def test_relative_error_against_zero_is_infinite() -> None:
    err = mismatch(torch.tensor([0.0, 2.0]), torch.tensor([1e-3, 0.0]))
    assert "max abs error 2 at index [1]; max rel error inf" in str(err)
    assert err.details["max_rel_error"] == math.inf


def test_scalar_tensor_mismatch_index_is_empty_tuple() -> None:
    err = mismatch(torch.tensor(1.0), torch.tensor(2.0))
    assert "first mismatch at index (): expected 2, got 1" in str(err)


def test_within_tolerance_passes_and_tolerances_can_be_given() -> None:
    x = torch.linspace(-3, 3, 50)
    assert_close(x * (1 + 1e-7), x)
    with pytest.raises(MismatchError):
        assert_close(x + 1e-3, x)
    assert_close(x + 1e-3, x, atol=2e-3)
    err = mismatch(x + 1e-3, x, atol=1e-4, rtol=0.0)
    assert "(rtol=0, atol=0.0001)" in str(err)


def test_nan_and_inf_are_reported() -> None:
    expected = torch.tensor([1.0, 2.0, 3.0, 4.0])
    actual = torch.tensor([1.0, float("nan"), float("inf"), 4.0])
    err = mismatch(actual, expected)
    text = str(err)
    assert "2 of 4 values differ" in text
    assert "first mismatch at index [1]: expected 2, got nan" in text
    assert "non-finite values: got 1 NaN, 1 inf; expected none" in text


def test_nan_equals_nan_only_when_asked() -> None:
    x = torch.tensor([1.0, float("nan")])
    err = mismatch(x, x.clone())
    assert "non-finite values: got 1 NaN; expected 1 NaN" in str(err)
    assert_close(x, x.clone(), equal_nan=True)


def test_integers_compare_exactly_floats_with_tolerance() -> None:
    big = torch.tensor([10**9, 5])
    err = mismatch(big + torch.tensor([1, 0]), big)
    assert "1 of 2 values differ." in str(err)
    assert "rtol" not in str(err)  # no tolerance for integers
    assert "expected 1000000000, got 1000000001" in str(err)
    # the same relative difference in floats is within tolerance
    f = torch.tensor([1e9, 5.0], dtype=torch.float64)
    assert_close(f + torch.tensor([1.0, 0.0], dtype=torch.float64), f, rtol=1e-7)
    # Python numbers: ints exactly, floats with tolerance
    assert_close(3, 3)
    assert "expected 3, got 4" in str(mismatch(4, 3))
    assert "(float)" in str(mismatch(3.0, 3))
    assert_close(1.0 + 1e-9, 1.0)
    assert "expected 1, got 1.01" in str(mismatch(1.01, 1.0))
    with pytest.raises(MismatchError, match="expected True, got False"):
        assert_equal(torch.tensor([True, False]).all().item(), True)


def test_bool_tensors_report_the_index() -> None:
    err = mismatch(torch.tensor([True, True]), torch.tensor([True, False]))
    assert "first mismatch at index [1]: expected False, got True" in str(err)


def test_assert_equal_has_no_tolerance() -> None:
    x = torch.tensor([1.0, 2.0])
    assert_close(x + 1e-7, x)
    with pytest.raises(MismatchError, match=r"\(rtol=0, atol=0\)"):
        assert_equal(x + 1e-7, x)
    assert_equal(x.clone(), x)


def test_empty_tensors_of_the_same_shape_are_equal() -> None:
    assert_close(torch.zeros(0, 3), torch.ones(0, 3))


# ----------------------------------------------------------------------------------------------
# Nested structures


def test_nested_tuples_lists_and_dicts_name_the_path() -> None:
    expected = (torch.zeros(2), [torch.ones(3), {"w": torch.ones(1), "b": 2}])
    good = (torch.zeros(2), [torch.ones(3), {"w": torch.ones(1), "b": 2}])
    assert_close(good, expected)
    bad = (torch.zeros(2), [torch.ones(3), {"w": torch.ones(1) * 2, "b": 2}])
    assert str(mismatch(bad, expected)).startswith("output[1][1]['w']: 1 of 1 values differ")
    bad_shape = (torch.zeros(3), [torch.ones(3), {"w": torch.ones(1), "b": 2}])
    assert str(mismatch(bad_shape, expected)).startswith("output[0]: shape (3,)")
    bad_int = (torch.zeros(2), [torch.ones(3), {"w": torch.ones(1), "b": 3}])
    assert "output[1][1]['b']: expected 2, got 3" in str(mismatch(bad_int, expected))


def test_structure_mismatches() -> None:
    assert "2 items but expected 3" in str(mismatch((1, 2), (1, 2, 3)))
    assert "expected a tuple of 2 items, got int" in str(mismatch(5, (1, 2)))
    keys = str(mismatch({"a": 1, "c": 3}, {"a": 1, "b": 2}))
    assert keys == (
        "output: keys differ: 1 missing, 1 unexpected (2 expected, 2 given)\n"
        "  missing (1): 'b'\n"
        "  unexpected (1): 'c'"
    )
    assert "expected a mapping, got list" in str(mismatch([1], {"a": 1}))
    assert_close(torch.Size([2, 3]), (2, 3))
    assert "output[1]: expected 3, got 4" in str(mismatch((2, 4), torch.Size([2, 3])))


def test_what_names_the_value() -> None:
    err = mismatch(torch.zeros(2), torch.ones(2), what="grad of x")
    assert str(err).startswith("grad of x: ")


def test_assert_shape() -> None:
    assert_shape(torch.zeros(2, 3), (2, 3))
    with pytest.raises(MismatchError, match=r"shape \(3, 2\) but expected \(2, 3\)"):
        assert_shape(torch.zeros(3, 2), (2, 3))
    with pytest.raises(MismatchError, match="expected a tensor of shape"):
        assert_shape([1, 2], (2,))


def test_expect() -> None:
    expect(True, "never shown")
    with pytest.raises(MismatchError, match="the thing was wrong"):
        expect(False, "the thing was wrong")


def test_describe() -> None:
    text = describe(torch.zeros(2, 3).t())
    assert text == (
        "Tensor(shape=(3, 2), dtype=float32, stride=(1, 3) non-contiguous, "
        "values=[0, 0, 0, 0, 0, 0])"
    )
    assert "empty" in describe(torch.zeros(0))
    assert "requires_grad=True" in describe(torch.zeros(1, requires_grad=True))
    assert describe((1,)) == "(1,)"
    assert describe(list(range(10))).endswith(", ...]")


# ----------------------------------------------------------------------------------------------
# case(): naming the input


def test_case_adds_a_note_that_survives_reraise() -> None:
    x = torch.arange(6).reshape(2, 3)
    with pytest.raises(MismatchError) as info:
        try:
            with case("a 2x3 matrix", x=x):
                assert_close(x.float(), torch.zeros(2, 3))
        except MismatchError:
            raise  # a check that catches and re-raises must not lose the note
    err = info.value
    notes = "\n".join(err.__notes__)
    assert "while checking: a 2x3 matrix" in notes
    assert "x = Tensor(shape=(2, 3), dtype=int64, values=[0, 1, 2, 3, 4, 5])" in notes
    assert "while checking: a 2x3 matrix" in "".join(traceback.format_exception(err))
    assert err.details["n_mismatched"] == 5  # the numbers are still there


def test_case_notes_any_exception_and_passes_quietly() -> None:
    with case("nothing wrong"):
        pass
    with pytest.raises(ZeroDivisionError) as info, case("dividing", n=0):
        _ = 1 / 0
    assert info.value.__notes__ == ["while checking: dividing\n  n = 0"]


# ----------------------------------------------------------------------------------------------
# Storage


def test_assert_shares_storage() -> None:
    x = torch.arange(12.0).reshape(3, 4)
    assert_shares_storage(x.t(), x)
    assert_shares_storage(x[1:, ::2], x)
    with pytest.raises(MismatchError, match="is a copy, but it should be a view"):
        assert_shares_storage(x.t().contiguous(), x)
    with pytest.raises(MismatchError, match="expected a tensor"):
        assert_shares_storage(x.tolist(), x)


def test_assert_not_shares_storage() -> None:
    x = torch.arange(12.0).reshape(3, 4)
    assert_not_shares_storage(x.clone(), x)
    with pytest.raises(MismatchError, match="shares storage with the input"):
        assert_not_shares_storage(x[0], x)
    with pytest.raises(MismatchError, match="expected a tensor"):
        assert_not_shares_storage(None, x)


# ----------------------------------------------------------------------------------------------
# assert_raises


def _needs_positive(n: int) -> int:
    if n <= 0:
        raise ValueError(f"n={n} should be positive")
    return n


def test_assert_raises_returns_the_error() -> None:
    err = assert_raises(_needs_positive, -1, exc=ValueError, match="n=-1")
    assert isinstance(err, ValueError)


def test_assert_raises_when_nothing_is_raised() -> None:
    with pytest.raises(MismatchError, match=r"call: should raise ValueError but returned 3"):
        assert_raises(_needs_positive, 3, exc=ValueError)
    with pytest.raises(MismatchError, match="should raise ValueError or TypeError"):
        assert_raises(_needs_positive, 3, exc=(ValueError, TypeError))


def test_assert_raises_with_the_wrong_message() -> None:
    with pytest.raises(MismatchError) as info:
        assert_raises(_needs_positive, 0, exc=ValueError, match="negative", what="check(n=0)")
    text = str(info.value)
    assert text.startswith("check(n=0): raised ValueError('n=0 should be positive')")
    assert "should mention 'negative'" in text


def test_assert_raises_with_the_wrong_exception() -> None:
    with pytest.raises(MismatchError) as info:
        assert_raises(_needs_positive, 0, exc=TypeError)
    assert str(info.value) == (
        "call: raised ValueError('n=0 should be positive') but should raise TypeError"
    )
    assert isinstance(info.value.__cause__, ValueError)


def _unfinished(n: int) -> int:
    raise NotImplementedError("not started")


def test_assert_raises_lets_not_implemented_through() -> None:
    # an unfinished exercise must be reported "not started", not "raised the wrong error"
    with pytest.raises(NotImplementedError):
        assert_raises(_unfinished, 0, exc=ValueError)
    assert isinstance(assert_raises(_unfinished, 0, exc=NotImplementedError), NotImplementedError)


# ----------------------------------------------------------------------------------------------
# Python loops


def _vectorised(x: torch.Tensor) -> torch.Tensor:
    y = x * 2
    return y.cumsum(0)


def _for_loop(x: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(x)
    for i in range(len(x)):
        out[i] = x[i] * 2
    return out


def _comprehension(x: torch.Tensor) -> torch.Tensor:
    return torch.stack([v * 2 for v in x])


def _while_loop(x: torch.Tensor) -> torch.Tensor:
    i, total = 0, x.new_zeros(())
    while i < len(x):
        total = total + x[i]
        i += 1
    return total


def _map_lambda(x: torch.Tensor) -> torch.Tensor:
    return torch.stack(list(map(lambda v: v * 2, x)))


def _recursive(x: torch.Tensor) -> torch.Tensor:
    if len(x) == 0:
        return x.new_zeros(())
    return x[0] + _recursive(x[1:])


def _helper_loop(x: torch.Tensor) -> torch.Tensor:
    return _for_loop(x).sum()


def _make_args(n: int) -> tuple[torch.Tensor]:
    return (torch.arange(n, dtype=torch.float32),)


def test_vectorised_code_passes() -> None:
    assert_no_python_loop(_vectorised, _make_args)
    assert python_lines_run(_vectorised, *_make_args(5)) == 2


@pytest.mark.parametrize(
    "fn", [_for_loop, _comprehension, _while_loop, _map_lambda, _recursive, _helper_loop]
)
def test_python_loops_are_caught(fn) -> None:
    with pytest.raises(MismatchError) as info:
        assert_no_python_loop(fn, _make_args, sizes=(4, 40), what=fn.__name__)
    text = str(info.value)
    assert text.startswith(f"{fn.__name__}: loops in Python over the data")
    assert "  size 40: " in text
    assert max(len(line) for line in text.splitlines()[1:]) <= 76  # inside a panel at 80
    assert info.value.details["lines_large"] > info.value.details["lines_small"]


def test_python_lines_run_restores_the_previous_trace() -> None:
    calls = []

    def outer_trace(frame, event, arg):
        calls.append(event)
        return None

    previous = sys.gettrace()
    sys.settrace(outer_trace)
    try:
        python_lines_run(_vectorised, torch.zeros(3))
        assert sys.gettrace() is outer_trace
        with pytest.raises(ZeroDivisionError):
            python_lines_run(lambda: 1 / 0)
        assert sys.gettrace() is outer_trace
    finally:
        sys.settrace(previous)


def test_python_lines_run_needs_a_python_function() -> None:
    with pytest.raises(TypeError, match="not a Python function"):
        python_lines_run(torch.sum, torch.zeros(3))


# ----------------------------------------------------------------------------------------------
# Agreement with torch.testing.assert_close


def _torch_verdict(actual: torch.Tensor, expected: torch.Tensor) -> bool:
    try:
        torch.testing.assert_close(actual, expected)
    except AssertionError:
        return False
    return True


def _our_verdict(actual: torch.Tensor, expected: torch.Tensor) -> bool:
    try:
        assert_close(actual, expected)
    except MismatchError:
        return False
    return True


_SPECIAL = [0.0, -0.0, float("nan"), float("inf"), float("-inf")]


@st.composite
def tensor_pairs(draw: st.DrawFn, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    n = draw(st.integers(0, 6))
    # values of every magnitude from 1e-4 to 1e4 (tolerances are relative, then absolute)
    finite = st.builds(lambda m, e: m * 10.0**e, st.floats(-9.99, 9.99), st.integers(-4, 3))
    value = st.integers(0, 9).flatmap(lambda i: st.sampled_from(_SPECIAL) if i == 0 else finite)
    values = draw(st.lists(value, min_size=n, max_size=n))
    expected = torch.tensor(values, dtype=dtype)
    # torch.testing's default tolerances for the dtype
    rtol, atol = {torch.float16: (1e-3, 1e-5), torch.float32: (1.3e-6, 1e-5)}.get(
        dtype, (1e-7, 1e-7)
    )
    # Move each value by a multiple of the difference allowed there, inside (|k| < 1) or out,
    # or by a few units in the last place (float16's tolerance is one or two of them).
    near = st.floats(0.5, 1.5) | st.floats(-1.5, -0.5)  # where a wrong tolerance shows
    ks = near | st.floats(-3, 3) | st.sampled_from([0.0, 100.0, -100.0])
    if draw(st.booleans()):
        scale = torch.tensor(draw(st.lists(ks, min_size=n, max_size=n)), dtype=torch.float64)
        allowed = atol + rtol * expected.double().abs()
        actual = (expected.double() + scale * allowed).to(dtype)
    else:
        bits = {torch.float16: torch.int16, torch.float32: torch.int32}.get(dtype, torch.int64)
        ulps = draw(st.lists(st.integers(-30, 30), min_size=n, max_size=n))
        actual = (expected.view(bits) + torch.tensor(ulps, dtype=bits)).view(dtype)
    if draw(st.integers(0, 4)) == 0 and n:
        actual[draw(st.integers(0, n - 1))] = draw(st.sampled_from(_SPECIAL))
    if draw(st.integers(0, 9)) == 0:
        actual = actual.to(torch.float64 if dtype != torch.float64 else torch.float32)
    if draw(st.integers(0, 9)) == 0 and n > 1:
        actual = actual[:-1]
    return actual, expected


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@settings(max_examples=250, deadline=None)
@given(data=st.data())
def test_verdict_agrees_with_torch_testing(dtype: torch.dtype, data: st.DataObject) -> None:
    actual, expected = data.draw(tensor_pairs(dtype))
    assert _our_verdict(actual, expected) == _torch_verdict(actual, expected), (actual, expected)


@functools.cache
def _boundary(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every value on a grid, moved by 0.5 to 1.5 allowed differences and by a few ulps:
    (actual, expected, torch.testing's verdict on each element alone). Cached: torch's
    verdicts do not depend on mlab, and the mutation run (scripts/mutate_testing.py) calls
    the test below once per mutant."""
    rtol, atol = {torch.float16: (1e-3, 1e-5), torch.float32: (1.3e-6, 1e-5)}.get(
        dtype, (1e-7, 1e-7)
    )
    mags = torch.logspace(-4, 4, 9, dtype=torch.float64)
    grid = torch.cat([torch.zeros(1, dtype=torch.float64), mags * 1.37, -mags * 1.73])
    ks = torch.linspace(0.5, 1.5, 41, dtype=torch.float64)
    expected = grid.repeat_interleave(len(ks)).to(dtype)
    moved = expected.double() + ks.repeat(len(grid)) * (atol + rtol * expected.double().abs())
    bits = {torch.float16: torch.int16, torch.float32: torch.int32}.get(dtype, torch.int64)
    steps = torch.arange(-12, 13, dtype=bits)
    e2 = grid.to(dtype).repeat_interleave(len(steps))
    stepped = (e2.view(bits) + steps.repeat(len(grid))).view(dtype)
    actual = torch.cat([moved.to(dtype), stepped])
    expected = torch.cat([expected, e2])
    verdicts = [_torch_verdict(a, e) for a, e in zip(actual, expected, strict=True)]
    return actual, expected, torch.tensor(verdicts)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_verdict_agrees_with_torch_testing_across_the_boundary(dtype: torch.dtype) -> None:
    """Each element of the grid gets the same verdict from both: every one torch passes
    passes here, every one it fails is counted as a mismatch. A tolerance off by 5% fails
    this."""
    actual, expected, torch_passes = _boundary(dtype)
    assert set(torch_passes.tolist()) == {True, False}
    assert _our_verdict(actual[torch_passes], expected[torch_passes])
    err = mismatch(actual[~torch_passes], expected[~torch_passes])
    assert err.details["n_mismatched"] == int((~torch_passes).sum())


def test_verdict_agreement_is_not_vacuous() -> None:
    """The sample above holds both verdicts: each side of the boundary."""
    e = torch.tensor([1.0, -2.0, 0.0])
    inside = e + 0.4 * (1e-5 + 1.3e-6 * e.abs())
    outside = e + 3.0 * (1e-5 + 1.3e-6 * e.abs())
    assert _our_verdict(inside, e) and _torch_verdict(inside, e)
    assert not _our_verdict(outside, e) and not _torch_verdict(outside, e)
    assert math.isnan(
        float(mismatch(torch.tensor([math.nan]), torch.tensor([1.0])).details["actual_value"])
    )


# ----------------------------------------------------------------------------------------------
# Seeded inputs, assert_unchanged, chi_square_p_value


def test_seeded_inputs_are_reproducible_and_independent_of_global_state() -> None:
    torch.manual_seed(123)
    a = randn(3, 4, seed=7)
    torch.manual_seed(456)
    assert torch.equal(a, randn(3, 4, seed=7))
    assert not torch.equal(a, randn(3, 4, seed=8))
    assert randn(2, seed=0, dtype=torch.float64).dtype == torch.float64
    ints = randint(-3, 3, 1000, seed=1)
    assert ints.dtype == torch.int64
    assert int(ints.min()) == -3
    assert int(ints.max()) == 2


def test_assert_unchanged_catches_in_place_writes_and_accepts_nan() -> None:
    x = torch.tensor([1.0, float("nan"), 3.0])
    assert_unchanged(x, x.clone())
    before = x.clone()
    x[0] = 1.0 + 1e-7
    with pytest.raises(MismatchError, match="modified in place"):
        assert_unchanged(x, before)


def test_chi_square_p_value_matches_closed_forms() -> None:
    # With 3 classes (df = 2) the chi-square survival function is exp(-stat / 2); with 2
    # classes (df = 1) it is erfc(sqrt(stat / 2)).
    counts = torch.tensor([30, 50, 20])
    probs = torch.tensor([0.25, 0.5, 0.25])
    expected_counts = [25.0, 50.0, 25.0]
    stat = sum((o - e) ** 2 / e for o, e in zip([30, 50, 20], expected_counts, strict=True))
    assert math.isclose(chi_square_p_value(counts, probs), math.exp(-stat / 2), rel_tol=1e-12)

    counts2 = torch.tensor([40, 60])
    probs2 = torch.tensor([0.5, 0.5])
    stat2 = (40 - 50) ** 2 / 50 + (60 - 50) ** 2 / 50
    assert math.isclose(
        chi_square_p_value(counts2, probs2), math.erfc(math.sqrt(stat2 / 2)), rel_tol=1e-12
    )
    # classes of probability 0 are left out (their count must be checked separately)
    probs3 = torch.tensor([0.5, 0.0, 0.5])
    counts3 = torch.tensor([40, 0, 60])
    assert math.isclose(chi_square_p_value(counts3, probs3), chi_square_p_value(counts2, probs2))
    # a perfect fit has p = 1, an absurd one p close to 0
    assert chi_square_p_value(torch.tensor([25, 50, 25]), probs) == pytest.approx(1.0)
    assert chi_square_p_value(torch.tensor([100, 0, 0]), probs) < 1e-20


# ----------------------------------------------------------------------------------------------
# Error statistics agree with the verdict


def test_only_nan_mismatches_report_no_error_size() -> None:
    nan = float("nan")
    expected = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    err = mismatch(torch.tensor([1.0, nan, nan, nan, 5.0]), expected)
    text = str(err)
    assert "3 of 5 values differ" in text
    assert "max abs error" not in text  # the matching 1.0 and 5.0 would make it "0"
    assert "mismatches with NaN or inf on either side: 3 of 3\n" in text + "\n"
    assert "non-finite values: got 3 NaN; expected none" in text
    assert "max_abs_error" not in err.details
    assert err.details["n_nonfinite_mismatched"] == 3


def test_errors_are_measured_over_the_finite_mismatches() -> None:
    nan, inf = float("nan"), float("inf")
    expected = torch.tensor([1.0, 2.0, 3.0, 4.0, -inf])
    err = mismatch(torch.tensor([1.0, 2.5, nan, inf, -inf]), expected)
    text = str(err)
    assert "3 of 5 values differ" in text  # -inf == -inf matches, as in torch
    assert "max abs error 0.5 at index [1]; max rel error 0.25" in text
    assert "NaN or inf on either side: 2 of 3; errors measured on the rest" in text
    assert err.details["max_abs_error"] == 0.5
    assert err.details["n_nonfinite_mismatched"] == 2
    # NaN expected, a number given: no size either
    nan_expected = mismatch(torch.tensor([nan, 1.0]), torch.tensor([nan, 1.0]) * 0 + nan)
    assert "max abs error" not in str(nan_expected)


def test_integer_errors_are_exact_beyond_float64() -> None:
    # 2**60 + 1 and 2**60 are the same float64: measured there the error would read 0.
    expected = torch.tensor([2**60, 7])
    err = mismatch(expected + torch.tensor([1, 0]), expected)
    assert (
        "first mismatch at index [0]: expected 1152921504606846976, got 1152921504606846977"
        in str(err)
    )
    assert "max abs error 1 at index [0]; max rel error 8.67e-19" in str(err)
    assert err.details["max_abs_error"] == 1.0


def test_nearly_equal_floats_are_shown_with_enough_digits_to_differ() -> None:
    one = torch.tensor([1.0])
    err = mismatch(one + 1.2e-7, one, rtol=0.0, atol=0.0)
    assert "expected 1, got 1.00000012" in str(err)
    assert "expected 1, got 1.0000001" in str(mismatch(1.0000001, 1.0, rtol=0.0, atol=0.0))
    f64 = torch.tensor([1.0, 1.0 + 2**-52], dtype=torch.float64)
    f64 = mismatch(f64[1:], f64[:1], rtol=0.0, atol=0.0)
    assert "expected 1, got 1.0000000000000002" in str(f64)


# ----------------------------------------------------------------------------------------------
# Key mismatches: the missing and the unexpected, not every key


def _state_dict_keys() -> list[str]:
    net = torch.nn.Sequential(*[torch.nn.BatchNorm1d(2) for _ in range(20)])
    return list(net.state_dict())  # 0.weight, 0.bias, 0.running_mean, ..., 19.num_batches_tracked


def test_state_dict_key_mismatch_lists_only_the_differences() -> None:
    expected_keys = _state_dict_keys()
    assert len(expected_keys) == 100
    expected = dict.fromkeys(expected_keys, 0)
    rename = {"3.running_mean": "3.run_mean", "3.running_var": "3.run_var"}
    ours = {rename.get(k, k): v for k, v in expected.items() if k != "7.bias"}
    err = mismatch(ours, expected)
    assert str(err).splitlines() == [
        "output: keys differ: 3 missing, 2 unexpected (100 expected, 99 given)",
        "  missing (3): '3.running_mean', '3.running_var', '7.bias'",
        "  unexpected (2): '3.run_mean', '3.run_var'",
    ]
    assert err.details["missing"] == ["3.running_mean", "3.running_var", "7.bias"]
    assert err.details["unexpected"] == ["3.run_mean", "3.run_var"]


def test_many_missing_keys_are_capped_with_a_count_and_wrapped() -> None:
    expected = dict.fromkeys(_state_dict_keys(), 0)
    ours = {f"blocks.{k}": v for k, v in expected.items()}
    text = str(mismatch(ours, expected))
    lines = text.splitlines()
    assert lines[0] == "output: keys differ: 100 missing, 100 unexpected (100 expected, 100 given)"
    assert max(len(line) for line in lines[1:]) <= 76
    assert len(lines) <= 12
    assert lines[1].startswith("  missing (100): '0.weight', '0.bias', '0.running_mean', ")
    assert all(line.startswith("    '") for line in lines[2:] if "unexpected" not in line)
    assert "'1.num_batches_tracked', ... (90 more)" in text  # the tenth, then the count
    assert "'2.weight'" not in text
    assert "'blocks.1.num_batches_tracked', ... (90 more)" in text
    assert text.count("... (90 more)") == 2


def test_sorted_lists_of_key_names_report_missing_and_unexpected() -> None:
    expected_keys = sorted(_state_dict_keys())
    ours = sorted({*expected_keys, "fc.weight"} - {"0.bias", "9.running_var"})
    with pytest.raises(MismatchError) as info:
        assert_equal(ours, expected_keys, what="state dict keys")
    assert str(info.value).splitlines() == [
        "state dict keys: items differ: 2 missing, 1 unexpected (100 expected, 99 given)",
        "  missing (2): '0.bias', '9.running_var'",
        "  unexpected (1): 'fc.weight'",
    ]
    # the same names in another order, or repeated, are compared item by item
    assert "output[0]: expected 'a', got 'b'" in str(mismatch(("b", "a"), ("a", "b")))
    assert "3 items but expected 2" in str(mismatch(["a", "b", "b"], ["a", "b"]))


# ----------------------------------------------------------------------------------------------
# In-place changes: the value as it was, and what changed


def test_assert_unchanged_shows_the_input_before_and_what_changed() -> None:
    x = torch.arange(6.0)
    before = x.clone()
    x[1] = 10.0
    x[4] = -1.0
    with pytest.raises(MismatchError) as info:
        assert_unchanged(x, before, what="pred")
    lines = str(info.value).splitlines()
    assert lines == [
        "`pred` was modified in place: 2 of 6 values changed.",
        "  before: Tensor(shape=(6,), dtype=float32, values=[0, 1, 2, 3, 4, 5])",
        "  at index [1]: was 1, now 10",
        "  at index [4]: was 4, now -1",
        "  Never write into an argument: build a new tensor (torch.where, .clone()).",
    ]
    assert max(len(line) for line in lines) <= 76  # inside a rich panel at 80 columns
    assert info.value.details["changed"] == 2
    with pytest.raises(MismatchError) as info:
        assert_unchanged(x, before, what="the upstream gradient")
    assert str(info.value).startswith("the upstream gradient was modified in place: 2 of 6")


def _replace_in_place(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    x[mask] = 0.0
    return x


def test_in_place_write_under_case_is_named_once_with_the_inputs_listed_once() -> None:
    x = torch.arange(1.0, 5.0)
    mask = torch.tensor([False, True, False, True])
    before = x.clone()
    with pytest.raises(MismatchError) as info, case("a 4-vector", x=x, mask=mask):
        _replace_in_place(x, mask)
        assert_unchanged(x, before)
    text = "\n".join([str(info.value), *info.value.__notes__])
    assert text.splitlines() == [
        "`x` was modified in place: 2 of 4 values changed.",
        "  at index [1]: was 2, now 0",
        "  at index [3]: was 4, now 0",
        "  Never write into an argument: build a new tensor (torch.where, .clone()).",
        "while checking: a 4-vector",
        "  x = Tensor(shape=(4,), dtype=float32, values=[1, 2, 3, 4])",
        "  mask = Tensor(shape=(4,), dtype=bool, values=[False, True, False, True])",
    ]
    # An explicit name is kept; the case still lists the input, once.
    x2 = x.clone()
    with pytest.raises(MismatchError) as info, case("outer", y=x2), case("inner", k=1):
        x2.zero_()
        assert_unchanged(x2, before, what="upstream (a hook must not scale it)")
    text = "\n".join([str(info.value), *info.value.__notes__])
    assert text.startswith("upstream (a hook must not scale it) was modified in place")
    assert "before:" not in text
    assert "it now holds" not in text
    assert text.count("y = Tensor(shape=(4,), dtype=float32, values=[1, 0, 3, 0])") == 1
    # Once the case is over, the input is no longer named from it.
    with pytest.raises(MismatchError) as info:
        assert_unchanged(x, before)
    assert str(info.value).startswith("the input was modified in place: 2 of 4")
    assert "  before: Tensor(shape=(4,), dtype=float32, values=[1, 2, 3, 4])" in str(info.value)


def test_case_does_not_repeat_an_input_its_description_shows() -> None:
    with (
        pytest.raises(ZeroDivisionError) as info,
        case("shape (), stride=(4, 1), k=10", shape=(), stride=(4, 1), k=1, n=0),
    ):
        _ = 1 / 0
    assert info.value.__notes__ == [
        "while checking: shape (), stride=(4, 1), k=10\n  k = 1\n  n = 0"
    ]


def _unchanged_error(x: torch.Tensor, before: torch.Tensor) -> str:
    with pytest.raises(MismatchError) as info:
        assert_unchanged(x, before)
    return str(info.value)


def test_assert_unchanged_caps_the_list_and_names_nan_and_shape_changes() -> None:
    x = torch.zeros(3, 5)
    before = x.clone()
    x += 1
    text = _unchanged_error(x, before)
    assert "15 of 15 values changed" in text
    assert "at index [0, 0]: was 0, now 1" in text
    assert "at index [1, 4]: was 0, now 1" in text  # the tenth
    assert "[2, 0]" not in text
    assert "  ... and 5 more" in text
    y = torch.tensor([1.0, 2.0])
    y_before = y.clone()
    y[0] = float("nan")
    assert "at index [0]: was 1, now nan" in _unchanged_error(y, y_before)
    z = torch.zeros(2)
    z_before = z.clone()
    z.unsqueeze_(0)
    text = _unchanged_error(z, z_before)
    assert "was modified in place." in text
    assert "before: Tensor(shape=(2,)" in text
    assert "after:  Tensor(shape=(1, 2)" in text


def _writes_into(x: torch.Tensor) -> torch.Tensor:
    x[0] = 99.0
    return x * 2


def test_case_shows_a_tensor_as_it_was_given() -> None:
    x = torch.arange(4.0)
    with pytest.raises(MismatchError) as info, case("a 4-vector", x=x, k=2):
        assert_equal(_writes_into(x), torch.arange(4.0) * 2)
    note = info.value.__notes__[0]
    assert note.splitlines() == [
        "while checking: a 4-vector",
        "  x = Tensor(shape=(4,), dtype=float32, values=[0, 1, 2, 3])",
        "    changed in place by the code under check; it now holds",
        "    Tensor(shape=(4,), dtype=float32, values=[99, 1, 2, 3])",
        "  k = 2",
    ]


# ----------------------------------------------------------------------------------------------
# Types of Python numbers


def test_bool_and_int_differ() -> None:
    with pytest.raises(MismatchError, match=r"expected True \(bool\), got 1 \(int\)"):
        assert_equal(1, True)
    with pytest.raises(MismatchError, match=r"expected 1 \(int\), got True \(bool\)"):
        assert_equal(True, 1)
    with pytest.raises(MismatchError, match=r"expected 0 \(int\), got False \(bool\)"):
        assert_close(False, 0)
    assert_equal(np.bool_(True), True)
    assert_equal(torch.tensor([1, 2]).eq(1).any().item(), True)
    assert_close(True, 1, check_dtype=False)  # values only, as for tensors


def test_int_and_float_differ_in_assert_equal() -> None:
    with pytest.raises(MismatchError) as info:
        assert_equal(1.0, 1)
    assert str(info.value) == "output: expected 1 (int), got 1.0 (float)"
    assert info.value.details == {"expected_type": "int", "actual_type": "float"}
    with pytest.raises(MismatchError, match=r"expected 1\.0 \(float\), got 1 \(int\)"):
        assert_equal(1, 1.0)
    with pytest.raises(MismatchError, match=r"expected 3 \(int\), got 3\.0 \(float\) from Tensor"):
        assert_equal(torch.tensor(3.0), 3)
    assert_equal(np.int64(3), 3)
    assert_equal(np.float32(0.5), 0.5)
    assert_close(2, 2.0, check_dtype=False)
    assert_close(torch.tensor(2.0), 2.0)


# ----------------------------------------------------------------------------------------------
# Storage of empty tensors


def test_an_empty_copy_does_not_share_storage() -> None:
    empty = torch.zeros(0, 3)
    copy = empty.clone()
    assert not copy._is_view()  # torch's own word: a copy
    with pytest.raises(MismatchError, match="is a copy"):
        assert_shares_storage(copy, empty)
    assert_not_shares_storage(copy, empty)
    assert_not_shares_storage(torch.zeros(0), empty)


def test_empty_views_share_storage() -> None:
    empty = torch.zeros(0, 3)
    for view in (empty.t(), empty[:], empty.view(3, 0)):
        assert view._base is empty
        assert_shares_storage(view, empty)
        with pytest.raises(MismatchError, match="shares storage"):
            assert_not_shares_storage(view, empty)
    x = torch.arange(6.0)
    assert x[3:3]._base is x
    assert_shares_storage(x[3:3], x)
    assert_shares_storage(x.view(torch.int32), x)  # another dtype, the same memory
    # two tensors over the same memory share it, though neither is a view of the other
    a = np.arange(4.0)
    assert_shares_storage(torch.from_numpy(a), torch.from_numpy(a))


# ----------------------------------------------------------------------------------------------
# Loops driven from C


def _map_torch(x: torch.Tensor) -> torch.Tensor:
    return torch.stack(list(map(torch.mul, x, x)))


def _reduce(x: torch.Tensor) -> torch.Tensor:
    return functools.reduce(torch.add, x)


def _reduce_operator(x: torch.Tensor) -> torch.Tensor:
    return functools.reduce(operator.add, x)


def _builtin_sum(x: torch.Tensor) -> torch.Tensor:
    return sum(x, torch.zeros(()))


def _filter(x: torch.Tensor) -> torch.Tensor:
    return torch.stack([*filter(torch.is_nonzero, x), x[0]])


def _map_functional(x: torch.Tensor) -> torch.Tensor:
    return torch.stack(list(map(torch.nn.functional.relu, x)))


@pytest.mark.parametrize(
    "fn", [_map_torch, _reduce, _reduce_operator, _builtin_sum, _filter, _map_functional]
)
def test_loops_driven_from_c_are_caught(fn) -> None:
    assert python_lines_run(fn, *_make_args(4)) == python_lines_run(fn, *_make_args(40))
    with pytest.raises(MismatchError) as info:
        assert_no_python_loop(fn, _make_args, sizes=(4, 40), what=fn.__name__)
    text = str(info.value)
    assert text.startswith(f"{fn.__name__}: loops in Python over the data")
    assert "  size 4: 1 Python lines run, " in text
    assert max(len(line) for line in text.splitlines()) <= 80
    details = info.value.details
    assert details["lines_small"] == details["lines_large"] == 1
    assert details["torch_calls_large"] >= details["torch_calls_small"] + 36


# ----------------------------------------------------------------------------------------------
# Every message path: `what` first, then the facts (pinned by scripts/mutate_testing.py)


def _message(fn, *args, **kwargs) -> str:
    with pytest.raises(MismatchError) as info:
        fn(*args, **kwargs)
    return str(info.value)


def test_every_message_starts_with_what_it_names() -> None:
    x = torch.zeros(2)
    failing = [
        (assert_close, (torch.zeros(2), torch.zeros(2, dtype=torch.float64))),
        (assert_close, (torch.empty(2, device="meta"), x)),
        (assert_close, ([0.0, 0.0], x)),
        (assert_close, ([1], {"a": 1})),
        (assert_close, (5, (1, 2))),
        (assert_close, ((1, 2), (1, 2, 3))),
        (assert_close, ("a", 1.0)),
        (assert_close, (1.5, 1.0)),
        (assert_close, ("a", "b")),
        (assert_shape, ([1], (1,))),
        (assert_shape, (x, (3,))),
        (assert_shares_storage, (None, x)),
        (assert_shares_storage, (x.clone(), x)),
        (assert_not_shares_storage, (None, x)),
        (assert_not_shares_storage, (x, x)),
    ]
    for fn, args in failing:
        text = _message(fn, *args, what="the thing")
        assert text.startswith("the thing: "), (fn.__name__, args, text)
        assert "the thing" not in text[len("the thing: ") :]
    # an in-place write reads as a sentence: "`x` was modified in place"
    text = _message(assert_unchanged, x.unsqueeze(0), x, what="the thing")
    assert text.startswith("the thing was modified in place.\n")
    assert "the thing" not in text[len("the thing") :]


def test_the_fallback_comparison_raises_on_strings_none_and_objects() -> None:
    assert_equal("relu", "relu")
    assert_equal(None, None)
    assert _message(assert_equal, "gelu", "relu") == "output: expected 'relu', got 'gelu'"
    assert _message(assert_close, 0, None) == "output: expected None, got 0"
    assert _message(assert_close, object(), "x").startswith("output: expected 'x', got <object")
    # == that returns an array (or raises) is a difference, not a crash
    text = _message(assert_close, np.array([1, 2]), None)
    assert text == "output: expected None, got ndarray(shape=(2,), dtype=int64)"


def test_mappings_compare_their_values_with_tolerance() -> None:
    assert_close({"w": torch.ones(3), "lr": 0.1 + 1e-9}, {"w": torch.ones(3), "lr": 0.1})
    assert_close([torch.ones(2), 1.0 + 1e-9], (torch.ones(2), 1.0))


def test_only_missing_or_only_unexpected_keys() -> None:
    missing = _message(assert_close, {"a": 1}, {"a": 1, "b": 2})
    assert missing == (
        "output: keys differ: 1 missing, 0 unexpected (2 expected, 1 given)\n  missing (1): 'b'"
    )
    extra = _message(assert_close, {"a": 1, "b": 2}, {"a": 1})
    assert extra == (
        "output: keys differ: 0 missing, 1 unexpected (1 expected, 2 given)\n  unexpected (1): 'b'"
    )


def test_name_lists_wrap_exactly_at_76_columns_and_never_split_a_name() -> None:
    # "  missing (10): " is 16 columns; each name below is 'k0'..'k9' plus padding.
    ten = [f"k{i}" for i in range(10)]
    text = _message(assert_close, {}, dict.fromkeys(ten, 0))
    assert "(10): 'k0', 'k1'" in text
    assert "more" not in text  # ten names: all of them, no count
    # a first line of exactly 76 columns (what a rich panel at 80 leaves) stays one line; 77 wraps
    for width, lines in ((76, 1), (77, 2)):
        name = "n" * (width - len("  missing (2): ''") - len(", 'b'"))
        text = _message(assert_close, {}, {name: 0, "b": 0}).splitlines()[1:]
        assert len(text) == lines, (width, text)
        assert max(len(line) for line in text) <= 76 if lines == 2 else len(text[0]) == 76
    long = "layer-" + "x" * 60 + "-weight-with-many-hyphens"
    text = _message(assert_close, {}, {long: 0, "b": 0})
    assert f"'{long}'" in text  # not cut at 80 columns, nor at its hyphens


def test_describe_every_kind_of_value() -> None:
    assert (
        describe(torch.empty(3, device="meta")) == "Tensor(shape=(3,), dtype=float32, device=meta)"
    )
    assert describe(torch.eye(2).to_sparse()) == (
        "Tensor(shape=(2, 2), dtype=float32, layout=sparse_coo)"
    )
    assert describe(torch.tensor([1 + 2j, 0.5 - 1j])) == (
        "Tensor(shape=(2,), dtype=complex64, values=[1+2j, 0.5-1j])"
    )
    assert describe(torch.arange(7)) == (
        "Tensor(shape=(7,), dtype=int64, values=[0, 1, 2, 3, 4, 5, ...])"
    )
    assert describe(torch.arange(6)) == "Tensor(shape=(6,), dtype=int64, values=[0, 1, 2, 3, 4, 5])"
    assert describe(torch.zeros(1_000_000, dtype=torch.int8)).endswith(
        "values=[0, 0, 0, 0, 0, 0, ...])"
    )
    assert describe(torch.zeros(1_000_001, dtype=torch.int8)) == (
        "Tensor(shape=(1000001,), dtype=int8)"
    )
    assert describe(np.zeros((2, 3))) == "ndarray(shape=(2, 3), dtype=float64)"
    assert describe(list(range(7))) == "[0, 1, 2, 3, 4, 5, ...]"
    assert describe(list(range(6))) == "[0, 1, 2, 3, 4, 5]"
    assert describe(list(range(5))) == "[0, 1, 2, 3, 4]"
    assert describe([1]) == "[1]"
    assert describe(0.1 + 0.2) == "0.3"
    assert describe(True) == "True"
    assert describe("a" * 78) == repr("a" * 78)  # 80 columns: shown whole
    assert describe("a" * 79) == "'" + "a" * 76 + "..."
    assert describe("a" * 50 + "b" * 50) == "'" + "a" * 50 + "b" * 26 + "..."


def test_shape_hints_only_where_they_apply() -> None:
    for actual, expected in [((2, 3, 4), (5, 6)), ((5, 6), (2, 3, 4)), ((1, 5), (3, 4))]:
        text = _message(assert_close, torch.zeros(actual), torch.zeros(expected))
        assert text == f"output: shape {actual} but expected {expected}", text


def test_complex_values_are_measured_with_their_imaginary_part() -> None:
    one = torch.tensor([1 + 1j])
    err = mismatch(one + 2j, one)
    assert "expected 1+1j, got 1+3j" in str(err)
    assert err.details["max_abs_error"] == pytest.approx(2.0)
    against_real = mismatch(torch.tensor([1 + 1j]), torch.tensor([1.0]), check_dtype=False)
    assert against_real.details["max_abs_error"] == pytest.approx(1.0)


def test_along_dim_0_lists_at_most_eight_rows_and_only_when_some_match() -> None:
    def rows_line(n_rows: int, bad: list[int]) -> list[str]:
        expected = torch.zeros(n_rows, 3)
        actual = expected.clone()
        actual[bad, 1] = 1.0
        return [line for line in str(mismatch(actual, expected)).splitlines() if "dim 0" in line]

    assert rows_line(9, list(range(8))) == [
        "  along dim 0, only these indices differ: 0, 1, 2, 3, 4, 5, 6, 7"
    ]
    assert rows_line(10, list(range(9))) == [
        "  along dim 0, only these indices differ: 0, 1, 2, 3, 4, 5, 6, 7, ..."
    ]
    assert rows_line(4, [0, 1, 2, 3]) == []  # every row differs: nothing to single out
    assert rows_line(4, [2]) == ["  along dim 0, only these indices differ: 2"]
    vector = torch.zeros(5)
    text = str(mismatch(vector + torch.tensor([0, 0, 1.0, 0, 0]), vector))
    assert "along dim 0, only these indices differ: 2" in text
    assert "NaN or inf" not in text  # no non-finite mismatch, no line about them


def test_python_numbers_nan_and_equal_nan() -> None:
    nan = float("nan")
    assert_close(nan, nan, equal_nan=True)
    for actual, expected, equal_nan in [(nan, nan, False), (nan, 1.0, True), (1.0, nan, True)]:
        text = _message(assert_close, actual, expected, equal_nan=equal_nan)
        assert text.startswith("output: expected "), text
    assert _message(assert_close, nan, 1.0).startswith("output: expected 1, got nan")
    assert _message(assert_close, "1.0", 1.0) == "output: expected a number like 1.0, got '1.0'"
    assert_equal(10**400, 10**400)  # ints never go through float
    assert "expected 2, got 3" in _message(assert_equal, 3, 2)


def test_shares_storage_over_one_byte() -> None:
    a = np.zeros(1, dtype=np.uint8)
    assert_shares_storage(torch.from_numpy(a), torch.from_numpy(a))
    with pytest.raises(MismatchError):
        assert_not_shares_storage(torch.from_numpy(a), torch.from_numpy(a))


def test_assert_unchanged_lists_ten_changes_without_a_count() -> None:
    x = torch.zeros(10)
    before = x.clone()
    x += 1
    text = _unchanged_error(x, before)
    assert "at index [9]: was 0, now 1" in text
    assert "more" not in text


def _sum_of_floats(x: torch.Tensor) -> torch.Tensor:
    total = 0.0
    for v in x.tolist():
        total += v
    return torch.tensor(total)


def test_a_loop_over_python_numbers_is_caught_by_its_lines() -> None:
    with pytest.raises(MismatchError) as info:
        assert_no_python_loop(_sum_of_floats, _make_args, sizes=(4, 40))
    details = info.value.details
    assert details["torch_calls_small"] == details["torch_calls_large"]
    assert details["lines_large"] > details["lines_small"]


def test_chi_square_p_value_matches_scipy() -> None:
    from scipy import stats

    g = torch.Generator().manual_seed(0)
    for k in (2, 3, 7):
        weights = torch.rand(k, generator=g, dtype=torch.float64) + 0.1  # not normalised
        counts = torch.randint(5, 60, (k,), generator=g)
        expected = (weights / weights.sum() * counts.sum()).numpy()
        want = stats.chisquare(counts.numpy(), expected).pvalue
        assert chi_square_p_value(counts, weights) == pytest.approx(want, rel=1e-9)
    # fewer than two classes of nonzero probability: nothing to test, p = 1
    assert chi_square_p_value(torch.tensor([7, 0]), torch.tensor([1.0, 0.0])) == 1.0
    assert chi_square_p_value(torch.tensor([7]), torch.tensor([1.0])) == 1.0


def test_numbers_get_six_digits_then_as_many_as_tell_them_apart() -> None:
    assert "expected 1.12346, got 2 (abs error" in _message(assert_close, 2.0, 1.1234567)
    one_ulp_up = 1.0 + 2**-52
    text = _message(assert_equal, 1.0, one_ulp_up)
    assert "expected 1.0000000000000002, got 1 (abs error" in text
    text = _message(assert_equal, one_ulp_up, 1.0)
    assert "expected 1, got 1.0000000000000002 (abs error" in text


def test_case_tells_its_listener_each_input_as_it_opens() -> None:
    """The check worker listens, so a timeout can name the input that was running."""
    import mlab.testing

    heard: list[str] = []
    mlab.testing.case_listener = heard.append
    try:
        with case("first input"), case("second input"):
            pass
    finally:
        mlab.testing.case_listener = None
    assert heard == ["first input", "second input"]
