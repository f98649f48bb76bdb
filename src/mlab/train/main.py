"""``mlab train CONFIG.gin --bind 'AdamW.lr=3e-4' [--resume RUN]``, and ``main(argv)`` doing the
same from Python.

A run lives in a folder (``runs/<name>/`` by default): ``config.gin`` (the config's text with
the ``--bind`` lines appended: what ``--resume`` parses again), ``operative_config.gin`` (gin's
record of every value the run actually used, defaults included), ``metrics.jsonl``,
``layers.jsonl`` and ``checkpoints/``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from mlab.errors import ConfigError, MlabError
from mlab.train.checkpoint import list_checkpoints

__all__ = ["main", "run"]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(
    config: str | None,
    bindings: list[str],
    resume: str | None = None,
    runs_dir: str | Path = "runs",
    name: str | None = None,
    progress: bool = True,
) -> Path:
    """Parse the config and bindings (checked first), then train; return the run folder."""
    import gin

    from mlab.train.config import (
        CONFIGURABLES,
        check_binding,
        parse_config,
        registered,
        shipped_config,
    )

    if resume is not None:
        if bindings or config is not None:
            raise ConfigError(
                "--resume continues a run with the config it started with: drop CONFIG and "
                "--bind (start a new run to change them)"
            )
        run_dir = Path(resume)
        if not run_dir.is_dir():
            run_dir = Path(runs_dir) / resume
        if not (run_dir / "config.gin").is_file():
            raise ConfigError(f"--resume {resume}: no run folder with a config.gin there")
        text = (run_dir / "config.gin").read_text()
    else:
        if config is None:
            raise ConfigError("give a config: mlab train CONFIG.gin (or a shipped config name)")
        for binding in bindings:
            check_binding(binding, CONFIGURABLES)
        path = shipped_config(config)
        text = path.read_text() + "".join(f"\n{b}  # --bind" for b in bindings) + "\n"
        stem = path.name.removesuffix(".gin")
        run_dir = Path(runs_dir) / (name or f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}")
        if list_checkpoints(run_dir):
            raise ConfigError(
                f"{run_dir} already holds a run: continue it with --resume {run_dir}, or pick "
                "another --name"
            )
    parse_config(text)
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume is None:
        (run_dir / "config.gin").write_text(text)

    def save_operative() -> None:
        (run_dir / "operative_config.gin").write_text(gin.operative_config_str())

    result = registered()["train"](
        run_dir=run_dir,
        resume=resume is not None,
        on_built=save_operative,
        say=_say,
        **({} if progress else {"progress": False}),
    )
    shown = ", ".join(f"{k}={v:.4g}" for k, v in result.metrics.items() if k != "throughput")
    _say(f"{run_dir}: step {result.step}{'; stopped early' if result.stopped_early else ''}")
    if shown:
        _say(f"  {shown}")
    return run_dir


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's help with "Usage:" capitalised, as every other mlab command prints it."""

    def add_usage(self, usage: Any, actions: Any, groups: Any, prefix: str | None = None) -> None:
        super().add_usage(usage, actions, groups, prefix or "Usage: ")


def main(argv: list[str] | None = None) -> int:
    """``mlab train`` from Python: ``main(["mlp_digits", "--bind", "AdamW.lr=3e-3"])``.
    Returns the exit status (0, or 2 with a message for a bad config)."""
    parser = argparse.ArgumentParser(
        prog="mlab train", description=__doc__, formatter_class=_HelpFormatter
    )
    parser.add_argument("config", nargs="?", help="a .gin file, or a shipped config's name")
    parser.add_argument("--bind", action="append", default=[], help="'Name.param = value'")
    parser.add_argument("--resume", metavar="RUN", help="continue this run folder")
    parser.add_argument("--runs-dir", default="runs", help="where run folders go (runs/)")
    parser.add_argument("--name", help="the run folder's name (default: config-time)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        run(
            args.config,
            args.bind,
            resume=args.resume,
            runs_dir=args.runs_dir,
            name=args.name,
            progress=not args.no_progress,
        )
    except MlabError as err:
        _say(f"error: {err}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
