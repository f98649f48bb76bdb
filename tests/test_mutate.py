"""The mutation engine's generator: each operator makes the mutants it should, never touches
signatures, decorators or docstrings, keeps ids stable, and drops duplicates."""

from __future__ import annotations

import ast
import dataclasses
import textwrap
from pathlib import Path

import pytest
from rich.console import Console

from mlab.course.engine.manifest import Day, get_day
from mlab.course.engine.mutate import Mutant, mutants_of_source
from mlab.course.engine.mutation_report import (
    MIN_SCORE,
    ExerciseMutation,
    MutantResult,
    MutationReport,
    load_allowlist,
    mutation_report,
    print_mutation_report,
    stale_allowlist_entries,
)
from mlab.errors import ConfigError


def mutants(source: str, name: str = "f") -> list[Mutant]:
    return mutants_of_source(textwrap.dedent(source).lstrip("\n"), name)


def bodies(source: str, name: str = "f") -> set[str]:
    """The last line of each mutant's source (the mutated return line in these samples)."""
    return {m.source.strip().splitlines()[-1].strip() for m in mutants(source, name)}


def by_operator(source: str, operator: str) -> set[str]:
    return {
        m.source.strip().splitlines()[-1].strip() for m in mutants(source) if m.operator == operator
    }


def test_arithmetic_operators_are_swapped() -> None:
    src = """
    def f(a, b):
        return a + b * c - d / e // g % h ** i @ j
    """
    got = by_operator(src, "arith")
    assert "return a - b * c - d / e // g % h ** i @ j" in got
    assert "return a + b / c - d / e // g % h ** i @ j" in got
    assert "return a + b * c + d / e // g % h ** i @ j" in got
    assert "return a + b * c - d * e // g % h ** i @ j" in got
    assert "return a + b * c - d // e // g % h ** i @ j" in got
    assert "return a + b * c - d / e / g % h ** i @ j" in got
    assert "return a + b * c - d / e // g // h ** i @ j" in got
    assert "return a + b * c - d / e // g % (h * i) @ j" in got  # precedence kept
    assert "return a + b * c - d / e // g % h ** i * j" in got


def test_augmented_assignment_and_unary() -> None:
    src = """
    def f(x):
        x += 2
        return -x
    """
    assert "x -= 2" in {m.change.split("`")[3] for m in mutants(src) if m.operator == "augassign"}
    assert by_operator(src, "unary") == {"return x"}


def test_comparisons_are_swapped() -> None:
    got = by_operator("def f(a, b):\n    return a < b\n", "compare")
    assert got == {"return a <= b", "return a > b"}
    assert by_operator("def f(a, b):\n    return a == b\n", "compare") == {"return a != b"}
    assert by_operator("def f(a, b):\n    return a >= b\n", "compare") == {
        "return a > b",
        "return a <= b",
    }
    assert by_operator("def f(a, b):\n    return a in b\n", "compare") == {"return a not in b"}


def test_boolean_operators_not_and_constants() -> None:
    assert by_operator("def f(a, b):\n    return a and b\n", "boolop") == {"return a or b"}
    assert by_operator("def f(a):\n    return not a\n", "unary") == {"return a"}
    assert by_operator("def f(a):\n    return g(a, keep=True)\n", "bool") == {
        "return g(a, keep=False)"
    }


def test_conditions_are_negated() -> None:
    src = """
    def f(a, xs):
        while a > 0:
            a -= 1
        ys = [x for x in xs if x]
        if a:
            return 1 if a else 2
        return ys
    """
    got = {m.change for m in mutants(src) if m.operator == "negate"}
    assert got == {
        "`a > 0` → `not a > 0`",
        "`x` → `not x`",
        "`a` → `not a`",
    }
    assert len([m for m in mutants(src) if m.operator == "negate"]) == 4  # two `a`s
    # a `not` condition is not negated twice: dropping the `not` is the mutant
    assert by_operator("def f(a):\n    if not a:\n        return 1\n", "negate") == set()


def test_integer_constants_are_nudged() -> None:
    assert by_operator("def f(x):\n    return x[3]\n", "const") == {"return x[4]", "return x[2]"}
    assert by_operator("def f(x):\n    return x + -1\n", "const") == {
        "return x + 0",
        "return x + -2",
    }


def test_dim_arguments_are_changed_keeping_their_sign() -> None:
    # 0 never becomes -1: on a 1-d input that is the same dim, an equivalent mutant
    cases = {
        "return x.sum(dim=1)": {"return x.sum(dim=2)", "return x.sum(dim=0)"},
        "return x.softmax(-1)": {"return x.softmax(-2)"},
        "return torch.mean(x, 0)": {"return torch.mean(x, 1)"},
        "return torch.cat([x, y], 0)": {"return torch.cat([x, y], 1)"},
        "return x.flip(dims=(0,))": {"return x.flip(dims=(1,))"},
        "return np.sum(x, axis=-2)": {"return np.sum(x, axis=-1)", "return np.sum(x, axis=-3)"},
    }
    for line, expected in cases.items():
        assert by_operator(f"def f(x, y):\n    {line}\n", "dim") == expected, line
    # transpose: both arguments are dims
    assert by_operator("def f(x):\n    return x.transpose(0, 1)\n", "dim") == {
        "return x.transpose(1, 1)",
        "return x.transpose(0, 2)",
        "return x.transpose(0, 0)",
    }
    assert by_operator("def f(x):\n    return x.softmax(-1)\n", "unary") == set()
    assert by_operator("def f(x):\n    return x[-1]\n", "unary") == {"return x[1]"}
    # Python's own max is not torch.max(x, dim); a dim is not also a "const"
    assert by_operator("def f(x):\n    return max(x, 1)\n", "dim") == set()
    assert by_operator("def f(x):\n    return x.sum(1)\n", "const") == set()
    changes = {m.change for m in mutants("def f(x):\n    return x.sum(1)\n") if m.operator == "dim"}
    assert changes == {"`x.sum(1)` → `x.sum(2)`", "`x.sum(1)` → `x.sum(0)`"}


def test_slice_bounds_are_changed() -> None:
    assert by_operator("def f(x):\n    return x[1:]\n", "slice") == {
        "return x[2:]",
        "return x[0:]",
        "return x[:]",
        "return x[:-1]",
    }
    assert by_operator("def f(x, n):\n    return x[:n]\n", "slice") == {
        "return x[:n + 1]",
        "return x[:n - 1]",
        "return x[:]",
    }
    assert by_operator("def f(x):\n    return x[:, :-2]\n", "slice") >= {"return x[:, 2:]"}
    # bounds belong to the slice operator, not to const
    assert by_operator("def f(x):\n    return x[1:]\n", "const") == set()


def test_adjacent_positional_arguments_are_swapped() -> None:
    assert by_operator("def f(x):\n    return g(x, 2, *r)\n", "args") == {"return g(2, x, *r)"}
    assert by_operator("def f(x):\n    return g(x, x)\n", "args") == set()
    assert by_operator("def f(x):\n    return max(x, 2)\n", "args") == set()  # symmetric


def test_statements_are_deleted_with_pass_where_needed() -> None:
    src = """
    def f(x):
        \"\"\"Doc.\"\"\"
        for i in x:
            print(i)
        return x
    """
    got = {m.source for m in mutants(src) if m.operator == "stmt"}
    assert len(got) == 3  # the loop, the print, the return; never the docstring
    assert any("for i in x:\n        pass" in s for s in got)
    assert all('"""Doc."""' in s for s in got)


def test_signature_decorators_docstrings_and_fstrings_are_untouched() -> None:
    src = '''
    @functools.lru_cache(maxsize=2)
    def f(x: Float[Tensor, "b 3"], n: int = 3, *, dim: int = -1) -> Int[Tensor, "b 2"]:
        """Add 1 to the first 2 rows (3 of them at most)."""
        if n < 0:
            raise ValueError(f"n={n + 1} should be at least 0")
        return x[:2] + 1
    '''
    original = ast.parse(textwrap.dedent(src)).body[0]
    assert isinstance(original, ast.FunctionDef)
    found = mutants(src)
    assert found
    for m in found:
        fn = ast.parse(m.source).body[0]
        assert isinstance(fn, ast.FunctionDef)
        assert ast.dump(fn.args) == ast.dump(original.args), m.id
        assert ast.dump(fn.returns) == ast.dump(original.returns), m.id  # type: ignore[arg-type]
        assert ast.dump(fn.decorator_list[0]) == ast.dump(original.decorator_list[0]), m.id
        assert ast.get_docstring(fn) == ast.get_docstring(original), m.id
        assert "n={n + 1} should be" in m.source or m.operator == "stmt", m.id
        compile(m.source, "<mutant>", "exec")


def test_ids_are_stable_when_code_elsewhere_changes() -> None:
    src = '''
    def f(a, b):
        """Doc."""
        c = a + b
        return c * 2
    '''
    longer_doc = '''
    def f(a, b):
        """Doc.

        More words, on more lines.
        """
        c = a + b
        return c * 2
    '''
    ids = [m.id for m in mutants(src)]
    assert ids == [m.id for m in mutants(longer_doc)]
    assert ids == [
        m.id for m in mutants_of_source(textwrap.dedent(src).lstrip(), "f", first_line=500)
    ]
    assert "f:arith:L1:C8:0" in ids and "f:const:L2:C15:0" in ids
    assert len(ids) == len(set(ids))
    moved = mutants_of_source(textwrap.dedent(src).lstrip(), "f", first_line=500)[0]
    assert moved.module_line == 502 and moved.description.startswith("line 502: ")


def test_duplicates_and_no_ops_are_dropped() -> None:
    src = """
    def f(x):
        x += 1
        x += 1
        return x
    """
    found = mutants(src)
    deletions = [m for m in found if m.operator == "stmt"]
    assert len(deletions) == 2  # deleting either `x += 1` gives the same code: kept once
    assert len({m.source for m in found}) == len(found)
    original = ast.unparse(ast.parse(textwrap.dedent(src)))
    assert all(m.source.strip() != original.strip() for m in found)


def test_class_methods_are_mutated_and_the_source_is_the_whole_class() -> None:
    src = '''
    class Scale:
        """Multiply by a factor."""

        factor: int = 2

        def __init__(self, k):
            self.k = k

        def __call__(self, x):
            return x * self.k
    '''
    found = mutants(src, "Scale")
    assert {m.id.split(":")[0] for m in found} == {"Scale.__init__", "Scale.__call__"}
    for m in found:
        tree = ast.parse(m.source).body[0]
        assert isinstance(tree, ast.ClassDef) and tree.name == "Scale"
        assert "factor: int = 2" in m.source
    assert any("return x / self.k" in m.source for m in found)
    assert any(m.change.startswith("__call__, ") for m in found)


def _day(directory: Path) -> Day:
    return Day("w9d9", "test", "T", "S", directory, directory / "README.md")


def test_allowlist_loads_and_rejects_entries_without_reason(tmp_path: Path) -> None:
    assert load_allowlist(_day(tmp_path)) == {}
    path = tmp_path / "equivalent_mutants.toml"
    path.write_text('[[equivalent]]\nid = "f:const:L1:C4:0"\nreason = "same for every input"\n')
    assert load_allowlist(_day(tmp_path)) == {"f:const:L1:C4:0": "same for every input"}
    path.write_text('[[equivalent]]\nid = "f:const:L1:C4:0"\nreason = " "\n')
    with pytest.raises(ConfigError, match="reason"):
        load_allowlist(_day(tmp_path))
    path.write_text('[[equivalent]]\nid = "f:const:L1:C4:0"\n')
    with pytest.raises(ConfigError, match="reason"):
        load_allowlist(_day(tmp_path))


def test_report_scores_and_prints_survivors() -> None:
    found = mutants("def f(a, b):\n    return a + b * 2\n")
    results = (
        MutantResult(found[0], "fail", origin="check"),
        MutantResult(found[1], "pass"),
        MutantResult(found[2], "timeout", origin="code"),
    )
    ex = ExerciseMutation("f", "f.py", results, equivalent={found[2].id: "why"})
    assert (ex.killed, ex.counted, ex.score) == (1, 2, 0.5)
    assert ex.survivors == [found[1]]
    assert ex.wrongly_allowlisted == [found[2]]  # killed, so not equivalent
    report = MutationReport("w9d9", (ex,), stale=("g:const:L1:C1:0",), seconds=1.0)
    assert report.score == 0.5
    assert len(report.problems) == 3  # below the bar, stale, wrongly allowlisted
    console = Console(record=True, width=120)
    print_mutation_report(report, console)
    text = console.export_text()
    assert found[1].id in text and found[1].description in text
    assert "equivalent_mutants.toml" in text and "g:const:L1:C1:0" in text


def _results(pairs: list[tuple[str, str]]) -> tuple[MutantResult, ...]:
    found = mutants("def f(a, b, c):\n    return (a + b) * c - a / (b + 2) ** 3 + c * 5 - 7\n")
    assert len(found) >= len(pairs)
    chosen = zip(found[: len(pairs)], pairs, strict=True)
    return tuple(MutantResult(m, status, origin=origin) for m, (status, origin) in chosen)


def test_only_a_failed_check_a_raise_or_a_timeout_kills() -> None:
    results = _results(
        [
            ("fail", "check"),  # a check failed: killed
            ("error", "code"),  # the mutant's own code raised: killed
            ("timeout", "code"),  # its checks ran out of time: killed (as documented)
            ("pass", ""),  # survived
            ("error", "worker"),  # the check process crashed: no verdict
            ("error", "load"),  # the mutant did not load: no verdict
            ("timeout", "load"),  # its loading timed out: no verdict
            ("error", "course"),  # the day's checks are broken: no verdict
            ("error", "check"),  # a check raised by itself (on a None, say): no verdict
        ]
    )
    outcomes = [r.outcome for r in results]
    assert outcomes == [
        "killed by a check",
        "killed by a raise",
        "killed by a timeout",
        "survived",
        *["invalid"] * 5,
    ]
    ex = ExerciseMutation("f", "f.py", results)
    assert (ex.killed, ex.counted, ex.score) == (3, 4, 0.75)  # invalid ones are not counted
    assert [r.mutant for r in ex.invalid] == [r.mutant for r in results[4:]]
    assert ex.survivors == [results[3].mutant]
    report = MutationReport("w9d9", (ex,), stale=(), seconds=1.0)
    console = Console(record=True, width=80)
    print_mutation_report(report, console)
    text = console.export_text()
    assert "5 invalid (no verdict, not counted)" in text
    assert "the check process died" in text and "the mutant did not load" in text
    assert all(r.mutant.id in text for r in results[3:])


def test_the_bar_holds_for_every_exercise_not_only_the_day() -> None:
    strong = ExerciseMutation("strong", "s.py", _results([("fail", "check")] * 9))
    weak = ExerciseMutation(
        "expand_layout", "e.py", _results([("fail", "check")] * 2 + [("pass", "")])
    )
    strong = dataclasses.replace(strong, results=strong.results * 3)  # 27 of 27
    report = MutationReport("w9d9", (strong, weak), stale=(), seconds=1.0)
    assert report.score >= MIN_SCORE  # 29 of 30: the day as a whole passes ...
    assert report.below_bar == [weak]  # ... yet one exercise kills 2 of 3
    assert report.problems == [
        "expand_layout: the checks kill 2 of 3 mutants (67%); every exercise needs 85%"
    ]
    console = Console(record=True, width=80)
    print_mutation_report(report, console)
    text = console.export_text()
    assert "bar: 85% for every exercise" in text and "97%" in text  # the day's score too


def test_an_allowlist_entry_naming_no_exercise_is_stale(tmp_path: Path) -> None:
    day = dataclasses.replace(get_day("w1d1"), directory=tmp_path)
    (tmp_path / "equivalent_mutants.toml").write_text(
        '[[equivalent]]\nid = "contiguous_stride:const:L1:C4:0"\nreason = "a typo"\n'
        '[[equivalent]]\nid = "contiguous_strides:const:L99:C4:0"\nreason = "gone"\n'
    )
    found = stale_allowlist_entries(day)
    assert found == [
        f"{tmp_path.name}/equivalent_mutants.toml: contiguous_stride:const:L1:C4:0 names no "
        "exercise of w1d1 ('contiguous_stride'): delete it, or fix the exercise name",
        f"{tmp_path.name}/equivalent_mutants.toml: contiguous_strides:const:L99:C4:0 matches no "
        "mutant of contiguous_strides (the code changed): delete it; `mlab mutants w1d1 -e "
        "contiguous_strides` shows the current survivors",
    ]
    # the mutation run reports it too, even when run on another exercise
    report = mutation_report(day, ["is_contiguous"], workers=1)
    assert report.stale == ("contiguous_stride:const:L1:C4:0",)
    assert any("contiguous_stride:const:L1:C4:0" in p for p in report.problems)


@pytest.mark.parametrize("again", ["pass", "timeout"])
def test_a_control_that_times_out_is_run_again_with_more_time(
    monkeypatch: pytest.MonkeyPatch, again: str
) -> None:
    """A busy machine can make the unmutated reference time out: it runs again alone with
    three times the time, and only a second timeout marks the run untrustworthy."""
    from mlab.course.engine import runner

    calls: list[tuple[int, float]] = []

    def fake_run_jobs(day, jobs, *, timeout_scale=1.0, **kwargs):  # type: ignore[no-untyped-def]
        jobs = list(jobs)
        calls.append((len(jobs), timeout_scale))
        if len(calls) > 1:
            return [runner.Result(ex, again) for _, ex in jobs]
        return [
            runner.Result(ex, "timeout" if t.label.endswith(":control") else "fail")
            for t, ex in jobs
        ]

    monkeypatch.setattr(runner, "run_jobs", fake_run_jobs)
    day = get_day("w1d5")
    report = mutation_report(day, [day.exercises[0].name])
    assert calls[1] == (1, 3.0)  # the control alone, with three times the time
    assert report.exercises[0].control == again
    assert any("cannot be trusted" in p for p in report.problems) == (again == "timeout")
