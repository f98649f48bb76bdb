"""Run a training script under a ``Recorder``: the script protocol of ``mlab inspect``.

A training script is a Python file that defines two functions:

    def build_model(seed: int) -> nn.Module: ...
    def train(model: nn.Module, *, steps: int, seed: int,
              on_step: Callable[[float], None]) -> list[float]: ...

``train`` runs ``steps`` optimizer steps, calls ``on_step(loss)`` right after every
``optimizer.step()``, and returns the losses. ``run_script`` seeds torch's global generator
with ``seed`` before ``build_model`` and again before ``train``, so two scripts with the same
seed start from the same random state, and records the run.

The time limit uses ``SIGALRM`` (``signal.setitimer``) in this process: it needs the main
thread of a Unix process and interrupts Python code, so a loop that never ends is stopped at
its next Python instruction. Elsewhere (another thread, Windows) the script runs unlimited.
"""

from __future__ import annotations

import importlib.util
import itertools
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, ModuleType

import torch
from torch import nn

from mlab.errors import MlabError
from mlab.inspect.record import Recorder, Run

__all__ = ["PROTOCOL", "load_script", "run_script", "time_limit"]

PROTOCOL = (
    "a training script defines `build_model(seed: int) -> nn.Module` and "
    "`train(model, *, steps: int, seed: int, on_step: Callable[[float], None]) -> list[float]`,"
    " which calls `on_step(loss)` after every optimizer step and returns the losses"
)

_counter = itertools.count()


class _TimeUp(BaseException):
    """Raised by the alarm; a BaseException so that a script's ``except Exception`` cannot
    swallow it."""


def _where(err: BaseException, path: Path) -> str:
    """``" (line N of NAME)"`` for the innermost frame of ``err``'s traceback inside ``path``,
    or ``""`` when none is."""
    lines = [f.lineno for f in traceback.extract_tb(err.__traceback__) if Path(f.filename) == path]
    return f" (line {lines[-1]} of {path.name})" if lines else ""


def load_script(path: str | Path) -> ModuleType:
    """Import the training script at ``path`` under a new, unique module name.

    Raise ``MlabError`` when the file is missing, has a syntax error (naming the line and
    column), raises while importing, or lacks ``build_model`` or ``train`` (naming the
    missing function and the protocol).
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise MlabError(f"{path}: no such file; give the path of a training script ({PROTOCOL})")
    name = f"_mlab_inspect_script_{next(_counter)}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise MlabError(f"{path}: cannot be imported as Python; {PROTOCOL}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        raise MlabError(
            f"{path}:{err.lineno}:{err.offset}: syntax error: {err.msg}\n    {err.text or ''}"
        ) from None
    except Exception as err:
        raise MlabError(
            f"{path}: importing it raised {type(err).__name__}: {err}{_where(err, path)}"
        ) from err
    for function in ("build_model", "train"):
        if not callable(getattr(module, function, None)):
            raise MlabError(f"{path} defines no function `{function}`: {PROTOCOL}")
    return module


@contextmanager
def time_limit(seconds: float | None, what: str) -> Iterator[None]:
    """Raise ``MlabError`` naming ``what`` if the block runs longer than ``seconds``.

    None, or a call outside the main thread or on a system without ``SIGALRM``, sets no limit.
    """
    usable = hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
    if seconds is None or not usable:
        yield
        return

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise _TimeUp

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _TimeUp:
        raise MlabError(
            f"{what} did not finish within {seconds:g} s: look for a loop that never ends "
            "(a `while` whose condition never changes, a data loader that never stops), or "
            "allow more time (`--timeout SECONDS` on `mlab inspect` and `mlab bughunt inspect`)"
        ) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_script(
    path: str | Path,
    *,
    steps: int = 3,
    seed: int = 0,
    keep_tensors: bool = True,
    name: str | None = None,
    timeout_s: float | None = None,
) -> Run:
    """Load the training script at ``path``, train its model for ``steps`` steps under a
    ``Recorder`` (leaf modules) and return the ``Run`` (named ``name``, default the file's
    stem).

    ``torch.manual_seed(seed)`` runs before ``build_model(seed)`` and again before
    ``train(model, steps=steps, seed=seed, on_step=recorder.end_step)``. Raise ``MlabError``
    if the script does not follow the protocol (see ``load_script``; ``build_model`` not
    returning an ``nn.Module``; ``train`` never calling ``on_step``), if it raises (with the
    script's line), or if loading and training take longer than ``timeout_s`` seconds.
    """
    path = Path(path).resolve()
    if steps < 1:
        raise MlabError(f"steps={steps}: record at least one training step")
    with time_limit(timeout_s, f"{path.name} (steps={steps})"):
        module = load_script(path)
        try:
            torch.manual_seed(seed)
            model = module.build_model(seed)
            if not isinstance(model, nn.Module):
                raise MlabError(
                    f"{path}: build_model returned a {type(model).__name__}, not an nn.Module: "
                    f"{PROTOCOL}"
                )
            recorder = Recorder(model, keep_tensors=keep_tensors)
            with recorder:
                torch.manual_seed(seed)
                losses = module.train(model, steps=steps, seed=seed, on_step=recorder.end_step)
        except MlabError:
            raise
        except Exception as err:
            raise MlabError(
                f"{path}: running it raised {type(err).__name__}: {err}{_where(err, path)}"
            ) from err
    if not recorder.steps:
        raise MlabError(f"{path}: train() never called on_step(loss): {PROTOCOL}")
    return recorder.as_run(name or path.stem, _as_losses(losses, path))


def _as_losses(losses: object, path: Path) -> list[float] | None:
    """``train``'s return value as a list of floats; None (use the recorded losses) if it
    returned None. Raise ``MlabError`` for anything else that is not a sequence of numbers."""
    if losses is None:
        return None
    try:
        return [float(loss) for loss in losses]  # type: ignore[attr-defined]
    except (TypeError, ValueError) as err:
        raise MlabError(
            f"{path}: train() returned {type(losses).__name__} {losses!r:.80}, not a list of "
            f"losses: {PROTOCOL}"
        ) from err
