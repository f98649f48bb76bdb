"""Checks for part 1 of w2d2: ``gelu_new`` against transformers' ``NewGELUActivation`` (and
torch's tanh GELU), ``Conv1D`` against transformers' ``Conv1D``, ``causal_mask`` against
transformers' ``causal_mask_function`` shifted by the cache's length, and
``position_ids_from_mask`` against the position ids transformers' ``generate`` builds."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GPT2Config as HFConfig
from transformers import GPT2LMHeadModel as HFModel
from transformers.activations import NewGELUActivation
from transformers.masking_utils import causal_mask_function
from transformers.pytorch_utils import Conv1D as HFConv1D

from mlab.course.engine.checks import Namespace, check
from mlab.course.w2d2_gpt2 import hf_reference  # noqa: F401  (quiet transformers)
from mlab.errors import ShapeError
from mlab.testing import (
    assert_close,
    assert_equal,
    assert_raises,
    assert_unchanged,
    case,
    expect,
    randn,
)

F64 = torch.float64

# ----------------------------------------------------------------------------------------------
# gelu_new


@check("gelu_new")
def gelu_new_matches_hf(ns: Namespace) -> None:
    x = torch.linspace(-6, 6, 241, dtype=F64)
    with case("241 points from -6 to 6 (float64)", x=x):
        before = x.clone()
        assert_close(ns.gelu_new(x), NewGELUActivation()(x))
        assert_unchanged(x, before)
    x32 = randn(3, 4, 5, seed=0) * 3
    with case("a (3, 4, 5) float32 tensor", x=x32):
        assert_close(ns.gelu_new(x32), F.gelu(x32, approximate="tanh"), rtol=1e-5, atol=1e-6)
    exact = F.gelu(x)
    with case("not the exact GELU: x * Phi(x) differs by up to 5e-4 near |x| = 2"):
        expect(
            not torch.allclose(ns.gelu_new(x), exact, rtol=0, atol=1e-5),
            "gelu_new equals torch's exact GELU: use the tanh approximation",
        )


# ----------------------------------------------------------------------------------------------
# Conv1D


@check("Conv1D")
def conv1d_has_hf_parameters_and_init(ns: Namespace) -> None:
    torch.manual_seed(0)
    hf = HFConv1D(7, 5)  # type: ignore[no-untyped-call]
    with case("Conv1D(7, 5): nf=7 outputs, nx=5 inputs"):
        layer = ns.Conv1D(7, 5)
        expect(isinstance(layer, nn.Module), f"Conv1D should be an nn.Module, got {type(layer)}")
        shapes = {k: tuple(v.shape) for k, v in layer.state_dict().items()}
        want = {k: tuple(v.shape) for k, v in hf.state_dict().items()}
        assert_equal(shapes, want, what="parameter names and shapes (HF's (nx, nf) weight)")
        got = (getattr(layer, "nf", None), getattr(layer, "nx", None))
        assert_equal(got, (7, 5), what="(layer.nf, layer.nx)")
        assert_equal(repr(layer), repr(hf), what="repr")
    torch.manual_seed(1)
    with case("Conv1D(300, 200): the initial weight and bias"):
        layer = ns.Conv1D(300, 200)
        assert_close(layer.bias, torch.zeros(300), what="initial bias")
        std, mean = layer.weight.std().item(), layer.weight.mean().item()
        expect(
            abs(std - 0.02) < 1e-3 and abs(mean) < 1e-3,
            f"the weight should be drawn from N(0, 0.02^2); got mean {mean:.4g}, std {std:.4g}",
        )
    with case("Conv1D(30, 20) built under three seeds (1, 1, 2)"):
        weights = []
        for seed in (1, 1, 2):
            torch.manual_seed(seed)
            weights.append(ns.Conv1D(30, 20).weight.detach().clone())
        expect(
            torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2]),
            "the initial weight should be drawn from torch's global generator: the same "
            "seed should give the same weight, another seed another weight",
        )


@check("Conv1D")
def conv1d_matches_hf(ns: Namespace) -> None:
    cases = [
        ("(2, 3, 5) input", (2, 3, 5), 7, 5, False),
        ("a single vector (5,)", (5,), 4, 5, False),
        ("a non-contiguous (4, 6) input (a transpose)", (6, 4), 3, 6, True),
        ("(2, 1, 2, 8) input, 8 -> 8", (2, 1, 2, 8), 8, 8, False),
    ]
    for i, (name, shape, nf, nx, transpose) in enumerate(cases):
        torch.manual_seed(i)
        hf = HFConv1D(nf, nx).double()  # type: ignore[no-untyped-call]
        with torch.no_grad():
            hf.bias.normal_()
        x = randn(*shape, seed=10 + i, dtype=F64)
        if transpose:
            x = x.T
        with case(name, x=x, nf=nf, nx=nx):
            layer = ns.Conv1D(nf, nx).double()
            layer.load_state_dict(hf.state_dict())
            xo, xh = x.clone().requires_grad_(), x.clone().requires_grad_()
            out, ref = layer(xo), hf(xh)
            assert_close(out, ref)
            w = randn(*ref.shape, seed=20 + i, dtype=F64)
            (out * w).sum().backward()
            (ref * w).sum().backward()
            assert_close(xo.grad, xh.grad, what="gradient of x")
            assert_close(layer.weight.grad, hf.weight.grad, what="gradient of weight")
            assert_close(layer.bias.grad, hf.bias.grad, what="gradient of bias")


@check("Conv1D")
def conv1d_rejects_the_wrong_width(ns: Namespace) -> None:
    layer = ns.Conv1D(4, 6)
    for shape in [(2, 4), (6, 2), (3, 7)]:
        x = torch.zeros(shape)
        with case(f"Conv1D(4, 6) given shape {shape}", x=x):
            err = assert_raises(layer, x, exc=ShapeError)
            expect("6" in str(err), f"the message should name the expected width 6: {err}")
    with case("Conv1D(4, 6) given a 0-d tensor"):
        assert_raises(layer, torch.tensor(1.0), exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# causal_mask


@check("causal_mask")
def causal_mask_matches_hf(ns: Namespace) -> None:
    for seq_q, seq_k in [(4, 4), (1, 1), (1, 5), (3, 7), (5, 6), (0, 3), (2, 2)]:
        offset = seq_k - seq_q  # the cached positions before the queries
        want = torch.tensor(
            [
                [causal_mask_function(0, 0, i + offset, j) for j in range(seq_k)]
                for i in range(seq_q)
            ],
            dtype=torch.bool,
        ).reshape(seq_q, seq_k)
        with case(f"seq_q={seq_q} new positions after {offset} cached (seq_k={seq_k})"):
            assert_equal(ns.causal_mask(seq_q, seq_k), want, what="mask (True = may attend)")


@check("causal_mask")
def causal_mask_rejects_more_queries_than_keys(ns: Namespace) -> None:
    for seq_q, seq_k in [(3, 2), (1, 0), (-1, 2)]:
        with case(f"seq_q={seq_q}, seq_k={seq_k}"):
            assert_raises(ns.causal_mask, seq_q, seq_k, exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# position_ids_from_mask


def _generate_positions(mask: torch.Tensor) -> torch.Tensor:
    hf = HFModel(
        HFConfig(
            vocab_size=2,
            n_positions=2,
            n_embd=2,
            n_layer=1,
            n_head=1,
            bos_token_id=0,
            eos_token_id=0,
        )
    )
    out: torch.Tensor = hf._prepare_position_ids_for_generation(mask, {"attention_mask": mask})  # type: ignore[no-untyped-call]
    return out


@check("position_ids_from_mask")
def positions_match_hf_generate(ns: Namespace) -> None:
    masks = [
        (
            "left padding of 2, 0 and 4",
            torch.tensor([[0, 0, 1, 1, 1, 1], [1] * 6, [0, 0, 0, 0, 1, 1]]),
        ),
        ("no padding", torch.ones(2, 5, dtype=torch.long)),
        ("one real token after 3 pads", torch.tensor([[0, 0, 0, 1]])),
        ("a boolean mask", torch.tensor([[False, True, True], [True, True, True]])),
        ("an int32 mask with right padding too", torch.tensor([[0, 1, 1, 0]], dtype=torch.int32)),
    ]
    for name, mask in masks:
        want = _generate_positions(mask)
        for seq_q in sorted({mask.shape[1], 1, 2}):
            with case(f"{name}, the last seq_q={seq_q} positions", attention_mask=mask):
                before = mask.clone()
                got = ns.position_ids_from_mask(mask, seq_q)
                assert_equal(got, want[:, mask.shape[1] - seq_q :], what="position ids")
                assert_unchanged(mask, before)
