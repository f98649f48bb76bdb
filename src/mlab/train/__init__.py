"""Training: the epoch loop, evaluation, gradient clipping and accuracy (course day w1d5).

The gin-configured, resumable training loop of w3d1 lives beside them, imported by name
(they need the ``train`` extra): ``mlab.train.loop`` (the loop), ``checkpoint`` (atomic,
checksummed checkpoints with every random state), ``metrics`` (JSONL logs, per-layer gradient
statistics), ``data`` (memory-mapped token files, image loaders), ``builders`` (models and the
schedule a config names), ``config`` (gin bindings checked first), ``main`` (``mlab train``)
and ``runs`` (``mlab runs``).
"""

from mlab.train.loops import accuracy, clip_grad_norm_, evaluate, train_epoch

__all__ = ["accuracy", "clip_grad_norm_", "evaluate", "train_epoch"]
