"""Run w1d6's checks on the reference, then the device functions on a real CUDA GPU.

    .venv/bin/python scripts/gpu_checks.py

The checks (``mlab check w1d6 --reference``) run anywhere. The CUDA part compares what
``mlab.gpu.devices`` computes on ``cuda`` with the same call on the CPU; without a CUDA GPU
it prints ``skipped: no CUDA GPU`` instead of passing silently. Exit code 0 only when all
that ran passed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mlab.gpu.devices import (
    evaluate_on,
    make_like,
    move_model_and_optimizer,
    pick_device,
    pin_batch,
    to_device,
)

MLAB = Path(sys.executable).with_name("mlab")


def _cuda_checks() -> None:
    cuda = torch.device("cuda")
    assert pick_device() == cuda, pick_device()
    assert pick_device("cuda:0") == torch.device("cuda:0")

    x = torch.randn(3, 5)
    on_cpu, on_gpu = make_like(x), make_like(x.to(cuda))
    for key, value in on_cpu.items():
        assert on_gpu[key].device.type == "cuda", key
        assert torch.equal(on_gpu[key].cpu(), value), key

    batch: dict[str, Any] = {
        "x": torch.randn(4, 3),
        "pair": (torch.arange(4), [torch.ones(2), "label"]),
    }
    pinned = pin_batch(batch)
    assert pinned["x"].is_pinned() and pinned["pair"][0].is_pinned()
    moved = to_device(pinned, cuda)
    torch.cuda.synchronize()
    assert moved["x"].is_cuda and moved["pair"][1][0].is_cuda and moved["pair"][1][1] == "label"
    assert torch.equal(moved["x"].cpu(), batch["x"])

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 4)).double()
    ref = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 4)).double()
    ref.load_state_dict(model.state_dict())
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    ref_opt = torch.optim.Adam(ref.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(1)
    xs = [torch.randn(6, 3, generator=gen, dtype=torch.float64) for _ in range(6)]
    for step, xb in enumerate(xs):
        if step == 3:
            move_model_and_optimizer(model, opt, cuda)
        device = next(model.parameters()).device
        for m, o, inp in ((model, opt, xb.to(device)), (ref, ref_opt, xb)):
            o.zero_grad()
            m(inp).square().sum().backward()
            o.step()
    for p, q in zip(model.parameters(), ref.parameters(), strict=True):
        assert p.is_cuda
        torch.testing.assert_close(p.cpu(), q, rtol=1e-9, atol=1e-12)

    loader = [
        (torch.randn(n, 3, generator=gen, dtype=torch.float64), torch.randint(0, 4, (n,)))
        for n in (8, 8, 3)
    ]
    on_gpu_result = evaluate_on(ref, loader, cuda)
    on_cpu_result = evaluate_on(ref, loader, "cpu")
    torch.testing.assert_close(on_gpu_result, on_cpu_result, rtol=1e-9, atol=1e-12)


def main() -> int:
    checks = subprocess.run([str(MLAB), "check", "w1d6", "--reference"], check=False)
    print(f"mlab check w1d6 --reference: exit code {checks.returncode}")
    if not torch.cuda.is_available():
        print("CUDA checks of mlab.gpu.devices: skipped: no CUDA GPU")
        return checks.returncode
    _cuda_checks()
    print(f"CUDA checks of mlab.gpu.devices: passed on {torch.cuda.get_device_name()}")
    return checks.returncode


if __name__ == "__main__":
    sys.exit(main())
