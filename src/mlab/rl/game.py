"""A two-player game played with nothing but a value function.

Two players take turns appending a few tokens to a shared text; the positive player wins
if VADER finds the finished text positive, the negative player if it finds it negative.
Each player samples a few candidate moves from the language model and picks the one whose
resulting text a learned value $V(\\text{text})$ likes best (the positive player the
largest value, the negative player the smallest): no policy is trained, only $V$, the
expected final outcome from the positive player's side, from self-play.

$V$ is fitted by regression on targets from finished games: Monte Carlo targets (the
outcome itself) or TD($\\lambda$) targets, the $\\lambda$-return (Sutton and Barto,
section 12.1), which mixes the outcome with the value's own later predictions:

$$
G^\\lambda_t = r_t + \\gamma \\big((1 - \\lambda) V(s_{t+1}) + \\lambda G^\\lambda_{t+1}\\big)
$$

$\\lambda = 1$ is the Monte Carlo return, $\\lambda = 0$ TD(0)'s one-step target.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from mlab.errors import ShapeError

__all__ = ["choose_moves", "td_lambda_targets"]


def td_lambda_targets(
    rewards: Float[Tensor, "batch steps"],
    values: Float[Tensor, "batch steps_plus_one"],
    gamma: float,
    lam: float,
) -> Float[Tensor, "batch steps"]:
    """The $\\lambda$-return of every step of every episode (one episode per row):
    $G^\\lambda_t = r_t + \\gamma ((1 - \\lambda) V_{t+1} + \\lambda G^\\lambda_{t+1})$,
    with $G^\\lambda_T = V_T$ for the value after the last step, ``values[:, -1]`` (0 when
    the episode ended there). ``values[:, t]`` is $V(s_t)$, the value of the state in
    which step ``t``'s action was taken; the targets are data (no gradient flows into
    them).

    Raise ``ShapeError`` unless ``values`` is ``(batch, steps + 1)``, ``ValueError``
    unless ``0 <= gamma <= 1`` and ``0 <= lam <= 1``.

    >>> td_lambda_targets(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 0.5, 0.0]]), 1, 0)
    tensor([[0.5000, 1.0000]])
    """
    batch, steps = rewards.shape
    if values.shape != (batch, steps + 1):
        raise ShapeError(
            f"values {tuple(values.shape)} should be (batch, steps + 1) = {(batch, steps + 1)}: "
            "the value of every state an action was taken in, then of the state after the "
            "last step (0 if the episode ended)"
        )
    if not (0 <= gamma <= 1 and 0 <= lam <= 1):
        raise ValueError(f"gamma={gamma} and lam={lam} should both be in [0, 1]")
    values = values.detach()
    out = torch.empty_like(rewards)
    running = values[:, steps]
    for t in reversed(range(steps)):
        following = values[:, t + 1]
        running = rewards[:, t] + gamma * ((1 - lam) * following + lam * running)
        out[:, t] = running
    return out


def choose_moves(
    values: Float[Tensor, "batch candidates"], player: Int[Tensor, " batch"]
) -> Int[Tensor, " batch"]:
    """The index of the candidate each player picks: the largest value for the positive
    player (``player`` +1) and the smallest for the negative player (-1); on a tie, the
    first. Values are from the positive player's side.

    Raise ``ValueError`` if an entry of ``player`` is not +1 or -1.

    >>> choose_moves(torch.tensor([[0.1, 0.9], [0.1, 0.9]]), torch.tensor([1, -1]))
    tensor([1, 0])
    """
    if not bool(((player == 1) | (player == -1)).all()):
        raise ValueError(f"player should hold only +1 and -1, got {player.tolist()}")
    return (values * player[:, None]).argmax(1)
