"""``mlab rl fudge``, ``active``, ``game`` and ``w4d3-report``: w4d3's runs
(:mod:`mlab.rl.w4d3_fudge`, :mod:`mlab.rl.w4d3_active`, :mod:`mlab.rl.w4d3_game`).
:func:`register` adds them to ``mlab rl``; torch is imported only when a command runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from mlab.rl.lm_cli import ModelOption, model_and_prompts

__all__ = ["register"]


def fudge(
    out: Annotated[Path, typer.Option(help="Folder for fudge.json.")],
    samples: Annotated[int, typer.Option(help="Base-model samples to train on.")] = 2048,
    prompts: Annotated[int, typer.Option(help="Prompts to decode.")] = 64,
    gen_len: Annotated[int, typer.Option(help="Tokens per continuation.")] = 16,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    model: ModelOption = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            help="A tuned policy's folder (config.json, model.safetensors, tokenizer.json: "
            "mlab rl rlhf --out DIR writes DIR/policy): add its rows, plain sampling."
        ),
    ] = None,
    policy_only: Annotated[
        bool,
        typer.Option(help="Decode only the --policy rows (the same prompts as a full run)."),
    ] = False,
    top_k: Annotated[
        str, typer.Option(help="FUDGE's top-k values, comma-separated ('' for none).")
    ] = "16,64",
    best_of: Annotated[
        str, typer.Option(help="Best-of-n's n values, comma-separated ('' for none).")
    ] = "1,4,16,64",
) -> None:
    """FUDGE (top-k 16 and 64, several strengths) against best-of-n at matched rows, and
    a tuned policy (w4d2's PPO) on the same prompts with --policy."""
    from mlab.models.shakespeare import load_pretrained
    from mlab.rl.w4d3_fudge import compare

    def numbers(text: str, name: str) -> tuple[int, ...]:
        try:
            values = tuple(int(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise typer.BadParameter(f"--{name} {text!r}: give integers such as 16,64") from None
        if any(v < 1 for v in values):
            raise typer.BadParameter(f"--{name} {text!r}: every value should be at least 1")
        return values

    ks, ns = numbers(top_k, "top-k"), numbers(best_of, "best-of")
    if policy_only and policy is None:
        raise typer.BadParameter("--policy-only needs --policy DIR (the tuned model's folder)")
    lm, tokenizer, lines = model_and_prompts(model)
    tuned = None
    if policy is not None:
        tuned, policy_tokenizer = load_pretrained(policy)
        if policy_tokenizer.vocab_size != tokenizer.vocab_size:
            raise typer.BadParameter(
                f"{policy}'s tokenizer has {policy_tokenizer.vocab_size} tokens but the base "
                f"model's {tokenizer.vocab_size}: tune the policy from the same base model"
            )

    def show(row: dict[str, Any]) -> None:
        low, high = row["score_ci"]
        typer.echo(
            f"{row['method']:22s} score {row['score']:+.3f} [{low:+.3f}, {high:+.3f}]  "
            f"positive {row['positive']:.2f}  KL {row['kl']:6.2f}  ppl {row['perplexity']:7.1f}"
            f"  {row['ms_per_token']:6.2f} ms/token"
        )

    result = compare(
        lm,
        tokenizer,
        lines,
        samples=samples,
        prompts=prompts,
        gen_len=gen_len,
        seed=seed,
        ks=ks,
        ns=ns,
        policy=tuned,
        policy_only=policy_only,
        on_row=show,
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "fudge.json").write_text(json.dumps(result, indent=1))
    if "classifier" in result:
        typer.echo(f"classifier: {result['classifier']}")


def active(
    out: Annotated[Path, typer.Option(help="Folder for active.json and active.png.")],
    pool: Annotated[
        int, typer.Option(help="Lines in the pool (a quarter is the test set).")
    ] = 2000,
    seeds: Annotated[int, typer.Option(help="Seeds (test split and first labels).")] = 6,
    start: Annotated[int, typer.Option(help="Random labels to start from.")] = 20,
    step: Annotated[int, typer.Option(help="Labels bought per round.")] = 30,
    rounds: Annotated[int, typer.Option(help="Rounds of queries.")] = 12,
    target: Annotated[float, typer.Option(help="The accuracy to reach.")] = 0.75,
) -> None:
    """Active-learning curves: uncertainty, margin, BALD, k-center vs random."""
    import torch

    from mlab.rl.w4d3_active import (
        labels_to_reach,
        line_features,
        plot_curves,
        run_curves,
        shakespeare_lines,
        summarise,
    )

    torch.set_num_threads(1)
    x, y = line_features(shakespeare_lines(pool))
    curves = run_curves(x, y, seeds=seeds, start=start, step=step, rounds=rounds)
    summary = summarise(curves)
    summary["target"] = target
    summary["labels_to_reach"] = labels_to_reach(curves, target)
    out.mkdir(parents=True, exist_ok=True)
    (out / "active.json").write_text(json.dumps(summary, indent=1))
    plot_curves(summary, str(out / "active.png"), target)
    typer.echo(f"full pool {curves.full_pool_accuracy:.3f}, base rate {curves.base_rate:.3f}")
    for strategy, (share, labels) in summary["labels_to_reach"].items():  # type: ignore[attr-defined]
        acc = curves.accuracy[strategy]
        typer.echo(
            f"{strategy:8s} final {acc[:, -1].mean():.3f}; mean curve reaches {target} at "
            f"{labels} labels; {share:.0%} of seeds reach it"
        )


def game(
    out: Annotated[Path, typer.Option(help="Folder for game.json.")],
    train_games: Annotated[int, typer.Option(help="Self-play games to fit V on.")] = 384,
    eval_games: Annotated[int, typer.Option(help="Games per matchup.")] = 96,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    model: ModelOption = None,
) -> None:
    """The two-player sentiment game: V from self-play (MC and TD(lambda)), calibration,
    win rates of value, greedy and random players."""
    from mlab.rl.w4d3_game import run

    lm, tokenizer, lines = model_and_prompts(model)
    result = run(
        lm,
        tokenizer,
        lines,
        train_games=train_games,
        eval_games=eval_games,
        seed=seed,
        log=typer.echo,
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "game.json").write_text(json.dumps(result, indent=1))


def report(
    runs: Annotated[Path, typer.Argument(help="Folder of fudge and game runs (one a folder).")],
    figure: Annotated[
        Path | None, typer.Option(help="Where to draw the score-against-KL figure.")
    ] = None,
) -> None:
    """Pool every run's seeds under RUNS (*/fudge.json, */game.json): Markdown tables,
    and the FUDGE frontier figure."""
    from mlab.rl.w4d3_report import (
        fudge_table,
        game_table,
        load_runs,
        plot_frontier,
        pool_fudge,
        pool_games,
    )

    if list(runs.glob("*/fudge.json")):
        pooled = pool_fudge(load_runs(runs, "fudge.json"))
        typer.echo(fudge_table(pooled) + "\n")
        if figure is not None:
            typer.echo(f"wrote {plot_frontier(pooled, figure)}")
    if list(runs.glob("*/game.json")):
        typer.echo(game_table(pool_games(load_runs(runs, "game.json"))))


def register(app: typer.Typer) -> None:
    """Add w4d3's commands to ``mlab rl``."""
    app.command("fudge")(fudge)
    app.command("w4d3-report")(report)
    app.command("active")(active)
    app.command("game")(game)
