"""``mlab rl ...``: reinforcement-learning runs (week 4). Each command imports torch and
gymnasium only when it runs, so ``mlab --help`` stays fast. Other week-4 commands register
themselves on :data:`rl_app` here."""

from __future__ import annotations

import typer

__all__ = ["DQN_CONTEXT", "dqn_command", "rl_app"]

rl_app = typer.Typer(help="Reinforcement-learning runs (week 4).", no_args_is_help=True)

# Every argument goes to mlab.rl.dqn_train.main(argv)'s own parser, as `mlab train` does.
DQN_CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


@rl_app.command("dqn", context_settings=DQN_CONTEXT)
def dqn_command(ctx: typer.Context) -> None:
    """Train DQN or a Rainbow combination from a gin config: mlab rl dqn CONFIG
    [--bind 'DQNConfig.double = True' ...] [--resume RUN] (see mlab rl dqn --help)."""
    from mlab.rl.dqn_train import main

    raise typer.Exit(main(list(ctx.args)))


# w4d2: mlab rl rlhf, rlhf-decode, rlhf-plot, ppo-cartpole
from mlab.rl.lm_cli import register as _register_w4d2  # noqa: E402

_register_w4d2(rl_app)

# w4d3: mlab rl fudge, active, game
from mlab.rl.w4d3_cli import register as _register_w4d3  # noqa: E402

_register_w4d3(rl_app)
