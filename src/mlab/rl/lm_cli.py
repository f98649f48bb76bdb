"""``mlab rl rlhf``, ``mlab rl rlhf-decode``, ``mlab rl rlhf-plot`` and ``mlab rl
ppo-cartpole``: w4d2's runs (:mod:`mlab.rl.lm_ppo`, :mod:`mlab.rl.lm_value`,
:mod:`mlab.rl.ppo`). :func:`register` adds them to ``mlab rl``; torch is imported only when
a command runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["ModelOption", "model_and_prompts", "register"]

ModelOption = Annotated[
    Path | None,
    typer.Option("--model", help="A Shakespeare checkpoint (default: mlab pretrain's)."),
]


def model_and_prompts(model: Path | None) -> tuple[Any, Any, list[list[int]]]:
    """The Shakespeare model (eval mode), its tokenizer and the prompt lines of tiny
    Shakespeare, for w4d2's and w4d3's commands (one torch thread: runs go side by side)."""
    import torch

    from mlab.models.shakespeare import load_pretrained, load_tiny_shakespeare
    from mlab.rl.lm_ppo import load_prompts

    torch.set_num_threads(1)  # one run per core: several runs side by side go further
    lm, tokenizer = load_pretrained(model)
    return lm, tokenizer, load_prompts(load_tiny_shakespeare(), tokenizer)


def rlhf(
    out: Annotated[Path, typer.Option(help="Folder for metrics.jsonl and result.json.")],
    beta: Annotated[float, typer.Option(help="The KL coefficient (initial when adaptive).")] = 0.05,
    target_kl: Annotated[
        float | None, typer.Option(help="Adaptive beta aiming at this KL (nats/continuation).")
    ] = None,
    horizon: Annotated[
        int, typer.Option(help="The adaptive controller's horizon, in samples.")
    ] = 10_000,
    iterations: Annotated[int, typer.Option(help="PPO iterations.")] = 80,
    batch: Annotated[int, typer.Option(help="Continuations sampled per iteration.")] = 128,
    minibatch: Annotated[int, typer.Option(help="Continuations per gradient step.")] = 32,
    epochs: Annotated[int, typer.Option(help="Passes over each batch.")] = 4,
    lr: Annotated[float, typer.Option(help="Adam's learning rate.")] = 5e-5,
    gen_len: Annotated[int, typer.Option(help="Tokens per continuation.")] = 16,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    model: ModelOption = None,
) -> None:
    """PPO on the Shakespeare GPT-2: reward = VADER compound - beta * KL to the frozen model.
    The tuned model is saved in OUT/policy (`mlab sample --model OUT/policy` samples it)."""
    from mlab.rl.lm_ppo import RLHFConfig, train_rlhf

    config = RLHFConfig(
        iterations=iterations,
        batch=batch,
        minibatch=minibatch,
        epochs=epochs,
        beta=beta,
        target_kl=target_kl,
        horizon=horizon,
        lr=lr,
        gen_len=gen_len,
        seed=seed,
    )
    lm, tokenizer, lines = model_and_prompts(model)

    def show(it: int, r: Any) -> None:
        typer.echo(
            f"{it:4d}  score {r.score[-1]:+.3f}  KL {r.kl[-1]:6.2f} (exact {r.exact_kl[-1]:6.2f})"
            f"  beta {r.beta[-1]:.4f}  {r.seconds[-1]:6.0f} s"
        )

    _, result = train_rlhf(lm, tokenizer, lines, config, on_iteration=show, out=out)
    typer.echo("before:\n  " + "\n  ".join(result.samples_before[:4]))
    typer.echo("after:\n  " + "\n  ".join(result.samples_after[:4]))


def rlhf_decode(
    out: Annotated[Path, typer.Option(help="Folder for decode.json.")],
    prompts: Annotated[int, typer.Option(help="Prompts to decode.")] = 64,
    samples: Annotated[int, typer.Option(help="Base-model samples to fit V on.")] = 1024,
    max_n: Annotated[int, typer.Option(help="The largest n of best-of-n.")] = 16,
    gen_len: Annotated[int, typer.Option(help="Tokens per continuation.")] = 16,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    model: ModelOption = None,
) -> None:
    """The frozen model steered at decoding time: best-of-n, and value-guided decoding with a
    value function fitted to the base model's samples."""
    import random

    import torch

    from mlab.rl.lm_ppo import sample_prompts
    from mlab.rl.lm_value import (
        best_of_n,
        best_of_n_kl,
        train_prefix_value,
        value_guided_decode,
    )
    from mlab.rl.sentiment import sentiment_scores

    lm, tokenizer, lines = model_and_prompts(model)
    lm.eval()
    value, error = train_prefix_value(
        lm, tokenizer, lines, samples=samples, gen_len=gen_len, seed=seed
    )
    typer.echo(f"value function: held-out error {error:.2f} of the scores' variance")
    chosen = sample_prompts(lines, prompts, random.Random(seed + 1))
    g = torch.Generator().manual_seed(seed)
    rows: dict[str, Any] = {"value_error": error, "best_of_n": [], "value_guided": []}
    for n in (n for n in (1, 2, 4, 8, 16, 32, 64) if n <= max_n):
        scores, texts = best_of_n(lm, tokenizer, chosen, n, gen_len, g)
        rows["best_of_n"].append(
            {"n": n, "score": float(scores.mean()), "kl": best_of_n_kl(n), "samples": texts[:4]}
        )
        typer.echo(f"best-of-{n}: score {scores.mean():+.3f}  KL {best_of_n_kl(n):.2f}")
    for tau in (1.0, 0.5, 0.3, 0.2, 0.1, 0.05):
        tokens, kl = value_guided_decode(lm, value, chosen, gen_len, g, tau=tau)
        texts = [tokenizer.decode(t.tolist()) for t in tokens]
        score = float(sentiment_scores(texts).mean())
        rows["value_guided"].append(
            {"tau": tau, "score": score, "kl": float(kl.mean()), "samples": texts[:4]}
        )
        typer.echo(f"value-guided tau={tau}: score {score:+.3f}  KL {kl.mean():.2f}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "decode.json").write_text(json.dumps(rows, indent=1) + "\n")


def rlhf_eval(
    runs: Annotated[list[Path], typer.Argument(help="Run folders (mlab rl rlhf --out).")],
    prompts: Annotated[int, typer.Option(help="Fixed prompts, one continuation each.")] = 512,
    gen_len: Annotated[int, typer.Option(help="Tokens per continuation.")] = 16,
    seed: Annotated[int, typer.Option(help="Seed of the prompts and the sampling.")] = 1,
    model: ModelOption = None,
) -> None:
    """Measure tuned policies (RUN/policy) on the same fixed prompts: mean VADER and exact
    KL to the base model, with bootstrap 95% intervals. Writes RUN/eval.json."""
    import random

    from mlab.errors import DataError
    from mlab.models.shakespeare import load_pretrained
    from mlab.rl.lm_ppo import evaluate_policy, sample_prompts

    missing = [str(r) for r in runs if not (r / "policy" / "model.safetensors").is_file()]
    if missing:
        raise DataError(
            f"no tuned policy in {', '.join(missing)}: a finished `mlab rl rlhf --out RUN` "
            "saves one in RUN/policy"
        )
    ref, tokenizer, lines = model_and_prompts(model)
    chosen = sample_prompts(lines, prompts, random.Random(seed))
    for run in runs:
        policy, _ = load_pretrained(run / "policy")
        row = evaluate_policy(policy, ref, tokenizer, chosen, gen_len, seed)
        (run / "eval.json").write_text(json.dumps(row, indent=1) + "\n")
        low, high = row["score_ci"]
        kl_low, kl_high = row["exact_kl_ci"]
        typer.echo(
            f"{run}\n  score {row['score']:+.3f} [{low:+.3f}, {high:+.3f}]  exact KL "
            f"{row['exact_kl']:.2f} [{kl_low:.2f}, {kl_high:.2f}]  k1 {row['kl']:.2f}"
        )


def rlhf_plot(
    runs: Annotated[Path, typer.Argument(help="The folder holding the runs' folders.")],
    out: Annotated[Path, typer.Option(help="Where to write the PNG.")] = Path("frontier.png"),
) -> None:
    """Draw the reward/KL frontier (every run under RUNS) and the training curves."""
    from mlab.rl.lm_plots import plot_frontier

    plot_frontier(runs, out)
    typer.echo(f"wrote {out}")


def ppo_cartpole(
    steps: Annotated[int, typer.Option(help="Environment steps.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 1,
) -> None:
    """PPO on CartPole-v1 with CleanRL's settings; prints the mean return as it learns."""
    import torch

    from mlab.rl.ppo import CartPoleConfig, train_cartpole

    torch.set_num_threads(1)
    result = train_cartpole(
        CartPoleConfig(total_steps=steps, seed=seed),
        on_update=lambda s, r: typer.echo(f"{s:7d} steps  mean return (last 20) {r:6.1f}"),
    )
    typer.echo(f"{len(result.returns)} episodes, {result.seconds:.0f} s")


def register(app: typer.Typer) -> None:
    """Add w4d2's commands to ``mlab rl``."""
    app.command("rlhf")(rlhf)
    app.command("rlhf-decode")(rlhf_decode)
    app.command("rlhf-eval")(rlhf_eval)
    app.command("rlhf-plot")(rlhf_plot)
    app.command("ppo-cartpole")(ppo_cartpole)
