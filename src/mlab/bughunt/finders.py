"""Where each kind of bug in the catalogue can go: one finder per kind.

A finder takes a parsed target (:class:`mlab.bughunt.source.Source`) and returns its
``Site``s: the exact text edits that plant the bug there, and the class whose code holds them
(what ``mlab inspect`` should point at). Finders match the code patterns of the reference
targets in ``targets/``: a new target written in the same style gets the same bugs.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from mlab.bughunt.source import Edit, Source, call_name, keyword

__all__ = [
    "Finder",
    "Site",
    "find_activation_dropped",
    "find_betas_swapped",
    "find_detached_residual",
    "find_double_softmax",
    "find_dropout_keep",
    "find_eval_mode",
    "find_heads_mixed",
    "find_init_scale",
    "find_labels_off_by_one",
    "find_layernorm_dim",
    "find_loss_axis",
    "find_mask_fill_zero",
    "find_mask_off_by_one",
    "find_no_position",
    "find_not_shuffled",
    "find_residual_dropped",
    "find_softmax_dim",
    "find_step_before_backward",
    "find_tiny_clip",
    "find_transposed_weight",
    "find_unscaled_attention",
    "find_warmup_factor",
    "find_weight_decay",
    "find_zero_grad_missing",
]


@dataclass(frozen=True)
class Site:
    """One place a kind of bug can go in a target: the edits, and the class holding them."""

    edits: tuple[Edit, ...]
    cls: str | None
    #: the attributes of ``cls`` (``self.bn1``) whose output the edit changes, when the edit
    #: sits in the forward of the model itself: there "the enclosing class" is every layer,
    #: so the evidence narrows to these and the recorded layer that reads their output
    feeds: tuple[str, ...] = ()


Finder = Callable[[Source], list[Site]]


def _site(src: Source, node: ast.AST, *edits: Edit, feeds: tuple[str, ...] = ()) -> Site:
    return Site(tuple(edits), src.enclosing_class(node), feeds)


def _outer_self_call(node: ast.AST) -> tuple[str, ...]:
    """``("bn1",)`` for ``self.bn1(...)``: the module whose output ``node`` is, if any."""
    if isinstance(node, ast.Call) and _is_self_attr(node.func):
        return (cast(ast.Attribute, node.func).attr,)
    return ()


def _is_self_attr(node: ast.AST, prefix: str = "") -> bool:
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
        and node.attr.startswith(prefix)
    )


def _is_call_of(node: ast.AST | None, name: str, receiver: str | None = None) -> bool:
    """``node`` is a call ``receiver.name(...)`` (any receiver when None)."""
    if not isinstance(node, ast.Call) or call_name(node) != name:
        return False
    if receiver is None:
        return True
    func = node.func
    return (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id == receiver
    )


def _statement_calls(src: Source, name: str, receiver: str) -> list[ast.Expr]:
    """Statements that are just a call ``receiver.name()``."""
    return [
        n
        for n in src.nodes()
        if isinstance(n, ast.Expr)
        and isinstance(n.value, ast.Call)
        and _is_call_of(n.value, name, receiver)
        and not n.value.args
    ]


def _residual_adds(src: Source) -> list[tuple[ast.BinOp, ast.expr, ast.expr]]:
    """``(add, skip, branch)`` for every residual addition in a ``forward``: one side is the
    forward's input (``x + f(x)``) or a call of ``self.shortcut``, the other the branch."""
    found = []
    for node in src.nodes():
        if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add)):
            continue
        function = _function_def(src, node)
        if function is None or function.name != "forward" or len(function.args.args) < 2:
            continue
        arg = function.args.args[1].arg
        for skip, branch in ((node.left, node.right), (node.right, node.left)):
            is_input = isinstance(skip, ast.Name) and skip.id == arg
            is_shortcut = isinstance(skip, ast.Call) and _is_self_attr(skip.func, "shortcut")
            if is_input or is_shortcut:
                found.append((node, skip, branch))
                break
    return found


def _function_def(src: Source, node: ast.AST) -> ast.FunctionDef | None:
    parent: ast.AST | None = node
    while parent is not None and not isinstance(parent, ast.FunctionDef):
        parent = src.parents.get(id(parent))
    return parent


def find_eval_mode(src: Source) -> list[Site]:
    sites = []
    for stmt in _statement_calls(src, "train", "model"):
        call = stmt.value
        sites.append(_site(src, call, src.replace(call, "model.eval()")))
    return sites


def find_detached_residual(src: Source) -> list[Site]:
    return [
        _site(src, add, src.replace(skip, f"{src.segment(skip)}.detach()"))
        for add, skip, _ in _residual_adds(src)
    ]


def find_residual_dropped(src: Source) -> list[Site]:
    return [
        _site(src, add, src.replace(add, src.segment(branch)))
        for add, _, branch in _residual_adds(src)
    ]


def find_activation_dropped(src: Source) -> list[Site]:
    sites = []
    for name in ("relu", "gelu"):
        for call in src.calls(name):
            if len(call.args) == 1 and not call.keywords:
                edit = src.replace(call, src.segment(call.args[0]))
                sites.append(_site(src, call, edit, feeds=_outer_self_call(call.args[0])))
    return sites


def find_init_scale(src: Source) -> list[Site]:
    sites = []
    for call in src.calls("normal_"):
        std = keyword(call, "std")
        if isinstance(std, ast.Call) and _is_call_of(std, "sqrt") and std.args:
            inner = std.args[0]  # sqrt(2 / fan_in) -> sqrt(2 * fan_in)
            if isinstance(inner, ast.BinOp) and isinstance(inner.op, ast.Div):
                sites.append(_site(src, call, _swap_operator(src, inner, "/", "*")))
        elif isinstance(std, ast.Constant) and isinstance(std.value, float):
            sites.append(_site(src, call, src.replace(std, "1.0")))  # torch.randn's scale
    return sites


def _swap_operator(src: Source, node: ast.BinOp, old: str, new: str) -> Edit:
    """Replace the operator ``old`` of ``node`` (the text between its operands) by ``new``."""
    start, end = src.span(node.left)[1], src.span(node.right)[0]
    return Edit(start, end, src.text[start:end].replace(old, new))


def find_transposed_weight(src: Source) -> list[Site]:
    return [
        _site(src, node, src.replace(node, src.segment(node.value)))
        for node in src.nodes()
        if isinstance(node, ast.Attribute) and node.attr == "T" and _is_self_attr(node.value, "W_")
    ]


def _in_forward(src: Source, node: ast.AST) -> bool:
    return src.enclosing_function(node) == "forward"


def find_softmax_dim(src: Source) -> list[Site]:
    sites = []
    for call in src.calls("softmax"):
        dim = keyword(call, "dim")
        if _in_forward(src, call) and isinstance(dim, ast.UnaryOp):  # dim=-1
            sites.append(_site(src, call, src.replace(dim, "-2")))
    return sites


def find_unscaled_attention(src: Source) -> list[Site]:
    return [
        _site(src, node, src.replace(node, src.segment(node.left)))
        for node in src.nodes()
        if isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Div)
        and _is_call_of(node.right, "sqrt", receiver="math")
        and _in_forward(src, node)
    ]


def find_mask_off_by_one(src: Source) -> list[Site]:
    sites = []
    for call in src.calls("triu"):
        diagonal = keyword(call, "diagonal")
        if isinstance(diagonal, ast.Constant) and diagonal.value == 1:
            sites.append(_site(src, call, src.replace(diagonal, "2")))
    return sites


def find_mask_fill_zero(src: Source) -> list[Site]:
    return [
        _site(src, call, src.replace(call.args[1], "0.0"))
        for call in src.calls("masked_fill")
        if len(call.args) == 2 and "-inf" in src.segment(call.args[1])
    ]


def find_heads_mixed(src: Source) -> list[Site]:
    sites = []
    for call in src.calls("transpose"):
        view = call.func.value if isinstance(call.func, ast.Attribute) else None
        if _is_call_of(view, "view") and isinstance(view, ast.Call) and len(view.args) == 4:
            receiver = view.func.value  # type: ignore[attr-defined]
            b, t, h, d = (src.segment(a) for a in view.args)
            new = f"{src.segment(receiver)}.view({b}, {h}, {t}, {d})"
            sites.append(_site(src, call, src.replace(call, new)))
    return sites


def find_layernorm_dim(src: Source) -> list[Site]:
    edits = []
    for node in src.nodes():
        if isinstance(node, ast.Call) and src.enclosing_class(node) == "LayerNorm":
            dim = keyword(node, "dim")
            if isinstance(dim, ast.UnaryOp):  # dim=-1: over the features
                edits.append(src.replace(dim, "1"))
    return [Site(tuple(edits), "LayerNorm")] if edits else []


def find_no_position(src: Source) -> list[Site]:
    return [
        _site(src, node, src.replace(node, src.segment(node.left)))
        for node in src.nodes()
        if isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Add)
        and isinstance(node.right, ast.Call)
        and _is_self_attr(node.right.func, "pos_emb")
    ]


def find_labels_off_by_one(src: Source) -> list[Site]:
    sites = []
    for node in src.nodes():
        # next-token targets: windows[:, 1:] -> windows[:, :-1], the inputs themselves
        if (
            isinstance(node, ast.Assign)
            and [src.segment(t) for t in node.targets] == ["targets"]
            and isinstance(node.value, ast.Subscript)
        ):
            for part in ast.walk(node.value.slice):
                if isinstance(part, ast.Slice) and src.segment(part) == "1:":
                    sites.append(_site(src, node, src.replace(part, ":-1")))
        # class labels: labels[:N_TRAIN] -> labels[1 : N_TRAIN + 1], the next image's
        if (
            isinstance(node, ast.Subscript)
            and src.segment(node.value) == "labels"
            and isinstance(node.slice, ast.Slice)
            and node.slice.lower is None
            and node.slice.upper is not None
        ):
            upper = src.segment(node.slice.upper)
            sites.append(_site(src, node, src.replace(node.slice, f"1 : {upper} + 1")))
    return sites


def find_loss_axis(src: Source) -> list[Site]:
    sites = []
    for call in src.calls("log_softmax"):
        dim = keyword(call, "dim")
        function = src.enclosing_function(call) or ""
        if "loss" in function and isinstance(dim, ast.UnaryOp):
            sites.append(_site(src, call, src.replace(dim, "1")))
    return sites


def find_double_softmax(src: Source) -> list[Site]:
    return [
        _site(src, call, src.replace(call.args[0], f"{src.segment(call.args[0])}.softmax(dim=-1)"))
        for call in src.calls("cross_entropy")
        if call.args
    ]


def find_not_shuffled(src: Source) -> list[Site]:
    sites = []
    for call in src.calls("randperm"):
        if call.args and keyword(call, "generator") is not None:
            new = f"torch.arange({src.segment(call.args[0])})"
            sites.append(_site(src, call, src.replace(call, new)))
    for call in src.calls("randint"):
        size = call.args[1] if len(call.args) == 2 else None
        if isinstance(size, ast.Tuple) and len(size.elts) == 1 and "BLOCK_SIZE" in src.text:
            new = f"torch.arange({src.segment(size.elts[0])}) * BLOCK_SIZE"
            sites.append(_site(src, call, src.replace(call, new)))
    return sites


def find_zero_grad_missing(src: Source) -> list[Site]:
    return [
        _site(src, stmt, src.delete_lines(stmt))
        for stmt in _statement_calls(src, "zero_grad", "optimizer")
    ]


def find_step_before_backward(src: Source) -> list[Site]:
    sites = []
    for step in _statement_calls(src, "step", "optimizer"):
        for backward in _statement_calls(src, "backward", "loss"):
            same_block = src.parents.get(id(step)) is src.parents.get(id(backward))
            if same_block and backward.lineno < step.lineno:
                start, end = src.line_span(step)
                line_start = src.line_span(backward)[0]
                moved = Edit(line_start, line_start, src.text[start:end])
                sites.append(_site(src, step, Edit(start, end, ""), moved))
    return sites


def find_tiny_clip(src: Source) -> list[Site]:
    if "optim.SGD" not in src.text:  # Adam divides by the gradient's scale: clipping is moot
        return []
    sites = []
    for call in src.calls("clip_grad_norm_"):
        max_norm = keyword(call, "max_norm")
        if max_norm is not None:
            sites.append(_site(src, call, src.replace(max_norm, "1e-4")))
    return sites


def find_weight_decay(src: Source) -> list[Site]:
    sites = []
    for node in src.nodes():
        if isinstance(node, ast.Call):
            decay = keyword(node, "weight_decay")
            if isinstance(decay, ast.Constant) and isinstance(decay.value, float):
                sites.append(_site(src, node, src.replace(decay, repr(decay.value * 1000))))
    return sites


def find_warmup_factor(src: Source) -> list[Site]:
    return [
        _site(src, node, src.replace(node, src.segment(node.left)))
        for node in src.nodes()
        if isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Div)
        and isinstance(node.right, ast.Name)
        and node.right.id == "WARMUP_STEPS"
        and src.enclosing_function(node) == "learning_rate"
    ]


def find_betas_swapped(src: Source) -> list[Site]:
    sites = []
    for node in src.nodes():
        betas = keyword(node, "betas") if isinstance(node, ast.Call) else None
        if isinstance(betas, ast.Tuple) and len(betas.elts) == 2:
            first, second = (src.segment(e) for e in betas.elts)
            sites.append(_site(src, node, src.replace(betas, f"({second}, {first})")))
    return sites


def find_dropout_keep(src: Source) -> list[Site]:
    sites = []
    for node in src.nodes():
        if not isinstance(node, ast.Call):
            continue
        p = keyword(node, "p") if call_name(node) == "Dropout" else keyword(node, "dropout")
        if isinstance(p, ast.Constant) and isinstance(p.value, float) and 0 < p.value < 0.5:
            sites.append(_site(src, node, src.replace(p, repr(round(1 - p.value, 6)))))
    return sites
