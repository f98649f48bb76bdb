"""The small Shakespeare GPT-2s (mlab.models.shakespeare): a tiny training run learns, an
interrupted run resumes to exactly the uninterrupted one, sampling with the KV cache equals
sampling without it, and `mlab pretrain shakespeare` / `mlab sample` work end to end on a
tiny recipe. The full runs are `mlab pretrain shakespeare` and `make bench`."""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mlab.cli import app
from mlab.errors import ConfigError, DataError
from mlab.models import shakespeare
from mlab.models.gpt2 import GPT2Config, GPT2LMHeadModel
from mlab.models.shakespeare import (
    CharTokenizer,
    CompactGPT2Tokenizer,
    generate,
    get_batch,
    learning_rate,
    load_pretrained,
    load_tiny_shakespeare,
    quick_recipe,
    train,
)
from mlab.testing import assert_close

TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to "
    "famish?\n\nAll:\nResolved. resolved.\n\n"
) * 40
TINY = quick_recipe(
    "char",
    n_layer=1,
    n_head=2,
    n_embd=16,
    block_size=16,
    batch_size=8,
    max_iters=60,
    warmup_iters=5,
    learning_rate=1e-2,
    min_lr=1e-3,
    eval_interval=20,
    eval_iters=4,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tiny-char")
    steps: list[float] = []
    result = train(TINY, directory, text=TEXT, on_step=lambda s, loss: steps.append(loss))
    assert result.steps == 60 and len(steps) == 60
    assert sum(steps[-10:]) / 10 < sum(steps[:10]) / 10 - 1.0  # it learns
    assert result.val_loss < 2.2  # the repeated text: well below log(vocab) = 3.2
    return directory


def test_char_tokenizer_round_trips_and_rejects_unknown_characters() -> None:
    tok = CharTokenizer("hello world")
    assert tok.vocab_size == 8 and tok.decode(tok.encode("low hell")) == "low hell"
    with pytest.raises(ValueError, match=r"\['z'\]"):
        tok.encode("hold ze")


def test_batches_are_shifted_windows_and_the_schedule_warms_up_then_decays() -> None:
    data = torch.arange(100)
    x, y = get_batch(data, 8, 5, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (5, 8) and torch.equal(y, x + 1)
    with pytest.raises(DataError, match="too few"):
        get_batch(torch.arange(8), 8, 1, torch.Generator())
    recipe = shakespeare.RECIPES["char"]
    rates = [learning_rate(s, recipe) for s in range(recipe.max_iters + 1)]
    assert rates[0] < rates[99] <= 1e-3 and max(rates) == pytest.approx(1e-3, rel=1e-3)
    assert rates[-1] == pytest.approx(1e-4) and all(
        a >= b for a, b in itertools.pairwise(rates[100:])
    )


def test_a_resumed_run_equals_the_uninterrupted_one(trained: Path, tmp_path: Path) -> None:
    """The fixture's recipe, interrupted at step 40 of 60 (a checkpoint), then resumed."""

    def stop_at_40(step: int, loss: float) -> None:
        if step == 40:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(TINY, tmp_path, text=TEXT, on_step=stop_at_40)
    with pytest.raises(ConfigError, match="another recipe"):
        train(dataclasses.replace(TINY, max_iters=80), tmp_path, text=TEXT)
    resumed: list[int] = []
    train(TINY, tmp_path, text=TEXT, on_step=lambda s, loss: resumed.append(s))
    assert resumed[0] == 41 and resumed[-1] == 60  # from the checkpoint at 40
    a, _ = load_pretrained(trained)
    b, _ = load_pretrained(tmp_path)
    assert_close(b.state_dict(), a.state_dict(), what="resumed vs uninterrupted weights")


def test_sampling_with_the_cache_equals_sampling_without(trained: Path) -> None:
    model, tok = load_pretrained(trained)
    pieces = list(generate(model, tok, "All:\n", 40, temperature=0.7, top_k=5, seed=3))
    assert len(pieces) == 40
    # the same sampler without a cache: the whole context every step
    g = torch.Generator().manual_seed(3)
    ids = tok.encode("All:\n")
    out = []
    for _ in range(40):
        logits = model(torch.tensor([ids[-16:]]), use_cache=False).logits[0, -1] / 0.7
        cutoff = torch.topk(logits, 5).values[-1]
        probs = torch.softmax(logits.masked_fill(logits < cutoff, float("-inf")), -1)
        ids.append(int(torch.multinomial(probs, 1, generator=g)))
        out.append(ids[-1])
    # positions past n_positions=16 are rebuilt from the last half, so compare the first 11
    assert "".join(pieces)[:11] == tok.decode(out)[:11]
    assert "".join(pieces).count(":") >= 1  # it learned the play's format


def test_an_untrained_model_samples_and_bad_arguments_raise() -> None:
    model = GPT2LMHeadModel(GPT2Config(vocab_size=8, n_positions=6, n_embd=8, n_layer=1, n_head=2))
    tok = CharTokenizer("abcdefgh")
    assert len("".join(generate(model, tok, "abc", 20))) == 20  # past n_positions twice
    with pytest.raises(ValueError, match="temperature=0"):
        next(generate(model, tok, "a", 1, temperature=0))


def test_tiny_shakespeare_is_found_and_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tinyshakespeare.txt").write_text("not Shakespeare")
    monkeypatch.setenv("MLAB_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="is not tiny Shakespeare"):
        load_tiny_shakespeare()
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    real = Path(os.environ.get("MLAB_TEST_DATA", shared))
    if not (real / "tinyshakespeare.txt").is_file():
        pytest.skip(f"tinyshakespeare.txt is not in {real}: only the checksum error was tested")
    monkeypatch.setenv("MLAB_DATA_DIR", str(real))
    assert len(load_tiny_shakespeare()) == 1_115_394


@pytest.fixture
def tiny_recipes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(shakespeare.RECIPES, "char", TINY)
    monkeypatch.setattr(shakespeare, "load_tiny_shakespeare", lambda: TEXT)
    yield


def test_pretrain_and_sample_commands(tiny_recipes: None, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "model"
    result = runner.invoke(
        app, ["pretrain", "shakespeare", "--recipe", "char", "--out", str(out), "--max-iters", "20"]
    )
    assert result.exit_code == 0, result.output
    assert "validation loss" in result.output and (out / "model.safetensors").is_file()
    result = runner.invoke(
        app, ["sample", "--prompt", "All:", "--tokens", "30", "--model", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("All:") and len(result.output.strip()) >= 30
    result = runner.invoke(app, ["pretrain", "shakespeare", "--recipe", "words"])
    assert result.exit_code != 0


def _shared_data() -> Path:
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    real = Path(os.environ.get("MLAB_TEST_DATA", shared))
    if not (real / "gpt2" / "vocab.json").is_file():
        pytest.skip(f"GPT-2's vocab.json and merges.txt are not in {real / 'gpt2'}")
    return real


def test_gpt2_tokenizer_from_the_hub_is_kept_in_the_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import huggingface_hub

    real = _shared_data() / "gpt2"
    fetched: list[str] = []

    def hub(repo: str, name: str) -> str:  # the hub, played by the shared files
        fetched.append(f"{repo}/{name}")
        return str(real / name)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hub)
    monkeypatch.setenv("MLAB_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("MLAB_CACHE_DIR", str(tmp_path / "cache"))
    first = shakespeare.gpt2_tokenizer()
    assert fetched == ["gpt2/vocab.json", "gpt2/merges.txt"]
    for name in ("vocab.json", "merges.txt"):
        assert (tmp_path / "cache" / "gpt2" / name).read_bytes() == (real / name).read_bytes()
    again = shakespeare.gpt2_tokenizer()  # from the cache: the hub is not asked again
    assert len(fetched) == 2
    assert again.encode("Hello world") == first.encode("Hello world") == [15496, 995]


def test_gpt2_tokenizer_offline_without_files_says_where_to_put_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import huggingface_hub

    def offline(repo: str, name: str) -> str:
        raise FileNotFoundError("no network and no cached copy")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    monkeypatch.setenv("MLAB_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("MLAB_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError, match=r"\$MLAB_DATA_DIR/gpt2/"):
        shakespeare.gpt2_tokenizer()


def test_compact_gpt2_tokenizer_keeps_gpt2_ids_and_falls_back_to_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLAB_DATA_DIR", str(_shared_data()))
    tok = CompactGPT2Tokenizer(corpus=TEXT)
    hf = tok.hf
    assert hf.encode("Hello world, this is GPT-2 tokenization!") == [
        15496,
        995,
        11,
        428,
        318,
        402,
        11571,
        12,
        17,
        11241,
        1634,
        0,
    ]  # the ids in ../shared/data/README.md
    assert tok.vocab_size == len(set(hf.encode(TEXT)) | set(tok._bytes) | {50256})
    line = "All:\nSpeak, speak."
    assert [tok.keep[i] for i in tok.encode(line)] == hf.encode(line)  # GPT-2's own ids
    for text in ["Résumé of 🎭 quantum électrons", " \n\t", "zzz"]:
        assert tok.decode(tok.encode(text)) == text
    again = CompactGPT2Tokenizer(keep=tok.keep)
    assert again.encode("First Citizen: quantum") == tok.encode("First Citizen: quantum")


def _sample(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["sample", *args])
    return result.exit_code, result.output + (str(result.exception or ""))


def test_sample_greedy_and_beams_equal_hf_generate(trained: Path) -> None:
    """`mlab sample --greedy` and `--beams` print what HuggingFace's generate makes from the
    same checkpoint (a save_pretrained folder that GPT2LMHeadModel loads)."""
    transformers = pytest.importorskip("transformers")
    hf = transformers.GPT2LMHeadModel.from_pretrained(trained).eval()
    _, tok = load_pretrained(trained)
    ids = torch.tensor([tok.encode("All:\n")])
    for options, kwargs in [
        (["--greedy"], {}),
        (["--greedy", "--repetition-penalty", "1.3"], {"repetition_penalty": 1.3}),
        (["--beams", "3"], {"num_beams": 3}),
    ]:
        want = hf.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=10, do_sample=False,
            pad_token_id=0, eos_token_id=None, **kwargs,
        )  # fmt: skip
        code, out = _sample("--prompt", "All:\n", "--tokens", "10", "--model", str(trained),
                            *options)  # fmt: skip
        assert code == 0, out
        assert out == "All:\n" + tok.decode(want[0, ids.shape[1] :].tolist()) + "\n", options


def test_sample_top_p_and_avoid_suffix(trained: Path) -> None:
    code, out = _sample("--prompt", "All:", "--tokens", "12", "--top-p", "0.9", "--top-k", "0",
                        "--model", str(trained))  # fmt: skip
    assert code == 0 and out.startswith("All:") and len(out.rstrip("\n")) == len("All:") + 12
    code, out = _sample("--prompt", "All:", "--tokens", "6", "--avoid-suffix", "die",
                        "--candidates", "4", "--model", str(trained))  # fmt: skip
    assert code == 0, out
    assert "Chosen from 4 samples as the least likely to be followed by 'die'" in out


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--temperature", "0"], "--temperature 0.0: it must be above 0; for the likeliest"),
        (["--top-p", "1.5"], "--top-p 1.5: it must be in (0, 1]"),
        (["--top-p", "0"], "--top-p 0.0"),
        (["--top-k", "-1"], "Invalid value for '--top-k'"),
        (["--beams", "3", "--avoid-suffix", "x"], "pick one"),
        (["--beams", "3", "--temperature", "1.5"], "does not sample"),
        (["--beams", "3", "--tokens", "40"], "pass --tokens 13 or fewer"),
        (["--beams", "500"], "only 34 tokens"),
        (["--avoid-suffix", "die", "--tokens", "12"], "pass --tokens 10 or fewer"),
    ],
)
def test_sample_bad_options_are_named(trained: Path, options: list[str], message: str) -> None:
    code, out = _sample("--prompt", "All:", "--model", str(trained), *options)
    assert code != 0
    assert message in " ".join(out.split()), out


def test_generate_streams_and_stops_when_the_reader_stops(trained: Path) -> None:
    """Pieces arrive while sampling goes on (a thread makes them), and closing the stream
    early ends that thread instead of making the 100,000 tokens asked for."""
    import threading

    model, tok = load_pretrained(trained)
    before = threading.active_count()
    stream = generate(model, tok, "All:", 100_000)
    first = list(itertools.islice(stream, 3))
    assert len(first) == 3
    stream.close()
    assert threading.active_count() == before
    with pytest.raises(ValueError, match=r"top_p=1\.5"):
        list(generate(model, tok, "All:", 5, top_p=1.5))  # errors reach the reader
