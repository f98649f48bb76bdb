"""Reinforcement learning, week 4: value-based agents (w4d1), policy gradients and an LM policy
(w4d2), value functions, a two-player game, FUDGE and active learning (w4d3). Import from the
submodules; this package imports nothing heavy."""
