"""Analysing results (course day w3d3): do two runs really differ, and where?

- :mod:`mlab.analysis.paired`: paired t-test and Wilcoxon signed-rank test on per-example
  losses of two models (``scipy.stats.ttest_rel`` / ``wilcoxon``).
- :mod:`mlab.analysis.bootstrap`: bootstrap confidence intervals of a mean (difference),
  percentile / basic / BCa (``scipy.stats.bootstrap``).
- :mod:`mlab.analysis.unpaired`: Welch's t-test and Mann-Whitney U, for contrast.
- :mod:`mlab.analysis.ab`: Evan Miller's A/B tools: sample size, power, minimum detectable
  effect, two-proportion z-test, chi-squared, Bayesian P(B > A), the peeking simulation.
- :mod:`mlab.analysis.examples`: the worst examples and the largest disagreements.
- :mod:`mlab.analysis.render`: image grids (PNG) and text with each token's loss coloured.
- :mod:`mlab.analysis.report`: ``mlab analyze RUN_A RUN_B``, one self-contained HTML page.

The statistics are plain functions of NumPy arrays returning ``(statistic, p_value)`` (or
``(low, high)``), so later days (scaling laws, w3d4) use them as they are.
"""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use, so `mlab --help` (which imports mlab.analysis.cli) never loads scipy.
_HOME = {
    "bootstrap_ci": "bootstrap",
    "bootstrap_means": "bootstrap",
    "chi_squared_test": "ab",
    "largest_disagreements": "examples",
    "mann_whitney_u": "unpaired",
    "minimum_detectable_effect": "ab",
    "paired_t_test": "paired",
    "peeking_false_positive_rates": "ab",
    "statistical_power": "ab",
    "prob_b_beats_a": "ab",
    "prob_b_beats_a_exact": "ab",
    "sample_size": "ab",
    "two_proportion_z_test": "ab",
    "welch_t_test": "unpaired",
    "wilcoxon_signed_rank": "paired",
    "worst_examples": "examples",
}

__all__ = [
    "bootstrap_ci",
    "bootstrap_means",
    "chi_squared_test",
    "largest_disagreements",
    "mann_whitney_u",
    "minimum_detectable_effect",
    "paired_t_test",
    "peeking_false_positive_rates",
    "prob_b_beats_a",
    "prob_b_beats_a_exact",
    "sample_size",
    "statistical_power",
    "two_proportion_z_test",
    "welch_t_test",
    "wilcoxon_signed_rank",
    "worst_examples",
]


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"mlab.analysis.{_HOME[name]}"), name)
    raise AttributeError(f"module 'mlab.analysis' has no attribute {name!r}")
