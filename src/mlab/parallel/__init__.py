"""Data parallelism over torch.distributed, written by hand (course day w1d6)."""
