"""Training: the epoch loop, evaluation, gradient clipping and accuracy (course day w1d5)."""

from mlab.train.loops import accuracy, clip_grad_norm_, evaluate, train_epoch

__all__ = ["accuracy", "clip_grad_norm_", "evaluate", "train_epoch"]
