"""Side-by-side benchmarks: our implementations against the real thing, in one process,
reported as ratios. Run them with ``make bench``."""
