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

from mlab.analysis.ab import (
    chi_squared_test,
    minimum_detectable_effect,
    peeking_false_positive_rates,
    power,
    prob_b_beats_a,
    prob_b_beats_a_exact,
    sample_size,
    two_proportion_z_test,
)
from mlab.analysis.bootstrap import bootstrap_ci, bootstrap_means
from mlab.analysis.paired import paired_t_test, wilcoxon_signed_rank
from mlab.analysis.unpaired import mann_whitney_u, welch_t_test

__all__ = [
    "bootstrap_ci",
    "bootstrap_means",
    "chi_squared_test",
    "mann_whitney_u",
    "minimum_detectable_effect",
    "paired_t_test",
    "peeking_false_positive_rates",
    "power",
    "prob_b_beats_a",
    "prob_b_beats_a_exact",
    "sample_size",
    "two_proportion_z_test",
    "welch_t_test",
    "wilcoxon_signed_rank",
]
