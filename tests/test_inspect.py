"""mlab.inspect: statistics against numpy, the recorder against torch autograd, compare()
localising every kind of bug in a small training script, health findings, the report, the CLI.
"""

from __future__ import annotations

import base64
import copy
import math
import re
from html.parser import HTMLParser
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from rich.console import Console
from torch import Tensor, nn

from mlab.errors import MlabError
from mlab.inspect import (
    Recorder,
    Run,
    StepRecord,
    TensorStats,
    compare,
    health,
    histogram,
    load_script,
    record_batch,
    relative_difference,
    run_script,
    saturation_for,
    stats_difference,
    tensor_stats,
    write_report,
)
from mlab.inspect.cli import compact, inspect_command, layer_table
from mlab.inspect.compare import UpdateSize, update_sizes
from mlab.inspect.record import recorded_modules
from mlab.testing import assert_close, generator

DATA = Path(__file__).parent / "data" / "inspect"
MLP = DATA / "mlp.py"


@pytest.fixture(scope="module")
def mlp_bug(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mlp.py with one bug: train() leaves the model in eval mode, so BatchNorm normalises
    with its running statistics instead of the batch's."""
    text = MLP.read_text()
    assert text.count("    model.train()\n") == 1
    path = tmp_path_factory.mktemp("bug") / "mlp_bug.py"
    path.write_text(text.replace("    model.train()\n", "    model.eval()  # the bug\n"))
    return path


# -- stats -----------------------------------------------------------------------------------


def _with_specials(shape: tuple[int, ...], seed: int, dtype: torch.dtype) -> Tensor:
    """Normal values with some exact zeros, NaNs and ±infs (when there is room)."""
    gen = generator(seed)
    x = (torch.randn(shape, generator=gen) * 3).to(dtype)
    flat = x.view(-1)
    if flat.numel() >= 8:
        idx = torch.randperm(flat.numel(), generator=gen)[:5]
        flat[idx[0]], flat[idx[1]] = float("nan"), float("inf")
        flat[idx[2]], flat[idx[3]], flat[idx[4]] = float("-inf"), 0.0, 0.0
    return x


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [
        ((7, 5), torch.float32),
        ((3, 4, 6), torch.float64),
        ((50,), torch.float16),
        ((9, 9), torch.bfloat16),
        ((), torch.float32),
        ((0, 3), torch.float32),
        ((4,), torch.float32),
    ],
)
def test_tensor_stats_match_numpy(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    x = _with_specials(shape, seed=len(shape) + 10, dtype=dtype)
    lo_hi = (-2.0, 1.5)
    s = tensor_stats(x, saturation=lo_hi)
    v = x.to(torch.float64).numpy().reshape(-1)
    fin = v[np.isfinite(v)]
    n = v.size
    assert s.numel == n
    assert s.n_nan == int(np.isnan(v).sum()) and s.n_inf == int(np.isinf(v).sum())
    expected = (0.0, 0.0, 0.0, 0.0)
    if fin.size:
        expected = (fin.mean(), fin.std(ddof=0), np.linalg.norm(fin), np.abs(fin).max())
    assert_close(
        torch.tensor([s.mean, s.std, s.norm, s.abs_max], dtype=torch.float64),
        torch.tensor(expected, dtype=torch.float64),
    )
    with np.errstate(invalid="ignore"):
        saturated = ((v <= lo_hi[0]) | (v >= lo_hi[1])).sum()
    assert s.frac_zero == pytest.approx((v == 0).sum() / n if n else 0.0)
    assert s.frac_saturated == pytest.approx(saturated / n if n else 0.0)
    assert tensor_stats(x).frac_saturated == 0.0


def test_tensor_stats_all_nonfinite_and_no_grad_tracking() -> None:
    s = tensor_stats(torch.tensor([float("nan"), float("inf")]))
    assert (s.mean, s.std, s.norm, s.abs_max, s.n_nan, s.n_inf) == (0.0, 0.0, 0.0, 0.0, 1, 1)
    w = torch.randn(4, requires_grad=True)
    y = w * 2  # a non-leaf with a graph
    before = y._version
    s = tensor_stats(y)
    assert isinstance(s.mean, float) and y._version == before and w.grad is None


def test_saturation_for() -> None:
    assert saturation_for(nn.Tanh()) == (-0.99, 0.99)
    assert saturation_for(nn.Sigmoid()) == (0.01, 0.99)
    assert saturation_for(nn.Hardtanh(-2.0, 3.0)) == (-2.0, 3.0)
    assert saturation_for(nn.ReLU6()) == (0.0, 6.0)
    assert saturation_for(nn.Softmax(dim=-1)) is not None
    assert saturation_for(nn.ReLU()) is None and saturation_for(nn.Linear(2, 2)) is None

    class MyTanh(nn.Tanh):
        pass

    assert saturation_for(MyTanh()) == (-0.99, 0.99)


@pytest.mark.parametrize(
    ("values", "bins", "range_"),
    [
        (torch.randn(1000, generator=generator(0)), 40, None),
        (torch.randn(300, generator=generator(1)) * 5, 7, (-3.0, 4.0)),
        (torch.tensor([2.0, 2.0, 2.0]), 4, None),
        (torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0]), 4, None),  # values exactly on the edges
        (torch.empty(0), 5, None),
    ],
)
def test_histogram_matches_numpy(values: Tensor, bins: int, range_: Any) -> None:
    x = torch.cat([values, torch.tensor([float("nan"), float("inf"), -float("inf")])])
    counts, edges = histogram(x, bins=bins, range=range_)
    ref_counts, ref_edges = np.histogram(values.numpy().astype(np.float64), bins, range_)
    assert counts.dtype == torch.int64 and edges.dtype == torch.float64
    assert counts.tolist() == ref_counts.tolist()
    assert_close(edges, torch.from_numpy(ref_edges))
    if values.numel():
        want = torch.histc(values.double(), bins, *(range_ or (values.min(), values.max())))
        if values.min() < values.max():
            assert counts.tolist() == want.long().tolist()


def test_histogram_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="bins=0"):
        histogram(torch.zeros(3), bins=0)
    with pytest.raises(ValueError, match="range"):
        histogram(torch.zeros(3), range=(1.0, 0.0))


def test_relative_difference() -> None:
    gen = generator(3)
    a, b = torch.randn(5, 4, generator=gen), torch.randn(5, 4, generator=gen)
    expected = np.abs(a.numpy() - b.numpy()).max() / np.abs(b.numpy()).max()
    assert relative_difference(a, b) == pytest.approx(expected, rel=1e-6)
    assert relative_difference(a, a.clone()) == 0.0
    assert relative_difference(a, a.T) == math.inf  # shape mismatch
    nan, inf = float("nan"), float("inf")
    assert relative_difference(torch.tensor([nan, 1.0]), torch.tensor([nan, 1.0])) == 0.0
    assert relative_difference(torch.tensor([nan, 1.0]), torch.tensor([1.0, 1.0])) == math.inf
    assert relative_difference(torch.tensor([1.0, 1.0]), torch.tensor([nan, 1.0])) == math.inf
    assert relative_difference(torch.tensor([inf, 2.0]), torch.tensor([inf, 2.0])) == 0.0
    assert relative_difference(torch.tensor([inf, 2.0]), torch.tensor([1.0, 2.0])) == math.inf
    assert relative_difference(torch.empty(0, 3), torch.empty(0, 3)) == 0.0
    assert relative_difference(torch.tensor([1.0], dtype=torch.float16), torch.tensor([1.0])) == 0


def test_stats_difference() -> None:
    x = torch.randn(100, generator=generator(4))
    s = tensor_stats(x)
    assert stats_difference(s, tensor_stats(x.clone())) == 0.0
    assert stats_difference(tensor_stats(x * 1.5), s) == pytest.approx(0.5, rel=1e-6)
    assert stats_difference(tensor_stats(x[:99]), s) == math.inf
    assert stats_difference(tensor_stats(torch.cat([x[:99], torch.tensor([math.nan])])), s) > 1


# -- recorder --------------------------------------------------------------------------------


class Net(nn.Module):
    """BatchNorm, an in-place ReLU, a residual connection, modules called twice."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.bn = nn.BatchNorm1d(8)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(8, 8)
        self.out = nn.Linear(8, 3)

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.bn(self.fc1(x)))
        h = h + self.fc2(h)  # residual
        h = self.act(self.fc2(h))  # fc2 and act a second time
        return self.out(h)


def test_recorder_matches_torch_autograd() -> None:
    torch.manual_seed(0)
    model = Net()
    ref = copy.deepcopy(model)
    x = torch.randn(10, 6, generator=generator(1))
    weights = torch.randn(10, 3, generator=generator(2))
    with Recorder(model, keep_tensors=True) as rec:
        (model(x) * weights).sum().backward()
        rec.end_step(1.5)
    step = rec.steps[0]

    # The same computation written out without in-place ops, gradients from autograd.grad.
    a1 = F.linear(x, ref.fc1.weight, ref.fc1.bias)
    bn = F.batch_norm(a1, None, None, ref.bn.weight, ref.bn.bias, training=True)
    r = F.relu(bn)
    f = F.linear(r, ref.fc2.weight, ref.fc2.bias)
    o = F.linear(
        F.relu(F.linear(r + f, ref.fc2.weight, ref.fc2.bias)), ref.out.weight, ref.out.bias
    )
    loss = (o * weights).sum()
    outputs = {"fc1": a1, "bn": bn, "act": r, "fc2": f, "out": o}
    grads = dict(
        zip(
            outputs,
            torch.autograd.grad(loss, list(outputs.values()), retain_graph=True),
            strict=True,
        )
    )
    loss.backward()

    assert list(step.activations) == ["fc1", "bn", "act", "fc2", "out"]
    assert list(step.gradients) == ["out", "fc2", "act", "bn", "fc1"]
    for name, value in outputs.items():
        assert_close(step.tensors[f"act:{name}"], value.detach(), what=f"output of {name}")
        assert_close(step.tensors[f"grad:{name}"], grads[name], what=f"gradient at {name}")
        assert step.activations[name] == tensor_stats(value)
        assert step.gradients[name] == tensor_stats(grads[name])
    assert_close(step.tensors["input"], x)
    assert step.input == tensor_stats(x) and step.loss == 1.5
    for name, p_ref in ref.named_parameters():
        assert step.params[name] == tensor_stats(p_ref)
        assert_close(step.tensors[f"param_grad:{name}"], p_ref.grad, what=f"grad of {name}")


def _train(model: nn.Module, recorder: Recorder | None, steps: int = 3) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    gen = generator(5)
    for _ in range(steps):
        x, y = torch.randn(16, 6, generator=gen), torch.randint(0, 3, (16,), generator=gen)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if recorder is not None:
            recorder.end_step(loss)


def _dropout_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(Net(), nn.Dropout(0.3), nn.Softmax(dim=-1), nn.Linear(3, 3))


def test_recording_does_not_change_training() -> None:
    plain, recorded = _dropout_net(), _dropout_net()
    torch.manual_seed(1)
    _train(plain, None)
    torch.manual_seed(1)
    with Recorder(recorded, modules="all", keep_tensors=True) as rec:
        _train(recorded, rec)
    assert len(rec.steps) == 3
    for (name, p), q in zip(
        plain.state_dict().items(), recorded.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), f"{name} differs after training with a recorder"


def test_hooks_are_all_removed() -> None:
    model = _dropout_net()
    rec = Recorder(model, modules="all")
    rec.attach()
    rec.attach()  # idempotent
    assert sum(len(m._forward_hooks) for m in model.modules()) == len(rec.modules)
    with rec:
        model(torch.randn(4, 6)).sum().backward()
        rec.end_step()
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
    model(torch.randn(4, 6))
    rec.end_step()
    assert rec.steps[0].activations and not rec.steps[1].activations


def test_recorded_modules() -> None:
    model = _dropout_net()
    leaves = recorded_modules(model)
    assert list(leaves) == ["0.fc1", "0.bn", "0.act", "0.fc2", "0.out", "1", "2", "3"]
    assert list(recorded_modules(model, "all"))[:2] == ["0", "0.fc1"]
    assert "" not in recorded_modules(model, "all")
    assert list(recorded_modules(nn.Linear(2, 2))) == [""]
    with pytest.raises(MlabError, match="modules='some'"):
        recorded_modules(model, "some")  # type: ignore[arg-type]


def test_steps_without_a_forward_and_without_grad() -> None:
    model = Net()
    with Recorder(model, keep_tensors=True, max_tensor_steps=1) as rec:
        rec.end_step()  # the model never ran
        rec.end_step(torch.tensor(2.0))
        with torch.no_grad():
            model.eval()
            model(torch.randn(3, 6))
        rec.end_step()
    empty, _, no_grad = rec.steps
    assert empty == StepRecord(step=0)
    assert rec.steps[1].loss == 2.0
    assert no_grad.activations and not no_grad.gradients and not no_grad.param_grads
    assert not no_grad.tensors  # beyond max_tensor_steps


class Attention(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        q = x.view(B, T, 2, C // 2).transpose(1, 2)  # (B, heads, T, d_head)
        return torch.softmax(q @ q.transpose(-1, -2), dim=-1)


def test_attention_maps() -> None:
    model = nn.ModuleDict({"attn": Attention(), "soft": nn.Softmax(dim=-1)})
    x = torch.randn(3, 5, 4)
    with Recorder(model) as rec:
        pattern = model["attn"](x)
        model["soft"](x[:, :, :2])  # (B, T, 2): not square, not an attention map
    assert set(rec.attention) == {"attn"}
    assert_close(rec.attention["attn"], pattern[0])
    soft = nn.Sequential(nn.Softmax(dim=-1))
    with Recorder(soft) as rec:
        out = soft(torch.randn(2, 4, 4))
    assert_close(rec.attention["0"], out[0])


# -- scripts ---------------------------------------------------------------------------------


def _script(tmp_path: Path, text: str, name: str = "script.py") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _variant(tmp_path: Path, **settings: object) -> Path:
    """mlp.py with some of its upper-case settings changed."""
    text = MLP.read_text()
    for key, value in settings.items():
        text, n = re.subn(rf"^{key} = .*$", f"{key} = {value!r}", text, flags=re.M)
        assert n == 1, key
    return _script(tmp_path, text, "variant.py")


def test_load_script_explains_protocol_errors(tmp_path: Path) -> None:
    with pytest.raises(MlabError, match="no such file"):
        load_script(tmp_path / "missing.py")
    bad = _script(tmp_path, "import torch\ndef build_model(seed):\n    return (\n")
    with pytest.raises(MlabError, match=r"script.py:3:\d+: syntax error"):
        load_script(bad)
    no_train = _script(tmp_path, "def build_model(seed):\n    return None\n")
    with pytest.raises(MlabError, match=r"defines no function `train`.*on_step\(loss\)"):
        load_script(no_train)
    raises = _script(tmp_path, "x = 1\nraise KeyError('oops')\n")
    with pytest.raises(MlabError, match=r"KeyError.*line 2 of script.py"):
        load_script(raises)


def test_run_script_errors(tmp_path: Path) -> None:
    head = "import torch\ndef build_model(seed):\n    return torch.nn.Linear(2, 2)\n"
    loop = _script(
        tmp_path,
        head + "def train(model, *, steps, seed, on_step):\n    while True:\n        pass\n",
    )
    with pytest.raises(MlabError, match=r"did not finish within 0\.3 s"):
        run_script(loop, timeout_s=0.3)
    silent = _script(tmp_path, head + "def train(model, *, steps, seed, on_step):\n    return []\n")
    with pytest.raises(MlabError, match="never called on_step"):
        run_script(silent)
    crash = _script(
        tmp_path, head + "def train(model, *, steps, seed, on_step):\n    model(torch.ones(3))\n"
    )
    with pytest.raises(MlabError, match=r"RuntimeError.*line 5 of script.py"):
        run_script(crash)
    not_module = _script(
        tmp_path, "def build_model(seed):\n    return 3\ndef train(**kw):\n    pass\n"
    )
    with pytest.raises(MlabError, match=r"returned a int, not an nn\.Module"):
        run_script(not_module)


def test_run_script_records_a_run() -> None:
    run = run_script(MLP, steps=2, seed=3)
    assert run.name == "mlp" and len(run.steps) == 2 and len(run.losses) == 2
    assert run.layer_order == ["0", "1", "2", "3.fc", "3.act", "4"]
    assert run.module_types["1"] == "BatchNorm1d" and run.module_types["3"] == "Residual"
    assert run.steps[1].loss == run.losses[1]
    assert "act:1" in run.steps[0].tensors and "grad:3.fc" in run.steps[1].tensors


# -- compare ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference_runs() -> dict[bool, Run]:
    return {keep: run_script(MLP, keep_tensors=keep) for keep in (True, False)}


@pytest.mark.parametrize("keep", [True, False], ids=["tensors", "stats"])
@pytest.mark.parametrize(
    ("settings", "kind", "step", "layer"),
    [
        ({}, "none", 2, None),
        ({"INIT_GAIN": 0.5}, "init", 0, "0.weight"),
        ({"SHUFFLE": True}, "input", 0, None),
        ({"LABEL_SHIFT": 1}, "loss", 0, None),
        ({"DETACH_SKIP": True}, "backward", 0, "2"),
        ({"LR": 0.05}, "update", 1, "0.weight"),
    ],
)
def test_compare_localises_the_bug(
    tmp_path: Path,
    reference_runs: dict[bool, Run],
    keep: bool,
    settings: dict[str, object],
    kind: str,
    step: int,
    layer: str | None,
) -> None:
    if settings == {"SHUFFLE": True} and not keep:
        # A shuffled batch has the same mean, std and norm; the next batch differs, as the
        # shuffle drew from the data's generator.
        step = 1
    other = run_script(_variant(tmp_path, **settings), keep_tensors=keep)
    result = compare(reference_runs[keep], other)
    assert (result.first.kind, result.first.step, result.first.layer) == (kind, step, layer), (
        result.summary()
    )
    assert result.first.detail and (kind == "none") == (result.first.rel_diff == 0)


def _moved(sizes: list[UpdateSize]) -> list[UpdateSize]:
    """The parameters whose update is not rounding noise in either run."""
    largest = max(max(u.norm_a, u.norm_b) for u in sizes)
    return [u for u in sizes if max(u.norm_a, u.norm_b) >= 1e-3 * largest]


@pytest.mark.parametrize("lr", [0.05, 2.0])
def test_an_update_divergence_says_how_the_updates_compare(
    tmp_path: Path, reference_runs: dict[bool, Run], lr: float
) -> None:
    ref = reference_runs[True]  # plain SGD, lr 0.1
    result = compare(ref, run_script(_variant(tmp_path, LR=lr)))
    assert (result.first.kind, result.first.step) == ("update", 1)
    sizes = update_sizes(result.a, result.b, 0)
    assert [u.name for u in sizes] == list(ref.steps[0].params)
    moved = _moved(sizes)
    assert len(moved) == len(sizes) - 1  # 0.bias, right before BatchNorm, has no gradient
    for u in moved:  # the same gradients, another learning rate: the same steps, scaled
        assert u.ratio == pytest.approx(lr / 0.1, rel=1e-4), u
        assert u.cosine == pytest.approx(1, abs=1e-6), u
        assert (u.lr_a, u.lr_b) == (pytest.approx(0.1, rel=1e-4), pytest.approx(lr, rel=1e-4))
    detail = result.first.detail
    assert f"variant's update of `0.weight` is {lr / 0.1:.3g}x mlp's, in the same direction" in (
        detail
    )
    assert (
        f"{lr / 0.1:.3g}x in the {len(moved)} parameters that moved (1 other barely moved)"
        in detail
    )
    assert f"(the learning rate, for plain SGD) {lr:.3g} in variant, 0.1 in mlp" in detail
    # recorded without the weights, the update cannot be measured; the sentence says the rest
    stats = compare(
        reference_runs[False], run_script(_variant(tmp_path, LR=lr), keep_tensors=False)
    )
    assert stats.first.kind == "update" and "mlp's" not in stats.first.detail
    assert update_sizes(stats.a, stats.b, 0) == []


def test_an_update_divergence_from_momentum(
    tmp_path: Path, reference_runs: dict[bool, Run]
) -> None:
    ref = reference_runs[True]
    result = compare(ref, run_script(_variant(tmp_path, MOMENTUM=0.9)))
    # torch's momentum buffer starts as the first gradient: step 0's update is the same
    assert (result.first.kind, result.first.step) == ("update", 2)
    sizes = {u.name: u for u in _moved(update_sizes(result.a, result.b, 1))}
    for name, u in sizes.items():
        g0, g1 = (ref.steps[i].tensors[f"param_grad:{name}"].double() for i in (0, 1))
        # SGD with momentum 0.9 (torch.optim.SGD's definition): Δθ = -lr (0.9 g0 + g1)
        assert u.ratio == pytest.approx(float((0.9 * g0 + g1).norm() / g1.norm()), rel=1e-4)
        assert u.lr_b == pytest.approx(0.1 * u.ratio, rel=1e-4)
    ratios = [u.ratio for u in sizes.values()]
    detail = result.first.detail
    assert "in another direction (cosine 0." in detail
    moved = f"the {len(ratios)} parameters that moved (1 other barely moved)"
    assert f"from {min(ratios):.3g}x to {max(ratios):.3g}x across {moved}" in detail


def test_compare_finds_the_layer_in_the_wrong_mode(
    reference_runs: dict[bool, Run], mlp_bug: Path
) -> None:
    result = compare(reference_runs[True], run_script(mlp_bug))
    first = result.first
    assert (first.kind, first.step, first.layer) == ("forward", 0, "1")
    assert "`0` (Linear)" in first.detail and "`1` (BatchNorm1d)" in first.detail
    assert "`1` is in training mode in mlp and in eval mode in mlp_bug" in first.detail
    table = result.summary()
    assert re.search(r"activation\s+1\s+BatchNorm1d\s+[\d.]+\s+<- differs", table), table
    assert re.search(r"activation\s+0\s+Linear\s+0\s*$", table, flags=re.M), table


def _stats(value: float) -> TensorStats:
    return tensor_stats(torch.full((4,), value))


def _run(name: str, **step: Any) -> Run:
    return Run(name, [StepRecord(0, **step)], [], {"a": "Linear", "b": "ReLU", "c": "Linear"})


def test_compare_counts_missing_modules_and_gradients() -> None:
    acts = {"a": _stats(1), "b": _stats(2)}
    extra = compare(_run("x", activations=acts), _run("y", activations={**acts, "c": _stats(3)}))
    assert (extra.first.kind, extra.first.layer) == ("forward", "c")
    assert "runs in y only" in extra.first.detail
    grads = {"b": _stats(1), "a": _stats(1)}
    cut = compare(
        _run("x", activations=acts, gradients=grads),
        _run("y", activations=acts, gradients={"b": _stats(1)}),
    )
    assert (cut.first.kind, cut.first.layer) == ("backward", "a")
    assert "only x has a gradient" in cut.first.detail
    pgrad = compare(
        _run("x", param_grads={"w": _stats(1)}), _run("y", param_grads={"w": _stats(2)})
    )
    assert (pgrad.first.kind, pgrad.first.layer) == ("backward", "w")


# -- health ----------------------------------------------------------------------------------


def _record(model: nn.Module, x: Tensor, steps: int = 1, lr: float = 0.0) -> Run:
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    with Recorder(model) as rec:
        for _ in range(steps):
            loss = model(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.end_step(loss)
    return rec.as_run("probe")


def test_health_finds_problems() -> None:
    torch.manual_seed(0)
    x = torch.randn(16, 4)
    dead = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    with torch.no_grad():
        dead[0].bias.fill_(-100.0)
    saturated = nn.Sequential(nn.Linear(4, 8), nn.Tanh())
    with torch.no_grad():
        saturated[0].weight.mul_(100.0)
    nan_input = x.clone()
    nan_input[0, 0] = float("nan")

    def messages(run: Run) -> list[tuple[str, str | None, str]]:
        return [(f.severity, f.layer, f.message) for f in health(run)]

    found = messages(_record(dead, x))
    assert any(s == "warning" and layer == "1" and "dead" in m for s, layer, m in found), found
    found = messages(_record(saturated, x))
    assert any(layer == "1" and "saturated" in m for _, layer, m in found), found
    found = messages(_record(nn.Sequential(nn.Linear(4, 3), nn.ReLU()), nan_input))
    assert found[0][:2] == ("error", "0") and "NaN" in found[0][2], found
    frozen = messages(_record(nn.Sequential(nn.Linear(4, 3)), x, steps=2, lr=0.0))
    assert any(s == "error" and "no weight changed" in m for s, _, m in frozen), frozen
    assert any("did not decrease" in m for _, _, m in frozen), frozen


def test_health_gradient_spread_and_a_healthy_run() -> None:
    gradients = {"c": _stats(1.0), "b": _stats(1e-2), "a": _stats(1e-5)}
    (finding,) = health(_run("x", gradients=gradients))
    assert finding.layer == "a" and "vanish" in finding.message
    healthy = run_script(MLP, steps=3)
    assert [f.severity for f in health(healthy)] in ([], ["warning"])
    # the only possible warning: the bias right before BatchNorm gets no useful gradient
    assert all(f.layer == "0.bias" for f in health(healthy))


# -- report and command ----------------------------------------------------------------------


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"] or "")


def _assert_png(data: bytes) -> None:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(BytesIO(data)) as image:
        image.verify()


def test_write_report(tmp_path: Path, reference_runs: dict[bool, Run], mlp_bug: Path) -> None:
    attention = run_script(mlp_bug)
    attention.attention["blocks.0.attn"] = torch.softmax(torch.randn(2, 5, 5), dim=-1)
    path = write_report(reference_runs[True], attention, tmp_path / "out")
    text = path.read_text()
    assert path.name == "report.html" and not re.search(r"https?://", text)
    page = _Page()
    page.feed(text)
    page.close()
    assert {"html", "table", "img", "style"} <= set(page.tags)
    assert "BatchNorm1d" in text and "forward" in text
    # loss, layer norms, two histograms, one attention picture
    assert len(page.images) == 5
    for src in page.images:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        _assert_png(base64.b64decode(src[len(prefix) :]))
    pngs = sorted(p.name for p in path.parent.glob("*.png"))
    assert pngs == [
        "attention_1.png",
        "histograms_0.png",
        "histograms_1.png",
        "layer_norms.png",
        "loss.png",
    ]
    single = write_report(reference_runs[False], None, tmp_path / "single")
    assert "First divergence" not in single.read_text()


def test_inspect_command(tmp_path: Path, capsys: pytest.CaptureFixture[str], mlp_bug: Path) -> None:
    console = Console(width=200, record=True)
    assert inspect_command(MLP, mlp_bug, 2, 0, tmp_path / "r", 30.0, console) == 0
    printed = console.export_text()
    assert "first divergence: forward" in printed and "BatchNorm1d" in printed
    assert (tmp_path / "r" / "report.html").is_file()
    assert inspect_command(MLP, MLP, 2, 0, tmp_path / "same", 30.0, console) == 0
    assert "first divergence: none" in console.export_text()
    assert inspect_command(tmp_path / "nope.py", None, 2, 0, tmp_path / "x", 30.0, console) == 2
    assert "no such file" in capsys.readouterr().err
    odd = _script(tmp_path, "def build_model(seed):\n    pass\n")
    assert inspect_command(MLP, odd, 2, 0, tmp_path / "x", 30.0, console) == 2
    assert "defines no function `train`" in capsys.readouterr().err


def _transformer_like_run() -> Run:
    """A recorded step with a transformer's long layer names and numbers of every size."""
    names = {
        "tok_emb": "Embedding",
        "blocks.0.attn.attn_drop": "Dropout",
        "blocks.0.attn.resid_drop": "Dropout",
        "blocks.11.mlp.fc_out": "Linear",
        "ln_f": "LayerNorm",
        "head": "Linear",
    }
    scales = [-5.7e-8, 1.23e-4, -0.0117, 3.5, 156.0, 12345.0]
    gen = generator(0)
    step = StepRecord(0)
    for (name, _), scale in zip(names.items(), scales, strict=True):
        x = torch.randn(64, generator=gen, dtype=torch.float64) * 0.01 + scale
        if name.endswith("drop"):
            x[:20] = 0.0
        step.activations[name] = tensor_stats(x)
        step.gradients[name] = tensor_stats(x * 1e-3)
    return Run("hunt", [step], [], names)


def table_names(text: str) -> list[str]:
    """The layer names of a printed layer table, each put back together from its lines (a
    row's first line has a type; the lines after it do not)."""
    names: list[str] = []
    for line in text.splitlines():
        if line.startswith("│"):
            layer, kind = (cell.strip() for cell in line.split("│")[1:3])
            if kind:
                names.append(layer)
            else:
                assert names[-1].endswith("."), f"{names[-1]!r} split inside a word: {text}"
                names[-1] += layer
    return names


@pytest.mark.parametrize("width", [80, 100, 200])
def test_layer_table_fits_the_terminal_and_never_cuts_a_number(width: int) -> None:
    run = _transformer_like_run()
    console = Console(width=width, record=True)
    console.print(layer_table(run, 0, highlight="head", width=width))
    text = console.export_text()
    lines = text.splitlines()
    assert max(map(len, lines)) <= width, text
    assert "…" not in text, text
    header = next(line for line in lines if "┃ layer" in line)
    for column in ("type", "mean", "std", "norm", "zero", "grad"):
        assert column in header, text
    record = run.steps[0]
    for name, stats in record.activations.items():
        row = " ".join(lines).replace("│", " ")
        for value in (stats.mean, stats.std, stats.norm, record.gradients[name].norm):
            assert f" {compact(value)} " in row, (compact(value), text)
        assert run.module_types[name] in row
    assert table_names(text) == list(record.activations), text  # no name split mid-word
    if width == 80:  # saturation and NaN/inf say nothing here: left out, and said so
        assert "not shown: sat. (0% in every layer), nan/inf (none)" in text, text
    for column in ("sat.", "nan/inf"):  # a column is shown, or the caption says why not
        assert (f" {column} " in header) != (f"{column} (" in text), text
    if width == 200:
        assert "not shown" not in text, text


def test_layer_table_keeps_what_has_something_to_say() -> None:
    run = _transformer_like_run()
    nan = torch.tensor([1.0, float("nan"), float("inf"), 2.0])
    run.steps[0].activations["head"] = tensor_stats(nan)
    console = Console(width=80, record=True)
    console.print(layer_table(run, 0, width=80))
    text = console.export_text()
    assert max(map(len, text.splitlines())) <= 80 and "…" not in text, text
    assert "1/1" in text and "nan/inf" in text, text
    assert "not shown: sat. (0% in every layer), zero (widen the terminal to see it)" in text


def test_compact_numbers() -> None:
    for value in (0.0, 1.0, -5.7e-8, 1.234e-4, 0.0117, 3.14159, 156.2, 12345.0, -9.99e12):
        text = compact(value)
        assert len(text) <= 8, text
        assert float(text) == pytest.approx(value, rel=5e-3), text


def test_comparison_summary_fits_80_columns(reference_runs: dict[bool, Run], mlp_bug: Path) -> None:
    result = compare(reference_runs[True], run_script(mlp_bug))
    table = result.summary().split("\n\n", 1)[1]
    assert max(map(len, table.splitlines())) <= 80, table
    wide = _transformer_like_run()
    other = copy.deepcopy(wide)
    other.steps[0].activations["ln_f"] = tensor_stats(torch.ones(3))
    text = compare(wide, other).summary().split("\n\n", 1)[1]
    assert max(map(len, text.splitlines())) <= 80, text
    assert "blocks.0.attn.resid_drop" in text and "<- differs" in text, text


# -- two models, one batch -------------------------------------------------------------------


def _twin_models() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 3))
    b = copy.deepcopy(a)
    return a, b


def test_record_batch_compares_two_models_layer_by_layer() -> None:
    a, b = _twin_models()
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    loss_fn = nn.functional.cross_entropy
    same = compare(
        record_batch(a, x, loss_fn=loss_fn, target=y, name="a"),
        record_batch(b, x, loss_fn=loss_fn, target=y, name="b"),
    )
    assert same.first.kind == "none"
    with torch.no_grad():
        b[2].weight[0, 0] += 0.5
    moved = compare(
        record_batch(a, x, loss_fn=loss_fn, target=y, name="a"),
        record_batch(b, x, loss_fn=loss_fn, target=y, name="b"),
    )
    assert (moved.first.kind, moved.first.layer) == ("init", "2.weight")
    # forward only, same weights, another activation: the first module whose output differs
    c = copy.deepcopy(a)
    c[3] = nn.Sigmoid()
    fwd = compare(record_batch(a, x, name="a"), record_batch(c, x, name="c"))
    assert (fwd.first.kind, fwd.first.layer) == ("forward", "3")
    run = record_batch(a, x, name="a", keep_tensors=True)
    assert run.steps[0].gradients == {}
    assert list(run.steps[0].activations) == ["0", "1", "2", "3", "4"]


class _Mixer(nn.Module):
    """Like attention's output projection: a parameter used in the module's own code between
    two parameter-free children (``y @ W_O.T`` written ``y @ W_O`` when ``transposed``)."""

    def __init__(self, transposed: bool = False) -> None:
        super().__init__()
        self.W_O = nn.Parameter(torch.randn(6, 6))
        self.attn_drop, self.resid_drop = nn.Dropout(0.1), nn.Dropout(0.1)
        self.transposed = transposed

    def forward(self, x: Tensor) -> Tensor:
        y = self.attn_drop(x)
        return self.resid_drop(y @ (self.W_O if self.transposed else self.W_O.T))


def _mixers(**changes: Any) -> tuple[Run, Run]:
    torch.manual_seed(0)
    good = nn.Sequential(nn.Linear(4, 6), _Mixer(), nn.Linear(6, 3))
    bad = copy.deepcopy(good)
    for key, value in changes.items():
        if key == "mode":
            bad[1].resid_drop.train(value)
        else:
            setattr(bad[1], key, value)
    x = torch.randn(8, 4)
    torch.manual_seed(1)
    a = record_batch(good, x, name="good")
    torch.manual_seed(1)
    return a, record_batch(bad, x, name="bad")


def test_a_difference_made_between_two_children_names_the_parents_code() -> None:
    """The first differing output is a Dropout in the right mode: the difference arises in the
    parent's own code between its two children, not in the Dropout."""
    first = compare(*_mixers(transposed=True)).first
    assert (first.kind, first.layer) == ("forward", "1.resid_drop")
    assert "the difference arises inside `1` (_Mixer)" in first.detail
    assert "between `attn_drop` and `resid_drop`" in first.detail
    assert "mode" not in first.detail  # both runs are in training mode
    # its input agrees: the Dropout itself is built differently (its p)
    dropout = compare(*_mixers(resid_drop=nn.Dropout(0.5))).first
    assert dropout.layer == "1.resid_drop" and "inside" not in dropout.detail
    assert "its input agrees" in dropout.detail and "Dropout's p" in dropout.detail
    assert "mode" not in dropout.detail
    # in eval mode in one run only: the mode is named, run by run
    mode = compare(*_mixers(mode=False)).first
    assert mode.layer == "1.resid_drop"
    assert "`1.resid_drop` is in training mode in good and in eval mode in bad" in mode.detail


def test_record_batch_leaves_the_model_as_it_was() -> None:
    a, _ = _twin_models()
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    a.eval()
    a(x).sum().backward()
    grads = [p.grad.clone() for p in a.parameters() if p.grad is not None]
    weights = [p.detach().clone() for p in a.parameters()]
    run = record_batch(a, x, loss_fn=nn.functional.cross_entropy, target=y)
    assert not a.training
    for g, p in zip(grads, a.parameters(), strict=True):
        assert p.grad is not None and torch.equal(p.grad, g)
    for w, p in zip(weights, a.parameters(), strict=True):
        assert torch.equal(w, p.detach())
    # the recorded parameter gradients are this batch's alone, as torch.autograd.grad gives
    want = torch.autograd.grad(nn.functional.cross_entropy(a(x), y), list(a.parameters()))
    assert_close(run.steps[0].tensors["param_grad:0.weight"], want[0])


def test_record_batch_wants_loss_and_target_together() -> None:
    a, _ = _twin_models()
    with pytest.raises(MlabError, match="both loss_fn and target"):
        record_batch(a, torch.randn(2, 4), loss_fn=nn.functional.cross_entropy)
