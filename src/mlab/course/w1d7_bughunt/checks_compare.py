"""Checks for part 3 of w1d7: finding where two recorded runs first part ways.

The runs here are built by hand: ``StepRecord``s whose summaries come from numpy
(``numpy_stats``) and whose kept tensors differ from each other at known places by known
amounts, or ``TensorStats`` written out field by field. Expected differences are worked out
here with numpy (``max|a - b| / (max|b| + 1e-12)``) or by hand from the formulas in the
docstrings, so a mismatch says which entry, which place and which step."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from mlab.course.engine.checks import Namespace, check
from mlab.course.w1d7_bughunt.checks_stats import as_numpy, numpy_stats
from mlab.course.w1d7_bughunt.fakes import fake_stats as _stats
from mlab.inspect.compare import Comparison, LayerDiff, divergence
from mlab.inspect.record import Run, StepRecord
from mlab.inspect.stats import TensorStats
from mlab.testing import case, expect

F64 = torch.float64
INF, NAN = math.inf, math.nan
TINY = 1e-12


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, seed: int, scale: float = 1.0) -> Tensor:
    return torch.randn(*shape, generator=_gen(seed), dtype=F64) * scale


def _relative(a: Tensor, b: Tensor) -> float:
    """max|a - b| / (max|b| + 1e-12), for finite tensors of one shape, with numpy."""
    x, y = as_numpy(a), as_numpy(b)
    return float(abs(x - y).max()) / (float(abs(y).max()) + TINY)


def _close(got: Any, want: float, what: str) -> None:
    expect(type(got) is float, f"{what} should be a Python float, got {type(got).__name__} {got!r}")
    ok = got == want or (math.isnan(got) and math.isnan(want))
    ok = ok or math.isclose(got, want, rel_tol=1e-9, abs_tol=0.0)
    expect(ok, f"{what}: expected {want!r}, got {got!r}")


# ----------------------------------------------------------------------------------------------
# entry_difference


@check("entry_difference")
def entry_missing_on_one_side(ns: Namespace) -> None:
    s = _stats()
    for description, a, b, want in (
        ("neither run has the entry", None, None, 0.0),
        ("only run b has it (a layer that runs in b only)", None, s, INF),
        ("only run a has it", s, None, INF),
    ):
        with case(description, a=a, b=b):
            _close(ns.entry_difference(a, b, None, None), want, "entry_difference(a, b, ...)")


@check("entry_difference")
def entry_uses_kept_tensors_first(ns: Namespace) -> None:
    ta, tb = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.5, 3.0])
    same = numpy_stats(tb)
    with case("kept tensors [1, 2, 3] and [1, 2.5, 3]; summaries (wrongly) equal", ta=ta, tb=tb):
        _close(ns.entry_difference(same, same, ta, tb), 0.5 / (3.0 + TINY), "entry_difference")
    with case("the same the other way round: run b's size is the scale", ta=tb, tb=ta):
        _close(ns.entry_difference(same, same, tb, ta), 0.5 / (3.0 + TINY), "entry_difference")
    shuffled = torch.tensor([3.0, 1.0, 2.0])
    a, b = numpy_stats(torch.tensor([1.0, 2.0, 3.0])), numpy_stats(shuffled)
    with case("a shuffled copy: equal summaries, tensors 2/3 apart", ta=ta, tb=shuffled):
        _close(ns.entry_difference(a, b, ta, shuffled), 2.0 / (3.0 + TINY), "entry_difference")
    with case("equal tensors, summaries that differ: the tensors decide", ta=ta, tb=ta.clone()):
        _close(ns.entry_difference(_stats(mean=5.0), _stats(), ta, ta.clone()), 0.0, "result")


def _stats_cases() -> list[tuple[str, TensorStats, TensorStats, float]]:
    a = _stats(mean=1.0, std=2.0, norm=3.0)
    return [
        (
            "means 1.0 and 1.5, stds 2.0 and 2.5, norms 3.0 and 3.0: the std's 0.5 / 2.5 wins",
            a,
            _stats(mean=1.5, std=2.5, norm=3.0),
            0.5 / (2.5 + TINY),
        ),
        (
            "means 0.5 and -0.05 (spread 0.1): the mean's 0.55 / (0.05 + 0.1) wins",
            _stats(mean=0.5, std=0.1, norm=3.0),
            _stats(mean=-0.05, std=0.1, norm=3.0),
            0.55 / (0.05 + 0.1 + TINY),
        ),
        (
            "norms 3.0 and 2.0, equal means and stds",
            a,
            _stats(mean=1.0, std=2.0, norm=2.0),
            1.0 / (2.0 + TINY),
        ),
        ("equal summaries", a, replace(a), 0.0),
        ("numel 10 and 12", a, replace(a, numel=12), INF),
        ("one NaN in b only (same moments)", a, replace(a, n_nan=1), INF),
        ("one inf in a only", replace(a, n_inf=1), a, INF),
    ]


@check("entry_difference")
def entry_falls_back_to_summaries(ns: Namespace) -> None:
    t = torch.ones(10)
    for description, a, b, want in _stats_cases():
        for which, ta, tb in (("no tensors kept", None, None), ("only a's tensor kept", t, None)):
            with case(f"{description}; {which}", a=a, b=b):
                _close(ns.entry_difference(a, b, ta, tb), want, "entry_difference(a, b, ...)")
    a, b = _stats(mean=1.0, std=2.0, norm=3.0), _stats(mean=1.5, std=2.5, norm=3.0)
    with case("only b's tensor kept", a=a, b=b):
        _close(ns.entry_difference(a, b, None, t), 0.5 / (2.5 + TINY), "entry_difference")


@check("entry_difference")
def entry_against_a_noise_floor(ns: Namespace) -> None:
    ta, tb = torch.tensor([2e-6, 1e-6]), torch.tensor([1e-6, 1e-6])
    a, b = numpy_stats(ta), numpy_stats(tb)
    rel = 1e-6 / (1e-6 + TINY)
    for description, floor, want in (
        ("floor 1e-3 above b's size 1e-6: measured against 1e-3", 1e-3, rel * 1e-6 / 1e-3),
        ("floor 1e-9 below b's size: measured against b's own size", 1e-9, rel),
        ("floor left out (0.0)", None, rel),
    ):
        ratio = (b.abs_max + TINY) / (max(b.abs_max, floor or 0.0) + TINY)
        with case(f"kept tensors [2e-6, 1e-6] and [1e-6, 1e-6]; {description}", floor=floor):
            args = () if floor is None else (floor,)
            got = ns.entry_difference(a, b, ta, tb, *args)
            _close(got, rel * ratio, "entry_difference")
            _close(got, want, "entry_difference (rounded)") if floor is None else None
    zeros, ones = torch.zeros(3), torch.ones(3)
    with case("b is all zeros, floor 0.0: |a - b| / 1e-12, unscaled", ta=ones, tb=zeros):
        got = ns.entry_difference(numpy_stats(ones), numpy_stats(zeros), ones, zeros, 0.0)
        _close(got, 1.0 / TINY, "entry_difference")
    with case("b is all zeros, floor 0.5: measured against 0.5", ta=ones, tb=zeros):
        got = ns.entry_difference(numpy_stats(ones), numpy_stats(zeros), ones, zeros, 0.5)
        _close(got, (1.0 / TINY) * TINY / (0.5 + TINY), "entry_difference")
    a, b = _stats(mean=1.0, std=2.0, norm=3.0, abs_max=4e-4), _stats(std=2.0, norm=3.0)
    b = replace(b, abs_max=4e-4)
    with case("summaries only, b.abs_max 4e-4, floor 2e-3", a=a, b=b):
        want = (1.0 / (0.0 + 2.0 + TINY)) * (4e-4 + TINY) / (2e-3 + TINY)
        _close(ns.entry_difference(a, b, None, None, 2e-3), want, "entry_difference")


# ----------------------------------------------------------------------------------------------
# Hand-built steps and runs

PLACES = ("param", "input", "activation", "loss", "gradient", "param_grad")
_FIELD = {
    "param": "params",
    "activation": "activations",
    "gradient": "gradients",
    "param_grad": "param_grads",
}
_PREFIX = {"param": "param", "activation": "act", "gradient": "grad", "param_grad": "param_grad"}
MODULE_TYPES = {"": "Sequential", "0": "Linear", "1": "ReLU", "2": "Linear"}


def _tensors(step: int) -> dict[str, Any]:
    """The values of one step of a made-up 3-layer run: {place: {name: tensor}} (one tensor
    for "input", a float for "loss")."""
    s = 100 * step
    return {
        "param": {"0.weight": _randn(4, 3, seed=s + 1), "2.weight": _randn(2, 4, seed=s + 2)},
        "input": _randn(5, 3, seed=s + 3),
        "activation": {
            "0": _randn(5, 4, seed=s + 4),
            "1": _randn(5, 4, seed=s + 5).relu(),
            "2": _randn(5, 2, seed=s + 6),
        },
        "loss": 1.5 - 0.25 * step,
        "gradient": {
            "2": _randn(5, 2, seed=s + 7, scale=0.1),
            "1": _randn(5, 4, seed=s + 8, scale=0.05),
            "0": _randn(5, 4, seed=s + 9, scale=0.02),
        },
        "param_grad": {
            "0.weight": _randn(4, 3, seed=s + 10, scale=0.1),
            "2.weight": _randn(2, 4, seed=s + 11, scale=0.1),
        },
    }


Values = dict[str, Any]


def _record(step: int, values: Values, keep: bool) -> StepRecord:
    record = StepRecord(step=step)
    for place, field in _FIELD.items():
        entries: dict[str, TensorStats] = getattr(record, field)
        for name, t in values[place].items():
            entries[name] = numpy_stats(t)
            if keep:
                record.tensors[f"{_PREFIX[place]}:{name}"] = t
    if values["input"] is not None:
        record.input = numpy_stats(values["input"])
        if keep:
            record.tensors["input"] = values["input"]
    record.loss = values["loss"]
    return record


Change = Callable[[int, Values], None]


def _run(name: str, steps: int, keep: bool = True, change: Change | None = None) -> Run:
    records = []
    for step in range(steps):
        values = _tensors(step)
        if change is not None:
            change(step, values)
        records.append(_record(step, values, keep))
    losses = [r.loss for r in records if r.loss is not None]
    return Run(name, records, losses, dict(MODULE_TYPES))


def _expected_rows(a: StepRecord, b: StepRecord, rtol: float) -> list[tuple[Any, ...]]:
    """(step, place, name, rel_diff, differs) of each row, worked out from the kept tensors
    (both records keep every tensor, all finite, one shape per name)."""
    rows: list[tuple[Any, ...]] = []
    for place in PLACES:
        if place == "input":
            if a.input is None and b.input is None:
                continue
            if a.input is None or b.input is None:
                diff = INF
            else:
                diff = _relative(a.tensors["input"], b.tensors["input"])
            rows.append((a.step, "input", "input", diff, not diff <= rtol))
            continue
        if place == "loss":
            if a.loss is None and b.loss is None:
                continue
            if a.loss is None or b.loss is None:
                diff = INF
            else:
                diff = abs(a.loss - b.loss) / (abs(b.loss) + TINY)
            rows.append((a.step, "loss", "loss", diff, not diff <= rtol))
            continue
        sa, sb = getattr(a, _FIELD[place]), getattr(b, _FIELD[place])
        floor = 1e-3 * max(s.abs_max for s in sb.values()) if sb else 0.0
        for name in [*sa, *[n for n in sb if n not in sa]]:
            if name not in sa or name not in sb:
                diff = INF
            else:
                key = f"{_PREFIX[place]}:{name}"
                rel = _relative(a.tensors[key], b.tensors[key])
                size = sb[name].abs_max
                diff = rel * (size + TINY) / (max(size, floor) + TINY)
            rows.append((a.step, place, name, diff, not diff <= rtol))
    return rows


def _same_rows(got: Any, want: list[tuple[Any, ...]], what: str = "rows") -> None:
    expect(isinstance(got, list), f"{what} should be a list of LayerDiff, got {type(got).__name__}")
    expect(
        all(isinstance(r, LayerDiff) for r in got),
        f"{what} should hold LayerDiff objects, got {[type(r).__name__ for r in got]}",
    )
    got_places = [(r.step, r.place, r.name) for r in got]
    want_places = [w[:3] for w in want]
    expect(
        got_places == want_places,
        f"{what}: expected the places (step, place, name)\n  {want_places}\ngot\n  {got_places}",
    )
    for row, (step, place, name, diff, differs) in zip(got, want, strict=True):
        _close(row.rel_diff, diff, f"rel_diff of ({step}, {place}, {name})")
        expect(
            row.differs is differs,
            f"({step}, {place}, {name}): rel_diff {row.rel_diff:.3g}, so differs should be "
            f"{differs}, got {row.differs!r}",
        )


def _nudge(place: str, name: str, by: float, at_step: int | None = None) -> Change:
    """A change: ``place``'s entry ``name`` gets ``by`` added to its first element."""

    def change(step: int, values: Values) -> None:
        if at_step is not None and step != at_step:
            return
        if place == "loss":
            values["loss"] += by
        elif place == "input":
            values["input"] = values["input"].clone()
            values["input"].view(-1)[0] += by
        else:
            t = values[place][name].clone()
            t.view(-1)[0] += by
            values[place][name] = t

    return change


# ----------------------------------------------------------------------------------------------
# step_rows


@check("step_rows")
def step_rows_in_computation_order(ns: Namespace) -> None:
    def changes(step: int, values: Values) -> None:
        _nudge("activation", "1", 0.3)(step, values)
        _nudge("gradient", "0", 1e-3)(step, values)
        _nudge("param", "2.weight", 1e-7)(step, values)
        _nudge("input", "input", 0.2)(step, values)
        _nudge("loss", "loss", 0.01)(step, values)
        # larger in run b than in run a: the difference is relative to run b's size
        values["input"] = values["input"] * 3
        for place, name in (
            ("param", "0.weight"),
            ("activation", "2"),
            ("gradient", "1"),
            ("param_grad", "2.weight"),
        ):
            values[place][name] = values[place][name] * 2
        values["activation"]["extra"] = torch.ones(2)  # a layer that runs in b only
        del values["gradient"]["2"]  # and a gradient that only run a has

    a = _run("a", 4)
    b = _run("b", 4, change=changes)
    for rtol in (1e-4, 1e-2):
        with case(
            "step 3 of a made-up 3-layer run; in run b the input (x3), activation 1, "
            "gradient 0, 2.weight and the loss differ, by various amounts; 0.weight, "
            "activation 2, gradient 1 and 2.weight's grad are doubled; run b has an extra "
            "activation, run a an extra gradient",
            rtol=rtol,
        ):
            got = ns.step_rows(a.steps[3], b.steps[3], rtol)
            _same_rows(got, _expected_rows(a.steps[3], b.steps[3], rtol))


@check("step_rows")
def step_rows_from_summaries_only(ns: Namespace) -> None:
    a = _run("a", 1, keep=False)
    b = _run("b", 1, keep=False, change=lambda s, v: v.update(input=v["input"] * 2))
    sa, sb = a.steps[0], b.steps[0]
    assert sa.input is not None and sb.input is not None
    rel = (
        abs(sa.input.mean - sb.input.mean) / (abs(sb.input.mean) + sb.input.std + TINY),
        abs(sa.input.std - sb.input.std) / (sb.input.std + TINY),
        abs(sa.input.norm - sb.input.norm) / (sb.input.norm + TINY),
    )
    with case("nothing kept: the input (x2 in run b) is compared by its summaries", rtol=1e-4):
        rows = ns.step_rows(sa, sb, 1e-4)
        row = next((r for r in rows if r.place == "input"), None)
        expect(row is not None, "no input row")
        assert row is not None
        _close(row.rel_diff, max(rel), "the input row's rel_diff (stats of a against b)")


@check("step_rows")
def step_rows_without_input_or_loss(ns: Namespace) -> None:
    def no_input_or_loss(step: int, values: Values) -> None:
        values["input"] = None
        values["loss"] = None

    a = _run("a", 1, change=no_input_or_loss)
    b = _run("b", 1, change=no_input_or_loss)
    with case("neither step has an input or a loss: no such rows"):
        _same_rows(
            ns.step_rows(a.steps[0], b.steps[0], 1e-4), _expected_rows(a.steps[0], b.steps[0], 1e-4)
        )
    c = _run("c", 1)
    with case("only run b has an input and a loss: inf, differs"):
        _same_rows(
            ns.step_rows(a.steps[0], c.steps[0], 1e-4), _expected_rows(a.steps[0], c.steps[0], 1e-4)
        )
    with case("only run a has them"):
        _same_rows(
            ns.step_rows(c.steps[0], a.steps[0], 1e-4), _expected_rows(c.steps[0], a.steps[0], 1e-4)
        )


@check("step_rows")
def step_rows_rtol_is_inclusive(ns: Namespace) -> None:
    a = _run("a", 1)
    nudge_input, nudge_loss = _nudge("input", "", 0.2), _nudge("loss", "", 0.1)

    def both(step: int, values: Values) -> None:
        nudge_input(step, values)
        nudge_loss(step, values)

    b = _run("b", 1, change=both)
    sa, sb = a.steps[0], b.steps[0]
    for place in ("input", "loss"):
        want = next(r for r in _expected_rows(sa, sb, 0.0) if r[1] == place)[3]
        for rtol, differs in ((want, False), (math.nextafter(want, 0.0), True)):
            with case(f"rtol is exactly the {place}'s difference, or just below it", rtol=rtol):
                rows = ns.step_rows(sa, sb, rtol)
                row = next((r for r in rows if r.place == place), None)
                expect(row is not None, f"no {place} row")
                assert row is not None
                expect(
                    row.differs is differs,
                    f"the {place}'s difference {row.rel_diff!r} with rtol={rtol!r}: differs "
                    f"should be {differs} (a row differs when its difference is not <= rtol)",
                )
    nan_a, nan_b = StepRecord(step=0, loss=NAN), StepRecord(step=0, loss=1.0)
    with case("a NaN loss in run a only: inf, differs"):
        _same_rows(ns.step_rows(nan_a, nan_b, 1e-4), [(0, "loss", "loss", INF, True)])
    odd = StepRecord(step=0, input=_stats(mean=NAN))
    with case("an input summary whose mean is NaN: the difference is NaN, which differs"):
        rows = ns.step_rows(odd, StepRecord(step=0, input=_stats()), 1e-4)
        expect(
            len(rows) == 1 and math.isnan(rows[0].rel_diff) and rows[0].differs is True,
            f"expected one input row, rel_diff nan, differs True; got {rows}",
        )


# ----------------------------------------------------------------------------------------------
# compare


def _check_comparison(
    got: Any,
    a: Run,
    b: Run,
    kind: str,
    step: int,
    layer: str | None,
    rtol: float = 1e-4,
) -> None:
    expect(isinstance(got, Comparison), f"expected a Comparison, got {type(got).__name__}")
    expect(got.a is a and got.b is b, "Comparison.a and .b should be the two runs, a first")
    first = got.first
    expect(
        (first.kind, first.step, first.layer) == (kind, step, layer),
        f"first divergence: expected kind={kind!r}, step={step}, layer={layer!r}; got "
        f"kind={first.kind!r}, step={first.step}, layer={first.layer!r}",
    )
    want: list[tuple[Any, ...]] = []
    for sa, sb in list(zip(a.steps, b.steps, strict=False))[: step + 1]:
        want += _expected_rows(sa, sb, rtol)
    _same_rows(got.rows, want, "Comparison.rows (every row of every step up to the divergent one)")
    if kind != "none":
        row = next(r for r in want if r[4])
        _close(first.rel_diff, row[3], "first.rel_diff")
        differing = next(r for r in got.rows if r.differs)
        same_step = [r for r in got.rows if r.step == differing.step]
        sentence = divergence(differing, same_step, a, b).detail
        expect(
            first.detail == sentence,
            "first should be divergence(row, the rows of its step, a, b): its detail should "
            f"read\n  {sentence}\ngot\n  {first.detail}",
        )


@check("compare")
def compare_finds_each_kind(ns: Namespace) -> None:
    cases: list[tuple[str, Change, str, int, str | None]] = [
        ("2.weight differs at step 0", _nudge("param", "2.weight", 0.1, 0), "init", 0, "2.weight"),
        ("the input differs at step 1", _nudge("input", "", 0.5, 1), "input", 1, None),
        (
            "activation 1 differs from step 2 on",
            _nudge("activation", "1", 0.5, 2),
            "forward",
            2,
            "1",
        ),
        ("the loss differs at step 1", _nudge("loss", "", 0.2, 1), "loss", 1, None),
        ("gradient 1 differs at step 2", _nudge("gradient", "1", 0.05, 2), "backward", 2, "1"),
        (
            "0.weight's grad at step 0",
            _nudge("param_grad", "0.weight", 0.1, 0),
            "backward",
            0,
            "0.weight",
        ),
        (
            "0.weight differs at step 3",
            _nudge("param", "0.weight", 0.1, 3),
            "update",
            3,
            "0.weight",
        ),
    ]
    for description, change, kind, step, layer in cases:
        a, b = _run("good", 4), _run("broken", 4, change=change)
        with case(f"two 4-step runs; {description}"):
            _check_comparison(ns.compare(a, b), a, b, kind, step, layer)


@check("compare")
def compare_stops_at_the_first_place(ns: Namespace) -> None:
    def two_changes(step: int, values: Values) -> None:
        _nudge("gradient", "0", 0.05, 1)(step, values)
        _nudge("activation", "2", 0.5, 1)(step, values)
        _nudge("param", "0.weight", 0.5, 2)(step, values)

    a, b = _run("good", 4), _run("broken", 4, change=two_changes)
    with case("at step 1 activation 2 and gradient 0 differ, at step 2 a weight too"):
        _check_comparison(ns.compare(a, b), a, b, "forward", 1, "2")
    with case("the same runs the other way round"):
        _check_comparison(ns.compare(b, a), b, a, "forward", 1, "2")


@check("compare")
def compare_uses_rtol(ns: Namespace) -> None:
    change = _nudge("activation", "0", 1e-3, 1)
    a, b = _run("good", 3), _run("broken", 3, change=change)
    with case("activation 0 off by about 1e-3 at step 1, default rtol 1e-4"):
        _check_comparison(ns.compare(a, b), a, b, "forward", 1, "0")
    with case("the same with rtol=1e-2: no divergence", rtol=1e-2):
        _check_comparison(ns.compare(a, b, rtol=1e-2), a, b, "none", 2, None, rtol=1e-2)


@check("compare")
def compare_runs_that_agree(ns: Namespace) -> None:
    for description, na, nb, last in (
        ("two equal 3-step runs", 3, 3, 2),
        ("equal steps, but a has 4 and b 2", 4, 2, 1),
        ("a has 1 step, b has 3", 1, 3, 0),
        ("both runs have no steps", 0, 0, 0),
        ("a has no steps, b has 2", 0, 2, 0),
    ):
        a, b = _run("first", na), _run("second", nb)
        with case(description):
            got = ns.compare(a, b)
            _check_comparison(got, a, b, "none", last, None)
            detail = got.first.detail
            expect(
                got.first.rel_diff == 0.0 and detail.startswith("first and second agree"),
                f"kind 'none' has rel_diff 0.0 and detail agreement(a, b, rtol); got "
                f"{got.first.rel_diff!r}, {detail!r}",
            )
            mentions = "first has" in detail
            expect(
                mentions == (na != nb),
                f"the detail should mention the step counts only when they differ: {detail!r}",
            )
