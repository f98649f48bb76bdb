"""``mlab pretrain shakespeare`` and ``mlab sample``: train the course's small GPT-2 on tiny
Shakespeare and stream text from it (:mod:`mlab.models.shakespeare`). Imports torch only when
a command runs, so ``mlab --help`` stays fast."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
            help="gpt2: GPT-2's BPE tokenizer, about 17 minutes on 2 idle cores (the course's "
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
    tokens: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="How many tokens to generate (default: 300; with --beams or --avoid-suffix, "
            "as many as the model's context holds after the prompt).",
        ),
    ] = None,
    temperature: Annotated[
        float, typer.Option(help="Below 1: safer; above 1: wilder. Must be > 0 (see --greedy).")
    ] = 0.8,
    top_k: Annotated[
        int, typer.Option(min=0, help="Sample only from the k likeliest tokens (0: all).")
    ] = 200,
    top_p: Annotated[
        float,
        typer.Option(
            help="Sample only from the likeliest tokens whose probabilities add up "
            "to p, in (0, 1] (1: all)."
        ),
    ] = 1.0,
    repetition_penalty: Annotated[
        float, typer.Option(help="Above 1 makes tokens already in the text less likely.")
    ] = 1.0,
    greedy: Annotated[
        bool, typer.Option("--greedy", help="Always take the likeliest token (no sampling).")
    ] = False,
    beams: Annotated[
        int,
        typer.Option(
            min=1,
            help="Beam search with this many beams: prints the likeliest text found (1: off).",
        ),
    ] = 1,
    avoid_suffix: Annotated[
        str | None,
        typer.Option(
            help="Sample --candidates continuations and print the one this text is "
            'least likely to follow, e.g. " -- and that was bad".'
        ),
    ] = None,
    candidates: Annotated[
        int, typer.Option(min=1, help="How many continuations --avoid-suffix compares.")
    ] = 8,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    model: Annotated[
        Path | None,
        typer.Option(help="A checkpoint folder (default: `mlab pretrain shakespeare`'s)."),
    ] = None,
) -> None:
    """Text from the small GPT-2 trained by `mlab pretrain shakespeare`, streamed token by
    token; or the best of a beam search (--beams) or of several samples (--avoid-suffix). The
    decoding is w2d4's (mlab.sampling), with the key/value cache."""
    from mlab.errors import ConfigError

    if not temperature > 0:
        raise ConfigError(
            f"--temperature {temperature}: it must be above 0; for the likeliest tokens "
            "pass --greedy"
        )
    if not 0 < top_p <= 1:
        raise ConfigError(f"--top-p {top_p}: it must be in (0, 1]; 1 keeps every token")
    if not repetition_penalty > 0:
        raise ConfigError(f"--repetition-penalty {repetition_penalty}: it must be above 0 (1: off)")
    if beams > 1 and avoid_suffix is not None:
        raise ConfigError("--beams and --avoid-suffix are two ways of choosing: pick one")
    if beams > 1 and (temperature != 0.8 or top_p != 1.0):
        raise ConfigError(
            "--beams searches for the likeliest text and does not sample: drop "
            "--temperature/--top-p, or drop --beams to sample"
        )

    from mlab.models.shakespeare import generate, load_pretrained

    gpt, tokenizer = load_pretrained(model)
    sampling: dict[str, Any] = {
        "temperature": temperature,
        "top_k": top_k or None,
        "top_p": top_p,
        "repetition_penalty": repetition_penalty,
    }
    if beams > 1 or avoid_suffix is not None:
        _choose_one(gpt, tokenizer, prompt, tokens, beams, avoid_suffix, candidates,
                    greedy, seed, sampling)  # fmt: skip
        return
    console.print(prompt, end="", style="bold", highlight=False)
    for piece in generate(
        gpt, tokenizer, prompt, 300 if tokens is None else tokens, greedy=greedy, seed=seed,
        **sampling,
    ):  # fmt: skip
        console.print(piece, end="", highlight=False, markup=False)
    console.print()


def _choose_one(
    gpt: Any,
    tokenizer: Any,
    prompt: str,
    tokens: int | None,
    beams: int,
    avoid_suffix: str | None,
    candidates: int,
    greedy: bool,
    seed: int,
    sampling: dict[str, Any],
) -> None:
    """``mlab sample --beams`` and ``--avoid-suffix``: decodings that see whole continuations
    before choosing, so they print at the end rather than stream. Both keep the prompt and the
    continuation in one context window."""
    import torch

    from mlab.errors import ConfigError
    from mlab.sampling import beam_search
    from mlab.sampling.suffix import avoid_suffix as least_followed_by

    ids = tokenizer.encode(prompt) or [0]
    limit = gpt.config.n_positions
    room = limit - len(ids) + 1  # the last token made is never fed back
    if avoid_suffix is not None:
        room -= len(tokenizer.encode(avoid_suffix))  # the suffix is scored after it
    way = f"--beams {beams}" if avoid_suffix is None else "--avoid-suffix"
    if room < 1:
        raise ConfigError(
            f"the prompt ({len(ids)} tokens) leaves no room in the model's {limit}-token "
            f"context for {way}: shorten it"
        )
    if tokens is not None and tokens > room:
        raise ConfigError(
            f"--tokens {tokens}: with {way} the prompt and the continuation share the model's "
            f"{limit}-token context, which leaves {room}; pass --tokens {room} or fewer (or "
            "leave it out)"
        )
    new = room if tokens is None else tokens
    prompt_ids = torch.tensor(ids)
    if avoid_suffix is None:
        if beams > gpt.config.vocab_size:
            raise ConfigError(f"--beams {beams}: the model has only {gpt.config.vocab_size} tokens")
        best = beam_search(
            gpt, prompt_ids[None], num_beams=beams, max_new_tokens=new,
            repetition_penalty=sampling["repetition_penalty"],
        )[0]  # fmt: skip
        text = tokenizer.decode(best[len(ids) :].tolist())
        console.print(prompt, end="", style="bold", highlight=False)
        console.print(text, highlight=False, markup=False)
        return
    suffix = torch.tensor(tokenizer.encode(avoid_suffix))
    if len(suffix) == 0:
        raise ConfigError("--avoid-suffix '': give the text to avoid, e.g. ' -- and that was bad'")
    kept, scores = least_followed_by(
        gpt, prompt_ids, suffix, n_candidates=candidates, keep=candidates,
        max_new_tokens=new, do_sample=not greedy,
        generator=torch.Generator().manual_seed(seed), **sampling,
    )  # fmt: skip
    console.print(prompt, end="", style="bold", highlight=False)
    console.print(tokenizer.decode(kept[0].tolist()), highlight=False, markup=False)
    console.print(
        f"[dim]Chosen from {candidates} samples as the least likely to be followed by "
        f"{avoid_suffix!r}: log p = {scores[0]:.2f} (the others: {scores[1:].min():.2f} to "
        f"{scores[1:].max():.2f}).[/dim]" if candidates > 1 else
        f"[dim]log p({avoid_suffix!r} follows) = {scores[0]:.2f}[/dim]",
        highlight=False,
    )  # fmt: skip
