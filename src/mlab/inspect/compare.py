"""Find where two training runs first part ways: the bug hunt's main tool.

Two runs of "the same" training (a working script and a broken one, or a script before and
after a change) are compared in the order the computation happens: the weights at the start
of a step, the input batch, each layer's output in forward order, the loss, the gradients in
backward order, the parameter gradients; then the next step. The first place that differs
localises the bug, and its kind says where to look:

- ``init``: the weights differ before training starts (seed, initialisation, layer sizes);
- ``input``: the data differ (order, shuffling, preprocessing);
- ``forward``: a layer computes something else (its code, or train/eval mode);
- ``loss``: the model's outputs agree but the loss does not (targets, loss function);
- ``backward``: the forward pass agrees but a gradient does not (a detach, ``no_grad``);
- ``update``: everything in step ``s - 1`` agreed, yet the weights at step ``s`` differ
  (optimizer, learning rate, ``zero_grad``).

This is "diff the activations" debugging, the way one ports a model between frameworks and
checks it layer by layer against the original.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from mlab.inspect.health import Finding, health
from mlab.inspect.record import Run, StepRecord
from mlab.inspect.stats import TINY, TensorStats, relative_difference, stats_difference

__all__ = [
    "NOISE_FLOOR",
    "Comparison",
    "Divergence",
    "Finding",
    "LayerDiff",
    "UpdateSize",
    "agreement",
    "compare",
    "divergence",
    "entry_difference",
    "health",
    "loss_difference",
    "place_rows",
    "step_rows",
    "update_sizes",
]

# Values this much smaller than the largest of their kind in a step (activations, gradients,
# ...) are measured against NOISE_FLOOR times that largest value instead of their own size:
# a bias gradient right before BatchNorm is rounding noise (about 1e-9), and its relative
# difference between two equivalent computations would be meaningless.
NOISE_FLOOR = 1e-3

Kind = Literal["none", "init", "input", "forward", "loss", "backward", "update"]
Place = Literal["param", "input", "activation", "loss", "gradient", "param_grad"]


@dataclass
class LayerDiff:
    """One compared place of one step: ``name`` is a module name (activation, gradient), a
    parameter name (param, param_grad), ``"input"`` or ``"loss"``."""

    step: int
    place: Place
    name: str
    rel_diff: float
    differs: bool


@dataclass
class Divergence:
    """The first place where two runs differ. ``layer`` is a module name for ``forward`` and
    ``backward`` (a parameter name when a parameter's gradient differs first), a parameter
    name for ``init`` and ``update``, None otherwise. ``detail`` says it in a sentence."""

    kind: Kind
    step: int
    layer: str | None
    rel_diff: float
    detail: str


@dataclass
class Comparison:
    """Two runs, where they first differ, and every compared place up to that step."""

    a: Run
    b: Run
    first: Divergence
    rows: list[LayerDiff]

    def summary(self, width: int = 80) -> str:
        """A plain-text table of the first divergent step (the last step when none is), at
        most ``width`` characters wide where it can be: names are never cut, so the type
        column is left out when there is no room for it."""
        step = self.first.step
        rows = [row for row in self.rows if row.step == step]
        types = [
            _type_name(row.name, self.a, self.b) if row.place in _MODULE_PLACES else ""
            for row in rows
        ]
        diffs = [f"{row.rel_diff:.3g}" for row in rows]
        columns: dict[str, list[str]] = {
            "place": [str(r.place) for r in rows],
            "name": [r.name for r in rows],
            "type": types,
        }
        mark = "  <- differs"
        fit = {c: max([len(c), *map(len, cells)]) for c, cells in columns.items()}
        fit["rel. diff"] = max([len("rel. diff"), *map(len, diffs)])
        if sum(fit.values()) + len(fit) - 1 + len(mark) > width:
            del fit["type"]
        head = " ".join(f"{c:>{w}}" if c == "rel. diff" else f"{c:<{w}}" for c, w in fit.items())
        lines = [
            f"a = {self.a.name}, b = {self.b.name}: first divergence: {self.first.kind}",
            self.first.detail,
            "",
            head.rstrip(),
        ]
        for i, row in enumerate(rows):
            cells = {c: columns[c][i] for c in columns} | {"rel. diff": diffs[i]}
            line = " ".join(
                f"{cells[c]:>{w}}" if c == "rel. diff" else f"{cells[c]:<{w}}"
                for c, w in fit.items()
            )
            lines.append(line + (mark if row.differs else ""))
        return "\n".join(lines)


_MODULE_PLACES = ("activation", "gradient")


def entry_difference(
    a: TensorStats | None,
    b: TensorStats | None,
    ta: Tensor | None,
    tb: Tensor | None,
    floor: float = 0.0,
) -> float:
    """How far one recorded entry of run a is from the same entry of run b.

    ``a``/``b`` are the summaries (None when the run has no such entry), ``ta``/``tb`` the kept
    tensors (None when not kept). Both entries missing: 0.0; one missing: ``inf``; both
    tensors kept: ``relative_difference(ta, tb)``; otherwise ``stats_difference(a, b)``.
    An entry smaller than ``floor`` is measured against ``floor`` instead of its own size:
    multiply by ``(b.abs_max + TINY) / (max(b.abs_max, floor) + TINY)``.
    """
    if a is None or b is None:
        return 0.0 if a is None and b is None else math.inf
    if ta is not None and tb is not None:
        diff = relative_difference(ta, tb)
    else:
        diff = stats_difference(a, b)
    return diff * (b.abs_max + TINY) / (max(b.abs_max, floor) + TINY)


def loss_difference(a: float | None, b: float | None) -> float:
    """``|a - b| / (|b| + TINY)``; 0.0 when both are None or both NaN (or equal infinities),
    ``inf`` when only one is None or only one is NaN."""
    if a is None or b is None:
        return 0.0 if a is None and b is None else math.inf
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    if math.isnan(a) or math.isnan(b):
        return math.inf
    return abs(a - b) / (abs(b) + TINY)


def _names(a: dict[str, TensorStats], b: dict[str, TensorStats]) -> list[str]:
    """``a``'s keys in order, then ``b``'s keys that ``a`` lacks."""
    return list(a) + [name for name in b if name not in a]


def place_rows(
    sa: StepRecord, sb: StepRecord, place: Place, prefix: str, rtol: float
) -> list[LayerDiff]:
    """The rows of one place of two steps: ``place_rows(sa, sb, "activation", "act", rtol)``
    compares ``sa.activations`` with ``sb.activations``, by their kept tensors ``"act:<name>"``
    where both steps have them. The places and their prefixes: ``"param"``/``"param"``,
    ``"activation"``/``"act"``, ``"gradient"``/``"grad"``, ``"param_grad"``/``"param_grad"``.

    One ``LayerDiff`` per name, in run a's order, then the names only run b has; each entry is
    measured by ``entry_difference`` against at least ``NOISE_FLOOR`` times the largest
    ``abs_max`` of the place in run b, and differs when its difference is not ``<= rtol``."""
    a: dict[str, TensorStats] = getattr(sa, _FIELDS[place])
    b: dict[str, TensorStats] = getattr(sb, _FIELDS[place])
    sizes = [s.abs_max for s in b.values() if math.isfinite(s.abs_max)]
    floor = NOISE_FLOOR * max(sizes, default=0.0)
    rows = []
    for name in _names(a, b):
        ta, tb = sa.tensors.get(f"{prefix}:{name}"), sb.tensors.get(f"{prefix}:{name}")
        diff = entry_difference(a.get(name), b.get(name), ta, tb, floor)
        rows.append(LayerDiff(sa.step, place, name, diff, not diff <= rtol))
    return rows


_FIELDS = {
    "param": "params",
    "activation": "activations",
    "gradient": "gradients",
    "param_grad": "param_grads",
}


def step_rows(sa: StepRecord, sb: StepRecord, rtol: float) -> list[LayerDiff]:
    """Compare one step of two runs place by place, in the order the computation happens:
    params, input, activations, loss, gradients, param_grads.

    The four places kept in dicts come from ``place_rows`` (given). The input row is
    ``LayerDiff(sa.step, "input", "input", diff, differs)`` with ``diff`` the
    ``entry_difference`` of the two inputs (kept tensors under ``"input"``, no floor); the
    loss row ``LayerDiff(sa.step, "loss", "loss", ...)`` with ``loss_difference`` (given).
    Each is left out when neither step has it (both None). A row differs when its difference
    is not ``<= rtol``: NaN differs."""
    rows = place_rows(sa, sb, "param", "param", rtol)
    if sa.input is not None or sb.input is not None:
        ta, tb = sa.tensors.get("input"), sb.tensors.get("input")
        diff = entry_difference(sa.input, sb.input, ta, tb)
        rows.append(LayerDiff(sa.step, "input", "input", diff, not diff <= rtol))
    rows += place_rows(sa, sb, "activation", "act", rtol)
    if sa.loss is not None or sb.loss is not None:
        diff = loss_difference(sa.loss, sb.loss)
        rows.append(LayerDiff(sa.step, "loss", "loss", diff, not diff <= rtol))
    rows += place_rows(sa, sb, "gradient", "grad", rtol)
    rows += place_rows(sa, sb, "param_grad", "param_grad", rtol)
    return rows


def compare(a: Run, b: Run, *, rtol: float = 1e-4) -> Comparison:
    """Walk both runs step by step (``step_rows``) and stop at the first place that differs.

    Compare the steps the two runs both have, in order, collecting every step's rows in
    ``rows``. At the first row that differs, return ``Comparison(a, b, first, rows)``: ``rows``
    ends with that row's whole step, and ``first`` is ``divergence(row, current, a, b)``
    (given), ``current`` being the rows of that step. Its kind follows from the place:
    ``param`` is ``init`` at step 0 and ``update`` later, ``input`` is ``input``,
    ``activation`` is ``forward``, ``loss`` is ``loss``, ``gradient`` and ``param_grad`` are
    ``backward``. When no row differs, ``first`` is ``Divergence("none", last, None, 0.0,
    agreement(a, b, rtol))``, ``last`` the index of the last step both runs have (0 when they
    have none), and ``rows`` holds every step's rows.

    Kept tensors are compared element by element; without them only the summaries are, and
    summaries cannot see some changes (a shuffled batch has the same mean, std and norm).
    """
    rows: list[LayerDiff] = []
    for sa, sb in zip(a.steps, b.steps, strict=False):
        current = step_rows(sa, sb, rtol)
        rows += current
        for row in current:
            if row.differs:
                return Comparison(a, b, divergence(row, current, a, b), rows)
    last = min(len(a.steps), len(b.steps)) - 1
    return Comparison(
        a, b, Divergence("none", max(last, 0), None, 0.0, agreement(a, b, rtol)), rows
    )


def agreement(a: Run, b: Run, rtol: float) -> str:
    """The ``detail`` sentence of two runs that agree at every compared place."""
    detail = (
        f"{a.name} and {b.name} agree at every recorded place (weights, input, layer outputs, "
        f"loss, gradients) over {min(len(a.steps), len(b.steps))} steps, within rtol={rtol:g}"
    )
    if len(a.steps) != len(b.steps):
        detail += f"; but {a.name} has {len(a.steps)} steps and {b.name} {len(b.steps)}"
    return detail + "."


def _type_name(name: str, a: Run, b: Run) -> str:
    """A module's class name, or both when the runs disagree (``"Linear in a, ReLU in b"``)."""
    ta, tb = a.module_types.get(name, "?"), b.module_types.get(name, "?")
    return ta if ta == tb else f"{ta} in {a.name}, {tb} in {b.name}"


def _number(x: float | None) -> str:
    return "none" if x is None else f"{x:.6g}"


def _only_in(row: LayerDiff, a: Run, b: Run) -> str | None:
    """The name of the one run that recorded ``row`` at its step, or None if both (or
    neither) did."""
    field = _FIELDS[row.place]
    in_a = row.name in getattr(a.steps[row.step], field)
    in_b = row.name in getattr(b.steps[row.step], field)
    if in_a == in_b:
        return None
    return a.name if in_a else b.name


def _previous(row: LayerDiff, rows: list[LayerDiff]) -> LayerDiff | None:
    """The row of the same place just before ``row`` (it agreed, as ``row`` is the first to
    differ), or None when ``row`` is the first of its place."""
    same_place = [r for r in rows if r.place == row.place]
    index = same_place.index(row)
    return same_place[index - 1] if index > 0 else None


_KIND_OF_PLACE: dict[str, Kind] = {
    "input": "input",
    "activation": "forward",
    "loss": "loss",
    "gradient": "backward",
    "param_grad": "backward",
}


def divergence(row: LayerDiff, rows: list[LayerDiff], a: Run, b: Run) -> Divergence:
    """The ``Divergence`` of ``row``, the first differing row of its step ``rows``."""
    if row.place == "param":
        kind: Kind = "init" if row.step == 0 else "update"
    else:
        kind = _KIND_OF_PLACE[row.place]
    layer = None if row.place in ("input", "loss") else row.name
    return Divergence(kind, row.step, layer, row.rel_diff, _detail(kind, row, rows, a, b))


def _detail(kind: Kind, row: LayerDiff, rows: list[LayerDiff], a: Run, b: Run) -> str:
    """The sentence that explains a divergence to a learner: where, by how much, where to look."""
    s, name = row.step, row.name
    by = f"max rel. diff {row.rel_diff:.3g}"
    if kind == "init":
        return (
            f"step 0: the initial weights differ, first at `{name}` ({by}) — look at "
            "build_model: the seed, the initialisation, the layer sizes"
        )
    if kind == "update":
        sizes = _describe_updates(update_sizes(a, b, s - 1), name, a, b)
        return (
            f"step {s}: everything in step {s - 1} agreed, gradients included, but the weights "
            f"at the start of step {s} differ, first at `{name}` ({by}) — the update of step "
            f"{s - 1} differs{sizes}: look at the optimizer, its learning rate and settings, "
            "and zero_grad"
        )
    if kind == "input":
        return (
            f"step {s}: the weights agree but the model's input differs ({by}) — the data "
            "differ: look at how batches are made (order, shuffling, preprocessing, seed)"
        )
    if kind == "loss":
        return (
            f"step {s}: every layer's output agrees but the loss differs ("
            f"{_number(a.steps[s].loss)} in {a.name}, {_number(b.steps[s].loss)} in {b.name}) "
            "— look at the targets (labels, their order or offset) or at the loss function"
        )
    module = f"`{name}` ({_type_name(name, a, b)})"
    only = _only_in(row, a, b)
    previous = _previous(row, rows)
    if row.place == "activation":
        agree = "the input agrees"
        if previous is not None:
            agree = f"outputs agree up to `{previous.name}` ({_type_name(previous.name, a, b)})"
        if only is not None:
            return (
                f"step {s}: {agree}; {module} runs in {only} only — look at the model's "
                "layers (built in build_model) and at the forward that calls them"
            )
        return f"step {s}: {agree}; the output of {module} differs ({by}) — " + _where_forward(
            row, previous, a, b
        )
    if row.place == "gradient":
        agree = "the forward pass and the loss agree"
        if previous is not None:
            agree = f"gradients agree down to `{previous.name}`"
        what = f"the gradient at the output of {module} differs ({by})"
        if only is not None:
            what = f"only {only} has a gradient at the output of {module}"
        return (
            f"step {s}: {agree}; {what} — look for what cuts or changes the graph between "
            "the loss and that layer: detach(), .data, torch.no_grad(), an in-place op"
        )
    return (
        f"step {s}: the forward pass and the gradients at layer outputs agree, but parameter "
        f"`{name}`'s gradient differs ({by}) — look at zero_grad (gradients accumulating), "
        "gradient clipping, or a term added to the gradient by hand"
    )


def _where_forward(row: LayerDiff, previous: LayerDiff | None, a: Run, b: Run) -> str:
    """Where to look when the output of module ``row.name`` is the first to differ.

    A module in training mode in one run and eval mode in the other: what sets the mode. A
    module handed an input that differs although every recorded output before it agrees: the
    code between them, in the forward of the module that calls it (its parent). Otherwise the
    module itself."""
    sa, sb, name = a.steps[row.step], b.steps[row.step], row.name
    mode_a, mode_b = sa.modes.get(name), sb.modes.get(name)
    if mode_a is not None and mode_b is not None and mode_a != mode_b:
        return (
            f"`{name}` is in {_mode(mode_a)} mode in {a.name} and in {_mode(mode_b)} mode in "
            f"{b.name}: look at what puts it in a different mode (model.train(), model.eval())"
        )
    input_a, input_b = sa.inputs.get(name), sb.inputs.get(name)
    if input_a is not None and input_b is not None:
        if not stats_difference(input_a, input_b) <= _INPUT_RTOL:
            return _between(name, previous.name if previous is not None else None, a)
        return (
            f"its input agrees, so that layer computes something else: look at what it does "
            f"and how it is built (its settings, its weights){_parameter_free(name, a)}"
        )
    return "look at what that layer does, or at the code that computes its input"


def _mode(training: bool) -> str:
    return "training" if training else "eval"


# how far the summaries of a module's input may be apart in two equivalent runs
_INPUT_RTOL = 1e-4


def _parameter_free(name: str, run: Run) -> str:
    """A note for a module with no parameters of its own (Dropout, an activation), whose
    output can only differ by its settings or the random numbers it draws; else ""."""
    params = run.steps[0].params if run.steps else {}
    if any(p.rpartition(".")[0] == name for p in params):
        return ""
    return (
        "; it has no parameters, so look at its settings (such as Dropout's p) or at what "
        "draws random numbers before it"
    )


def _parent(name: str) -> str:
    return name.rpartition(".")[0]


def _short(name: str, parent: str) -> str:
    return name[len(parent) + 1 :] if parent else name


def _owner(parent: str, run: Run) -> str:
    kind = run.module_types.get(parent, "?")
    return f"`{parent}` ({kind})" if parent else f"the model's own forward ({kind})"


def _between(name: str, previous: str | None, run: Run) -> str:
    """``name``'s input differs while the outputs before it agree: the difference arises in
    the code that computes its input, in the forward of the module that calls it."""
    parent = _parent(name)
    where = f"the difference arises inside {_owner(parent, run)}"
    if previous is not None and _parent(previous) == parent:
        calls = f"between `{_short(previous, parent)}` and `{_short(name, parent)}`"
        return (
            f"its input already differs, so {where}, in its own code {calls}: look at its "
            f"forward between those two calls (an operation written out, a parameter used "
            "directly)"
        )
    before = f"before it calls `{_short(name, parent)}`"
    after = f" (or after `{previous}`, in the forward that calls both)" if previous else ""
    return (
        f"its input already differs, so {where}, in its own code {before}{after}: look at its "
        "forward up to that call (an operation written out, a parameter used directly)"
    )


# ----------------------------------------------------------------------------------------------
# How two updates compare


@dataclass
class UpdateSize:
    """One parameter's update in one step of two runs: ``Δθ`` is the weights at the start of
    the next step minus those at the start of this one, ``g`` the gradient of this step.

    ``ratio`` is ``‖Δθ_b‖ / ‖Δθ_a‖`` (inf when only b moved, NaN when neither did);
    ``lr_a``/``lr_b`` are ``‖Δθ‖ / ‖g‖``, the learning rate for plain SGD (NaN without a
    gradient); ``cosine`` is the cosine of the angle between the two updates: 1 when they
    point the same way (a learning rate, a scale), less when momentum, weight decay or
    accumulated gradients turn one of them."""

    name: str
    norm_a: float
    norm_b: float
    ratio: float
    lr_a: float
    lr_b: float
    cosine: float


def _update(run: Run, step: int, name: str) -> Tensor | None:
    if step + 1 >= len(run.steps):
        return None
    before = run.steps[step].tensors.get(f"param:{name}")
    after = run.steps[step + 1].tensors.get(f"param:{name}")
    if before is None or after is None or before.shape != after.shape:
        return None
    return (after.double() - before.double()).reshape(-1)


def _per_gradient(norm: float, record: StepRecord, name: str) -> float:
    grad = record.param_grads.get(name)
    return norm / grad.norm if grad is not None and grad.norm > 0 else math.nan


def update_sizes(a: Run, b: Run, step: int) -> list[UpdateSize]:
    """How the update of ``step`` compares between runs ``a`` and ``b``, parameter by
    parameter (in run a's order), for the parameters whose weights both runs kept at the start
    of ``step`` and of ``step + 1`` (``Recorder(keep_tensors=True)``); [] without them."""
    sizes = []
    names = a.steps[step].params if step < len(a.steps) else {}
    for name in names:
        da, db = _update(a, step, name), _update(b, step, name)
        if da is None or db is None or da.shape != db.shape:
            continue
        na, nb = float(torch.linalg.vector_norm(da)), float(torch.linalg.vector_norm(db))
        ratio = nb / na if na > 0 else (math.inf if nb > 0 else math.nan)
        cosine = float(da @ db) / (na * nb) if na > 0 and nb > 0 else math.nan
        lr_a = _per_gradient(na, a.steps[step], name)
        lr_b = _per_gradient(nb, b.steps[step], name)
        sizes.append(UpdateSize(name, na, nb, ratio, lr_a, lr_b, cosine))
    return sizes


def _times(x: float) -> str:
    return f"{x:.3g}x"


def _describe_updates(sizes: list[UpdateSize], name: str, a: Run, b: Run) -> str:
    """`` (<how the updates compare>)`` for the divergence sentence, or "" when the runs kept
    no weights to measure them with."""
    first = next((u for u in sizes if u.name == name), None)
    if first is None:
        return ""
    if first.norm_a == 0 or first.norm_b == 0:
        moved, still = (b, a) if first.norm_a == 0 else (a, b)
        if first.norm_a == first.norm_b:
            return f" (neither run changed `{name}`)"
        return f" ({moved.name} changed `{name}`, {still.name} left it as it was)"
    parts = [f"{b.name}'s update of `{name}` is {_times(first.ratio)} {a.name}'s"]
    if first.cosine > 1 - 1e-6:
        parts[0] += ", in the same direction"
    else:
        parts[0] += f", in another direction (cosine {first.cosine:.3f})"
    # a parameter whose update is rounding noise in both runs (a bias right before BatchNorm)
    # has a meaningless ratio: leave it out, as NOISE_FLOOR does for the differences
    largest = max(max(u.norm_a, u.norm_b) for u in sizes)
    ratios = [
        u.ratio
        for u in sizes
        if math.isfinite(u.ratio) and max(u.norm_a, u.norm_b) >= NOISE_FLOOR * largest
    ]
    n_still = len(sizes) - len(ratios)
    if len(ratios) > 1:
        low, high = min(ratios), max(ratios)
        which = f"the {len(ratios)} parameters that moved" if n_still else f"all {len(ratios)}"
        if high <= low * 1.01:
            which = which if n_still else f"{which} parameters"
            parts.append(f"{_times(first.ratio)} in {which}")
        else:
            which = which if n_still else f"{len(ratios)} parameters"
            parts.append(f"from {_times(low)} to {_times(high)} across {which}")
    if n_still:
        others = "others" if n_still > 1 else "other"
        parts[-1] += f" ({n_still} {others} barely moved)"
    if math.isfinite(first.lr_a) and math.isfinite(first.lr_b):
        parts.append(
            f"‖Δθ‖/‖g‖ (the learning rate, for plain SGD) {first.lr_b:.3g} in {b.name}, "
            f"{first.lr_a:.3g} in {a.name}"
        )
    return " (" + "; ".join(parts) + ")"
