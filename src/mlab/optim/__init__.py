"""Optimizers and learning-rate schedules written from tensor operations (course day w1d5)."""
