"""w1d2: softmax (multinomial logistic) regression on the full Fashion-MNIST, the reference
``train_softmax_regression`` (gradients by hand) against ``torch.nn.Linear`` +
``torch.optim.SGD`` + ``F.cross_entropy`` (autograd) with the same hyper-parameters, the same
zero initialisation and the same batches, in the same process.

The bar: Zalando's published logistic-regression baseline, about 84% test accuracy
(https://github.com/zalandoresearch/fashion-mnist#benchmark), reached within 60 s on 2 cores.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from benchmarks.common import fashion_mnist, run
from mlab.data import normalise_images
from mlab.tensor.regression import accuracy, train_softmax_regression

BASELINE = 0.84  # Zalando's LogisticRegression benchmark, rounded
# Hyper-parameters, tuned on 2 CPU cores: scalar standardisation with the training set's pixel
# mean and std, batches of 128, lr 0.1 decayed by 0.8 every epoch, 8 epochs.
MEAN, STD = 0.2860, 0.3530
EPOCHS, LR, BATCH_SIZE, LR_DECAY, SEED = 8, 0.1, 128, 0.8, 0
REPEATS = 3


def _torch_reference(
    x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
) -> torch.nn.Linear:
    model = torch.nn.Linear(x.shape[1], 10)
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=LR_DECAY)
    for _ in range(EPOCHS):
        for idx in torch.split(torch.randperm(x.shape[0], generator=generator), BATCH_SIZE):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
        sched.step()
    return model


def main() -> None:
    train, test = fashion_mnist()
    x_train = normalise_images(train.images, MEAN, STD).flatten(1)
    x_test = normalise_images(test.images, MEAN, STD).flatten(1)

    def ours() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return train_softmax_regression(
            x_train,
            train.labels,
            10,
            EPOCHS,
            LR,
            BATCH_SIZE,
            torch.Generator().manual_seed(SEED),
            lr_decay=LR_DECAY,
        )

    def theirs() -> torch.nn.Linear:
        return _torch_reference(x_train, train.labels, torch.Generator().manual_seed(SEED))

    # Best of REPEATS alternating runs: a shared machine's load only ever adds time.
    ours_s, torch_s = float("inf"), float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        w, b, losses = ours()
        ours_s = min(ours_s, time.perf_counter() - start)
        start = time.perf_counter()
        model = theirs()
        torch_s = min(torch_s, time.perf_counter() - start)
    ours_acc = accuracy(x_test @ w + b, test.labels)
    with torch.no_grad():
        torch_acc = accuracy(model(x_test), test.labels)

    table = Table(
        title=f"w1d2 softmax regression on Fashion-MNIST (60000 train, 10000 test; {EPOCHS} "
        f"epochs, batch {BATCH_SIZE}, lr {LR} x {LR_DECAY}/epoch, {torch.get_num_threads()} "
        "threads)",
        title_justify="left",
    )
    for col in ("model", "test accuracy", "train time", "time / torch"):
        table.add_column(col, justify="left" if col == "model" else "right")
    table.add_row(
        "ours (gradients by hand)",
        f"{ours_acc:.2%}",
        f"{ours_s:.2f} s (best of {REPEATS})",
        f"{ours_s / torch_s:.2f}x",
    )
    table.add_row(
        "torch (nn.Linear, optim.SGD, autograd)",
        f"{torch_acc:.2%}",
        f"{torch_s:.2f} s (best of {REPEATS})",
        "",
    )
    table.add_row("Zalando's logistic regression", f"≈ {BASELINE:.0%}", "", "")
    Console().print(table)
    print(f"final training loss (last epoch's mean): {losses[-len(losses) // EPOCHS :].mean():.4f}")
    verdict = "reaches" if ours_acc >= BASELINE and ours_s <= 60 else "MISSES"
    print(f"ours {verdict} the bar: >= {BASELINE:.0%} test accuracy within 60 s")


if __name__ == "__main__":
    run("bench_w1d2_logistic", main)
