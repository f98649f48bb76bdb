"""Checks for part 4 of w1d7: the health checks of one recorded run.

Each check builds ``Run``s by hand, with ``TensorStats`` whose fractions, counts and norms
are set to sit just inside or just outside each threshold (a ReLU 90% zero is not dead, 91%
is; a gradient ratio of exactly 1000 is not a spread), and says which findings, of which
severity, for which layer, were expected."""

from __future__ import annotations

import math
import re
from typing import Any

import torch

from mlab.course.engine.checks import Namespace, check
from mlab.course.w1d7_bughunt.fakes import fake_stats as _stats
from mlab.inspect.health import Finding, frozen_message
from mlab.inspect.record import Run, StepRecord
from mlab.inspect.stats import TensorStats
from mlab.testing import case, expect

NAN, INF = math.nan, math.inf


def _step(
    step: int,
    activations: dict[str, TensorStats] | None = None,
    gradients: dict[str, TensorStats] | None = None,
    params: dict[str, TensorStats] | None = None,
) -> StepRecord:
    return StepRecord(
        step=step,
        activations=dict(activations or {}),
        gradients=dict(gradients or {}),
        params=dict(params or {}),
    )


def _run(steps: list[StepRecord], types: dict[str, str], losses: list[float] | None = None) -> Run:
    return Run("run", steps, [1.0, 0.9, 0.8] if losses is None else losses, types)


def _findings(got: Any, want: list[tuple[str, str | None]], what: str) -> list[Finding]:
    """``got`` is a list of Findings with these (severity, layer), in this order."""
    expect(isinstance(got, list), f"{what} should return a list of Finding, got {got!r}")
    expect(
        all(isinstance(f, Finding) for f in got),
        f"{what} should return Finding objects, got {[type(f).__name__ for f in got]}",
    )
    pairs = [(f.severity, f.layer) for f in got]
    expect(
        pairs == want,
        f"{what}: expected the findings (severity, layer) {want}, got {pairs}"
        + "".join(f"\n  {f.severity}: {f.message}" for f in got),
    )
    findings: list[Finding] = got
    return findings


def _mentions(finding: Finding, *words: str) -> None:
    for word in words:
        expect(
            word in finding.message,
            f"the message should mention {word!r}, got: {finding.message!r}",
        )


def _counts(finding: Finding, n_nan: int, n_inf: int) -> None:
    text = f"{n_nan} NaN and {n_inf} inf"
    expect(
        re.search(rf"\b{n_nan} NaN\b", finding.message) is not None
        and re.search(rf"\b{n_inf} inf\b", finding.message) is not None,
        f"the message should give the layer's counts, {text!r}, got: {finding.message!r}",
    )


# ----------------------------------------------------------------------------------------------
# nonfinite

TYPES = {"": "Sequential", "enc": "Linear", "act": "Tanh", "head": "Linear"}
FORWARD = ("enc", "act", "head")
BACKWARD = ("head", "act", "enc")


def _layers(order: tuple[str, ...], bad: dict[str, TensorStats] | None = None) -> dict[str, Any]:
    return {name: (bad or {}).get(name, _stats()) for name in order}


@check("nonfinite")
def nonfinite_finds_where_nan_starts(ns: Namespace) -> None:
    healthy = [_step(s, _layers(FORWARD), _layers(BACKWARD)) for s in range(3)]
    with case("three healthy steps: no findings"):
        _findings(ns.nonfinite(_run(healthy, TYPES)), [], "nonfinite")
    nan = _stats(n_nan=1)
    steps = [
        _step(0, _layers(FORWARD)),
        _step(1, _layers(FORWARD, {"act": _stats(n_nan=3), "head": _stats(n_nan=7, n_inf=2)})),
        _step(2, _layers(FORWARD, {"enc": nan, "act": nan, "head": nan})),
    ]
    with case("3 NaN in act's output at step 1 (7 NaN, 2 inf in head after it); step 2 all"):
        got = _findings(ns.nonfinite(_run(steps, TYPES)), [("error", "act")], "nonfinite")
        _mentions(got[0], "step 1", "act")
        _counts(got[0], 3, 0)
    inf = _stats(n_inf=2)
    steps = [_step(0, _layers(FORWARD, {"head": inf}), _layers(BACKWARD, {"act": inf}))]
    with case("inf (no NaN) in head's output and in the gradient at act's output, step 0"):
        got = _findings(
            ns.nonfinite(_run(steps, TYPES)), [("error", "head"), ("error", "act")], "nonfinite"
        )
        _mentions(got[0], "step 0", "head")
        _mentions(got[1], "step 0", "act")


@check("nonfinite")
def nonfinite_gradients_in_backward_order(ns: Namespace) -> None:
    steps = [
        _step(0, _layers(FORWARD), _layers(BACKWARD)),
        _step(1, _layers(FORWARD), _layers(BACKWARD)),
        _step(
            2, _layers(FORWARD), _layers(BACKWARD, {"act": _stats(n_nan=3), "enc": _stats(n_nan=3)})
        ),
        _step(3, _layers(FORWARD), _layers(BACKWARD, {"head": _stats(n_nan=1)})),
    ]
    with case("gradients NaN at step 2 from act on (backward order head, act, enc), head at 3"):
        got = _findings(ns.nonfinite(_run(steps, TYPES)), [("error", "act")], "nonfinite")
        _mentions(got[0], "step 2", "act")


@check("nonfinite")
def nonfinite_loss(ns: Namespace) -> None:
    steps = [_step(0, _layers(FORWARD), _layers(BACKWARD))]
    for losses, first in (([2.0, 1.5, NAN, INF], "nan"), ([1.0, INF], "inf"), ([-INF], "-inf")):
        with case(f"healthy layers, losses {losses}", losses=losses):
            got = _findings(
                ns.nonfinite(_run(steps, TYPES, losses)), [("error", None)], "nonfinite"
            )
            _mentions(got[0], first)
    steps = [
        _step(0, _layers(FORWARD)),
        _step(
            1,
            _layers(FORWARD, {"enc": _stats(n_nan=1)}),
            _layers(BACKWARD, {"head": _stats(n_inf=1)}),
        ),
    ]
    with case("1 NaN output, 1 inf gradient and a NaN loss at step 1: three errors in order"):
        _findings(
            ns.nonfinite(_run(steps, TYPES, [1.0, NAN])),
            [("error", "enc"), ("error", "head"), ("error", None)],
            "nonfinite",
        )


# ----------------------------------------------------------------------------------------------
# dead_relus

RELU_TYPES = {
    "": "Sequential",
    "0": "Linear",
    "1": "ReLU",
    "2": "Linear",
    "3": "ReLU",
    "4": "ReLU",
    "5": "LeakyReLU",
    "6": "ReLU",
}


def _zeros(**fractions: float) -> dict[str, TensorStats]:
    return {name.removeprefix("m"): _stats(frac_zero=f) for name, f in fractions.items()}


@check("dead_relus")
def dead_relus_over_the_threshold(ns: Namespace) -> None:
    steps = [
        _step(0, _zeros(m0=1.0, m1=0.5, m3=0.9, m5=1.0, m6=0.2)),
        _step(1, _zeros(m0=1.0, m1=0.95, m3=0.9, m5=1.0, m6=0.91)),
        _step(2, _zeros(m0=1.0, m1=0.92, m3=0.3, m5=1.0)),
    ]
    description = (
        "ReLU 1 zero 50%, 95%, 92% of the time; ReLU 3 exactly 90% (not over); ReLU 4 never "
        "ran; ReLU 6 91% at step 1; Linear 0 and LeakyReLU 5 100% (not ReLUs)"
    )
    with case(description):
        got = _findings(
            ns.dead_relus(_run(steps, RELU_TYPES)),
            [("warning", "1"), ("warning", "6")],
            "dead_relus",
        )
        _mentions(got[0], "step 1", "95%")
        _mentions(got[1], "step 1", "91%")
    with case("one step, every ReLU alive (50% zero)"):
        steps = [_step(0, _zeros(m1=0.5, m3=0.5, m4=0.5, m6=0.5))]
        _findings(ns.dead_relus(_run(steps, RELU_TYPES)), [], "dead_relus")
    with case("no steps recorded"):
        _findings(ns.dead_relus(_run([], RELU_TYPES)), [], "dead_relus")


@check("dead_relus")
def dead_relus_names_the_worst_step(ns: Namespace) -> None:
    steps = [_step(s, _zeros(m4=f)) for s, f in enumerate([0.2, 0.93, 0.99, 0.97])]
    with case("ReLU 4 zero 20%, 93%, 99%, 97% at steps 0-3"):
        got = _findings(ns.dead_relus(_run(steps, RELU_TYPES)), [("warning", "4")], "dead_relus")
        _mentions(got[0], "step 2", "99%")
    steps = [_step(s, _zeros(m1=f)) for s, f in enumerate([0.96, 0.5, 0.96, 0.93])]
    with case("ReLU 1 zero 96%, 50%, 96%, 93% at steps 0-3: a tie, the latest step (2) is named"):
        got = _findings(ns.dead_relus(_run(steps, RELU_TYPES)), [("warning", "1")], "dead_relus")
        _mentions(got[0], "step 2", "96%")


# ----------------------------------------------------------------------------------------------
# gradient_spread


def _norms(**norms: float) -> dict[str, TensorStats]:
    """Gradient summaries in the order given (backward order: loss side first)."""
    return {name: _stats(norm=n) for name, n in norms.items()}


GRAD_TYPES = {"": "Sequential", "head": "Linear", "mid": "Linear", "first": "Linear"}


def _spread(ns: Namespace, steps: list[StepRecord]) -> Any:
    return ns.gradient_spread(_run(steps, GRAD_TYPES))


@check("gradient_spread")
def gradient_spread_vanishing_and_exploding(ns: Namespace) -> None:
    steps = [
        _step(0, gradients=_norms(head=1.0, mid=0.1, first=0.01)),
        _step(1, gradients=_norms(head=1.0, mid=0.1, first=1e-4)),
        _step(2, gradients=_norms(head=1.0, mid=1e-5, first=1e-9)),
    ]
    with case("norms 1, 0.1, 0.01 at step 0 (x100); 1, 0.1, 1e-4 at step 1 (x1e4): vanishing"):
        got = _findings(_spread(ns, steps), [("warning", "first")], "gradient_spread")
        _mentions(got[0], "step 1", "vanish")
    steps = [_step(0, gradients=_norms(head=1e-3, mid=0.5, first=30.0))]
    with case("norms 1e-3 at the head, 30 at the first layer: exploding"):
        got = _findings(_spread(ns, steps), [("warning", "first")], "gradient_spread")
        _mentions(got[0], "step 0", "explode")
    steps = [_step(0, gradients=_norms(head=2e-3, mid=10.0, first=0.5))]
    with case("largest in the middle (10), smallest at the head (2e-3): exploding at mid"):
        got = _findings(_spread(ns, steps), [("warning", "mid")], "gradient_spread")
        _mentions(got[0], "explode")
    steps = [_step(0, gradients=_norms(head=1000.5, first=1.0))]
    with case("two norms only, 1000.5 and 1: a ratio just over 1000, vanishing"):
        got = _findings(_spread(ns, steps), [("warning", "first")], "gradient_spread")
        _mentions(got[0], "vanish")


@check("gradient_spread")
def gradient_spread_thresholds(ns: Namespace) -> None:
    for description, gradients in (
        ("a ratio of exactly 1000 is not over the threshold", _norms(head=1e3, mid=1.0)),
        ("a zero norm is left out (1, 0, 0.5)", _norms(head=1.0, mid=0.0, first=0.5)),
        ("inf and NaN norms are left out", _norms(head=INF, mid=2.0, first=NAN)),
        ("a single norm", _norms(head=1e-9)),
        ("no gradients", {}),
    ):
        with case(description):
            _findings(_spread(ns, [_step(0, gradients=gradients)]), [], "gradient_spread")
    steps = [
        _step(0, gradients=_norms(head=0.0, mid=INF)),
        _step(1, gradients=_norms(head=1.0, mid=1.0)),
        _step(2, gradients=_norms(head=5.0, first=1e-3)),
    ]
    with case("steps with nothing to compare, then a spread of 5000 at step 2"):
        got = _findings(_spread(ns, steps), [("warning", "first")], "gradient_spread")
        _mentions(got[0], "step 2")


# ----------------------------------------------------------------------------------------------
# unchanged_weights

PARAM_TYPES = {"": "Linear"}


def _params(**values: float) -> dict[str, TensorStats]:
    return {name: _stats(mean=v) for name, v in values.items()}


def _expect_warnings(ns: Namespace, run: Run, frozen: list[str], n_steps: int) -> None:
    got = _findings(
        ns.unchanged_weights(run), [("warning", name) for name in frozen], "unchanged_weights"
    )
    for finding, name in zip(got, frozen, strict=True):
        want = frozen_message(run, name, n_steps)
        expect(
            finding.message == want,
            f"the warning for {name} should be frozen_message(run, {name!r}, {n_steps}):\n  "
            f"{want}\ngot\n  {finding.message}",
        )


@check("unchanged_weights")
def unchanged_weights_warns_per_parameter(ns: Namespace) -> None:
    steps = [
        _step(0, params=_params(weight=1.0, bias=0.5, scale=2.0)),
        _step(1, params=_params(weight=1.1, bias=0.5, scale=2.0)),
        _step(2, params=_params(weight=1.2, bias=0.5, scale=2.5)),
    ]
    with case("weight changes every step, scale only at step 2, bias never"):
        _expect_warnings(ns, _run(steps, PARAM_TYPES), ["bias"], 3)
    steps = [
        _step(0, params=_params(weight=1.0, bias=0.5, scale=2.0)),
        _step(1, params=_params(weight=-1.0, bias=0.5, scale=2.5)),
        _step(2, params=_params(weight=1.0, bias=0.5, scale=2.5)),
    ]
    with case(
        "weight flips 1.0, -1.0, 1.0 (it moved every step, though the last equals the first); "
        "bias never changes"
    ):
        _expect_warnings(ns, _run(steps, PARAM_TYPES), ["bias"], 3)
    steps = [
        _step(0, params=_params(weight=1.0, bias=0.5, scale=2.0)),
        _step(1),
        _step(2, params=_params(weight=1.0, bias=0.4, scale=2.0)),
        _step(3),
    ]
    with case("only steps 0 and 2 recorded parameters; weight and scale did not change"):
        _expect_warnings(ns, _run(steps, PARAM_TYPES), ["weight", "scale"], 2)
    steps = [
        _step(0, params=_params(weight=1.0, bias=0.5, scale=2.0)),
        _step(1, params=_params(scale=2.0, bias=0.5, weight=1.0, extra=0.0)),
        _step(2, params=_params(scale=2.0, weight=1.5, bias=0.5, extra=1.0)),
    ]
    with case(
        "bias and scale never change; the steps list the parameters in other orders: the "
        "warnings follow step 0's order"
    ):
        _expect_warnings(ns, _run(steps, PARAM_TYPES), ["bias", "scale"], 3)


@check("unchanged_weights")
def unchanged_weights_error_when_nothing_moves(ns: Namespace) -> None:
    for n in (2, 4):
        steps = [_step(s, params=_params(weight=1.0, bias=0.5)) for s in range(n)]
        with case(f"{n} steps, every parameter the same in each"):
            _findings(ns.unchanged_weights(_run(steps, PARAM_TYPES)), [("error", None)], "result")
    steps = [
        _step(0, params=_params(weight=1.0, extra=3.0)),
        _step(1, params=_params(weight=1.0, other=4.0)),
    ]
    with case("weight unchanged; extra and other are each in one step only (not counted)"):
        _findings(ns.unchanged_weights(_run(steps, PARAM_TYPES)), [("error", None)], "result")


@check("unchanged_weights")
def unchanged_weights_no_findings(ns: Namespace) -> None:
    moving = [_step(s, params=_params(weight=1.0 + s, bias=0.5 - s)) for s in range(3)]
    for description, steps in (
        ("every parameter changes", moving),
        ("one step with parameters", [_step(0, params=_params(weight=1.0))]),
        ("two steps, only one with parameters", [_step(0, params=_params(weight=1.0)), _step(1)]),
        ("no steps", []),
        (
            "two steps with no parameter in common",
            [_step(0, params=_params(a=1.0)), _step(1, params=_params(b=1.0))],
        ),
    ):
        with case(description):
            _findings(ns.unchanged_weights(_run(steps, PARAM_TYPES)), [], "unchanged_weights")


@check("unchanged_weights")
def unchanged_weights_compares_kept_tensors(ns: Namespace) -> None:
    w = torch.tensor([1.0, 2.0, 3.0])
    same = _stats(mean=2.0)
    steps = [
        _step(0, params={"weight": same, "bias": same}),
        _step(1, params={"weight": same, "bias": same}),
    ]
    steps[0].tensors = {"param:weight": w, "param:bias": w}
    steps[1].tensors = {"param:weight": w.flip(0), "param:bias": w.clone()}
    with case(
        "equal summaries; the kept tensors show weight reversed (changed) and bias equal "
        "(use same_param)"
    ):
        _expect_warnings(ns, _run(steps, PARAM_TYPES), ["bias"], 2)
