"""Network inspection for day w1d7 "Bug hunt": record every layer's outputs and gradients
while a model trains, find where two runs first differ, spot unhealthy layers, draw it all.

    from mlab.inspect import compare, run_script, write_report
    a, b = run_script("good.py"), run_script("broken.py")
    print(compare(a, b).first.detail)

Two models, one batch: ``compare(record_batch(m1, x, ...), record_batch(m2, x, ...))``.
"""

from mlab.inspect.compare import Comparison, Divergence, LayerDiff, compare
from mlab.inspect.health import Finding, health
from mlab.inspect.models import record_batch
from mlab.inspect.record import Recorder, Run, StepRecord
from mlab.inspect.render import (
    plot_attention,
    plot_histograms,
    plot_layer_norms,
    plot_losses,
    write_report,
)
from mlab.inspect.script import PROTOCOL, load_script, run_script
from mlab.inspect.stats import (
    SATURATION,
    TensorStats,
    histogram,
    relative_difference,
    saturation_for,
    stats_difference,
    tensor_stats,
)

__all__ = [
    "PROTOCOL",
    "SATURATION",
    "Comparison",
    "Divergence",
    "Finding",
    "LayerDiff",
    "Recorder",
    "Run",
    "StepRecord",
    "TensorStats",
    "compare",
    "health",
    "histogram",
    "load_script",
    "plot_attention",
    "plot_histograms",
    "plot_layer_norms",
    "plot_losses",
    "record_batch",
    "relative_difference",
    "run_script",
    "saturation_for",
    "stats_difference",
    "tensor_stats",
    "write_report",
]
