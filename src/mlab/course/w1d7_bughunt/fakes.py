"""Hand-written summaries for the w1d7 checks: runs with differences planted at known places
are built from these, so the checks never need the reference to make their expectations."""

from __future__ import annotations

from typing import Any

from mlab.inspect.stats import TensorStats


def fake_stats(**values: Any) -> TensorStats:
    """A summary with the given fields; the rest those of a healthy 10-element tensor."""
    base: dict[str, Any] = dict(
        numel=10,
        mean=0.0,
        std=1.0,
        norm=3.0,
        abs_max=2.0,
        frac_zero=0.0,
        frac_saturated=0.0,
        n_nan=0,
        n_inf=0,
    )
    return TensorStats(**{**base, **values})
