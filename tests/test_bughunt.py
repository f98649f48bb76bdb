"""Bug hunts: the catalogue plants small, meaningful bugs that still run; the comparison of
``mlab inspect`` localises each kind; the game and its CLI keep score and never lose edits."""

from __future__ import annotations

import ast
import difflib
import math
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlab.bughunt import game
from mlab.bughunt.catalogue import (
    ENCLOSING,
    Bug,
    Evidence,
    affected_layers,
    applicable,
    draw,
    kinds,
    make_bug,
    sites,
    target_path,
    targets,
)
from mlab.bughunt.cli import bughunt_app
from mlab.bughunt.source import Source, apply_edits, changed_lines
from mlab.errors import MlabError
from mlab.inspect import Divergence, Run, compare, load_script, run_script

ALL_SITES = [
    (target, k.id, i)
    for k in kinds()
    for target in targets()
    for i in range(len(sites(k.id, target)))
]
DETECTION_SEEDS = (0, 1, 2)
MIN_DETECTION = 0.8


# -- the catalogue ---------------------------------------------------------------------------


def test_the_catalogue_has_at_least_15_kinds_each_with_a_target() -> None:
    ids = [k.id for k in kinds()]
    assert len(ids) >= 15, ids
    assert len(set(ids)) == len(ids), f"duplicate ids in {ids}"
    for k in kinds():
        assert k.title and len(k.why) > 80, f"{k.id} needs a title and an explanation"
        assert k.evidence, f"{k.id} says nothing about what inspect should show"
        fits = [t for t in targets() if sites(k.id, t)]
        assert fits, f"bug kind {k.id} has no site in any target {targets()}"


def test_targets_follow_the_script_protocol() -> None:
    assert len(targets()) >= 3
    for target in targets():
        module = load_script(target_path(target))  # raises unless build_model and train exist
        assert module.__doc__, f"{target} needs a module docstring"
        assert len(applicable(target)) >= 10, f"{target}: only {len(applicable(target))} kinds"


@pytest.mark.parametrize(("target", "kind_id", "site"), ALL_SITES)
def test_every_site_is_a_small_diff_that_still_compiles(
    target: str, kind_id: str, site: int
) -> None:
    bug = make_bug(target, kind_id, site)
    compile(bug.bugged, f"{target}.py", "exec")
    removed, added = _diff_lines(bug)
    assert 1 <= len(removed) <= 2 and len(added) <= 2, f"{kind_id} in {target}:\n{bug.diff()}"
    assert ast.dump(ast.parse(bug.bugged)) != ast.dump(ast.parse(bug.original)), "a no-op"
    lines = bug.bugged.splitlines()
    assert bug.lines and all(1 <= n <= len(lines) for n in bug.lines)
    for line in added:
        assert line in [lines[n - 1] for n in bug.lines], f"changed line {line!r} not in lines"


def _diff_lines(bug: Bug) -> tuple[list[str], list[str]]:
    diff = list(difflib.unified_diff(bug.original.splitlines(), bug.bugged.splitlines(), n=0))
    removed = [d[1:] for d in diff[2:] if d.startswith("-")]
    added = [d[1:] for d in diff[2:] if d.startswith("+")]
    return removed, added


def test_draw_is_deterministic_and_reaches_every_applicable_kind() -> None:
    for target in targets():
        assert draw(target, 7).bugged == draw(target, 7).bugged
        drawn = {draw(target, seed).kind.id for seed in range(300)}
        assert drawn == {k.id for k in applicable(target)}, target
    bug = draw("transformer", 3, kind="softmax_dim")
    assert bug.kind.id == "softmax_dim"
    assert "dim=-2" in bug.bugged.splitlines()[bug.line - 1]


def test_draw_rejects_unknown_names_and_kinds_that_do_not_fit() -> None:
    with pytest.raises(MlabError, match=r"no bug-hunt target 'resnet'.*cnn, mlp, transformer"):
        draw("resnet", 0)
    with pytest.raises(MlabError, match="no bug kind 'typo'"):
        draw("mlp", 0, kind="typo")
    with pytest.raises(MlabError, match="has no place in target 'mlp'; it fits transformer"):
        draw("mlp", 0, kind="softmax_dim")


def test_enclosing_class_becomes_the_expected_layer() -> None:
    bug = make_bug("cnn", "residual_dropped", 0)
    assert [e.layers for e in bug.expected] == [("ResidualBlock",)]
    for target, kind_id, site in ALL_SITES:
        for evidence in make_bug(target, kind_id, site).expected:
            assert ENCLOSING not in evidence.layers, (target, kind_id, site)


def test_edits_keep_every_other_character() -> None:
    text = "x = 1  # é\ny = f(a, b)  # keep\n"
    src = Source(text)
    call = next(n for n in ast.walk(src.tree) if isinstance(n, ast.Call))
    out = apply_edits(text, [src.replace(call.args[1], "c")])
    assert out == "x = 1  # é\ny = f(a, c)  # keep\n"
    assert changed_lines(text, out) == (2,)
    assert changed_lines(text, "y = f(a, b)  # keep\n") == (1,)  # deleted line 1: gap at 1
    with pytest.raises(ValueError, match="overlap"):
        apply_edits(text, [src.replace(call, "g()"), src.replace(call.args[0], "z")])


# -- detection: what `mlab inspect` shows for each kind ---------------------------------------

_references: dict[tuple[str, int], Run] = {}


def _reference(target: str, seed: int) -> Run:
    if (target, seed) not in _references:
        _references[target, seed] = run_script(target_path(target), seed=seed, name="reference")
    return _references[target, seed]


def test_evidence_names_the_layers_around_a_container() -> None:
    run = _reference("cnn", 0)
    blocks = affected_layers(["ResidualBlock"], run)
    assert {"layer1.conv1", "layer2.shortcut.0", "bn", "fc"} <= blocks  # inside, before, after
    assert "stem" not in blocks
    batchnorms = {"bn", "layer1.bn1", "layer1.bn2", "layer2.bn1", "layer2.bn2", "layer2.shortcut.1"}
    assert affected_layers(["BatchNorm2d"], run) == batchnorms  # leaves: no neighbours
    dropout = Evidence("forward", ("Dropout",))
    at = Divergence("forward", 0, "layer1.bn1", 1.0, "")
    assert not dropout.matches(at, run)
    assert Evidence("forward", ("ResidualBlock",)).matches(at, run)
    assert not Evidence("backward", ("ResidualBlock",)).matches(at, run)
    param = Divergence("update", 1, "layer2.conv1.weight", 1.0, "")
    assert Evidence("update").matches(param, run)
    assert Evidence("backward", ("ResidualBlock",)).matches(
        Divergence("backward", 0, "layer2.conv1.weight", 1.0, ""), run
    )  # a parameter's gradient counts for its module


def test_a_bug_does_not_match_the_evidence_of_another_kind(tmp_path: Path) -> None:
    """The detection test can fail: evidence promised for one kind is not what a bug of
    another kind shows, and an unchanged script shows nothing."""
    reference = _reference("mlp", 0)
    same = compare(reference, run_script(target_path("mlp"), seed=0)).first
    assert same.kind == "none" and not draw("mlp", 0).shown_by(same, reference)
    path = tmp_path / "bugged.py"
    path.write_text(make_bug("mlp", "eval_mode", 0).bugged, encoding="utf-8")
    first = compare(reference, run_script(path, seed=0)).first
    assert make_bug("mlp", "eval_mode", 0).shown_by(first, reference)
    for other in ("dropout_keep", "not_shuffled", "zero_grad_missing", "labels_off_by_one"):
        assert not make_bug("mlp", other, 0).shown_by(first, reference), other


@pytest.mark.slow
@pytest.mark.parametrize("kind_id", [k.id for k in kinds()])
def test_inspect_flags_each_kind_of_bug(kind_id: str, tmp_path: Path) -> None:
    """For every site of the kind in every target, and several seeds: the bugged script runs
    3 steps with finite losses, and comparing it with the reference shows the evidence the
    catalogue promises, for at least 80% of the (bug, seed) pairs."""
    pairs, misses = 0, []
    for target, kind, site in ALL_SITES:
        if kind != kind_id:
            continue
        for seed in DETECTION_SEEDS:
            bug = make_bug(target, kind_id, site, seed)
            path = tmp_path / f"{target}_{site}_{seed}.py"
            path.write_text(bug.bugged, encoding="utf-8")
            run = run_script(path, steps=3, seed=seed, name="bugged", timeout_s=60)
            assert all(math.isfinite(x) for x in run.losses), f"{path}: losses {run.losses}"
            reference = _reference(target, seed)
            first = compare(reference, run).first
            pairs += 1
            if not bug.shown_by(first, reference):
                expected = " or ".join(e.describe() for e in bug.expected)
                misses.append(
                    f"{target} site {site} seed {seed}: {first.kind} at {first.layer}"
                    f" (expected {expected})"
                )
    flagged = pairs - len(misses)
    print(f"\n{'kind':<22} {'pairs':>5} {'flagged':>7}\n{kind_id:<22} {pairs:>5} {flagged:>7}")
    assert flagged >= MIN_DETECTION * pairs, "\n".join(misses)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["mlp", "cnn", "transformer"])
def test_reference_targets_learn(target: str) -> None:
    module = load_script(target_path(target))
    model = module.build_model(0)
    losses = module.train(model, steps=60, seed=0)
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.8 * first, f"{target}: loss {first:.3f} -> {last:.3f} over 60 steps"


# -- the game ---------------------------------------------------------------------------------


def _hunt(tmp_path: Path, seed: int = 0) -> tuple[Path, Bug]:
    started = game.new(tmp_path, "mlp", seed)
    return started.path, started.bug


def test_a_hunt_from_new_to_reveal(tmp_path: Path) -> None:
    path, bug = _hunt(tmp_path)
    assert path == tmp_path / "bughunt" / "mlp.py"
    assert path.read_text(encoding="utf-8") == bug.bugged
    state = game.status(tmp_path)
    assert state.hunt is not None and not state.edited and not state.hunt.finished
    far = 1 if bug.line > 10 else len(bug.bugged.splitlines())
    miss = game.guess(tmp_path, f"bughunt/mlp.py:{far}")
    assert miss.outcome == "not here" and miss.n_guesses == 1
    near = bug.line - 2 if bug.line - 2 not in bug.lines else bug.line + 2
    assert game.guess(tmp_path, f"mlp.py:{near}").outcome == "close"
    hit = game.guess(tmp_path, f"{path}:{bug.line}")  # an absolute path works too
    assert hit.outcome == "found" and hit.n_guesses == 3 and hit.bug.kind == bug.kind
    shown = game.reveal(tmp_path)
    assert shown.diff == bug.diff() and shown.hunt.found and shown.hunt.revealed
    assert [g.outcome for g in shown.hunt.guesses] == ["not here", "close", "found"]


def test_new_resumes_refuses_and_keeps_edits(tmp_path: Path) -> None:
    path, bug = _hunt(tmp_path)
    assert game.new(tmp_path, "mlp", 0).resumed
    with pytest.raises(MlabError, match=r"in progress.*--force.*nothing was changed"):
        game.new(tmp_path, "mlp", 1)
    game.reveal(tmp_path)
    path.write_text(bug.bugged + "print('my note')\n", encoding="utf-8")
    with pytest.raises(MlabError, match=r"changes of yours.*--force"):
        game.new(tmp_path, "mlp", 1)
    assert path.read_text(encoding="utf-8").endswith("print('my note')\n")  # untouched
    started = game.new(tmp_path, "mlp", 1, force=True)
    assert started.kept == [tmp_path / "bughunt" / "mlp.edited.py"]
    assert started.kept[0].read_text(encoding="utf-8").endswith("print('my note')\n")
    assert path.read_text(encoding="utf-8") == draw("mlp", 1).bugged
    game.reveal(tmp_path)
    assert not game.new(tmp_path, "mlp", 2).kept  # a finished, unedited hunt is replaced


def test_guesses_in_an_edited_file_map_to_the_original_lines(tmp_path: Path) -> None:
    path, bug = _hunt(tmp_path)
    lines = bug.bugged.splitlines(keepends=True)
    lines.insert(2, "print('debugging')\n")  # the learner adds a line near the top
    path.write_text("".join(lines), encoding="utf-8")
    assert game.status(tmp_path).edited
    with pytest.raises(MlabError, match=r"line 3 of mlp.py is one you added"):
        game.guess(tmp_path, "bughunt/mlp.py:3")
    hit = game.guess(tmp_path, f"bughunt/mlp.py:{bug.line + 1}")
    assert hit.outcome == "found" and hit.original == bug.line and hit.edited


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("foo", "'foo' is not FILE:LINE"),
        ("bughunt/mlp.py:x", "'x' in 'bughunt/mlp.py:x' is not a line number"),
        ("bughunt/mlp.py:0", "lines count from 1"),
        ("bughunt/mlp.py:100000", "mlp.py has only \\d+ lines"),
        ("bughunt/cnn.py:3", "bughunt/cnn.py is not the hunt's file: the bug is in"),
        ("elsewhere/mlp.py:3", "elsewhere/mlp.py is not the hunt's file"),
    ],
)
def test_bad_guesses_are_clear_errors(tmp_path: Path, spec: str, message: str) -> None:
    _hunt(tmp_path)
    with pytest.raises(MlabError, match=message):
        game.guess(tmp_path, spec)
    assert not game.status(tmp_path).hunt.guesses  # type: ignore[union-attr]


def test_no_hunt_is_a_clear_error(tmp_path: Path) -> None:
    assert game.status(tmp_path).hunt is None
    for call in (lambda: game.guess(tmp_path, "a.py:1"), lambda: game.reveal(tmp_path)):
        with pytest.raises(MlabError, match=r"no bug hunt in .*mlab bughunt new"):
            call()


# -- the command line -------------------------------------------------------------------------

runner = CliRunner()


def _cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(bughunt_app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, re.sub(r"\s+", " ", result.output)


def test_cli_plays_a_hunt(tmp_path: Path) -> None:
    ws = str(tmp_path)
    code, out = _cli("list")
    assert code == 0 and all(k.id in out for k in kinds())
    code, out = _cli("status", "--dir", ws)
    assert code == 0 and "No bug hunt" in out
    code, out = _cli("new", "--target", "mlp", "--seed", "4", "--dir", ws)
    assert code == 0 and "bughunt/mlp.py" in out and "mlab bughunt inspect" in out
    bug = draw("mlp", 4)
    code, out = _cli("guess", "nonsense", "--dir", ws)
    assert code == 2 and "error: 'nonsense' is not FILE:LINE" in out
    wrong = 1 if bug.line > 10 else 50
    code, out = _cli("guess", f"bughunt/mlp.py:{wrong}", "--dir", ws)
    assert code == 1 and "Not here" in out
    code, out = _cli("new", "--target", "cnn", "--dir", ws)
    assert code == 2 and "in progress" in out
    code, out = _cli("guess", f"bughunt/mlp.py:{bug.line}", "--dir", ws)
    assert code == 0 and "Found it" in out and bug.kind.title in out
    code, out = _cli("status", "--dir", ws)
    assert code == 0 and "found" in out and "not here" in out
    code, out = _cli("reveal", "--no-inspect", "--dir", ws)
    assert code == 0 and bug.kind.why[:40] in out and "+++ bughunt/mlp.py" in out


def test_cli_output_at_80_columns_keeps_code_whole_and_lists_indented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrapped line of a diff loses its +/-/space prefix: reveal prints the diff as it
    is. The steps after `new` hang under their numbers. `--force` is a flag (no type shown),
    and `--dir` says how the workspace is found."""
    from rich.console import Console

    from mlab.bughunt import cli

    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(cli, "console", Console())
    monkeypatch.chdir(tmp_path)  # short paths: a path is never split, even past the edge
    ws = "workspace"
    new = runner.invoke(bughunt_app, ["new", "--target", "mlp", "--seed", "3", "--dir", ws])
    assert new.exit_code == 0, new.output
    steps = new.output.split("How to hunt:\n")[1].splitlines()
    assert steps and max(map(len, steps)) <= 80, new.output
    for line in steps:
        assert re.match(r"  \d\. \S|     \S", line), new.output
    diff = draw("mlp", 3).diff().splitlines()
    assert max(map(len, diff)) > 80  # the test needs a line longer than the terminal
    reveal = runner.invoke(bughunt_app, ["reveal", "--no-inspect", "--dir", ws])
    assert reveal.exit_code == 0, reveal.output
    lines = reveal.output.splitlines()
    start = lines.index(diff[0])
    assert lines[start : start + len(diff)] == diff, reveal.output
    usage = runner.invoke(bughunt_app, ["new", "--help"]).output
    assert re.search(r"--force\s+Start even", usage), usage
    assert "found from the current folder upwards" in re.sub(r"[\s│]+", " ", usage), usage


def test_cli_inspect_and_reveal_show_the_evidence(tmp_path: Path) -> None:
    ws = str(tmp_path)
    _cli("new", "--target", "mlp", "--seed", "0", "--dir", ws)
    bug = draw("mlp", 0)
    code, out = _cli("inspect", "--dir", ws, "--out", str(tmp_path / "report"))
    assert code == 0, out
    assert f"first divergence from the reference: {bug.expected[0].kind}" in out
    assert (tmp_path / "report" / "report.html").is_file()
    code, out = _cli("reveal", "--dir", ws)
    assert code == 0 and "What it shows (seed 0)" in out
    (tmp_path / "bughunt" / "mlp.py").write_text("def broken(:\n", encoding="utf-8")
    code, out = _cli("inspect", "--dir", ws)
    assert code == 2 and "syntax error" in out


def test_an_edit_in_the_models_own_forward_names_the_layers_it_feeds() -> None:
    """In the model's own forward "the enclosing class" would be every layer: the evidence
    narrows to the module whose output the edit changes and the layer that reads it."""
    bug = make_bug("mlp", "activation_dropped", 0)
    (evidence,) = bug.expected
    assert evidence.feeds == ("bn1",)
    run = _reference("mlp", 0)
    assert affected_layers(evidence.layers, run, evidence.feeds) == {"bn1", "drop1"}
    assert not evidence.matches(Divergence("forward", 0, "fc2", 1.0, ""), run)
    assert evidence.matches(Divergence("forward", 0, "drop1", 1.0, ""), run)
    assert "bn1 or the layer reading its output" in evidence.describe()


@pytest.mark.slow
def test_cli_inspect_of_the_transformer_at_80_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transformer's long layer names once pushed the type column out and cut numbers
    to `0.…`: at 80 columns every line fits, the type column stays, no number is cut, no
    name is split inside a word; the verdict points into the module whose code differs."""
    from rich.console import Console

    from mlab.bughunt import cli

    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(cli, "console", Console())
    ws = str(tmp_path)
    _cli("new", "--target", "transformer", "--seed", "3", "--dir", ws)
    result = runner.invoke(bughunt_app, ["inspect", "--dir", ws, "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(map(len, lines)) <= 80, result.output
    assert "…" not in result.output, result.output
    header = next(line for line in lines if "┃ layer" in line)
    for column in ("type", "mean", "std", "norm", "grad"):
        assert f" {column} " in header, result.output
    assert any("Dropout" in line for line in lines) and any("LayerNorm" in line for line in lines)
    names: list[str] = []  # each name whole, or broken after a dot only
    for line in lines:
        if line.startswith("│"):
            layer, kind = (cell.strip() for cell in line.split("│")[1:3])
            if kind:
                names.append(layer)
            else:
                assert names[-1].endswith("."), f"{names[-1]!r} split mid-word: {result.output}"
                names[-1] += layer
    assert "blocks.0.attn.resid_drop" in names and "blocks.1.mlp.fc_out" in names, names
    # seed 3: `y @ self.W_O` for `y @ self.W_O.T` in CausalSelfAttention.forward; the first
    # differing output is a Dropout in the right mode, handed what the parent computed
    assert draw("transformer", 3).kind.id == "transposed_weight"
    verdict = re.sub(r"\s+", " ", result.output)
    assert "the difference arises inside `blocks.0.attn` (CausalSelfAttention)" in verdict
    assert "between `attn_drop` and `resid_drop`" in verdict and "different mode" not in verdict
