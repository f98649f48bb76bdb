"""Tests of our Module system (``mlab.nn.module``, ``mlab.nn.containers``) beyond the course
checks: repr trees in torch's format, zero_grad, ParameterList, BufferList details, the
methods' argument handling, and moving to a GPU when there is one."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn import Parameter

from mlab.errors import StateDictError
from mlab.nn.containers import BufferList, Linear, ModuleList, ParameterList, ReLU, Sequential
from mlab.nn.module import Module


class Block(Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = Linear(3, 4)
        self.act = ReLU()
        self.add_module("skip", None)


class TorchBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.act = nn.ReLU()
        self.add_module("skip", None)


def test_repr_tree_matches_torch() -> None:
    ours = Sequential(Linear(2, 3, bias=False), Block(), Sequential(ReLU(), Block()))
    theirs = nn.Sequential(
        nn.Linear(2, 3, bias=False), TorchBlock(), nn.Sequential(nn.ReLU(), TorchBlock())
    )
    assert repr(ours) == repr(theirs).replace("TorchBlock", "Block")
    assert repr(Module()) == repr(nn.Module()) == "Module()"


def test_repr_with_multi_line_extra_repr() -> None:
    class Two(Module):
        def extra_repr(self) -> str:
            return "a=1\nb=2"

    class TorchTwo(nn.Module):
        def extra_repr(self) -> str:
            return "a=1\nb=2"

    outer, torch_outer = Module(), nn.Module()
    outer.inner, torch_outer.inner = Two(), TorchTwo()
    assert repr(outer) == repr(torch_outer).replace("TorchTwo", "Two")


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad_like_torch(set_to_none: bool) -> None:
    torch.manual_seed(0)
    ours, theirs = Linear(3, 2), nn.Linear(3, 2)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(4, 3)
    for model in (ours, theirs):
        grad = torch.autograd.grad(model(x).square().sum(), model.weight, create_graph=True)[0]
        model.weight.grad = grad * 2  # part of a graph, as after backward(create_graph=True)
        model.zero_grad(set_to_none=set_to_none)
    assert (ours.weight.grad is None) == (theirs.weight.grad is None) == set_to_none
    assert ours.bias.grad is None and theirs.bias.grad is None
    if not set_to_none:
        assert ours.weight.grad is not None
        assert not ours.weight.grad.requires_grad and ours.weight.grad.grad_fn is None
        assert torch.equal(ours.weight.grad, torch.zeros(2, 3))


def test_parameter_list_matches_torch() -> None:
    values = [torch.randn(2), Parameter(torch.randn(3))]
    ours, theirs = ParameterList(values), nn.ParameterList(values)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert ours[1] is values[1] and ours[-1] is values[1]
    assert isinstance(ours[0], Parameter) and len(ours) == 2
    theirs.load_state_dict(ours.state_dict())
    with pytest.raises(IndexError):
        ours[2]


def test_buffer_list_non_persistent_is_moved_not_saved() -> None:
    holder = Module()
    holder.stats = BufferList([torch.zeros(2), torch.ones(3)], persistent=False)
    assert list(holder.state_dict()) == []
    assert [n for n, _ in holder.named_buffers()] == ["stats.0", "stats.1"]
    holder.stats.append(torch.zeros(1))
    assert list(holder.stats._non_persistent_buffers) != []
    holder.double()
    assert all(t.dtype == torch.float64 for t in holder.stats)
    assert "BufferList()" in repr(holder)


def test_buffer_list_survives_deepcopy_and_loading() -> None:
    source = BufferList([torch.arange(3.0), torch.tensor(5)])
    target = copy.deepcopy(source)
    target[0].zero_()
    assert torch.equal(source[0], torch.arange(3.0))
    target.load_state_dict(source.state_dict())
    assert torch.equal(target[0], torch.arange(3.0))


def test_module_list_in_sequential_and_iteration() -> None:
    layers = ModuleList([Linear(2, 2), ReLU()])
    model = Sequential(*layers)
    x = torch.randn(3, 2)
    assert torch.equal(model(x), layers[1](layers[0](x)))
    assert Sequential()(x) is x


def test_to_accepts_torch_style_arguments() -> None:
    model = Block()
    assert model.to(torch.float64) is model and model.fc.weight.dtype == torch.float64
    model.to("cpu", torch.float32)
    assert model.fc.weight.dtype == torch.float32
    model.to(dtype=torch.float16, device="cpu")
    assert model.fc.bias.dtype == torch.float16


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_to_cuda_keeps_parameters() -> None:
    model = Sequential(Linear(3, 2))
    model.register_buffer("count", torch.tensor(1))
    weight = model[0].weight
    model.to("cuda")
    assert model[0].weight is weight and weight.device.type == "cuda"
    assert model.count.device.type == "cuda" and model.count.dtype == torch.int64


def test_registration_errors() -> None:
    model = Module()
    model.plain = 1
    with pytest.raises(KeyError):
        model.register_buffer("plain", torch.zeros(1))
    with pytest.raises(KeyError):
        model.register_parameter("a.b", None)
    with pytest.raises(TypeError):
        model.register_parameter("w", torch.zeros(1))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        model.add_module("m", nn.Linear(1, 1))  # type: ignore[arg-type]
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        model.missing  # noqa: B018
    model.w = Parameter(torch.zeros(1))
    del model.w
    assert list(model.named_parameters()) == []
    with pytest.raises(NotImplementedError):
        model(1)


def test_strict_error_names_keys_and_is_a_runtime_error() -> None:
    model = Sequential(Linear(2, 2))
    with pytest.raises(RuntimeError) as info:
        model.load_state_dict({"0.weight": torch.zeros(3, 2), "x": torch.zeros(1)})
    assert isinstance(info.value, StateDictError)
    for key in ("0.weight", "0.bias", "x"):
        assert key in str(info.value)
