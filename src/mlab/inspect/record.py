"""Record what happens inside a network while it trains: a ``Recorder`` of hooks.

PyTorch lets code watch a module without changing it: a *forward hook* runs after a module's
``forward`` and sees its output; ``Tensor.register_hook`` runs when backward reaches a tensor
and sees the gradient of the loss with respect to it. A ``Recorder`` puts a forward hook on
every layer, summarises each output (``TensorStats``) and hooks the output tensor to
summarise its gradient too. ``end_step()``, called after each optimizer step, closes one
``StepRecord``: inputs, activations, gradients, parameters and their gradients, the loss.

Why tensor hooks rather than ``register_full_backward_hook``: full backward hooks wrap a
module's inputs and outputs in autograd functions and break in-place operations such as
``nn.ReLU(inplace=True)``; a tensor hook registered before an in-place op still fires with the
gradient of the value the module returned. Every hook only reads (detached values, no random
numbers), so training gives bit-for-bit the same weights with or without a recorder.

The work of each hook is a function of its own (``record_step_start``, ``record_output``,
``record_step_end``: the exercises of day w1d7); ``Recorder`` registers, calls and removes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from jaxtyping import Float
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from mlab.errors import ConfigError
from mlab.inspect.stats import TensorStats, saturation_for, tensor_stats

__all__ = [
    "Recorder",
    "Run",
    "StepRecord",
    "attention_map",
    "cpu_copy",
    "first_tensor",
    "is_attention_module",
    "record_output",
    "record_step_end",
    "record_step_start",
    "recorded_modules",
]


@dataclass
class StepRecord:
    """What one training step did. Dicts keep the order in which things happened.

    ``tensors`` holds detached CPU copies when the recorder keeps tensors, under the keys
    ``"input"``, ``"act:<module>"``, ``"grad:<module>"``, ``"param:<name>"`` and
    ``"param_grad:<name>"``.
    """

    step: int
    input: TensorStats | None = None  # the model's first positional tensor, first forward
    activations: dict[str, TensorStats] = field(default_factory=dict)  # forward order
    gradients: dict[str, TensorStats] = field(default_factory=dict)  # backward order
    params: dict[str, TensorStats] = field(default_factory=dict)  # before the first forward
    param_grads: dict[str, TensorStats] = field(default_factory=dict)  # at end_step
    loss: float | None = None
    # what each watched module was given (its first positional tensor, before its forward)
    # and whether it was in training mode, at its first call of the step: they tell a layer
    # that computes something else from one that is handed something else
    inputs: dict[str, TensorStats] = field(default_factory=dict)
    modes: dict[str, bool] = field(default_factory=dict)
    tensors: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class Run:
    """One recorded training run: what ``run_script`` returns and ``compare`` compares.

    ``module_types`` maps every ``named_modules()`` name to its class name (``"Linear"``);
    ``attention`` holds the latest attention map of each attention module (see ``Recorder``).
    """

    name: str
    steps: list[StepRecord]
    losses: list[float]
    module_types: dict[str, str]
    attention: dict[str, Tensor] = field(default_factory=dict)

    @property
    def layer_order(self) -> list[str]:
        """The recorded modules in the order the first step's forward pass called them."""
        return list(self.steps[0].activations) if self.steps else []


def first_tensor(value: Any) -> Tensor | None:
    """``value`` if it is a Tensor; else the first Tensor in it if it is a tuple or list
    (not searched recursively); else None.

    >>> first_tensor((None, torch.zeros(1), torch.ones(2)))
    tensor([0.])
    >>> first_tensor({"a": torch.zeros(1)}) is None
    True
    """
    if isinstance(value, Tensor):
        return value
    if isinstance(value, tuple | list):
        for item in value:
            if isinstance(item, Tensor):
                return item
    return None


def recorded_modules(
    model: nn.Module, modules: Literal["leaves", "all"] = "leaves"
) -> dict[str, nn.Module]:
    """The modules a ``Recorder`` watches, by their ``model.named_modules()`` names, in that
    order.

    ``"leaves"``: the modules without children; ``"all"``: every module. The root module
    (name ``""``) is left out, unless it has no children (then it is the only leaf).
    Raise ``ConfigError`` for another value of ``modules``.
    """
    if modules not in ("leaves", "all"):
        raise ConfigError(f"modules={modules!r}: use 'leaves' or 'all'")
    chosen = {}
    for name, module in model.named_modules():
        is_leaf = next(iter(module.children()), None) is None
        if name == "" and not is_leaf:
            continue
        if modules == "all" or is_leaf:
            chosen[name] = module
    return chosen


def is_attention_module(name: str, module: nn.Module) -> bool:
    """Whether a module's output may be an attention map: an ``nn.Softmax``, or a module whose
    name contains ``"attn"`` or ``"attention"`` (any case)."""
    lowered = name.lower()
    return isinstance(module, nn.Softmax) or "attn" in lowered or "attention" in lowered


def attention_map(output: Tensor) -> Float[Tensor, "*heads query key"] | None:
    """The attention pattern of batch element 0, detached, on the CPU, if ``output`` looks
    like one: shape ``(batch, heads, T, T)`` gives ``(heads, T, T)`` and ``(batch, T, T)``
    gives ``(T, T)``. Any other shape (including non-square last two dims) gives None."""
    if output.ndim not in (3, 4) or output.shape[-1] != output.shape[-2] or len(output) == 0:
        return None
    return cpu_copy(output[0])


def cpu_copy(x: Tensor) -> Tensor:
    """A detached copy of ``x`` on the CPU that shares no memory with ``x``: what a recorder
    keeps. ``x.detach()`` alone would share ``x``'s storage, and a later in-place change
    (``optimizer.step()`` updating a parameter, an in-place ReLU overwriting a layer's output)
    would change the recorded value too."""
    return x.detach().to("cpu", copy=True)


def record_step_start(
    record: StepRecord, model: nn.Module, args: tuple[Any, ...], keep: bool
) -> None:
    """Record what a step starts from: the work of a forward pre-hook on ``model``, run on the
    step's first call of the model, before its forward.

    ``record.input``: the ``tensor_stats`` of ``first_tensor(args)`` (left as it is when the
    arguments hold no tensor). ``record.params[name]``: the ``tensor_stats`` of every
    parameter, in ``model.named_parameters()`` order. When ``keep``, also store a ``cpu_copy``
    of each in ``record.tensors``, under ``"input"`` and ``"param:<name>"``: copies, because
    ``optimizer.step()`` will change the parameters in place.
    """
    x = first_tensor(args)
    if x is not None:
        record.input = tensor_stats(x)
        if keep:
            record.tensors["input"] = cpu_copy(x)
    for name, p in model.named_parameters():
        record.params[name] = tensor_stats(p)
        if keep:
            record.tensors[f"param:{name}"] = cpu_copy(p)


def record_output(
    record: StepRecord,
    name: str,
    out: Tensor,
    saturation: tuple[float, float] | None,
    keep: bool,
) -> RemovableHandle | None:
    """Record the output ``out`` of the watched module ``name`` (the work of its forward hook)
    and hook ``out`` to record its gradient too.

    A module called twice in a step records its first call only: when ``record.activations``
    already has ``name``, do nothing and return None. Otherwise store ``tensor_stats(out,
    saturation)`` in ``record.activations[name]`` (and, when ``keep``, ``cpu_copy(out)`` in
    ``record.tensors["act:<name>"]``). Then, if ``out.requires_grad``, register a tensor hook
    on ``out`` (``out.register_hook(fn)``) and return its handle (the recorder removes it at
    the end of the step); else return None. When backward reaches ``out``, the hook is called
    with the gradient of the loss with respect to ``out``; it stores its ``tensor_stats`` in
    ``record.gradients[name]`` (and, when ``keep``, its ``cpu_copy`` under
    ``"grad:<name>"``), unless ``record.gradients`` has ``name`` already (a second backward
    through the same graph). The hook returns None: a tensor hook that returns a tensor
    replaces the gradient with it.
    """
    if name in record.activations:
        return None
    record.activations[name] = tensor_stats(out, saturation)
    if keep:
        record.tensors[f"act:{name}"] = cpu_copy(out)
    if not out.requires_grad:
        return None

    def grad_hook(grad: Tensor) -> None:
        if name in record.gradients:
            return
        record.gradients[name] = tensor_stats(grad)
        if keep:
            record.tensors[f"grad:{name}"] = cpu_copy(grad)

    return out.register_hook(grad_hook)  # type: ignore[no-untyped-call,no-any-return]


def record_step_end(
    record: StepRecord, model: nn.Module, loss: float | Tensor | None, keep: bool
) -> None:
    """Close a step's record: the work of ``Recorder.end_step``, called after
    ``optimizer.step()``.

    ``record.param_grads[name]``: the ``tensor_stats`` of every parameter's ``.grad``, in
    ``model.named_parameters()`` order, leaving out parameters whose ``.grad`` is None (not
    used by the loss, or frozen); when ``keep``, also its ``cpu_copy`` under
    ``"param_grad:<name>"`` (the next ``zero_grad`` changes ``.grad`` in place).
    ``record.loss``: ``loss`` as a Python float, None if None; a tensor is detached first
    (``float`` of a tensor that requires grad warns).
    """
    for name, p in model.named_parameters():
        if p.grad is not None:
            record.param_grads[name] = tensor_stats(p.grad)
            if keep:
                record.tensors[f"param_grad:{name}"] = cpu_copy(p.grad)
    value = loss.detach() if isinstance(loss, Tensor) else loss
    record.loss = None if value is None else float(value)


class Recorder:
    """Hooks on ``model`` that summarise every layer's output and gradient, step by step.

        recorder = Recorder(model, keep_tensors=True)
        with recorder:  # hooks attached; all removed on exit
            for x, y in batches:
                loss = loss_fn(model(x), y)
                opt.zero_grad(); loss.backward(); opt.step()
                recorder.end_step(loss)
        recorder.steps[0].activations["net.0"].norm

    ``modules`` picks the watched modules (see ``recorded_modules``). Each step records the
    first call of each module only. The step's first call of ``model`` itself records its
    first positional tensor argument (``input``) and the parameters as they are then
    (``params``). Each watched module's input (its first positional tensor, summarised) and
    its train/eval mode are recorded too, at its first call (``inputs``, ``modes``): they
    tell a layer that computes something else from one handed something else. With
    ``keep_tensors``, detached CPU copies of all of these are kept too,
    for the first ``max_tensor_steps`` steps only (memory). ``attention`` keeps the latest
    attention map (``attention_map``) of every module that ``is_attention_module``, watched
    or not.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        modules: Literal["leaves", "all"] = "leaves",
        keep_tensors: bool = False,
        max_tensor_steps: int = 8,
    ) -> None:
        self.model = model
        self.modules = recorded_modules(model, modules)
        self.keep_tensors = keep_tensors
        self.max_tensor_steps = max_tensor_steps
        self.steps: list[StepRecord] = []
        self.attention: dict[str, Tensor] = {}
        self.current = StepRecord(step=0)
        self._model_called = False  # has the current step called the model yet?
        self._handles: list[RemovableHandle] = []
        self._grad_handles: list[RemovableHandle] = []

    # -- attaching ---------------------------------------------------------------------------

    def attach(self) -> Recorder:
        """Register the hooks (idempotent: attaching twice does not double them)."""
        if self._handles:
            return self
        self._handles.append(self.model.register_forward_pre_hook(self._on_model_call))
        for name, module in self.model.named_modules():
            watched = name in self.modules
            attention = name != "" and is_attention_module(name, module)
            if watched:
                self._handles.append(module.register_forward_pre_hook(self._make_pre_hook(name)))
            if watched or attention:
                hook = self._make_forward_hook(name, module, watched, attention)
                self._handles.append(module.register_forward_hook(hook))
        return self

    def detach(self) -> None:
        """Remove every hook this recorder registered, on modules and on tensors."""
        for handle in self._handles + self._grad_handles:
            handle.remove()
        self._handles.clear()
        self._grad_handles.clear()

    def __enter__(self) -> Recorder:
        return self.attach()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.detach()

    # -- steps -------------------------------------------------------------------------------

    def end_step(self, loss: float | Tensor | None = None) -> None:
        """Close the current step (call it after ``optimizer.step()``) and open the next.

        Records every parameter's ``.grad`` (parameters whose grad is None are left out) and
        the loss (a tensor is turned into a float), then appends the record to ``steps``.
        """
        record = self.current
        record_step_end(record, self.model, loss, self._keeping(record))
        for handle in self._grad_handles:
            handle.remove()
        self._grad_handles.clear()
        self.steps.append(record)
        self.current = StepRecord(step=len(self.steps))
        self._model_called = False

    def as_run(self, name: str, losses: list[float] | None = None) -> Run:
        """The completed steps as a ``Run``; ``losses`` default to the recorded ones."""
        if losses is None:
            losses = [s.loss for s in self.steps if s.loss is not None]
        types = {n: type(m).__name__ for n, m in self.model.named_modules()}
        return Run(name, list(self.steps), list(losses), types, dict(self.attention))

    # -- hooks -------------------------------------------------------------------------------

    def _keeping(self, record: StepRecord) -> bool:
        return self.keep_tensors and record.step < self.max_tensor_steps

    def _on_model_call(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if self._model_called:
            return
        self._model_called = True
        record_step_start(self.current, self.model, args, self._keeping(self.current))

    def _make_pre_hook(self, name: str) -> Callable[[nn.Module, tuple[Any, ...]], None]:
        def pre_hook(mod: nn.Module, args: tuple[Any, ...]) -> None:
            record = self.current
            if name in record.modes:
                return
            record.modes[name] = mod.training
            x = first_tensor(args)
            if x is not None:
                record.inputs[name] = tensor_stats(x)

        return pre_hook

    def _make_forward_hook(
        self, name: str, module: nn.Module, watched: bool, attention: bool
    ) -> Callable[[nn.Module, Any, Any], None]:
        saturation = saturation_for(module)

        def hook(mod: nn.Module, args: Any, output: Any) -> None:
            out = first_tensor(output)
            if out is None:
                return
            if attention:
                pattern = attention_map(out)
                if pattern is not None:
                    self.attention[name] = pattern
            if watched:
                record = self.current
                handle = record_output(record, name, out, saturation, self._keeping(record))
                if handle is not None:
                    self._grad_handles.append(handle)

        return hook
