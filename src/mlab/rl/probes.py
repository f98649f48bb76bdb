"""Probe environments: tiny gymnasium environments, each testing one piece of an agent in
seconds (Andy Jones, "Debugging RL, Without the Agonizing Pain", 2021).

Each has a known optimal action value, so an agent that fails on one points at the piece that
is broken:

====== =================================== ===================================================
probe  what it is                          what a failure points at
====== =================================== ===================================================
1      one observation, one action, reward the value loss or the optimizer: Q = 1
       +1, then the episode ends
2      observation +1 or -1, reward equals the network ignores its input: Q(obs) = obs
       it, one step
3      two steps, reward +1 at the end     discounting / bootstrapping: Q(s0) = gamma, Q(s1) = 1
4      two actions, reward +1 for action   the policy picks the wrong action, or the loss
       1, -1 for action 0                  updates the wrong action: Q(a) = (-1, +1)
5      observation +1 or -1, reward +1 if  observation and action together: Q(obs, a) =
       the action matches its sign         +1 when a matches, -1 when not
====== =================================== ===================================================

Observations are float32 vectors of size 1, actions ``Discrete``; every episode terminates (no
truncation), so the optimal values above are exact for any ``gamma``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["PROBES", "ProbeEnv", "make_probe", "probe_q_values"]


class ProbeEnv(gym.Env[np.ndarray, int]):
    """The probe environment number ``probe`` (1 to 5; see the module docstring)."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's name)

    def __init__(self, probe: int) -> None:
        if probe not in PROBES:
            raise ValueError(f"probe={probe}: there are probes {sorted(PROBES)}")
        self.probe = probe
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = spaces.Discrete(2 if probe in (4, 5) else 1)  # type: ignore[assignment]
        self._obs = 0.0
        self._t = 0

    def _observation(self) -> np.ndarray:
        return np.array([self._obs], dtype=np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._t = 0
        random_sign = float(self.np_random.choice([-1.0, 1.0]))
        self._obs = random_sign if self.probe in (2, 5) else 0.0
        return self._observation(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self.action_space.contains(action):
            raise ValueError(f"action={action!r} is not in {self.action_space}")
        if self.probe == 1:
            return self._observation(), 1.0, True, False, {}
        if self.probe == 2:
            return self._observation(), self._obs, True, False, {}
        if self.probe == 3:
            self._t += 1
            if self._t == 1:
                self._obs = 1.0
                return self._observation(), 0.0, False, False, {}
            return self._observation(), 1.0, True, False, {}
        if self.probe == 4:
            return self._observation(), 1.0 if action == 1 else -1.0, True, False, {}
        matches = (action == 1) == (self._obs > 0)
        return self._observation(), 1.0 if matches else -1.0, True, False, {}


PROBES: dict[int, str] = {
    1: "one step, reward +1: Q = 1",
    2: "reward = observation (+1 or -1): Q(obs) = obs",
    3: "two steps, reward +1 at the end: Q(s0) = gamma, Q(s1) = 1",
    4: "reward +1 for action 1, -1 for action 0",
    5: "reward +1 when the action matches the observation's sign, else -1",
}


def make_probe(probe: int) -> ProbeEnv:
    """A new probe environment (``make_probe(3)``)."""
    return ProbeEnv(probe)


def probe_q_values(probe: int, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """The probe's distinct observations ``(n_obs, 1)`` and their optimal action values
    ``(n_obs, n_actions)``: what a working agent's Q network converges to."""
    if probe == 1:
        return np.array([[0.0]], np.float32), np.array([[1.0]])
    if probe == 2:
        return np.array([[-1.0], [1.0]], np.float32), np.array([[-1.0], [1.0]])
    if probe == 3:
        return np.array([[0.0], [1.0]], np.float32), np.array([[gamma], [1.0]])
    if probe == 4:
        return np.array([[0.0]], np.float32), np.array([[-1.0, 1.0]])
    if probe == 5:
        return np.array([[-1.0], [1.0]], np.float32), np.array([[1.0, -1.0], [-1.0, 1.0]])
    raise ValueError(f"probe={probe}: there are probes {sorted(PROBES)}")
