"""``mlab pretrain shakespeare`` and ``mlab sample``: train the course's small GPT-2 on tiny
Shakespeare and stream text from it (:mod:`mlab.models.shakespeare`). Imports torch only when
a command runs, so ``mlab --help`` stays fast."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["pretrain_app", "sample_command"]

console = Console()
pretrain_app = typer.Typer(
    help="Train the course's own models (cached; resumable).", no_args_is_help=True
)


@pretrain_app.command("shakespeare")
def pretrain_shakespeare(
    recipe: Annotated[
        str,
        typer.Option(
            help="gpt2: GPT-2's BPE tokenizer, about 15 minutes on 2 cores (the course's "
            "pretrained model); char: characters, nanoGPT's shakespeare_char on CPU (~5 min)."
        ),
    ] = "gpt2",
    out: Annotated[
        Path | None, typer.Option(help="Folder for the checkpoint (default: under the cache).")
    ] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Start over instead of resuming.")] = False,
    max_iters: Annotated[
        int | None, typer.Option(help="Train for this many steps instead of the recipe's.")
    ] = None,
) -> None:
    """Train a small GPT-2 on tiny Shakespeare, with a progress bar. Interrupt it any time:
    run it again and it resumes from the last checkpoint (every 250 steps)."""
    from dataclasses import replace

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from mlab.errors import ConfigError
    from mlab.models.shakespeare import RECIPES, checkpoint_dir, train

    if recipe not in RECIPES:
        raise ConfigError(f"--recipe {recipe!r}: choose one of {sorted(RECIPES)}")
    chosen = RECIPES[recipe] if max_iters is None else replace(RECIPES[recipe], max_iters=max_iters)
    directory = out or checkpoint_dir(recipe)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} {task.fields[info]}"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(f"shakespeare-{recipe}", total=chosen.max_iters, info="")

        def on_step(step: int, loss: float) -> None:
            progress.update(task, completed=step, info=f"loss {loss:.3f}")

        def on_eval(step: int, train_loss: float, val_loss: float) -> None:
            progress.console.print(
                f"step {step}: train loss {train_loss:.3f}, validation loss {val_loss:.3f}"
            )

        result = train(chosen, directory, resume=not fresh, on_step=on_step, on_eval=on_eval)
    from mlab.course.engine.report import command, say

    model = () if out is None else ("--model", str(directory))
    try_it = command("sample", options=("--prompt", "ROMEO:", *model))
    say(
        console,
        f"Done: {result.steps} steps, train loss {result.train_loss:.3f}, validation loss "
        f"{result.val_loss:.3f}. Saved to {result.directory}; try {try_it}.",
    )


def sample_command(
    prompt: Annotated[str, typer.Option(help="The text to continue.")] = "ROMEO:",
    tokens: Annotated[int, typer.Option(help="How many tokens to generate.")] = 300,
    temperature: Annotated[float, typer.Option(help="Below 1: safer; above 1: wilder.")] = 0.8,
    top_k: Annotated[int, typer.Option(help="Sample only from the k likeliest tokens.")] = 200,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    model: Annotated[
        Path | None,
        typer.Option(help="A checkpoint folder (default: `mlab pretrain shakespeare`'s)."),
    ] = None,
) -> None:
    """Stream text from the small GPT-2 trained by `mlab pretrain shakespeare`."""
    from mlab.models.shakespeare import generate, load_pretrained

    gpt, tokenizer = load_pretrained(model)
    console.print(prompt, end="", style="bold", highlight=False)
    for piece in generate(
        gpt, tokenizer, prompt, tokens, temperature=temperature, top_k=top_k, seed=seed
    ):
        console.print(piece, end="", highlight=False, markup=False)
    console.print()
