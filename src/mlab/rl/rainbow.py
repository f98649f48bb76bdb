"""Rainbow's parts (Hessel et al., 2018, "Rainbow: Combining Improvements in Deep
Reinforcement Learning"), each on its own so it can be switched on and off:

- double DQN (van Hasselt et al., 2016): the online network picks the next action, the target
  network values it; the max of noisy estimates is biased upwards, this decouples the two;
- dueling heads (Wang et al., 2016): ``Q = V + A - mean(A)``, a state value shared by all
  actions plus per-action advantages;
- n-step returns (Sutton, 1988): ``r_0 + gamma r_1 + ... + gamma^(n-1) r_(n-1) + gamma^n V``,
  so a reward reaches earlier states n times faster;
- prioritised replay: :mod:`mlab.rl.replay`;
- noisy linear layers (Fortunato et al., 2018): learned, state-dependent exploration instead
  of epsilon, with factorised Gaussian noise;
- distributional C51 (Bellemare et al., 2017): a categorical distribution of returns over
  fixed atoms, its Bellman target projected back onto the atoms.

:class:`RainbowNetwork` combines the network parts; :func:`rainbow_update` is one gradient
step for any combination (with everything off it is exactly :func:`mlab.rl.dqn.dqn_update`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor, nn

from mlab.errors import ShapeError
from mlab.rl.dqn import dqn_loss, dqn_targets
from mlab.rl.replay import Transitions

__all__ = [
    "NoisyLinear",
    "RainbowNetwork",
    "categorical_projection",
    "double_dqn_targets",
    "dueling_combine",
    "n_step_return",
    "noisy_linear",
    "rainbow_update",
]


def double_dqn_targets(
    rewards: Float[Tensor, " batch"],
    discounts: Float[Tensor, " batch"],
    next_q_online: Float[Tensor, "batch actions"],
    next_q_target: Float[Tensor, "batch actions"],
) -> Float[Tensor, " batch"]:
    """Double DQN's targets: ``rewards + discounts * next_q_target[i, a*]`` with
    ``a* = argmax_a next_q_online[i, a]`` (the online network chooses, the target network
    values the choice). Raise ``mlab.errors.ShapeError`` when the two value tensors differ in
    shape.
    """
    if next_q_online.shape != next_q_target.shape:
        raise ShapeError(
            f"next_q_online {tuple(next_q_online.shape)} and next_q_target "
            f"{tuple(next_q_target.shape)} must have the same shape (batch, actions)"
        )
    best = next_q_online.argmax(dim=-1, keepdim=True)
    return rewards + discounts * next_q_target.gather(1, best).squeeze(1)


def dueling_combine(
    value: Float[Tensor, "batch 1 atoms"], advantages: Float[Tensor, "batch actions atoms"]
) -> Float[Tensor, "batch actions atoms"]:
    """The dueling head's output: ``value + advantages - mean over actions of advantages``.

    Subtracting the mean makes the split identifiable (adding a constant to every advantage and
    removing it from the value would give the same Q otherwise). ``atoms`` is 1 for plain
    Q values, the number of atoms for C51 (the combination acts on each atom's logit).
    """
    return value + advantages - advantages.mean(dim=1, keepdim=True)


def n_step_return(
    rewards: Float[Tensor, "batch n"], terminated: Bool[Tensor, "batch n"], gamma: float
) -> tuple[Float[Tensor, " batch"], Float[Tensor, " batch"]]:
    """The discounted return of each row's ``n`` rewards, and the discount to bootstrap with.

    ``terminated[i, k]`` says the episode ended with step ``k`` (its reward still counts; the
    rewards after it do not). Return ``(sum_k gamma**k * rewards[i, k]`` over the steps up to
    and including the first termination, ``gamma**n`` when no step terminated, else 0``): the
    n-step target is ``return + discount * max_a Q(s_n, a)``. A window cut short by a time
    limit is just a shorter ``n``.
    """
    batch, n = rewards.shape
    alive = (~terminated).to(rewards.dtype)
    # alive before step k: no termination among steps 0 .. k-1
    before = torch.cumprod(torch.cat([torch.ones(batch, 1), alive[:, :-1]], dim=1), dim=1)
    powers = gamma ** torch.arange(n, dtype=rewards.dtype)
    returns = (rewards * before * powers).sum(dim=1)
    return returns, gamma**n * alive.prod(dim=1)


def noisy_linear(
    x: Float[Tensor, "batch in_features"],
    weight_mu: Float[Tensor, "out_features in_features"],
    weight_sigma: Float[Tensor, "out_features in_features"],
    bias_mu: Float[Tensor, " out_features"],
    bias_sigma: Float[Tensor, " out_features"],
    eps_in: Float[Tensor, " in_features"],
    eps_out: Float[Tensor, " out_features"],
) -> Float[Tensor, "batch out_features"]:
    """A linear layer with factorised Gaussian noise: ``x @ W.T + b`` with
    ``W = weight_mu + weight_sigma * outer(f(eps_out), f(eps_in))`` and
    ``b = bias_mu + bias_sigma * f(eps_out)``, where ``f(e) = sign(e) * sqrt(|e|)``.

    ``eps_in`` and ``eps_out`` are standard-normal draws: ``in + out`` random numbers make
    the whole ``out x in`` noise matrix (independent noise would need ``in * out``).
    """
    f_in = eps_in.sign() * eps_in.abs().sqrt()
    f_out = eps_out.sign() * eps_out.abs().sqrt()
    weight = weight_mu + weight_sigma * torch.outer(f_out, f_in)
    return F.linear(x, weight, bias_mu + bias_sigma * f_out)


class NoisyLinear(nn.Module):
    """A linear layer with learned noise scales (factorised Gaussian, ``sigma_0 = 0.5``).

    In training mode it uses the noise drawn by the last :meth:`reset_noise`; in eval mode
    the mean weights (evaluation episodes are greedy and noise-free).
    """

    eps_in: Tensor
    eps_out: Tensor

    def __init__(self, in_features: int, out_features: int, sigma_0: float = 0.5) -> None:
        super().__init__()
        self.in_features, self.out_features, self.sigma_0 = in_features, out_features, sigma_0
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features))
        self.weight_sigma = nn.Parameter(torch.empty(out_features, in_features))
        self.bias_mu = nn.Parameter(torch.empty(out_features))
        self.bias_sigma = nn.Parameter(torch.empty(out_features))
        self.register_buffer("eps_in", torch.zeros(in_features))
        self.register_buffer("eps_out", torch.zeros(out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight_mu, -bound, bound)
        nn.init.uniform_(self.bias_mu, -bound, bound)
        nn.init.constant_(self.weight_sigma, self.sigma_0 * bound)
        nn.init.constant_(self.bias_sigma, self.sigma_0 * bound)

    def reset_noise(self) -> None:
        self.eps_in.normal_()
        self.eps_out.normal_()

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return F.linear(x, self.weight_mu, self.bias_mu)
        return noisy_linear(
            x,
            self.weight_mu,
            self.weight_sigma,
            self.bias_mu,
            self.bias_sigma,
            self.eps_in,
            self.eps_out,
        )


def categorical_projection(
    next_probs: Float[Tensor, "batch atoms"],
    rewards: Float[Tensor, " batch"],
    discounts: Float[Tensor, " batch"],
    atoms: Float[Tensor, " atoms"],
) -> Float[Tensor, "batch atoms"]:
    """C51's target distribution: move each atom ``z_j`` of the next state's return
    distribution ``next_probs`` to ``Tz_j = rewards + discounts * z_j``, clamp it into
    ``[atoms[0], atoms[-1]]``, and split its probability between the two atoms around it in
    proportion to closeness (all of it to an atom it lands on exactly).

    ``atoms`` are evenly spaced (``torch.linspace(v_min, v_max, n)``, n >= 2). With
    ``b = (Tz_j - v_min) / delta_z``, atom ``floor(b)`` gets ``p_j * (ceil(b) - b)`` and atom
    ``ceil(b)`` gets ``p_j * (b - floor(b))``. Each row of the result sums to its row of
    ``next_probs``. Vectorised (``scatter_add_``), no loop over the batch or the atoms.
    """
    n = atoms.shape[0]
    v_min, v_max = atoms[0], atoms[-1]
    delta = (v_max - v_min) / (n - 1)
    tz = (rewards.unsqueeze(1) + discounts.unsqueeze(1) * atoms).clamp(v_min, v_max)
    b = ((tz - v_min) / delta).clamp(0, n - 1)
    lower, upper = b.floor(), b.ceil()
    # b on an atom: floor == ceil and both weights below would be 0, so it all goes to lower
    lower_weight = torch.where(lower == upper, torch.ones_like(b), upper - b)
    projected = torch.zeros_like(next_probs)
    projected.scatter_add_(1, lower.long(), next_probs * lower_weight)
    projected.scatter_add_(1, upper.long(), next_probs * (b - lower))
    return projected


class RainbowNetwork(nn.Module):
    """An MLP Q network with Rainbow's switches: ``dueling`` heads, ``noisy`` linear layers
    (the heads' layers, as in Rainbow), and ``n_atoms`` > 1 for a C51 distribution.

    ``forward(obs)`` gives ``(batch, actions)`` Q values, or ``(batch, actions, n_atoms)``
    logits when distributional; :meth:`q_values` always gives Q values.
    """

    atoms: Tensor

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden: tuple[int, ...] = (128, 128),
        dueling: bool = False,
        noisy: bool = False,
        atoms: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.n_actions = n_actions
        self.register_buffer("atoms", atoms if atoms is not None else torch.zeros(1))
        self.n_atoms = 1 if atoms is None else len(atoms)
        self.distributional = atoms is not None
        layers: list[nn.Module] = []
        width = obs_dim
        for h in hidden[:-1]:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.body = nn.Sequential(*layers)
        linear = NoisyLinear if noisy else nn.Linear
        self.dueling = dueling

        def head(outputs: int) -> nn.Sequential:
            return nn.Sequential(linear(width, hidden[-1]), nn.ReLU(), linear(hidden[-1], outputs))

        self.advantage = head(n_actions * self.n_atoms)
        self.value = head(self.n_atoms) if dueling else None

    def reset_noise(self) -> None:
        for m in self.modules():
            if isinstance(m, NoisyLinear):
                m.reset_noise()

    def forward(self, obs: Tensor) -> Tensor:
        features = self.body(obs)
        out: Tensor = self.advantage(features).view(-1, self.n_actions, self.n_atoms)
        if self.value is not None:
            out = dueling_combine(self.value(features).view(-1, 1, self.n_atoms), out)
        return out if self.distributional else out.squeeze(-1)

    def q_values(self, obs: Tensor) -> Tensor:
        out: Tensor = self(obs)
        if not self.distributional:
            return out
        q: Tensor = (out.softmax(dim=-1) * self.atoms).sum(dim=-1)
        return q


def rainbow_update(
    net: RainbowNetwork,
    target_net: RainbowNetwork,
    optimizer: torch.optim.Optimizer,
    batch: Transitions,
    max_grad_norm: float,
    double: bool = False,
) -> tuple[Tensor, Tensor]:
    """One gradient step for any combination of parts; return the loss and each transition's
    new priority (the absolute TD error, or C51's cross-entropy)."""
    rows = torch.arange(len(batch.actions))
    with torch.no_grad():
        next_target = target_net(batch.next_obs)
        if net.distributional:
            next_probs = next_target.softmax(dim=-1)
            chooser = (
                net.q_values(batch.next_obs) if double else target_net.q_values(batch.next_obs)
            )
            chosen = next_probs[rows, chooser.argmax(dim=-1)]
            target = categorical_projection(chosen, batch.rewards, batch.discounts, net.atoms)
        elif double:
            target = double_dqn_targets(
                batch.rewards, batch.discounts, net(batch.next_obs), next_target
            )
        else:
            target = dqn_targets(batch.rewards, batch.discounts, next_target)
    out = net(batch.obs)
    if net.distributional:
        log_probs = out[rows, batch.actions].log_softmax(dim=-1)
        per_sample = -(target * log_probs).sum(dim=-1)
        loss = (batch.weights * per_sample).mean()
        priorities = per_sample.detach()
    else:
        loss = dqn_loss(out, batch.actions, target, batch.weights)
        priorities = (target - out.detach()[rows, batch.actions]).abs()
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(net.parameters(), max_grad_norm)
    optimizer.step()
    return loss.detach(), priorities
