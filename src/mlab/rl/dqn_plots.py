"""Pictures of DQN runs: evaluation-return curves (one line per run, a colour per group)
and a greedy episode recorded as an animated GIF from the
environment's ``rgb_array`` frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mlab.rl.dqn_train import DQNConfig, _build, make_env
from mlab.rl.rainbow import RainbowNetwork
from mlab.train.metrics import read_metrics

__all__ = ["eval_curve", "load_network", "plot_returns", "record_episode"]


def eval_curve(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, eval_return)`` of a run's ``metrics.jsonl``."""
    records = [r for r in read_metrics(Path(run_dir) / "metrics.jsonl") if "eval_return" in r]
    return np.array([r["step"] for r in records]), np.array([r["eval_return"] for r in records])


def plot_returns(
    groups: dict[str, list[Path]], out: str | Path, target: float | None = None, title: str = ""
) -> Path:
    """One colour per group, one line per run in it (runs that stop when solved end at
    different steps, so each is drawn whole rather than averaged); ``target`` dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for i, (label, runs) in enumerate(groups.items()):
        color = f"C{i}"
        for j, run in enumerate(runs):
            steps, values = eval_curve(run)
            ax.plot(
                steps,
                values,
                color=color,
                alpha=0.8 if len(runs) == 1 else 0.55,
                linewidth=1.4,
                marker="o",
                markersize=2.5,
                label=f"{label} ({len(runs)} run{'s' if len(runs) > 1 else ''})"
                if j == 0
                else None,
            )
    if target is not None:
        ax.axhline(target, color="gray", linestyle="--", linewidth=1, label=f"target {target:g}")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return (greedy, fixed seeds)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def load_network(cfg: DQNConfig, run_dir: str | Path) -> RainbowNetwork:
    """The network a run saved in ``q_network.pt``."""
    net, _, _, _ = _build(cfg, make_env(cfg.env))
    net.load_state_dict(torch.load(Path(run_dir) / "q_network.pt", weights_only=True))
    return net


def record_episode(
    net: RainbowNetwork, env_name: str, out: str | Path, seed: int, every: int = 2
) -> tuple[Path, float]:
    """Play one greedy episode from ``seed`` and save every ``every``-th frame as an animated
    GIF (50 ms a frame); return the path and the episode's return."""
    from PIL import Image

    env = make_env(env_name, render_mode="rgb_array")
    obs, _ = env.reset(seed=seed)
    frames = [env.render()]
    total, done = 0.0, False
    net.eval()
    with torch.no_grad():
        while not done:
            action = int(net.q_values(torch.as_tensor(obs).unsqueeze(0)).argmax())
            obs, reward, term, trunc, _ = env.step(action)
            total += float(reward)
            done = term or trunc
            frames.append(env.render())
    env.close()
    images = [Image.fromarray(f).resize((300, 200)) for f in frames[::every]]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(out, save_all=True, append_images=images[1:], duration=50 * every, loop=0)
    return out, total
