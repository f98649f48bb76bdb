"""A tiny causal transformer that learns to continue Shakespeare one character at a time.

The architecture is GPT-2's (Radford et al. 2019) in miniature, written out by hand: token and
position embeddings, pre-LayerNorm blocks of multi-head causal self-attention ("Attention Is
All You Need", Vaswani et al. 2017, https://arxiv.org/abs/1706.03762) and a feed-forward
layer, each added to a residual stream, a final LayerNorm and a linear head that scores the
next character. The file reads bottom-up, as nanoGPT's model.py: LayerNorm, attention,
feed-forward, block, model; then data, schedule and training.

The text is tiny Shakespeare (Karpathy's char-rnn corpus, 1.1 MB, public domain) from
``$MLAB_DATA_DIR`` or the cache ``~/.cache/mlab``; without it, two of Shakespeare's sonnets.

The script protocol of ``mlab inspect``: ``build_model(seed)`` returns the network and
``train(model, steps=, seed=, on_step=)`` trains it, calling ``on_step(loss)`` after every
optimizer step. ``python transformer.py`` trains for MAX_STEPS steps and prints a sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlab.data import cache_dir, data_dir

BATCH_SIZE = 16
BLOCK_SIZE = 32  # the longest context: characters the model sees before predicting
PEAK_LR = 3e-3
WARMUP_STEPS = 20  # the learning rate climbs from PEAK_LR / 20 to PEAK_LR over these steps
MAX_STEPS = 500  # ... and then decays to 0 along a cosine at this step

SONNETS = """Shall I compare thee to a summer's day?
Thou art more lovely and more temperate:
Rough winds do shake the darling buds of May,
And summer's lease hath all too short a date;
Sometime too hot the eye of heaven shines,
And often is his gold complexion dimm'd;
And every fair from fair sometime declines,
By chance or nature's changing course untrimm'd;
But thy eternal summer shall not fade,
Nor lose possession of that fair thou ow'st;
Nor shall death brag thou wander'st in his shade,
When in eternal lines to time thou grow'st:
So long as men can breathe or eyes can see,
So long lives this, and this gives life to thee.

Let me not to the marriage of true minds
Admit impediments. Love is not love
Which alters when it alteration finds,
Or bends with the remover to remove.
O no! it is an ever-fixed mark
That looks on tempests and is never shaken;
It is the star to every wand'ring bark,
Whose worth's unknown, although his height be taken.
Love's not Time's fool, though rosy lips and cheeks
Within his bending sickle's compass come;
Love alters not with his brief hours and weeks,
But bears it out even to the edge of doom.
If this be error and upon me proved,
I never writ, nor no man ever loved.
"""


class LayerNorm(nn.Module):
    """Normalise each position's features to mean 0 and variance 1, then scale and shift
    them with learned ``weight`` and ``bias`` (Ba, Kiros & Hinton 2016,
    https://arxiv.org/abs/1607.06450). Unlike BatchNorm, nothing is shared between positions
    or sequences: the statistics are over the last dimension only."""

    def __init__(self, d_model: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, correction=0)  # divides by n, not n - 1
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which each position attends to itself and the positions
    before it, never to the future (whose characters it has to predict).

    Each head projects the input to queries, keys and values of size ``d_head``, scores every
    query against every key, scales the scores by ``1 / sqrt(d_head)`` (so their variance does
    not grow with ``d_head`` and the softmax does not saturate), masks the future, turns each
    query's scores into weights with a softmax over the keys, and averages the values with
    them. The heads' results, side by side, go through an output projection.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        # Weights are (out_features, in_features), as nn.Linear's; all heads in one matrix.
        self.W_Q = nn.Parameter(torch.empty(d_model, d_model))
        self.W_K = nn.Parameter(torch.empty(d_model, d_model))
        self.W_V = nn.Parameter(torch.empty(d_model, d_model))
        self.W_O = nn.Parameter(torch.empty(d_model, d_model))
        self.b_Q = nn.Parameter(torch.zeros(d_model))
        self.b_K = nn.Parameter(torch.zeros(d_model))
        self.b_V = nn.Parameter(torch.zeros(d_model))
        self.b_O = nn.Parameter(torch.zeros(d_model))
        self.attn_drop = nn.Dropout(dropout)  # on the attention weights
        self.resid_drop = nn.Dropout(dropout)  # on the output, before the residual add

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        q = x @ self.W_Q.T + self.b_Q
        k = x @ self.W_K.T + self.b_K
        v = x @ self.W_V.T + self.b_V
        # (B, T, C) -> (B, n_heads, T, d_head): each head attends on its own
        q = q.view(B, T, self.n_heads, self.d_head).transpose(1, 2)
        k = k.view(B, T, self.n_heads, self.d_head).transpose(1, 2)
        v = v.view(B, T, self.n_heads, self.d_head).transpose(1, 2)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)  # (B, n_heads, T, T)
        # True above the diagonal: key positions after the query's, the future
        future = torch.triu(torch.ones(T, T, dtype=torch.bool, device=x.device), diagonal=1)
        scores = scores.masked_fill(future, float("-inf"))  # softmax gives them weight 0
        weights = self.attn_drop(scores.softmax(dim=-1))  # each query's weights sum to 1
        y = weights @ v  # (B, n_heads, T, d_head)
        y = y.transpose(1, 2).reshape(B, T, C)  # the heads side by side again
        return self.resid_drop(y @ self.W_O.T + self.b_O)


class FeedForward(nn.Module):
    """Position-wise two-layer network, ``d_model -> 4 d_model -> d_model`` with a GELU
    (Hendrycks & Gimpel 2016, https://arxiv.org/abs/1606.08415) in between."""

    def __init__(self, d_model: int, dropout: float) -> None:
        super().__init__()
        self.fc_in = nn.Linear(d_model, 4 * d_model)
        self.fc_out = nn.Linear(4 * d_model, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc_out(F.gelu(self.fc_in(x))))


class Block(nn.Module):
    """A pre-LayerNorm transformer block: attention, then the feed-forward layer, each reading
    a normalised copy of the residual stream ``x`` and adding its result back to it."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.ln1 = LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads, dropout)
        self.ln2 = LayerNorm(d_model)
        self.mlp = FeedForward(d_model, dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        x = x + self.mlp(self.ln2(x))
        return x


class CharTransformer(nn.Module):
    """Token ids ``(batch, seq)`` -> logits ``(batch, seq, vocab)``: at every position, scores
    for the character that comes next."""

    def __init__(
        self,
        vocab_size: int,
        *,
        d_model: int,
        n_heads: int,
        n_layers: int,
        max_len: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(max_len, d_model)  # attention alone ignores order
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, dropout) for _ in range(n_layers))
        self.ln_f = LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)
        self.init_weights()

    def init_weights(self) -> None:
        """GPT-2's initialisation: every weight matrix ~ N(0, 0.02^2); biases stay at zero and
        LayerNorm weights at one."""
        for param in self.parameters():
            if param.dim() == 2:
                nn.init.normal_(param, mean=0.0, std=0.02)

    def forward(self, idx: Tensor) -> Tensor:
        T = idx.shape[1]
        positions = torch.arange(T, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(positions))  # (B, T, d_model)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def load_text() -> str:
    """Tiny Shakespeare from ``$MLAB_DATA_DIR`` or the cache, else the two sonnets above."""
    for folder in (data_dir(), cache_dir()):
        if folder is not None and (folder / "tinyshakespeare.txt").is_file():
            return (folder / "tinyshakespeare.txt").read_text(encoding="utf-8")
    return SONNETS


def load_tokens() -> tuple[Tensor, Tensor]:
    """``(tokens, alphabet)``: the text as token ids, and the byte value of each id. Each
    distinct byte of the text is one token: for ASCII text such as tiny Shakespeare, one
    character."""
    raw = torch.frombuffer(bytearray(load_text().encode("utf-8")), dtype=torch.uint8).long()
    alphabet = torch.bincount(raw, minlength=256).nonzero().squeeze(1)  # bytes that occur
    lookup = torch.zeros(256, dtype=torch.long)
    lookup[alphabet] = torch.arange(len(alphabet))
    return lookup[raw], alphabet


def build_model(seed: int) -> nn.Module:
    """The network, initialised from ``seed``, with one token per character of the text."""
    _, alphabet = load_tokens()
    torch.manual_seed(seed)
    return CharTransformer(
        len(alphabet), d_model=48, n_heads=4, n_layers=2, max_len=BLOCK_SIZE, dropout=0.1
    )


def get_batch(tokens: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``(inputs, targets)``, each ``(BATCH_SIZE, BLOCK_SIZE)``: windows of the text starting
    at random places, and the same windows one character later: the target at position t is
    the character after input position t."""
    starts = torch.randint(len(tokens) - BLOCK_SIZE, (BATCH_SIZE,), generator=generator)
    windows = torch.stack([tokens[s : s + BLOCK_SIZE + 1] for s in starts.tolist()])
    inputs = windows[:, :-1]
    targets = windows[:, 1:]
    return inputs, targets


def next_token_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy of the next character: minus the log-probability the model gives the
    true next character, averaged over every position of every sequence."""
    log_probs = logits.log_softmax(dim=-1)  # (B, T, vocab): a distribution per position
    nll = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T)
    return nll.mean()


def learning_rate(step: int) -> float:
    """Linear warm-up to PEAK_LR over WARMUP_STEPS steps, then cosine decay to 0 at MAX_STEPS
    (Loshchilov & Hutter 2016, https://arxiv.org/abs/1608.03983)."""
    if step < WARMUP_STEPS:
        return PEAK_LR * (step + 1) / WARMUP_STEPS
    progress = min(1.0, (step - WARMUP_STEPS) / (MAX_STEPS - WARMUP_STEPS))
    return PEAK_LR * 0.5 * (1 + math.cos(math.pi * progress))


def train(
    model: nn.Module,
    *,
    steps: int,
    seed: int,
    on_step: Callable[[float], None] | None = None,
) -> list[float]:
    """Train ``model`` for ``steps`` optimizer steps; return the loss of every step."""
    tokens, _ = load_tokens()
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=PEAK_LR, betas=(0.9, 0.95), weight_decay=0.1
    )
    model.train()  # dropout is on
    losses = []
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step)
        inputs, targets = get_batch(tokens, generator)
        optimizer.zero_grad()
        loss = next_token_loss(model(inputs), targets)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(loss.item())
    return losses


@torch.no_grad()
def sample(model: nn.Module, alphabet: Tensor, prompt: str, n_chars: int) -> str:
    """Continue ``prompt`` by ``n_chars`` characters, each drawn from the model's
    distribution for the next one given (at most) the last BLOCK_SIZE characters."""
    model.eval()  # dropout off
    lookup = {int(byte): i for i, byte in enumerate(alphabet)}
    idx = torch.tensor([[lookup.get(b, 0) for b in prompt.encode("utf-8")]])
    for _ in range(n_chars):
        logits = model(idx[:, -BLOCK_SIZE:])[:, -1]  # the scores after the last character
        next_id = torch.multinomial(logits.softmax(dim=-1), num_samples=1)
        idx = torch.cat([idx, next_id], dim=1)
    return bytes(alphabet[idx[0]].tolist()).decode("utf-8", errors="replace")


def main() -> None:
    model = build_model(seed=0)
    losses = train(model, steps=MAX_STEPS, seed=0)
    for step in range(0, MAX_STEPS, 100):
        print(f"step {step:4d}  loss {sum(losses[step : step + 100]) / 100:.4f}")
    _, alphabet = load_tokens()
    print(sample(model, alphabet, "ROMEO:\n", 200))


if __name__ == "__main__":
    main()
