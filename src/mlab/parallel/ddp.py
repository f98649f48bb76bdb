"""Data parallelism over ``torch.distributed``, written by hand.

Every process (rank) holds a full copy of the model and trains on its own shard of each batch.
After ``backward`` the ranks average their gradients with an all-reduce, so every copy takes the
same optimizer step and the copies stay equal: the result is one process training on the whole
batch. The pieces, in the order a training run uses them:

- :func:`init_process_group_from_env` joins the group that ``torchrun`` describes in the
  environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``);
- :func:`broadcast_parameters` copies rank ``src``'s weights to every rank once at the start;
- :func:`shard_indices` gives each rank its share of a data set, exactly as
  ``torch.utils.data.distributed.DistributedSampler`` does;
- :func:`allreduce_gradients` averages the gradients, one all-reduce per bucket of gradients
  flattened into a single tensor (:func:`flatten_bucket`, :func:`unflatten_bucket`);
- :func:`train_step` is one step of all that;
- :class:`OverlappedAllReduce` does the same averaging while ``backward`` is still running: a
  hook on every parameter notices when its gradient is final, and a bucket's all-reduce starts
  (``async_op=True``) as soon as all its gradients are, so communication overlaps the rest of
  backward as in ``DistributedDataParallel``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence

import torch
import torch.distributed as dist
from jaxtyping import Float
from torch import Tensor, nn

from mlab.errors import ConfigError, MlabError

__all__ = [
    "ENV_VARS",
    "OverlappedAllReduce",
    "allreduce_gradients",
    "broadcast_parameters",
    "bucket_parameters",
    "flatten_bucket",
    "init_process_group_from_env",
    "shard_indices",
    "train_step",
    "unflatten_bucket",
]

ENV_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
LAUNCH_HINT = "launch with torchrun --nproc-per-node=N (it sets all four), or set them yourself"


def init_process_group_from_env(expected_world_size: int | None = None) -> tuple[int, int]:
    """Join the process group described by ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
    ``MASTER_PORT`` and return ``(rank, world_size)``.

    The backend is ``nccl`` when CUDA is available, else ``gloo``. A missing variable, a value
    that is not an integer, a rank outside ``[0, WORLD_SIZE)`` or a ``WORLD_SIZE`` other than
    ``expected_world_size`` (when given) raises :class:`mlab.errors.ConfigError` naming the
    variable and the fix, before any connection is attempted.
    """
    missing = [name for name in ENV_VARS if not os.environ.get(name)]
    if missing:
        raise ConfigError(
            f"environment variable(s) {', '.join(missing)} not set, so there is no process "
            f"group to join: {LAUNCH_HINT}"
        )
    values = {}
    for name in ("RANK", "WORLD_SIZE", "MASTER_PORT"):
        try:
            values[name] = int(os.environ[name])
        except ValueError:
            raise ConfigError(
                f"{name}={os.environ[name]!r} is not an integer: {LAUNCH_HINT}"
            ) from None
    rank, world_size = values["RANK"], values["WORLD_SIZE"]
    if expected_world_size is not None and world_size != expected_world_size:
        raise ConfigError(
            f"WORLD_SIZE={world_size} but this program needs {expected_world_size} processes: "
            f"launch with torchrun --nproc-per-node={expected_world_size}"
        )
    if not 0 <= rank < world_size:
        raise ConfigError(f"RANK={rank} is outside [0, WORLD_SIZE={world_size}): {LAUNCH_HINT}")
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, rank=rank, world_size=world_size)
    return rank, world_size


def shard_indices(
    n: int,
    rank: int,
    world_size: int,
    *,
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = False,
) -> list[int]:
    """The indices of a data set of ``n`` items that rank ``rank`` of ``world_size`` reads in
    epoch ``epoch``: exactly ``list(DistributedSampler(range(n), world_size, rank, shuffle,
    seed, drop_last))`` after ``set_epoch(epoch)``.

    1. The order: ``torch.randperm(n, generator=g)`` with ``g`` seeded ``seed + epoch`` when
       ``shuffle``, else ``0, 1, ..., n-1``.
    2. Every rank gets the same number of items, ``n // world_size`` when ``drop_last`` (the
       tail is dropped) else ``ceil(n / world_size)`` (the order is padded to
       ``world_size`` times that by repeating it from its start, as often as needed).
    3. Rank ``r`` takes every ``world_size``-th item of the (cut or padded) order, from ``r``.

    ``world_size < 1`` or ``rank`` outside ``[0, world_size)`` raises ``ValueError``.

    >>> shard_indices(5, 1, 2, shuffle=False)
    [1, 3, 0]
    """
    if not 0 <= rank < world_size:
        raise ValueError(
            f"rank={rank}, world_size={world_size}: need 0 <= rank < world_size (so world_size "
            ">= 1)"
        )
    if shuffle:
        g = torch.Generator().manual_seed(seed + epoch)
        order = torch.randperm(n, generator=g).tolist()
    else:
        order = list(range(n))
    per_rank = n // world_size if drop_last else math.ceil(n / world_size)
    padded = [order[i % n] for i in range(per_rank * world_size)]
    return padded[rank::world_size]


def flatten_bucket(tensors: Sequence[Tensor]) -> Float[Tensor, " total"]:
    """One new 1-D tensor holding every tensor of ``tensors`` flattened, one after another
    (as ``torch._utils._flatten_dense_tensors``): a single collective on it does the work of
    one per tensor. The tensors share one dtype and device; the result has them too.

    >>> flatten_bucket([torch.ones(2, 2), torch.zeros(3)])
    tensor([1., 1., 1., 1., 0., 0., 0.])
    """
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten_bucket(flat: Float[Tensor, " total"], like: Sequence[Tensor]) -> list[Tensor]:
    """Split ``flat`` (as made by :func:`flatten_bucket` from tensors shaped like ``like``) back
    into tensors of ``like``'s shapes, in order (as ``torch._utils._unflatten_dense_tensors``):
    views of ``flat``, no copies. ``flat.numel()`` other than the total numel of ``like`` raises
    ``ValueError``.
    """
    sizes = [t.numel() for t in like]
    if flat.numel() != sum(sizes):
        raise ValueError(
            f"flat has {flat.numel()} elements but the tensors of like hold {sum(sizes)}"
        )
    pieces = torch.split(flat, sizes)
    return [piece.view_as(t) for piece, t in zip(pieces, like, strict=True)]


def bucket_parameters(module: nn.Module, bucket_cap_mb: float = 25.0) -> list[list[nn.Parameter]]:
    """Group the parameters of ``module`` that have a gradient (``p.grad is not None``) into
    buckets, in ``module.parameters()`` order: a parameter joins the current bucket unless its
    gradient's dtype differs from the bucket's or the bucket's bytes plus its own would exceed
    ``bucket_cap_mb * 2**20``; then it starts a new bucket (a parameter bigger than the cap is a
    bucket of its own)."""
    cap = bucket_cap_mb * 2**20
    buckets: list[list[nn.Parameter]] = []
    size = 0
    for p in module.parameters():
        if p.grad is None:
            continue
        nbytes = p.grad.numel() * p.grad.element_size()
        if buckets and buckets[-1][0].dtype == p.dtype and size + nbytes <= cap:
            buckets[-1].append(p)
            size += nbytes
        else:
            buckets.append([p])
            size = nbytes
    return buckets


def allreduce_gradients(module: nn.Module, bucket_cap_mb: float = 25.0) -> None:
    """Replace every gradient of ``module`` by its mean over the ranks of the default process
    group, in place.

    For each bucket of :func:`bucket_parameters` (in its order): flatten the bucket's gradients
    with :func:`flatten_bucket`, sum them over the ranks with one ``dist.all_reduce`` on the
    flat tensor (the default op, ``SUM``: gloo has no ``AVG``), divide by the world size, and
    copy the pieces (:func:`unflatten_bucket`) back into the ``.grad`` tensors. Parameters
    without a gradient are left alone.
    """
    world_size = dist.get_world_size()
    for bucket in bucket_parameters(module, bucket_cap_mb):
        grads = [p.grad for p in bucket if p.grad is not None]
        flat = flatten_bucket(grads)
        dist.all_reduce(flat)
        flat.div_(world_size)
        for grad, averaged in zip(grads, unflatten_bucket(flat, grads), strict=True):
            grad.copy_(averaged)


def broadcast_parameters(module: nn.Module, src: int = 0) -> None:
    """Overwrite every parameter and then every buffer of ``module`` (in ``parameters()`` then
    ``buffers()`` order) with rank ``src``'s, in place, with one ``dist.broadcast`` each, so all
    ranks start from the same weights. The tensors stay the same objects (an optimizer holding
    them keeps working); broadcast ``p.detach()``, which shares ``p``'s storage, since a
    collective must not write into a leaf that requires grad under autograd's eye."""
    for t in [*module.parameters(), *module.buffers()]:
        dist.broadcast(t.detach(), src)


def train_step(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    bucket_cap_mb: float = 25.0,
) -> float:
    """One data-parallel step on this rank's shard ``(x, y)``: zero the gradients, forward,
    backward, average the gradients over the ranks, step. Returns this rank's loss."""
    optimizer.zero_grad()
    loss = loss_fn(module(x), y)
    loss.backward()  # type: ignore[no-untyped-call]
    allreduce_gradients(module, bucket_cap_mb)
    optimizer.step()
    return float(loss.detach())


class OverlappedAllReduce:
    """Average the gradients of ``module`` over the ranks while ``backward`` runs.

    Backward produces gradients roughly in reverse order of ``module.parameters()`` (the last
    layer's first), so the trainable parameters are bucketed in that reverse order. A
    post-accumulate-grad hook on each of them (:meth:`_on_ready`) marks its gradient ready;
    when a bucket's gradients are all ready its flattened gradients start an asynchronous
    ``dist.all_reduce`` and backward goes on computing earlier layers meanwhile. :meth:`finish`
    waits for every reduction, divides by the world size and copies the averages into the
    ``.grad`` tensors.

    Use: ``loss.backward(); overlap.finish(); optimizer.step()`` on every step. Every
    trainable parameter must get a gradient in every backward (as with DDP's default
    ``find_unused_parameters=False``): :meth:`finish` names those that did not. Gradient
    accumulation over several backwards needs :func:`allreduce_gradients` instead.
    """

    #: the trainable parameters in buckets, in the order backward fills them
    buckets: list[list[nn.Parameter]]
    #: the latest backward's ``("ready", parameter name)`` and ``("launch", bucket index)``
    #: events, in the order they happened: the proof that reduction starts during backward
    events: list[tuple[str, str | int]]

    def __init__(self, module: nn.Module, bucket_cap_mb: float = 25.0) -> None:
        """Read the world size (``dist.get_world_size()``) and bucket the trainable parameters
        (``requires_grad``) of ``module`` into ``self.buckets``: walk them in *reverse*
        ``module.parameters()`` order; a parameter joins the last bucket unless its dtype
        differs from that bucket's or the bucket's bytes plus its own (``numel() *
        element_size()``) would exceed ``bucket_cap_mb * 2**20``; then it starts a new bucket
        (a parameter bigger than the cap is a bucket of its own). Start ``self.events`` empty
        and register :meth:`_on_ready` as a post-accumulate-grad hook on every trainable
        parameter (``p.register_post_accumulate_grad_hook``), keeping the handles for
        :meth:`remove`."""
        self.world_size = dist.get_world_size()
        trainable = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
        cap = bucket_cap_mb * 2**20
        self.buckets = []
        sizes: list[int] = []  # bytes of each bucket
        for _, p in reversed(trainable):
            nbytes = p.numel() * p.element_size()
            if self.buckets and self.buckets[-1][0].dtype == p.dtype and sizes[-1] + nbytes <= cap:
                self.buckets[-1].append(p)
                sizes[-1] += nbytes
            else:
                self.buckets.append([p])
                sizes.append(nbytes)
        self._names: dict[Tensor, str] = {p: name for name, p in trainable}
        self._bucket_of: dict[Tensor, int] = {
            p: i for i, bucket in enumerate(self.buckets) for p in bucket
        }
        self._ready: list[set[Tensor]] = [set() for _ in self.buckets]
        self._in_flight: dict[int, tuple[dist.Work, Tensor]] = {}
        self.events = []
        self._hooks = [
            p.register_post_accumulate_grad_hook(self._on_ready)  # type: ignore[no-untyped-call]
            for _, p in trainable
        ]

    def _on_ready(self, p: Tensor) -> None:
        """The hook: backward has finished accumulating ``p.grad``.

        Append ``("ready", name)`` (``p``'s name in ``module.named_parameters()``) to
        ``self.events``, which starts anew at the first gradient of each backward. When ``p``
        completes its bucket (all of the bucket's gradients ready in this backward), flatten
        the bucket's gradients in bucket order (:func:`flatten_bucket`), start
        ``dist.all_reduce(flat, async_op=True)``, keep the ``Work`` it returns and ``flat``
        for :meth:`finish`, and append ``("launch", bucket index)``. A gradient whose bucket's
        all-reduce has already started (a second backward before :meth:`finish`) raises
        :class:`mlab.errors.MlabError` naming the parameter."""
        i = self._bucket_of[p]
        if i in self._in_flight:
            raise MlabError(
                f"the gradient of {self._names[p]} (bucket {i}) arrived again after its "
                "bucket's all-reduce started: call finish() after every backward, or use "
                "allreduce_gradients for gradient accumulation"
            )
        if not any(self._ready):
            self.events = []
        self.events.append(("ready", self._names[p]))
        self._ready[i].add(p)
        if len(self._ready[i]) == len(self.buckets[i]):
            flat = flatten_bucket([q.grad for q in self.buckets[i] if q.grad is not None])
            self._in_flight[i] = (dist.all_reduce(flat, async_op=True), flat)
            self.events.append(("launch", i))

    def finish(self) -> None:
        """Wait for each started all-reduce, in the order they started (``work.wait()``: only
        then does ``flat`` hold the sum over the ranks), divide it by the world size and copy
        its pieces (:func:`unflatten_bucket`) into the bucket's ``.grad`` tensors, in place.

        Then, if some trainable parameters got no gradient in this backward (so their buckets
        never started), raise :class:`mlab.errors.MlabError` naming them in
        ``module.named_parameters()`` order. Either way, leave the state ready for the next
        backward."""
        try:
            for i, (work, flat) in self._in_flight.items():
                work.wait()
                flat.div_(self.world_size)
                grads = [p.grad for p in self.buckets[i] if p.grad is not None]
                for grad, averaged in zip(grads, unflatten_bucket(flat, grads), strict=True):
                    grad.copy_(averaged)
            missing = [
                name for p, name in self._names.items() if p not in self._ready[self._bucket_of[p]]
            ]
            if missing:
                raise MlabError(
                    f"no gradient this step for {', '.join(missing)}: every trainable parameter "
                    "must take part in the loss (freeze the others with requires_grad_(False) "
                    "before building OverlappedAllReduce), or average with allreduce_gradients"
                )
        finally:
            self._in_flight.clear()
            for ready in self._ready:
                ready.clear()

    def remove(self) -> None:
        """Take the hooks off the parameters (the module trains alone again)."""
        for handle in self._hooks:
            handle.remove()
