"""w1d1 part 1's diagnostics show the call the exercise got (its shape and stride tuples),
not a tensor it never sees, in lines that fit a panel at 80 columns."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from mlab.course.w1d1_tensors import checks_strides
from mlab.errors import MismatchError


def _note(check: Any, **exercise: Any) -> str:
    with pytest.raises(AssertionError) as info:
        check(SimpleNamespace(**exercise))
    return "\n".join(info.value.__notes__)


def test_element_offset_shows_the_call_and_where_its_numbers_came_from() -> None:
    note = _note(
        checks_strides.offsets_match_torch_indexing,
        element_offset=lambda index, stride, offset=0: offset + sum(index),
    )
    assert note.splitlines() == [
        "while checking: element_offset(index=(0, 1, 2), stride=(20, 4, 1), offset=0)",
        "  (x[0, 1, 2] of a fresh 6x5x4 tensor)",
    ]


def test_an_input_the_call_shows_is_not_listed_again() -> None:
    note = _note(checks_strides.strides_match_fresh_tensors, contiguous_strides=lambda s: (1,))
    assert note == "while checking: contiguous_strides(shape=())"


@pytest.mark.parametrize(
    ("check", "exercise", "wrong"),
    [
        (checks_strides.contiguity_matches_torch, "is_contiguous", 7),
        (checks_strides.transpose_matches_torch, "transpose_layout", ((7,), (7,))),
        (checks_strides.narrow_matches_torch, "narrow_layout", ((7,), (7,), 7)),
        (checks_strides.expand_matches_torch, "expand_layout", ((7,), (7,))),
        (checks_strides.diagonal_matches_torch, "diagonal_layout", ((7,), (7,), 7)),
    ],
)
def test_layout_exercises_show_their_call_within_76_columns(
    check: Any, exercise: str, wrong: Any
) -> None:
    with pytest.raises(MismatchError) as info:
        check(SimpleNamespace(**{exercise: lambda *args: wrong}))
    lines = "\n".join(info.value.__notes__).splitlines()
    assert lines[0].startswith(f"while checking: {exercise}(shape=")
    assert "Tensor(" not in "\n".join(lines)
    assert max(map(len, lines)) <= 76, lines
