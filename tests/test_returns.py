"""Return values held to the reference's annotations (``mlab.course.engine.returns``).

Each wrong implementation here is one a learner could write and a value check might let
through: a list for a tuple, a 0-d tensor for an int, the right numbers in the wrong layout,
float64 for float32. The right ones (an int where a float is promised, wrong arguments passed
on purpose to see an error) must pass untouched.
"""

from __future__ import annotations

import copy
import inspect
import random
import textwrap
import typing
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from mlab.course.engine import worker
from mlab.course.engine.checks import Namespace
from mlab.course.engine.manifest import all_days, get_day
from mlab.course.engine.returns import returns_checked
from mlab.errors import MismatchError, ShapeError

W1D1 = get_day("w1d1")


def _ns(day_id: str = "w1d1", **values: Any) -> Namespace:
    """A namespace over ``values`` (the learner's), checked against ``day_id``'s references."""
    day = get_day(day_id)
    refs = {ex.name: ex.reference for ex in day.exercises if not ex.missing_requirements()}
    return Namespace(values, source="learner.py", references=refs)


def _fails(call: Any, *needles: str) -> str:
    with pytest.raises(MismatchError) as info:
        call()
    message = str(info.value)
    for needle in needles:
        assert needle in message, f"{needle!r} not in:\n{message}"
    assert all(len(line) <= 80 for line in message.splitlines()), message
    return message


def test_a_list_where_a_tuple_is_promised_fails() -> None:
    ns = _ns(contiguous_strides=lambda shape: [4, 1][: len(shape)])
    _fails(
        lambda: ns.contiguous_strides((3, 4)),
        "`contiguous_strides` returned a list of 2 ints",
        "-> tuple[int, ...]",
        "tuple(...)",
    )


def test_a_0d_tensor_where_an_int_is_promised_fails() -> None:
    def element_offset(index: Any, stride: Any, offset: int = 0) -> Any:
        return (torch.tensor(index) * torch.tensor(stride)).sum() + offset

    ns = _ns(element_offset=element_offset)
    _fails(
        lambda: ns.element_offset((1, 2), (4, 1)),
        "returned a 0-d int64 tensor",
        "-> int",
        ".item()",
    )


def test_the_right_types_pass_and_come_back_unchanged() -> None:
    ref = W1D1.exercise("contiguous_strides").reference()
    ns = _ns(contiguous_strides=ref, element_offset=W1D1.exercise("element_offset").reference())
    assert ns.contiguous_strides((2, 3, 4)) == (12, 4, 1)
    assert ns.element_offset((1, 2), (4, 1)) == 6
    assert inspect.unwrap(ns.contiguous_strides) is ref  # for checks that read the source


def test_an_int_where_a_float_is_promised_passes() -> None:
    ns = _ns(topk_accuracy=lambda logits, labels, k: 1)
    assert ns.topk_accuracy(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), 1) == 1


def test_a_tensor_where_a_float_is_promised_fails() -> None:
    ns = _ns(topk_accuracy=lambda logits, labels, k: torch.tensor(0.5))
    _fails(
        lambda: ns.topk_accuracy(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), 1),
        "-> float",
        ".item()",
    )


def test_a_result_whose_shape_contradicts_the_arguments_fails() -> None:
    # (m, n) instead of (n, m): every number right, the layout transposed.
    ns = _ns(outer_sum=lambda a, b: b[:, None] + a[None, :])
    message = _fails(
        lambda: ns.outer_sum(torch.zeros(3), torch.zeros(5)),
        "returned a float32 tensor of shape (5, 3)",
        "-> Float[Tensor, 'n m']",
        "n=3 (from `a`)",
        "m=5 (from `b`)",
        "should have shape (3, 5)",
    )
    assert "Traceback" not in message


def test_sizes_bound_inside_the_result_must_agree() -> None:
    # tuple[Real[Tensor, ' u'], Int[Tensor, ' u']]: both of the same length u.
    ns = _ns(count_uniques=lambda x: (torch.tensor([1.0, 2.0]), torch.tensor([1, 1, 1])))
    _fails(
        lambda: ns.count_uniques(torch.tensor([1.0, 2.0, 2.0])),
        "item 1 of the tuple",
        "Int[Tensor, 'u']",
        "u=2",
    )


def test_a_wrong_dtype_fails() -> None:
    # normalise_images promises Float32: float64 (the default of torch.tensor(..., float)) fails.
    ns = _ns("w1d2", normalise_images=lambda images, mean=0.0, std=1.0: images / 255.0 * 1.0)
    images = torch.zeros(2, 3, dtype=torch.uint8)
    assert ns.normalise_images(images).dtype == torch.float32
    ns = _ns("w1d2", normalise_images=lambda images, mean=0.0, std=1.0: images.double())
    _fails(lambda: ns.normalise_images(images), "float64", "Float32", "float32")
    ns = _ns(outer_sum=lambda a, b: (a[:, None] + b[None, :]).long())
    _fails(
        lambda: ns.outer_sum(torch.zeros(3), torch.zeros(5)),
        "Its dtype is int64; Float needs a floating-point dtype",
    )


def test_the_wrong_number_of_dimensions_fails() -> None:
    ns = _ns(outer_sum=lambda a, b: (a[:, None] + b[None, :]).reshape(-1))
    _fails(
        lambda: ns.outer_sum(torch.zeros(3), torch.zeros(5)),
        "It has 1 dimension; the annotation needs 2 ('n m')",
    )


def test_errors_the_function_raises_pass_through_unchanged() -> None:
    raised = ShapeError("a should be square, got shape (3, 4)")

    def trace(a: Tensor) -> Tensor:
        if a.shape[0] != a.shape[1]:
            raise raised
        return a.diagonal().sum()

    ns = _ns(trace=trace)
    with pytest.raises(ShapeError) as info:
        ns.trace(torch.zeros(3, 4))
    assert info.value is raised
    stub = _ns(trace=lambda a: (_ for _ in ()).throw(NotImplementedError("not started")))
    with pytest.raises(NotImplementedError, match="not started"):
        stub.trace(torch.zeros(2, 2))


def test_arguments_that_break_their_own_annotations_never_raise() -> None:
    # A check passing a non-square matrix (to test an error path) while the learner's code
    # returns something of the promised type: the arguments are not judged, the result is.
    ns = _ns(trace=lambda a: a[:2, :2].diagonal().sum())
    assert ns.trace(torch.ones(3, 4)).item() == 2.0
    # Without dims from the arguments the result is checked on its own: still a tensor.
    ns = _ns(trace=lambda a: 2.0)
    _fails(lambda: ns.trace(torch.ones(3, 4)), "a 0-d tensor, not a Python number")
    # Arguments the reference's signature cannot even bind are no reason to fail either.
    ns = _ns(outer_sum=lambda *args: torch.zeros(3, 5))
    assert ns.outer_sum(torch.zeros(3), torch.zeros(5), "extra").shape == (3, 5)


def test_python_random_state_is_left_alone() -> None:
    ns = _ns(contiguous_strides=lambda shape: tuple(range(len(shape), 0, -1)))
    random.seed(5)
    ns.contiguous_strides(tuple(range(50)))
    after = random.random()
    random.seed(5)
    assert after == random.random()


def test_generators_none_and_unannotated_returns_are_left_alone() -> None:
    def gen(x: Any, y: Any, batch_size: int, **kw: Any) -> Any:
        yield [1, 2]  # not the promised tuple, but a generator's items are not checked

    minibatches = _ns("w1d2", minibatches=gen).minibatches
    assert list(minibatches(None, None, 2)) == [[1, 2]]
    sgd_step = _ns("w1d2", sgd_step=lambda *a: "anything").sgd_step  # promises None
    assert sgd_step() == "anything"
    assert returns_checked(len, len, "len", dict) is len  # not a Python function


# ----------------------------------------------------------------------------------------------
# Classes: their annotated methods, checked in place


def _linear_class(transposed: bool) -> type:
    class Linear(torch.nn.Module):
        def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(out_features, in_features))

        def forward(self, x: Tensor) -> Tensor:
            out = x @ self.weight.T
            return out.T if transposed else out

    return Linear


def test_a_classes_forward_is_checked_without_changing_the_class() -> None:
    good, bad = _linear_class(False), _linear_class(True)
    ns = _ns("w1d3", Linear=good)
    assert ns.Linear is good
    layer = ns.Linear(4, 3)
    assert type(layer) is good and isinstance(layer, torch.nn.Module)
    assert layer(torch.zeros(5, 4)).shape == (5, 3)
    twin = copy.deepcopy(layer)
    assert twin(torch.zeros(2, 4)).shape == (2, 3)
    assert list(dict(layer.state_dict())) == ["weight"]

    layer = _ns("w1d3", Linear=bad).Linear(4, 3)
    _fails(
        lambda: layer(torch.zeros(5, 4)),
        "`Linear.forward` returned a float32 tensor of shape (3, 5)",
        "-> Float[Tensor, '*batch out_features']",
    )


def test_a_method_returning_none_instead_of_self_fails() -> None:
    from mlab.nn.module import Module

    class ModuleList(Module):
        def __init__(self) -> None:
            super().__init__()

        def append(self, module: Module) -> Any:
            self.add_module(str(len(self._modules)), module)  # forgot `return self`

    ns = _ns("w1d4", ModuleList=ModuleList)
    _fails(lambda: ns.ModuleList().append(Module()), "`ModuleList.append` returned None")


def test_a_learners_class_stands_in_for_the_references_in_annotations() -> None:
    # make_stage promises the reference's Sequential; the learner's own Sequential will do.
    from mlab.nn.module import Module

    class Sequential(Module):
        pass

    ns = _ns("w1d3", Sequential=Sequential, make_stage=lambda *a, **k: Sequential())
    assert isinstance(ns.make_stage(4, 8, 2), Sequential)
    ns = _ns("w1d3", Sequential=Sequential, make_stage=lambda *a, **k: [Sequential()])
    _fails(lambda: ns.make_stage(4, 8, 2), "returned a list of 1 Sequential", "-> Sequential")


# ----------------------------------------------------------------------------------------------
# Through the worker, as `mlab check` runs it


def _learner_file(tmp_path: Path, body: str) -> dict[str, Any]:
    path = tmp_path / "w1d1_tensors.py"
    path.write_text("import torch\n\n" + textwrap.dedent(body), encoding="utf-8")
    return {"kind": "file", "path": str(path)}


def test_the_worker_reports_a_wrong_return_type_as_a_fail(tmp_path: Path) -> None:
    target = _learner_file(
        tmp_path,
        """
        def contiguous_strides(shape):
            strides = []
            step = 1
            for size in reversed(shape):
                strides.insert(0, step)
                step *= size
            return strides
        """,
    )
    ns, files, _ = worker.load_target(W1D1, target)
    result = worker.run_exercise(W1D1, ns, "contiguous_strides", files)
    assert result["status"] == "fail", result
    assert "returned an empty list" in result["message"]
    assert "tuple[int, ...]" in result["message"]


def test_the_learners_traceback_lines_are_still_found(tmp_path: Path) -> None:
    target = _learner_file(
        tmp_path,
        """
        def contiguous_strides(shape):
            return tuple(1 // 0 for _ in shape)
        """,
    )
    ns, files, _ = worker.load_target(W1D1, target)
    result = worker.run_exercise(W1D1, ns, "contiguous_strides", files)
    assert result["status"] == "error", result
    assert "ZeroDivisionError" in result["message"]
    assert "w1d1_tensors.py, line 5" in result["message"], result["message"]
    assert "returns.py" not in result["message"]


def test_the_stub_is_still_not_started() -> None:
    ns, files, _ = worker.load_target(W1D1, {"kind": "stub"})
    for name in ("contiguous_strides", "outer_sum", "count_uniques"):
        result = worker.run_exercise(W1D1, ns, name, files)
        assert result["status"] == "not started", result


# ----------------------------------------------------------------------------------------------
# The references' own annotations


@pytest.mark.parametrize("day", all_days(), ids=[d.id for d in all_days()])
def test_every_reference_return_annotation_resolves(day: Any) -> None:
    """An annotation that does not resolve (a name imported only for type checkers) would
    silently leave that exercise's returns unchecked."""
    for ex in day.exercises:
        if ex.missing_requirements():
            continue
        ref = ex.reference()
        methods = [m for m in vars(ref).values() if inspect.isfunction(m)]
        for fn in [ref] if inspect.isfunction(ref) else methods:
            hints = typing.get_type_hints(fn, include_extras=True)
            assert "return" in hints, f"{ex.ref}: {fn.__qualname__} has no return annotation"


def test_a_generator_exercise_must_return_something_to_iterate() -> None:
    """named_members is a generator in the reference: a learner's version that forgot its
    `yield` returns None, which is named here rather than crashing the check that loops."""
    ns = _ns("w1d4", named_members=lambda module, members_of, *a, **k: None)
    _fails(lambda: ns.named_members(None, None), "`named_members` returned None", "yield")
    ns = _ns("w1d4", named_members=lambda module, members_of, *a, **k: [("w", 1)])
    assert list(ns.named_members(None, None)) == [("w", 1)]  # any iterable will do


def test_the_fields_of_a_returned_dataclass_are_checked() -> None:
    """Two arguments swapped in a dataclass's constructor give an object of the right class
    holding the wrong things: its fields are held to their annotations (one level deep)."""
    from mlab.inspect.compare import Comparison, compare

    def swapped(a: Any, b: Any, *, rtol: float = 1e-4) -> Any:
        right = compare(a, b, rtol=rtol)
        return Comparison(right.a, right.b, right.rows, right.first)  # type: ignore[arg-type]

    from mlab.inspect.record import Run

    run = Run(name="a", steps=[], losses=[], module_types={})
    assert isinstance(_ns("w1d7", compare=compare).compare(run, run), Comparison)
    _fails(
        lambda: _ns("w1d7", compare=swapped).compare(run, run),
        "field `first` of the Comparison",
        "Divergence",
    )
