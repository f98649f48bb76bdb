"""Health checks of one recorded run: the symptoms of a network that trains badly.

Each check reads the ``TensorStats`` of a ``Run`` and returns ``Finding``s:

- NaN or inf in a layer's output or gradient (errors): where they first appear;
- dead ReLU units: a ReLU whose outputs are almost all exactly 0 passes no gradient;
- saturated tanh / sigmoid / softmax: outputs where the slope is flat, so gradients vanish;
- vanishing or exploding gradients: gradient norms across layers spanning orders of magnitude;
- a loss that does not fall; weights that do not change from one step to the next.

See Karpathy, "A Recipe for Training Neural Networks" (2019), and Glorot & Bengio,
"Understanding the difficulty of training deep feedforward neural networks" (2010).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

import torch

from mlab.inspect.record import Run, StepRecord
from mlab.inspect.stats import TensorStats

__all__ = [
    "DEAD_FRACTION",
    "GRADIENT_RATIO",
    "SATURATED_FRACTION",
    "Finding",
    "dead_relus",
    "frozen_message",
    "gradient_spread",
    "health",
    "loss_not_decreasing",
    "nonfinite",
    "same_param",
    "saturated",
    "unchanged_weights",
]

DEAD_FRACTION = 0.9  # a ReLU with more of its outputs exactly 0 than this is (mostly) dead
SATURATED_FRACTION = 0.5  # a squashing layer with more outputs in its flat tails than this
GRADIENT_RATIO = 1e3  # largest / smallest gradient norm across layers in one step


@dataclass
class Finding:
    """One symptom: ``layer`` is a module or parameter name (None for the whole run)."""

    severity: Literal["error", "warning"]
    layer: str | None
    message: str


def nonfinite(run: Run) -> list[Finding]:
    """Errors for NaN/inf values, at most three: one for the layer outputs and one for the
    gradients, and one for the loss.

    For the activations (forward order), find the first step where any layer's output has a
    NaN or an inf; the error names the first such layer there (where they start: every
    layer after it inherits them) as its ``layer``, and its message gives the step
    (``"step 2"``), the layer, its NaN and inf counts (``"3 NaN and 0 inf"``) and how many
    later layers have them too. The same for the gradients (backward order). Then, when
    some loss in ``run.losses`` is NaN or inf, an error with layer None whose message shows
    the first such loss."""
    findings = []
    for field, what in (("activations", "output"), ("gradients", "gradient")):
        for step in run.steps:
            entries: dict[str, TensorStats] = getattr(step, field)
            bad = [name for name, s in entries.items() if s.n_nan > 0 or s.n_inf > 0]
            if bad:
                first = entries[bad[0]]
                findings.append(
                    Finding(
                        "error",
                        bad[0],
                        f"step {step.step}: the {what} of `{bad[0]}` "
                        f"({run.module_types.get(bad[0], '?')}) has {first.n_nan} NaN and "
                        f"{first.n_inf} inf values, the first layer where they appear "
                        f"({len(bad) - 1} layers after it have them too)",
                    )
                )
                break
    losses = [x for x in run.losses if not math.isfinite(x)]
    if losses:
        findings.append(
            Finding("error", None, f"the loss became {losses[0]}: training has blown up")
        )
    return findings


def dead_relus(run: Run) -> list[Finding]:
    """A warning for each ``ReLU`` module whose outputs are more than ``DEAD_FRACTION`` exactly
    zero at some step.

    Go through ``run.module_types`` (name -> class name) in order; for each module of class
    ``"ReLU"`` that some step recorded, take its largest ``frac_zero`` over the steps. Above
    ``DEAD_FRACTION``, warn with that module as ``layer`` and a message naming the step of
    the largest fraction (``"step 3"``, the latest of equal ones) and the fraction as a
    percentage (``"95%"``)."""
    findings = []
    for name, kind in run.module_types.items():
        fractions = [
            (s.activations[name].frac_zero, s.step) for s in run.steps if name in s.activations
        ]
        if kind == "ReLU" and fractions and max(fractions)[0] > DEAD_FRACTION:
            fraction, step = max(fractions)
            findings.append(
                Finding(
                    "warning",
                    name,
                    f"step {step}: {fraction:.0%} of `{name}`'s outputs are exactly 0 — dead "
                    "ReLU units pass no gradient (learning rate too high, bad init or bias?)",
                )
            )
    return findings


def saturated(run: Run) -> list[Finding]:
    """A warning for each module whose ``frac_saturated`` exceeds ``SATURATED_FRACTION`` at
    some step, naming the step with the largest fraction."""
    findings = []
    for name, kind in run.module_types.items():
        fractions = [
            (s.activations[name].frac_saturated, s.step) for s in run.steps if name in s.activations
        ]
        if fractions and max(fractions)[0] > SATURATED_FRACTION:
            fraction, step = max(fractions)
            findings.append(
                Finding(
                    "warning",
                    name,
                    f"step {step}: {fraction:.0%} of `{name}`'s ({kind}) outputs are saturated "
                    "— its slope there is almost 0, so gradients through it vanish (inputs too "
                    "large: normalise them, or scale the init down)",
                )
            )
    return findings


def gradient_spread(run: Run) -> list[Finding]:
    """A warning at the first step where the largest and the smallest positive, finite
    gradient norm (at layer outputs) differ by more than ``GRADIENT_RATIO``.

    Only steps with at least two such norms count; zero and non-finite norms are left out.
    The gradients *vanish* when the smallest norm is nearer the input (later in backward
    order, the order of ``step.gradients``) than the largest, and the warning's ``layer`` is
    the smallest one's; otherwise they *explode* and ``layer`` is the largest one's. The
    message names the step (``"step 1"``) and says ``"vanish"`` or ``"explode"``. Return a
    list of that one warning, or an empty list."""
    for step in run.steps:
        norms = [
            (stats.norm, name)
            for name, stats in step.gradients.items()
            if stats.norm > 0 and math.isfinite(stats.norm)
        ]
        if not norms:
            continue  # (a single norm is both the largest and the smallest: ratio 1)
        (high, high_name), (low, low_name) = max(norms), min(norms)
        if high / low > GRADIENT_RATIO:
            # backward order runs from the loss to the input: the first of the two is nearer
            # the loss
            nearer_loss = next(name for name in step.gradients if name in (high_name, low_name))
            kind = "vanish" if nearer_loss == high_name else "explode"
            return [
                Finding(
                    "warning",
                    low_name if kind == "vanish" else high_name,
                    f"step {step.step}: gradient norms across layers span a factor of "
                    f"{high / low:.3g} (largest {high:.3g} at `{high_name}`, smallest {low:.3g} "
                    f"at `{low_name}`): gradients {kind} on their way to the input",
                )
            ]
    return []


def loss_not_decreasing(run: Run) -> list[Finding]:
    """A warning when the run has at least two finite losses and the last is not below the
    first."""
    losses = [x for x in run.losses if math.isfinite(x)]
    if len(losses) >= 2 and not losses[-1] < losses[0]:
        return [
            Finding(
                "warning",
                None,
                f"the loss did not decrease over {len(run.losses)} steps ({losses[0]:.4g} → "
                f"{losses[-1]:.4g}) — check the learning rate, the optimizer and zero_grad",
            )
        ]
    return []


def same_param(a: StepRecord, b: StepRecord, name: str) -> bool:
    """Whether parameter ``name`` is equal at the start of steps ``a`` and ``b``: the kept
    tensors when both have them, else the summaries."""
    key = f"param:{name}"
    if key in a.tensors and key in b.tensors:
        return torch.equal(a.tensors[key], b.tensors[key])
    return a.params[name] == b.params[name]


def unchanged_weights(run: Run) -> list[Finding]:
    """Over the steps that recorded parameters (at least two), an error when no parameter ever
    changed from one step to the next; otherwise a warning for each parameter that never did.

    Only the parameters that every one of those steps recorded count, in the first one's
    order. ``same_param(s, t, name)`` (given) says whether a parameter is equal at the start
    of steps ``s`` and ``t``. The error has layer None and says that no weight changed; each
    warning names its parameter, with the message ``frozen_message(run, name, n_steps)``
    (given). No finding when fewer than two steps recorded parameters or when no parameter
    was frozen (or none counts)."""
    steps = [s for s in run.steps if s.params]
    if len(steps) < 2:
        return []
    names = [n for n in steps[0].params if all(n in s.params for s in steps)]
    frozen = [n for n in names if all(same_param(s, t, n) for s, t in itertools.pairwise(steps))]
    if frozen and len(frozen) == len(names):
        return [
            Finding(
                "error",
                None,
                f"no weight changed over {len(steps)} steps — is optimizer.step() called, on "
                "this model's parameters, with a learning rate above 0?",
            )
        ]
    return [Finding("warning", name, frozen_message(run, name, len(steps))) for name in frozen]


def frozen_message(run: Run, name: str, n_steps: int) -> str:
    """Why parameter ``name`` may not have changed, with its largest recorded gradient norm."""
    norms = [s.param_grads[name].norm for s in run.steps if name in s.param_grads]
    gradient = f"its largest gradient norm is {max(norms):.2g}" if norms else "it gets no gradient"
    return (
        f"`{name}` never changed over {n_steps} steps ({gradient}) — is it in the optimizer, is "
        "it frozen (requires_grad=False), does the loss depend on it (a bias right before "
        "BatchNorm does not: the normalisation subtracts it again)?"
    )


def health(run: Run) -> list[Finding]:
    """Every check of this file on ``run``, errors first."""
    findings = (
        nonfinite(run)
        + unchanged_weights(run)
        + dead_relus(run)
        + saturated(run)
        + gradient_spread(run)
        + loss_not_decreasing(run)
    )
    return sorted(findings, key=lambda f: f.severity != "error")
