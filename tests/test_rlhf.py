"""w4d2's library: REINFORCE on the bandit and the probes, PPO on CartPole (a smoke run), the
LM pieces against transformers' GPT-2 (left-padded batches scored row by row, unpadded), and
a tiny PPO run whose reward rises on an easy reward. The course's Shakespeare model is never
needed: the models here are tiny and random."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import Tensor
from typer.testing import CliRunner

from mlab.cli import app
from mlab.course.w2d4_sampling.hf_reference import model_pair
from mlab.errors import ConfigError, DataError
from mlab.models.gpt2 import GPT2Config, GPT2LMHeadModel
from mlab.models.shakespeare import CharTokenizer, load_pretrained
from mlab.rl.kl import exact_kl
from mlab.rl.lm_policy import PolicyWithValue, left_pad_prompts, response_log_probs
from mlab.rl.lm_ppo import RLHFConfig, evaluate_policy, rollout, train_rlhf
from mlab.rl.lm_value import TokenValue, best_of_n, best_of_n_kl, value_guided_decode
from mlab.rl.pg import Bandit, train_bandit, train_probe
from mlab.rl.ppo import CartPoleConfig, train_cartpole
from mlab.rl.sentiment import sentiment_scores


class DigitTokenizer:
    """Token i is the text "<i> "; enough for decode and a reward on the text."""

    vocab_size = 16

    def encode(self, text: str) -> list[int]:
        return [int(t) for t in text.split()]

    def decode(self, ids: list[int]) -> str:
        return "".join(f"{i} " for i in ids)


def count_sevens(texts: list[str]) -> Tensor:
    """The easy reward: the share of the continuation's tokens that are 7."""
    return torch.tensor([t.split().count("7") / max(1, len(t.split())) for t in texts])


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models: threads only add overhead (and contention on a shared machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_model(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=16, n_positions=32, n_embd=32, n_layer=1, n_head=2)
    return GPT2LMHeadModel(config).eval()


@pytest.mark.parametrize("task", ["context", "delayed"])
def test_reinforce_solves_the_probes(task: str) -> None:
    result = train_probe(task, updates=80, batch=32)
    assert sum(result.mean_reward[-10:]) / 10 > 0.95, result.mean_reward[-10:]


def test_reinforce_finds_the_best_arm() -> None:
    result = train_bandit(Bandit(torch.tensor([0.0, 0.5, 1.0, 0.2])), updates=200, seed=0)
    assert result.best_arm_prob[-1] > 0.9
    assert sum(result.mean_reward[-20:]) / 20 > 0.85


def test_cartpole_smoke() -> None:
    result = train_cartpole(CartPoleConfig(total_steps=512, seed=0))
    assert result.returns and all(1 <= r <= 500 for r in result.returns)


def test_left_padded_batch_scores_like_hf_row_by_row() -> None:
    hf, ours = model_pair(seed=3, vocab_size=40)
    prompts = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]]
    ids, mask = left_pad_prompts(prompts, pad_token_id=1)
    policy = PolicyWithValue(ours)
    g = torch.Generator().manual_seed(0)
    batch = rollout(policy, ours, DigitTokenizer(), prompts, 6, g, score_fn=count_sevens)
    assert batch.prompt_len == ids.shape[1] == 5
    assert torch.equal(batch.sequences[:, :5].masked_fill(mask == 0, 1), ids)
    for row, prompt in enumerate(prompts):
        seq = torch.cat([torch.tensor(prompt), batch.sequences[row, 5:]])[None]
        with torch.no_grad():
            logits = hf(seq).logits
        want = response_log_probs(logits, seq, len(prompt))[0]
        torch.testing.assert_close(batch.log_p[row], want, atol=1e-5, rtol=1e-5)
    # the policy starts as the reference: ratios 1, KL 0
    torch.testing.assert_close(batch.log_p, batch.log_ref)
    torch.testing.assert_close(batch.exact_kl, torch.zeros(3), atol=1e-6, rtol=0)


def test_ppo_raises_an_easy_reward() -> None:
    lines = [[random.Random(i).randrange(16) for _ in range(8)] for i in range(50)]
    config = RLHFConfig(iterations=8, batch=32, minibatch=16, epochs=2, gen_len=5, lr=3e-3)
    config.beta = 0.01
    _, result = train_rlhf(tiny_model(), DigitTokenizer(), lines, config, score_fn=count_sevens)
    start, end = result.score[0], sum(result.score[-3:]) / 3
    assert end > start + 0.25, result.score
    assert result.kl[-1] > 0.1 and result.exact_kl[-1] > 0.1
    assert result.exact_kl[0] == pytest.approx(0.0, abs=1e-5)


def test_ppo_saves_the_tuned_policy_for_load_pretrained(tmp_path: Path) -> None:
    tokenizer = CharTokenizer("abcdefghijklmnop")  # 16 characters: the tiny model's vocab
    lines = [tokenizer.encode("abcdefgh"), tokenizer.encode("ponmlkji")]
    config = RLHFConfig(iterations=2, batch=4, minibatch=2, epochs=1, gen_len=3, lr=1e-2)
    policy, _ = train_rlhf(
        tiny_model(), tokenizer, lines, config, score_fn=lambda t: torch.ones(len(t)), out=tmp_path
    )
    model, loaded = load_pretrained(tmp_path / "policy")
    assert isinstance(loaded, CharTokenizer) and loaded.chars == tokenizer.chars
    want = policy.model.state_dict()
    assert model.state_dict().keys() == want.keys()
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, want[name], rtol=0, atol=0, msg=name)
    assert not torch.equal(want["lm_head.weight"], tiny_model().lm_head.weight)  # it moved


def test_evaluate_policy_on_fixed_prompts() -> None:
    tokenizer = CharTokenizer("abcdefghijklmnop")
    prompts = [tokenizer.encode(w) for w in ("abc", "po", "kjihg", "a", "bb", "nop")]
    base, tuned = tiny_model(0), tiny_model(1)

    def score(texts: list[str]) -> Tensor:
        return torch.tensor([t.count("a") / len(t) for t in texts])

    same = evaluate_policy(base, base, tokenizer, prompts, 4, chunk=4, score_fn=score)
    assert same["exact_kl"] == pytest.approx(0.0, abs=1e-5) and same["kl"] == 0.0
    assert same["prompts"] == 6 and len(same["samples"]) == 6
    row = evaluate_policy(tuned, base, tokenizer, prompts, 4, chunk=4, score_fn=score)
    continuations = [t.split(" |", 1)[1] for t in row["samples"]]
    assert row["score"] == pytest.approx(float(score(continuations).mean()))
    assert row["score_ci"][0] <= row["score"] <= row["score_ci"][1]
    assert row["exact_kl"] > 0.01 and row["exact_kl_ci"][0] <= row["exact_kl"]


def test_rlhf_eval_names_a_run_without_a_policy(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["rl", "rlhf-eval", str(tmp_path)])
    assert isinstance(result.exception, DataError)  # mlab's main prints it, exit code 2
    assert "no tuned policy in" in str(result.exception)
    assert "mlab rl rlhf --out RUN" in str(result.exception)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"minibatch": 256}, "lower minibatch"),
        ({"epochs": 0}, "epochs=0"),
        ({"lr": -1e-4}, "lr=-0.0001"),
        ({"beta": -0.1}, "beta=-0.1"),
        ({"target_kl": 0.0}, "target_kl=0.0"),
    ],
)
def test_bad_ppo_settings_are_named(change: dict[str, float], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        RLHFConfig(**change)  # type: ignore[arg-type]


def test_best_of_n_kl_and_scores() -> None:
    assert best_of_n_kl(1) == 0.0
    assert best_of_n_kl(4) == pytest.approx(math.log(4) - 0.75)
    g = torch.Generator().manual_seed(0)
    prompts = [[1, 2], [3]]
    one, _ = best_of_n(tiny_model(), DigitTokenizer(), prompts, 1, 5, g, count_sevens)
    many, texts = best_of_n(tiny_model(), DigitTokenizer(), prompts, 16, 5, g, count_sevens)
    assert (many >= one).all() and len(texts) == 2
    torch.testing.assert_close(count_sevens(texts), many)


def test_value_guided_decoding_kl() -> None:
    model, g = tiny_model(), torch.Generator().manual_seed(0)
    value = TokenValue(torch.zeros(16))
    prompts = [[1, 2, 3], [4]]
    tokens, kl = value_guided_decode(model, value, prompts, 5, g, tau=0.1)
    assert tokens.shape == (2, 5)
    torch.testing.assert_close(kl, torch.zeros(2), atol=1e-5, rtol=0)  # V constant: no tilt
    with torch.no_grad():
        value.w[7] = 3.0
    tokens, kl = value_guided_decode(model, value, prompts, 5, g, tau=0.1)
    # the first 7 already reaches tanh(3) = 0.995: after it, no token adds value
    assert (kl > 0.5).all() and (tokens[:, 0] == 7).all()


def test_exact_kl_of_tilted_distribution_matches_by_hand() -> None:
    p = torch.tensor([0.5, 0.25, 0.25]).log()
    q = torch.tensor([0.25, 0.25, 0.5]).log()
    want = 0.5 * math.log(2) + 0.25 * math.log(0.5)
    assert float(exact_kl(p, q)) == pytest.approx(want)


def test_vader_scores() -> None:
    scores = sentiment_scores(["O happy day, sweet love!", "the king is dead", "the table"])
    assert scores[0] > 0.5 and scores[1] < -0.3 and scores[2] == 0.0
