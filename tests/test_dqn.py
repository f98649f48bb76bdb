"""The value-based RL library (mlab.rl: probes, replay, dqn, rainbow, dqn_train, dqn_plots):
agents learn the probe environments' known values, prioritised replay samples in proportion
to priority, a killed run resumes to the same numbers, and bad input gets clear errors.
Tiny budgets only (the probes, a few hundred CartPole steps)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("gymnasium", reason="the rl extra: pip install -e '.[rl]'")
pytest.importorskip("gin", reason="the train extra: pip install -e '.[train]'")

from mlab.errors import ConfigError
from mlab.rl.dqn import dqn_update
from mlab.rl.dqn_train import (
    DQNConfig,
    NStepWindow,
    evaluate,
    main,
    make_env,
    parse_dqn_config,
    train_dqn,
)
from mlab.rl.probes import PROBES, make_probe, probe_q_values
from mlab.rl.rainbow import NoisyLinear, RainbowNetwork, rainbow_update
from mlab.rl.replay import PrioritizedReplayBuffer, ReplayBuffer, SumTree, Transitions
from mlab.testing import chi_square_p_value
from mlab.train.metrics import read_metrics


@pytest.fixture(autouse=True)
def one_thread() -> object:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def probe_config(probe: int, **kw: object) -> DQNConfig:
    base = dict(
        env=f"probe{probe}",
        total_steps=500,
        learning_starts=100,
        batch_size=32,
        train_every=1,
        hidden=(32, 32),
        target_update_every=25,
        epsilon_fraction=0.5,
        lr=5e-3,
        eval_every=500,
        eval_episodes=4,
        target_return=None,
        checkpoint_every=500,
    )
    return DQNConfig(**(base | kw))  # type: ignore[arg-type]


def q_table(net: RainbowNetwork, probe: int, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    obs, q_star = probe_q_values(probe, gamma)
    net.eval()
    with torch.no_grad():
        return net.q_values(torch.as_tensor(obs)).numpy(), q_star


@pytest.mark.parametrize(
    ("probe", "parts"),
    [
        (3, {}),
        (5, {"double": True, "dueling": True}),
        (3, {"n_step": 2, "prioritized": True}),
        (3, {"noisy": True}),
        (3, {"distributional": True, "v_min": -1.0, "v_max": 2.0, "n_atoms": 31}),
    ],
)
def test_agents_learn_the_probe_values(tmp_path: Path, probe: int, parts: dict) -> None:
    cfg = probe_config(probe, **parts)
    train_dqn(cfg, tmp_path, progress=False)
    from mlab.rl.dqn_plots import load_network

    got, q_star = q_table(load_network(cfg, tmp_path), probe, cfg.gamma)
    np.testing.assert_allclose(got, q_star, atol=0.15)


def test_probes_pay_what_they_promise() -> None:
    for probe in PROBES:
        env = make_probe(probe)
        obs, q_star = probe_q_values(probe, 0.5)
        for a in range(env.action_space.n):
            seen = {}
            for seed in range(20):
                o, _ = env.reset(seed=seed)
                ret, disc, done = 0.0, 1.0, False
                while not done:
                    _, r, term, trunc, _ = env.step(a)
                    ret += disc * r
                    disc *= 0.5
                    done = term or trunc
                seen[float(o[0])] = ret
            for row, ob in enumerate(obs[:, 0]):
                if float(ob) in seen:
                    assert seen[float(ob)] == pytest.approx(q_star[row, a]), (probe, ob, a)
    with pytest.raises(ValueError, match="probe=9"):
        make_probe(9)
    with pytest.raises(ValueError, match="action=3"):
        make_probe(4).step(3)


def test_rainbow_update_with_every_part_off_is_dqn_update() -> None:
    torch.manual_seed(0)
    net = RainbowNetwork(3, 2, (16, 16))
    target = copy.deepcopy(net)
    other, other_target = copy.deepcopy(net), copy.deepcopy(target)
    g = torch.Generator().manual_seed(1)
    batch = Transitions(
        torch.randn(20, 3, generator=g),
        torch.randint(2, (20,), generator=g),
        torch.randn(20, generator=g),
        torch.randn(20, 3, generator=g),
        torch.full((20,), 0.9),
        torch.arange(20),
        torch.ones(20),
    )
    _, priorities = rainbow_update(net, target, torch.optim.SGD(net.parameters(), 0.1), batch, 1.0)
    td = dqn_update(other, other_target, torch.optim.SGD(other.parameters(), 0.1), batch, 1.0)
    torch.testing.assert_close(priorities, td.abs())
    for a, b in zip(net.parameters(), other.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_network_shapes_and_noise() -> None:
    atoms = torch.linspace(0, 10, 11)
    net = RainbowNetwork(4, 3, (8, 8), dueling=True, noisy=True, atoms=atoms)
    x = torch.randn(5, 4)
    assert net(x).shape == (5, 3, 11)
    assert net.q_values(x).shape == (5, 3)
    layer = NoisyLinear(4, 2)
    layer.reset_noise()
    noisy = layer(x)
    layer.eval()
    torch.testing.assert_close(layer(x), x @ layer.weight_mu.T + layer.bias_mu)
    assert not torch.allclose(noisy, layer(x))


def test_prioritised_sampling_follows_priorities() -> None:
    buffer = PrioritizedReplayBuffer(8, (1,), alpha=1.0, seed=0)
    for k in range(6):
        buffer.add(np.array([k]), 0, 0.0, np.array([k]), 0.9)
    priorities = torch.tensor([1.0, 2.0, 0.0, 4.0, 1.0, 8.0])
    buffer.update_priorities(torch.arange(6), priorities - buffer.eps)
    counts = torch.zeros(6)
    for _ in range(200):
        batch = buffer.sample(6, beta=1.0)
        counts += torch.bincount(batch.indices, minlength=6)[:6]
        assert torch.equal(batch.obs[:, 0].long(), batch.indices)
        probs = priorities[batch.indices] / priorities.sum()
        w = (6 * probs) ** -1.0
        torch.testing.assert_close(batch.weights, (w / w.max()).float())
    assert counts[2] == 0
    assert chi_square_p_value(counts, priorities / priorities.sum()) > 1e-4
    tree = SumTree(3)
    with pytest.raises(ValueError, match="outside"):
        tree.update(np.array([3]), np.array([1.0]))


def test_n_step_window_handles_episode_ends() -> None:
    w = NStepWindow(3, 0.5)
    o = [np.array([float(i)]) for i in range(6)]
    assert w.push(o[0], 0, 1.0, False, False, o[1]) == []
    assert w.push(o[1], 1, 2.0, False, False, o[2]) == []
    (first,) = w.push(o[2], 0, 4.0, False, False, o[3])
    assert first[2] == pytest.approx(1 + 0.5 * 2 + 0.25 * 4) and first[4] == pytest.approx(0.125)
    out = w.push(o[3], 1, 8.0, True, False, o[4])  # terminated: flush with discount 0
    assert [t[4] for t in out] == [0.0, 0.0, 0.0]
    assert [t[2] for t in out] == pytest.approx([2 + 2 + 2, 4 + 4, 8])
    w.push(o[0], 0, 1.0, False, False, o[1])
    out = w.push(o[1], 0, 1.0, False, True, o[2])  # truncated: bootstrap with gamma ** m
    assert [t[4] for t in out] == pytest.approx([0.25, 0.5])
    assert all(t[3] is o[2] for t in out)


def test_evaluation_is_deterministic_for_fixed_seeds() -> None:
    torch.manual_seed(0)
    net = RainbowNetwork(4, 2, (16, 16))
    first = evaluate(net, "CartPole-v1", [1, 2, 3])
    assert first == evaluate(net, "CartPole-v1", [1, 2, 3])
    assert net.training


def cartpole(**kw: object) -> DQNConfig:
    base = dict(
        total_steps=400,
        learning_starts=100,
        batch_size=16,
        hidden=(16, 16),
        eval_every=200,
        eval_episodes=2,
        checkpoint_every=150,
        log_every=50,
        target_update_every=100,
        buffer_size=1000,
    )
    return DQNConfig(**(base | kw))  # type: ignore[arg-type]


@pytest.mark.parametrize("parts", [{}, {"prioritized": True, "noisy": True, "n_step": 3}])
def test_a_killed_run_resumes_to_the_same_numbers(tmp_path: Path, parts: dict) -> None:
    cfg = cartpole(**parts)
    whole = train_dqn(cfg, tmp_path / "whole", progress=False)
    train_dqn(cfg, tmp_path / "killed", until=170, progress=False)  # checkpoint at 150
    resumed = train_dqn(cfg, tmp_path / "killed", resume=True, progress=False, say=lambda _: None)
    assert resumed.resumed_from == 150
    strip = [
        {k: v for k, v in r.items() if k != "steps_per_second"}
        for r in read_metrics(tmp_path / "whole" / "metrics.jsonl")
    ]
    again = [
        {k: v for k, v in r.items() if k != "steps_per_second"}
        for r in read_metrics(tmp_path / "killed" / "metrics.jsonl")
    ]
    assert strip == again
    a = torch.load(tmp_path / "whole" / "q_network.pt")
    b = torch.load(tmp_path / "killed" / "q_network.pt")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert whole.step == resumed.step == 400


def test_cli_writes_a_run_folder_with_curve_and_gif(tmp_path: Path) -> None:
    binds = [
        "DQNConfig.total_steps = 300",
        "DQNConfig.learning_starts = 100",
        "DQNConfig.eval_every = 150",
        "DQNConfig.eval_episodes = 1",
        "DQNConfig.hidden = (8, 8)",
        "DQNConfig.batch_size = 16",
    ]
    argv = [
        "cartpole_rainbow",
        "--runs-dir",
        str(tmp_path),
        "--name",
        "r",
        "--no-progress",
        "--gif",
    ]
    for b in binds:
        argv += ["--bind", b]
    assert main(argv) == 0
    run = tmp_path / "r"
    for name in (
        "config.gin",
        "operative_config.gin",
        "metrics.jsonl",
        "returns.png",
        "episode.gif",
        "q_network.pt",
    ):
        assert (run / name).is_file(), name
    assert (run / "returns.png").read_bytes()[:4] == b"\x89PNG"
    assert (run / "episode.gif").read_bytes()[:6] in (b"GIF89a", b"GIF87a")
    assert "DQNConfig.double = True" in (run / "operative_config.gin").read_text()
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "eval_return" in r] == [150, 300]
    assert main(["cartpole_rainbow", "--runs-dir", str(tmp_path), "--name", "r"]) == 2


def test_a_continuous_action_space_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"continuous action space.*\(Discrete\)"):
        make_env("Pendulum-v1")
    with pytest.raises(ConfigError, match="CartPole-v1"):
        make_env("CartPole-v9")


def test_sampling_an_underfilled_buffer_says_so() -> None:
    buffer = ReplayBuffer(100, (2,))
    buffer.add(np.zeros(2), 0, 1.0, np.zeros(2), 0.9)
    with pytest.raises(ValueError, match="sampling 32 transitions from a buffer holding 1"):
        buffer.sample(32)
    with pytest.raises(ValueError, match="holding 0"):
        PrioritizedReplayBuffer(10, (2,)).sample(4)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("DQNConfig.lrr = 1e-3", "did you mean 'lr'"),
        ("DQNCfg.lr = 1e-3", "no configurable named 'DQNCfg'"),
        ("DQNConfig.lr = -1.0", "lr=-1.0: must be > 0"),
        ("DQNConfig.total_steps = 'many'", "total_steps='many' is a str"),
        ("DQNConfig.total_steps = 1e5", "total_steps=100000.0 is a float"),
        ("DQNConfig.gamma = 1.5", r"gamma=1.5: must lie in \[0, 1\]"),
        ("DQNConfig.batch_size = 512\nDQNConfig.learning_starts = 100", "learning_starts=100"),
        ("DQNConfig.hidden = (64, 0)", "hidden=.*positive widths"),
        ("DQNConfig.lr = (", "does not parse"),
        (
            "DQNConfig.distributional = True\nDQNConfig.v_min = 5.0\nDQNConfig.v_max = 1.0",
            "v_min < v_max",
        ),
    ],
)
def test_a_malformed_config_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_dqn_config(text)


def test_an_unknown_preset_lists_the_presets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cartpole_dq"]) == 2
    assert "cartpole_dqn" in capsys.readouterr().err
    assert isinstance(make_env("probe2").reset(seed=0)[0], np.ndarray)


def test_help_says_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert capsys.readouterr().out.startswith("Usage: mlab rl dqn")


def test_a_bad_env_leaves_no_run_folder(tmp_path: Path) -> None:
    assert (
        main(["probe", "--bind", 'DQNConfig.env = "Pendulum-v1"', "--runs-dir", str(tmp_path)]) == 2
    )
    assert not any(tmp_path.iterdir())
