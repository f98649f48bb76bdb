"""Training runs of DQN and Rainbow combinations, with w3d1's loop conventions: a config
(gin bindings of :class:`DQNConfig`, checked first), a run folder with ``config.gin``,
``operative_config.gin``, ``metrics.jsonl`` and ``checkpoints/``, a progress bar, and
resuming from the last checkpoint exactly where the run stopped (network, target network,
optimizer, replay buffer, n-step window, the environment mid-episode and every random
generator are in the checkpoint).

``mlab rl dqn cartpole_rainbow --bind 'DQNConfig.seed = 3'`` trains from a preset;
``--resume RUN`` continues a run. Every ``eval_every`` steps the greedy policy plays
``eval_episodes`` episodes from a fixed set of seeds (``eval_seed``, ``eval_seed + 1``, ...),
all at once with one batched forward pass per step, and ``eval_return`` is their mean; the
first step where it reaches ``target_return`` is logged as ``solved_step``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import difflib
import random
import sys
import time
import tokenize
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlab.errors import ConfigError, MlabError
from mlab.rl.dqn import epsilon_greedy, linear_schedule
from mlab.rl.probes import PROBES, ProbeEnv
from mlab.rl.rainbow import RainbowNetwork, n_step_return, rainbow_update
from mlab.rl.replay import PrioritizedReplayBuffer, ReplayBuffer

__all__ = [
    "PRESETS",
    "DQNConfig",
    "DQNResult",
    "NStepWindow",
    "evaluate",
    "main",
    "make_env",
    "parse_dqn_config",
    "run",
    "train_dqn",
]


@dataclass
class DQNConfig:
    """Everything a DQN / Rainbow run depends on. Bind fields in gin: ``DQNConfig.lr = 1e-3``."""

    env: str = "CartPole-v1"  # a gymnasium id with a Discrete action space, or probe1..probe5
    total_steps: int = 150_000  # environment steps
    seed: int = 0
    lr: float = 1e-3  # Adam's learning rate
    gamma: float = 0.99
    hidden: tuple[int, ...] = (128, 128)  # MLP widths (the last is the heads' width)
    buffer_size: int = 50_000
    batch_size: int = 64
    learning_starts: int = 1_000  # steps of experience before the first update
    train_every: int = 4  # environment steps per gradient step
    target_update_every: int = 500  # steps between copies into the target network
    max_grad_norm: float = 10.0
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_fraction: float = 0.2  # of total_steps, to decay epsilon over
    double: bool = False
    dueling: bool = False
    n_step: int = 1
    prioritized: bool = False
    alpha: float = 0.6  # PER's priority exponent
    beta_start: float = 0.4  # PER's importance-weight exponent, annealed to 1
    noisy: bool = False  # noisy heads replace epsilon-greedy (epsilon 0)
    distributional: bool = False  # C51 over n_atoms atoms in [v_min, v_max]
    n_atoms: int = 51
    v_min: float = 0.0
    v_max: float = 100.0
    eval_every: int = 5_000
    eval_episodes: int = 10
    eval_seed: int = 10_000
    target_return: float | None = 475.0  # solved_step: first evaluation at or above it
    stop_when_solved: bool = False
    log_every: int = 1_000
    checkpoint_every: int = 10_000
    keep_checkpoints: int = 2
    extra: dict[str, Any] = field(default_factory=dict, repr=False)  # free-form run notes

    def __post_init__(self) -> None:
        """Check every field's type and range; raise ConfigError naming the field and fix."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kinds: dict[type, tuple[type, ...]] = {
                int: (int,),
                float: (int, float),
                bool: (bool,),
                str: (str,),
            }
            kind = kinds.get(type(f.default))
            if f.name == "hidden":
                value = tuple(value) if isinstance(value, list) else value
                self.hidden = value
                ok = (
                    isinstance(value, tuple)
                    and value
                    and all(isinstance(h, int) and h > 0 for h in value)
                )
                if not ok:
                    raise ConfigError(f"hidden={value!r}: give positive widths, e.g. (128, 128)")
            elif f.name == "target_return":
                if value is not None and not isinstance(value, (int, float)):
                    raise ConfigError(f"target_return={value!r}: give a number or None")
            elif kind is not None and (
                not isinstance(value, kind) or (bool not in kind and isinstance(value, bool))
            ):
                raise ConfigError(
                    f"DQNConfig.{f.name}={value!r} is a {type(value).__name__}; "
                    f"it should be a {type(f.default).__name__} like {f.default!r}"
                )
        positive = ["total_steps", "buffer_size", "batch_size", "train_every", "n_step"]
        positive += ["target_update_every", "eval_every", "eval_episodes", "log_every"]
        positive += ["checkpoint_every", "keep_checkpoints", "n_atoms"]
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"DQNConfig.{name}={getattr(self, name)}: must be >= 1")
        for name in ("lr", "max_grad_norm"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"DQNConfig.{name}={getattr(self, name)}: must be > 0")
        for name in ("gamma", "epsilon_start", "epsilon_end", "epsilon_fraction", "beta_start"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"DQNConfig.{name}={getattr(self, name)}: must lie in [0, 1]")
        if self.batch_size > self.buffer_size:
            raise ConfigError(
                f"batch_size={self.batch_size} > buffer_size={self.buffer_size}: the buffer "
                "could never hold a batch; make buffer_size larger"
            )
        if self.learning_starts < self.batch_size:
            raise ConfigError(
                f"learning_starts={self.learning_starts} < batch_size={self.batch_size}: the "
                "first update would sample more transitions than the buffer holds; start "
                "learning later"
            )
        if self.distributional and (self.n_atoms < 2 or not self.v_min < self.v_max):
            raise ConfigError(
                f"n_atoms={self.n_atoms}, v_min={self.v_min}, v_max={self.v_max}: C51 needs "
                "at least 2 atoms and v_min < v_max"
            )


PRESETS: dict[str, str] = {
    "cartpole_dqn": 'DQNConfig.env = "CartPole-v1"\n',
    "cartpole_rainbow": (
        'DQNConfig.env = "CartPole-v1"\nDQNConfig.double = True\nDQNConfig.dueling = True\n'
        "DQNConfig.n_step = 3\n"
    ),
    "acrobot_dqn": (
        'DQNConfig.env = "Acrobot-v1"\nDQNConfig.total_steps = 50000\n'
        "DQNConfig.target_return = -100.0\nDQNConfig.v_min = -100.0\nDQNConfig.v_max = 0.0\n"
    ),
    "probe": 'DQNConfig.env = "probe5"\nDQNConfig.total_steps = 2000\n',
}


@dataclass
class DQNResult:
    run_dir: str
    step: int
    metrics: dict[str, float]  # the last logged value of each metric
    solved_step: int | None  # first evaluation step with eval_return >= target_return
    resumed_from: int | None


def make_env(name: str, render_mode: str | None = None) -> Any:
    """A probe (``"probe1"`` .. ``"probe5"``) or a gymnasium environment with a discrete
    action space; a clear ConfigError for an unknown id or a continuous action space."""
    import gymnasium as gym

    if name.startswith("probe") and name[5:].isdigit() and int(name[5:]) in PROBES:
        return ProbeEnv(int(name[5:]))
    if name not in gym.registry:
        close = difflib.get_close_matches(name, list(gym.registry), n=3, cutoff=0.6)
        hint = "did you mean " + " or ".join(map(repr, close)) + "?" if close else ""
        raise ConfigError(f"env={name!r} is not a gymnasium environment id. {hint}".strip())
    env = gym.make(name, render_mode=render_mode)
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise ConfigError(
            f"env={name!r} has a continuous action space {env.action_space}: DQN picks "
            "the action with the largest value, so it needs a finite (Discrete) set of "
            "actions. Use a policy-gradient method (w4d2) or discretise the actions"
        )
    return env


class NStepWindow:
    """Turns one-step experience into n-step transitions ``(obs, action, return, next_obs,
    discount)`` with :func:`mlab.rl.rainbow.n_step_return`: full windows as they fill, and
    the shorter windows left at an episode's end (terminated: discount 0; truncated by a time
    limit: ``gamma ** m``, bootstrapping from the last observation)."""

    def __init__(self, n: int, gamma: float) -> None:
        self.n, self.gamma = n, gamma
        self.window: deque[tuple[np.ndarray, int, float, bool]] = deque()

    def _emit(self, next_obs: np.ndarray) -> tuple[np.ndarray, int, float, np.ndarray, float]:
        obs, action, reward, terminated_now = self.window.popleft()
        if self.n == 1:  # the window is the transition itself (and this is 4x faster)
            return obs, action, reward, next_obs, 0.0 if terminated_now else self.gamma
        self.window.appendleft((obs, action, reward, terminated_now))
        rewards = torch.tensor([[w[2] for w in self.window]])
        terminated = torch.tensor([[w[3] for w in self.window]])
        returns, discounts = n_step_return(rewards, terminated, self.gamma)
        self.window.popleft()
        return obs, action, float(returns[0]), next_obs, float(discounts[0])

    def push(
        self,
        obs: np.ndarray,
        action: int,
        reward: float,
        terminated: bool,
        truncated: bool,
        next_obs: np.ndarray,
    ) -> list[tuple[np.ndarray, int, float, np.ndarray, float]]:
        self.window.append((obs, action, reward, terminated))
        out = []
        if len(self.window) == self.n:
            out.append(self._emit(next_obs))
        if terminated or truncated:
            while self.window:
                out.append(self._emit(next_obs))
        return out


def evaluate(net: RainbowNetwork, env_name: str, seeds: list[int]) -> list[float]:
    """The greedy policy's return in one episode per seed, all episodes stepped together."""
    envs = [make_env(env_name) for _ in seeds]
    obs = np.stack([e.reset(seed=s)[0] for e, s in zip(envs, seeds, strict=True)])
    returns = np.zeros(len(seeds))
    alive = np.ones(len(seeds), dtype=bool)
    was_training = net.training
    net.eval()
    with torch.no_grad():
        while alive.any():
            live = np.flatnonzero(alive)
            actions = net.q_values(torch.as_tensor(obs[live])).argmax(dim=-1).tolist()
            for i, a in zip(live, actions, strict=True):
                obs[i], r, term, trunc, _ = envs[i].step(a)
                returns[i] += r
                alive[i] = not (term or trunc)
    net.train(was_training)
    for e in envs:
        e.close()
    return returns.tolist()


def _build(cfg: DQNConfig, env: Any) -> tuple[RainbowNetwork, RainbowNetwork, Any, Any]:
    obs_dim = int(np.prod(env.observation_space.shape))
    atoms = torch.linspace(cfg.v_min, cfg.v_max, cfg.n_atoms) if cfg.distributional else None
    net = RainbowNetwork(
        obs_dim, int(env.action_space.n), cfg.hidden, cfg.dueling, cfg.noisy, atoms
    )
    target = copy.deepcopy(net)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    shape = (obs_dim,)
    buffer: ReplayBuffer = (
        PrioritizedReplayBuffer(cfg.buffer_size, shape, cfg.alpha, seed=cfg.seed)
        if cfg.prioritized
        else ReplayBuffer(cfg.buffer_size, shape, seed=cfg.seed)
    )
    return net, target, opt, buffer


def train_dqn(
    cfg: DQNConfig,
    run_dir: str | Path,
    resume: bool = False,
    until: int | None = None,
    progress: bool = True,
    say: Any = print,
) -> DQNResult:
    """Train ``cfg`` in ``run_dir`` (see the module docstring). ``resume``: continue from the
    newest intact checkpoint; ``until``: stop after that step as if killed there."""
    from tqdm import tqdm

    from mlab.train.checkpoint import (
        capture_rng_state,
        checkpoint_path,
        find_resume_checkpoint,
        prune_checkpoints,
        restore_rng_state,
        write_checkpoint,
    )
    from mlab.train.metrics import MetricsLogger

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    env = make_env(cfg.env)
    net, target, opt, buffer = _build(cfg, env)
    window = NStepWindow(cfg.n_step, cfg.gamma)
    act_gen = torch.Generator().manual_seed(cfg.seed + 1)
    obs, _ = env.reset(seed=cfg.seed)
    loop: dict[str, Any] = {"episodes": 0, "ep_return": 0.0, "recent": [], "losses": []}
    loop |= {"solved_step": None, "stopped": False}
    step = 0
    state = find_resume_checkpoint(run_dir, say) if resume else None
    if state is not None:
        net.load_state_dict(state["net"])
        target.load_state_dict(state["target"])
        opt.load_state_dict(state["optimizer"])
        buffer, window, env, obs = state["buffer"], state["window"], state["env"], state["obs"]
        act_gen.set_state(state["act_gen"])
        loop, step = state["loop"], state["step"]
        restore_rng_state(state["rng"])
        say(f"resuming {run_dir} from step {step}")
    logger = MetricsLogger(run_dir, step if state is not None else None, tensorboard=False)
    decay = int(cfg.epsilon_fraction * cfg.total_steps)
    seeds = [cfg.eval_seed + i for i in range(cfg.eval_episodes)]
    bar = tqdm(total=cfg.total_steps, initial=step, disable=None if progress else True)
    tick, tick_step = time.perf_counter(), step
    last: dict[str, float] = {}
    try:
        while step < cfg.total_steps and not loop["stopped"] and (until is None or step < until):
            epsilon = (
                0.0
                if cfg.noisy
                else linear_schedule(step, cfg.epsilon_start, cfg.epsilon_end, decay)
            )
            with torch.no_grad():
                q = net.q_values(torch.as_tensor(obs).unsqueeze(0))
            action = int(epsilon_greedy(q, epsilon, act_gen)[0])
            next_obs, reward, term, trunc, _ = env.step(action)
            for transition in window.push(obs, action, float(reward), term, trunc, next_obs):
                buffer.add(*transition)
            loop["ep_return"] += float(reward)
            obs = next_obs
            if term or trunc:
                loop["recent"] = [*loop["recent"][-19:], loop["ep_return"]]
                loop["episodes"] += 1
                loop["ep_return"] = 0.0
                obs, _ = env.reset()
            step += 1
            if step > cfg.learning_starts and step % cfg.train_every == 0:
                if cfg.noisy:
                    net.reset_noise()
                    target.reset_noise()
                if isinstance(buffer, PrioritizedReplayBuffer):
                    beta = linear_schedule(step, cfg.beta_start, 1.0, cfg.total_steps)
                    batch = buffer.sample(cfg.batch_size, beta)
                else:
                    batch = buffer.sample(cfg.batch_size)
                loss, priorities = rainbow_update(
                    net, target, opt, batch, cfg.max_grad_norm, cfg.double
                )
                if isinstance(buffer, PrioritizedReplayBuffer):
                    buffer.update_priorities(batch.indices, priorities)
                loop["losses"].append(float(loss))
            if step % cfg.target_update_every == 0:
                target.load_state_dict(net.state_dict())
            if step % cfg.log_every == 0 or step == cfg.total_steps:
                now = time.perf_counter()
                last = {
                    "epsilon": epsilon,
                    "episodes": loop["episodes"],
                    "steps_per_second": (step - tick_step) / max(now - tick, 1e-9),
                }
                if loop["losses"]:
                    last["loss"] = float(np.mean(loop["losses"]))
                if loop["recent"]:
                    last["episode_return"] = float(np.mean(loop["recent"]))
                logger.log(step, **last)
                loop["losses"] = []
                tick, tick_step = now, step
                bar.set_postfix(ret=f"{last.get('episode_return', float('nan')):.1f}")
            if step % cfg.eval_every == 0 or step == cfg.total_steps:
                eval_return = float(np.mean(evaluate(net, cfg.env, seeds)))
                last["eval_return"] = eval_return
                logger.log(step, eval_return=eval_return)
                solved = cfg.target_return is not None and eval_return >= cfg.target_return
                if solved and loop["solved_step"] is None:
                    loop["solved_step"] = step
                    logger.log(step, solved_step=step)
                    loop["stopped"] = cfg.stop_when_solved
            if step % cfg.checkpoint_every == 0 or step == cfg.total_steps or loop["stopped"]:
                write_checkpoint(
                    checkpoint_path(run_dir, step),
                    {
                        "step": step,
                        "net": net.state_dict(),
                        "target": target.state_dict(),
                        "optimizer": opt.state_dict(),
                        "buffer": buffer,
                        "window": window,
                        "env": env,
                        "obs": obs,
                        "act_gen": act_gen.get_state(),
                        "loop": loop,
                        "rng": capture_rng_state(),
                    },
                )
                prune_checkpoints(run_dir, cfg.keep_checkpoints)
            bar.update(1)
    finally:
        bar.close()
        logger.close()
        env.close()
    torch.save(net.state_dict(), run_dir / "q_network.pt")
    return DQNResult(
        str(run_dir), step, last, loop["solved_step"], state["step"] if state else None
    )


_registered: dict[str, Any] = {}


def parse_dqn_config(text: str) -> DQNConfig:
    """A :class:`DQNConfig` from gin text (``DQNConfig.field = value`` lines), every binding
    checked first: an unknown field or configurable is a ConfigError naming the nearest."""
    import gin

    from mlab.train.config import BINDING_LINE, check_binding

    for match in BINDING_LINE.finditer(text):
        check_binding(match.group(0), {"DQNConfig": DQNConfig})
    if not _registered:
        _registered["DQNConfig"] = gin.external_configurable(
            DQNConfig, name="DQNConfig", module="mlab.rl", denylist=["extra"]
        )
    gin.clear_config()
    try:
        gin.parse_config(text)
    except (ValueError, SyntaxError, tokenize.TokenError) as err:
        raise ConfigError(f"the config does not parse: {err}") from None
    cfg: DQNConfig = _registered["DQNConfig"]()
    return cfg


def _config_text(name_or_path: str) -> tuple[str, str]:
    path = Path(name_or_path)
    if path.is_file():
        return path.read_text(), path.name.removesuffix(".gin")
    if name_or_path in PRESETS:
        return PRESETS[name_or_path], name_or_path
    close = difflib.get_close_matches(name_or_path, list(PRESETS), n=3, cutoff=0.5)
    names = close or sorted(PRESETS)
    raise ConfigError(
        f"config {name_or_path!r} is neither a file nor a preset; presets: "
        + ", ".join(map(repr, names))
    )


def run(
    config: str | None,
    bindings: list[str],
    resume: str | None = None,
    runs_dir: str | Path = "runs",
    name: str | None = None,
    progress: bool = True,
    gif: bool = False,
) -> DQNResult:
    """``mlab rl dqn`` from Python: parse, train, then draw ``returns.png`` (and, with
    ``gif``, ``episode.gif``) in the run folder."""
    from mlab.rl.dqn_plots import plot_returns, record_episode

    if resume is not None:
        if bindings or config is not None:
            raise ConfigError(
                "--resume continues a run with its own config: drop CONFIG and --bind"
            )
        run_dir = Path(resume) if Path(resume).is_dir() else Path(runs_dir) / resume
        if not (run_dir / "config.gin").is_file():
            raise ConfigError(f"--resume {resume}: no run folder with a config.gin there")
        text = (run_dir / "config.gin").read_text()
    else:
        if config is None:
            raise ConfigError("give a config: mlab rl dqn CONFIG (a .gin file or a preset)")
        base, stem = _config_text(config)
        text = base + "".join(f"\n{b}  # --bind" for b in bindings) + "\n"
        run_dir = Path(runs_dir) / (name or f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}")
        if (run_dir / "checkpoints").is_dir():
            raise ConfigError(f"{run_dir} already holds a run: --resume {run_dir}, or --name")
    cfg = parse_dqn_config(text)
    make_env(cfg.env).close()  # an unknown id or a continuous action space: before any folder
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.gin").write_text(text)
    import gin

    (run_dir / "operative_config.gin").write_text(gin.operative_config_str())
    result = train_dqn(cfg, run_dir, resume=resume is not None, progress=progress, say=_say)
    plot_returns({run_dir.name: [run_dir]}, run_dir / "returns.png")
    if gif:
        from mlab.rl.dqn_plots import load_network

        record_episode(load_network(cfg, run_dir), cfg.env, run_dir / "episode.gif", cfg.eval_seed)
    return result


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """``mlab rl dqn``: returns the exit status (0, or 2 with a message for a bad config)."""
    from mlab.train.main import _HelpFormatter  # "Usage:", as every mlab command says

    parser = argparse.ArgumentParser(
        prog="mlab rl dqn", description=__doc__, formatter_class=_HelpFormatter
    )
    parser.add_argument("config", nargs="?", help=f"a .gin file or a preset: {', '.join(PRESETS)}")
    parser.add_argument("--bind", action="append", default=[], help="'DQNConfig.field = value'")
    parser.add_argument("--resume", metavar="RUN", help="continue this run folder")
    parser.add_argument("--runs-dir", default="runs", help="where run folders go (runs/)")
    parser.add_argument("--name", help="the run folder's name (default: config-time)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--gif", action="store_true", help="record a greedy episode as a GIF")
    args = parser.parse_args(argv)
    try:
        result = run(
            args.config,
            args.bind,
            args.resume,
            args.runs_dir,
            args.name,
            not args.no_progress,
            args.gif,
        )
    except MlabError as err:
        _say(f"error: {err}")
        return 2
    shown = ", ".join(f"{k}={v:.4g}" for k, v in result.metrics.items())
    _say(f"{result.run_dir}: step {result.step}; solved at {result.solved_step}; {shown}")
    return 0
