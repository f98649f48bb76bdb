"""The catalogue of bugs a bug hunt hides in a reference training script.

Every kind is a mistake people really make when they write a model or a training loop, picked
so that the script still runs (no exception, no NaN, no hang): the hunt is about behaviour. A
kind knows

- why it is a bug and how it shows up (``why``);
- where it can go: ``find`` (in :mod:`mlab.bughunt.finders`) locates its sites in a target
  with :mod:`ast` and returns exact text edits (:mod:`mlab.bughunt.source`), so the bugged
  file differs from the reference in one line, or two;
- what ``mlab inspect``'s comparison of the reference and the bugged script should report
  (``evidence``): a symptom kind (``input``, ``loss``, ``update``, ``init``, ``backward``), or
  for ``forward``/``backward`` also the layers where the first difference appears. Layers are
  named by module class (``"BatchNorm1d"``) or module name (``"pos_emb"``); ``ENCLOSING``
  stands for the class whose code holds the edit.

``draw(target, seed)`` picks one kind applicable to the target with the seed, then one of its
sites, and returns the ``Bug``: the bugged source, the changed lines, the diff and the
evidence. The tests prove, for every kind, that the comparison shows the evidence for at least
80% of (target, seed) pairs.
"""

from __future__ import annotations

import difflib
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from mlab.bughunt.finders import (
    Finder,
    Site,
    find_activation_dropped,
    find_betas_swapped,
    find_detached_residual,
    find_double_softmax,
    find_dropout_keep,
    find_eval_mode,
    find_heads_mixed,
    find_init_scale,
    find_labels_off_by_one,
    find_layernorm_dim,
    find_loss_axis,
    find_mask_fill_zero,
    find_mask_off_by_one,
    find_no_position,
    find_not_shuffled,
    find_residual_dropped,
    find_softmax_dim,
    find_step_before_backward,
    find_tiny_clip,
    find_transposed_weight,
    find_unscaled_attention,
    find_warmup_factor,
    find_weight_decay,
    find_zero_grad_missing,
)
from mlab.bughunt.source import Source, apply_edits, changed_lines
from mlab.errors import MlabError

if TYPE_CHECKING:  # mlab.inspect imports matplotlib: only load it to run a comparison
    from mlab.inspect.compare import Divergence
    from mlab.inspect.record import Run

__all__ = [
    "ENCLOSING",
    "Bug",
    "BugKind",
    "Evidence",
    "Site",
    "affected_layers",
    "applicable",
    "draw",
    "get_kind",
    "kinds",
    "make_bug",
    "sites",
    "target_path",
    "target_source",
    "targets",
]

EvidenceKind = Literal["init", "input", "forward", "loss", "backward", "update"]
ENCLOSING = "<enclosing class>"
TARGETS_DIR = Path(__file__).parent / "targets"


@dataclass(frozen=True)
class Evidence:
    """What the comparison of the reference with the bugged script should report: the kind
    of the first divergence and, for ``forward``/``backward``, where. ``layers`` are module
    class names or module names; the first differing layer must lie inside such a module or,
    for a module whose own output is not recorded (it has children), be the layer just
    before or just after it. Empty ``layers``: any place."""

    kind: EvidenceKind
    layers: tuple[str, ...] = ()
    #: for an edit in the model's own forward (``layers`` would be the whole model): the
    #: modules whose output the edit changes; the first differing layer must be one of them
    #: or the recorded layer right after one
    feeds: tuple[str, ...] = ()

    def describe(self) -> str:
        """In words, e.g. "forward, in a BatchNorm1d or Dropout layer"."""
        if not self.layers:
            return self.kind
        if self.feeds:
            return f"{self.kind}, at {' or '.join(self.feeds)} or the layer reading its output"
        return f"{self.kind}, at a {' or '.join(self.layers)} layer (or the one it feeds)"

    def matches(self, divergence: Divergence, reference: Run) -> bool:
        """Whether ``divergence`` (of ``compare(reference, bugged)``) shows this evidence."""
        if divergence.kind != self.kind:
            return False
        if not self.layers:
            return True
        if divergence.layer is None:
            return False
        return _module_of(divergence.layer, reference) in affected_layers(
            self.layers, reference, self.feeds
        )


def _module_of(name: str, run: Run) -> str:
    """The module a recorded name belongs to: itself, or a parameter's module."""
    while name not in run.module_types and "." in name:
        name = name.rsplit(".", 1)[0]
    return name if name in run.module_types else ""


def _inside(name: str, instance: str) -> bool:
    return instance == "" or name == instance or name.startswith(instance + ".")


def affected_layers(layers: Iterable[str], run: Run, feeds: Iterable[str] = ()) -> set[str]:
    """The module names that count as ``layers`` in ``run``: every module of a matching class
    or name and everything inside it; for a matching module with children, also the recorded
    layers just before and just after its own. When the match is the model itself (name "")
    and ``feeds`` names its attributes whose output the edit changes, only those and the
    recorded layer right after each count."""
    wanted = set(layers)
    instances = [n for n, t in run.module_types.items() if t in wanted or n in wanted]
    order = run.layer_order
    found: set[str] = set()
    feeds = tuple(feeds)
    for instance in instances:
        if instance == "" and feeds:
            for name in feeds:
                positions = [i for i, n in enumerate(order) if _inside(n, name)]
                if positions:
                    found |= {n for n in run.module_types if _inside(n, name)}
                    found |= set(order[positions[-1] + 1 : positions[-1] + 2])
            continue
        found |= {n for n in run.module_types if _inside(n, instance)}
        positions = [i for i, n in enumerate(order) if _inside(n, instance)]
        if positions and order[positions[0]] != instance:  # a container: add its neighbours
            found |= set(order[max(positions[0] - 1, 0) : positions[-1] + 2])
    return found


@dataclass(frozen=True)
class BugKind:
    """A kind of bug: its id, a title, why it is a bug and how it shows, what inspect
    should report, and where it can go in a target's source."""

    id: str
    title: str
    why: str
    evidence: tuple[Evidence, ...]
    find: Finder = field(repr=False, compare=False)


@dataclass(frozen=True)
class Bug:
    """One planted bug: which kind, in which target, drawn with which seed, and the result."""

    kind: BugKind
    target: str
    seed: int
    site: int  # index into sites(kind, target)
    original: str
    bugged: str
    lines: tuple[int, ...]  # lines of the bugged file that are the bug (1-based)
    expected: tuple[Evidence, ...]  # what the comparison should show (any one of them)

    @property
    def line(self) -> int:
        """The first line of the bugged file that the bug changed."""
        return self.lines[0]

    def diff(self) -> str:
        """The unified diff from the reference to the bugged file."""
        name = f"{self.target}.py"
        return "".join(
            difflib.unified_diff(
                self.original.splitlines(keepends=True),
                self.bugged.splitlines(keepends=True),
                fromfile=f"reference/{name}",
                tofile=f"bughunt/{name}",
            )
        )

    def shown_by(self, divergence: Divergence, reference: Run) -> bool:
        """Whether the comparison's first divergence shows the expected evidence."""
        return any(e.matches(divergence, reference) for e in self.expected)


# -- the catalogue -------------------------------------------------------------------------------

_NORM_OR_DROPOUT = ("BatchNorm1d", "BatchNorm2d", "Dropout")

KINDS: tuple[BugKind, ...] = (
    BugKind(
        "eval_mode",
        "model.eval() where model.train() belongs",
        "The training loop puts the model in evaluation mode. BatchNorm then normalises with "
        "its running statistics (still the initial 0 and 1, and never updated) instead of the "
        "batch's, and dropout is off: the network trains as a different function from the "
        "one it was designed as. The first BatchNorm or Dropout layer's output differs.",
        (Evidence("forward", _NORM_OR_DROPOUT),),
        find_eval_mode,
    ),
    BugKind(
        "detached_residual",
        "residual connection detached from the graph",
        "`.detach()` on the skip path of a residual connection cuts it out of the backward "
        "pass. The forward pass is unchanged, but gradients reach the earlier layers only "
        "through the branch: exactly what residual connections exist to avoid. The loss curve "
        "looks plausible; only the gradients tell.",
        (Evidence("backward", (ENCLOSING,)),),
        find_detached_residual,
    ),
    BugKind(
        "residual_dropped",
        "residual connection dropped",
        "The block returns its branch without adding its input back. The stack loses the "
        "identity path that carries signal forward and gradients backward, and every block "
        "must relearn what the one before it computed. The block's output differs.",
        (Evidence("forward", (ENCLOSING,)),),
        find_residual_dropped,
    ),
    BugKind(
        "activation_dropped",
        "nonlinearity missing",
        "A ReLU or GELU between two linear maps is gone, so the two collapse into one linear "
        "map and the network is less expressive than it looks. The next layer reads negative "
        "values where there should be none (ReLU) or a different curve (GELU).",
        (Evidence("forward", (ENCLOSING,)),),
        find_activation_dropped,
    ),
    BugKind(
        "init_scale",
        "weights initialised at the wrong scale",
        "The initial weights have the wrong standard deviation: He initialisation with "
        "sqrt(2 * fan_in) for sqrt(2 / fan_in), or 1 where GPT-2 uses 0.02. BatchNorm "
        "rescales what comes before it, but the layers it does not follow (the classifier, "
        "the attention, the embeddings) start out huge: the logits are enormous, the softmax "
        "saturates and the first steps are spent undoing the damage.",
        (Evidence("init"),),
        find_init_scale,
    ),
    BugKind(
        "transposed_weight",
        "weight matrix used transposed",
        "`x @ W` where `x @ W.T` belongs. The weights follow nn.Linear's convention, "
        "(out_features, in_features); a square matrix fits either way, so nothing fails, but "
        "every output feature is computed from the wrong row (and a loaded checkpoint would "
        "be used wrongly). The attention's output differs.",
        (Evidence("forward", (ENCLOSING,)),),
        find_transposed_weight,
    ),
    BugKind(
        "softmax_dim",
        "attention softmax over the wrong dimension",
        "The softmax normalises the scores over the queries (dim=-2) instead of over the keys "
        "(dim=-1): a query's weights no longer sum to 1, and each query's normalisation mixes "
        "in scores of other queries. The attention pattern is wrong from the first step.",
        (Evidence("forward", (ENCLOSING,)),),
        find_softmax_dim,
    ),
    BugKind(
        "unscaled_attention",
        "attention scores not scaled by 1 / sqrt(d_head)",
        "Without the scale, query-key dot products grow like sqrt(d_head): the softmax "
        "saturates toward one-hot weights and its gradients vanish (Vaswani et al. 2017, "
        "section 3.2.1). The attention weights are sharper than they should be.",
        (Evidence("forward", (ENCLOSING,)),),
        find_unscaled_attention,
    ),
    BugKind(
        "mask_off_by_one",
        "causal mask off by one",
        "`torch.triu(..., diagonal=2)` masks the future from two positions ahead: every "
        "position sees the next character, the one it must predict. The training loss falls "
        "fast, and the model is useless for generating text, where the future is not there.",
        (Evidence("forward", (ENCLOSING,)),),
        find_mask_off_by_one,
    ),
    BugKind(
        "mask_fill_zero",
        "future masked with 0 instead of -inf",
        "A masked score of 0 still gets weight exp(0) in the softmax: every position attends "
        "to the future, which it cannot do when generating. The model cheats in training.",
        (Evidence("forward", (ENCLOSING,)),),
        find_mask_fill_zero,
    ),
    BugKind(
        "heads_mixed",
        "heads split by a reshape instead of a transpose",
        "`view(B, n_heads, T, d_head)` reinterprets the memory of a (B, T, d_model) tensor: a "
        "'head' gets the features of a block of consecutive positions, mixing positions and "
        "heads. The sizes multiply out, so nothing fails; the attention is meaningless "
        "(and the causal mask no longer matches the positions).",
        (Evidence("forward", (ENCLOSING,)),),
        find_heads_mixed,
    ),
    BugKind(
        "layernorm_dim",
        "LayerNorm over the wrong dimension",
        "The mean and variance are taken over the positions (dim=1) instead of the features "
        "(dim=-1): each feature is normalised across the sequence, which mixes information "
        "between positions (the future included) and does not fix each position's scale.",
        (Evidence("forward", ("LayerNorm",)),),
        find_layernorm_dim,
    ),
    BugKind(
        "no_position",
        "positional embedding not added",
        "Self-attention is blind to order: without the positional embedding the model sees, "
        "for each position, an unordered bag of the characters before it. It still learns "
        "something, so the loss falls, only slower. `pos_emb` is never called.",
        (Evidence("forward", ("pos_emb", "drop")),),
        find_no_position,
    ),
    BugKind(
        "labels_off_by_one",
        "labels off by one",
        "The targets are shifted one place against the inputs. In the transformer they are "
        "the inputs themselves instead of the next characters: the model learns to copy its "
        "input, which causal attention makes trivial, and the loss plunges toward zero while "
        "it learns nothing about predicting text. In the classifiers each image gets the next "
        "image's label: there is nothing to learn but how often each label occurs. The "
        "model's outputs agree; the loss does not.",
        (Evidence("loss"),),
        find_labels_off_by_one,
    ),
    BugKind(
        "loss_axis",
        "loss normalised over the wrong axis",
        "`log_softmax(dim=1)` normalises each character's score over the positions of the "
        "sequence instead of over the vocabulary: the 'log-probabilities' are not a "
        "distribution over characters, and the loss optimises something else.",
        (Evidence("loss"),),
        find_loss_axis,
    ),
    BugKind(
        "double_softmax",
        "softmax applied before cross_entropy",
        "F.cross_entropy takes logits and applies log-softmax itself. Given probabilities, it "
        "sees scores squashed into [0, 1]: the loss cannot fall much below its starting value "
        "and the gradients are small, so the model learns very slowly.",
        (Evidence("loss"),),
        find_double_softmax,
    ),
    BugKind(
        "not_shuffled",
        "data not shuffled",
        "The batches come in the data's stored order (the digits file cycles 0, 1, ..., 9; "
        "the text is read from its start): the same batches in the same order every epoch. "
        "Consecutive gradients are correlated and the model learns the order's quirks.",
        (Evidence("input"),),
        find_not_shuffled,
    ),
    BugKind(
        "zero_grad_missing",
        "optimizer.zero_grad() missing",
        "backward() adds to .grad. Without zero_grad every step follows the sum of all "
        "gradients so far: steps grow, and old batches dominate the direction. The second "
        "step's parameter gradients already differ.",
        (Evidence("backward"),),
        find_zero_grad_missing,
    ),
    BugKind(
        "step_before_backward",
        "optimizer.step() before loss.backward()",
        "The optimizer steps before this batch's gradients exist; as zero_grad sets them to "
        "None at the start of every step, it never sees a gradient and the weights never "
        "change. The loss stays flat (it only moves with dropout and the batches).",
        (Evidence("update"),),
        find_step_before_backward,
    ),
    BugKind(
        "tiny_clip",
        "gradients clipped to a tiny norm",
        "max_norm=1e-4 instead of 1.0: every gradient is scaled down to norm 1e-4, so SGD "
        "takes steps thousands of times smaller than intended and training crawls. (Adam "
        "divides by the gradient's own scale, so there this would matter much less.)",
        (Evidence("backward"),),
        find_tiny_clip,
    ),
    BugKind(
        "weight_decay",
        "weight decay a thousand times too big",
        "Weight decay pulls every weight toward zero in each step; a thousand times too much "
        "overwhelms the gradient, and the weights shrink instead of learning. The first "
        "update already differs.",
        (Evidence("update"),),
        find_weight_decay,
    ),
    BugKind(
        "warmup_factor",
        "learning-rate warm-up off by a factor",
        "The warm-up forgets to divide by WARMUP_STEPS: the learning rate starts at PEAK_LR "
        "instead of PEAK_LR / WARMUP_STEPS and climbs to WARMUP_STEPS times PEAK_LR. Steps "
        "are far too big when the network is most fragile. The first update differs.",
        (Evidence("update"),),
        find_warmup_factor,
    ),
    BugKind(
        "betas_swapped",
        "Adam's betas swapped",
        "beta1 is the decay of the gradient's running mean (momentum), beta2 of the squared "
        "gradient's. Swapped, the momentum remembers longer than the scale estimate: steps "
        "lag behind the gradient and their size jumps with each batch's noise. Bias "
        "correction makes the first step identical; the second differs.",
        (Evidence("update"),),
        find_betas_swapped,
    ),
    BugKind(
        "dropout_keep",
        "dropout probability used as a keep probability",
        "nn.Dropout(p) zeroes a fraction p of the activations (TensorFlow 1's dropout took a "
        "keep probability instead). p=0.9 drops 90% of them and multiplies the rest by 10: "
        "training is extremely noisy and the network underfits.",
        (Evidence("forward", ("Dropout",)),),
        find_dropout_keep,
    ),
)


def kinds() -> list[BugKind]:
    """Every kind of bug in the catalogue."""
    return list(KINDS)


def get_kind(kind_id: str) -> BugKind:
    """The kind with id ``kind_id``; ``MlabError`` naming the ids when there is none."""
    for k in KINDS:
        if k.id == kind_id:
            return k
    raise MlabError(f"no bug kind {kind_id!r}; the kinds are {', '.join(k.id for k in KINDS)}")


def targets() -> list[str]:
    """The names of the reference scripts a bug can be hidden in."""
    return sorted(p.stem for p in TARGETS_DIR.glob("*.py") if p.stem != "__init__")


def target_path(name: str) -> Path:
    """The reference script ``name``; ``MlabError`` naming the targets when there is none."""
    if name not in targets():
        raise MlabError(f"no bug-hunt target {name!r}; the targets are {', '.join(targets())}")
    return TARGETS_DIR / f"{name}.py"


@cache
def _parsed(name: str) -> Source:
    return Source(target_path(name).read_text(encoding="utf-8"))


def target_source(name: str) -> str:
    """The text of the reference script ``name``."""
    return _parsed(name).text


@cache
def sites(kind_id: str, target: str) -> tuple[Site, ...]:
    """Where a bug of kind ``kind_id`` can go in ``target``."""
    return tuple(get_kind(kind_id).find(_parsed(target)))


def applicable(target: str) -> list[BugKind]:
    """The kinds with at least one site in ``target``, in catalogue order."""
    return [k for k in KINDS if sites(k.id, target)]


def _resolve(evidence: Evidence, site: Site) -> Evidence:
    """``evidence`` with ``ENCLOSING`` replaced by the class holding the edit (by any layer
    when the edit is in no class), and the site's ``feeds``."""
    if ENCLOSING not in evidence.layers:
        return evidence
    if site.cls is None:
        return Evidence(evidence.kind)
    layers = tuple(site.cls if x == ENCLOSING else x for x in evidence.layers)
    return Evidence(evidence.kind, layers, site.feeds)


def draw(target: str, seed: int, kind: str | None = None) -> Bug:
    """The bug that ``seed`` hides in ``target``: a kind among those applicable (or
    ``kind``), then one of its sites. The same arguments always give the same bug."""
    rng = random.Random(f"mlab-bughunt:{target}:{seed}")
    chosen = rng.choice(applicable(target)) if kind is None else get_kind(kind)
    options = sites(chosen.id, target)
    if not options:
        where = [t for t in targets() if sites(chosen.id, t)]
        raise MlabError(
            f"bug kind {chosen.id!r} has no place in target {target!r}; it fits {', '.join(where)}"
        )
    return make_bug(target, chosen.id, rng.randrange(len(options)), seed)


def make_bug(target: str, kind_id: str, site: int, seed: int = 0) -> Bug:
    """The bug of kind ``kind_id`` at its ``site``-th place in ``target`` (``seed`` is only
    recorded)."""
    chosen = get_kind(kind_id)
    options = sites(kind_id, target)
    if not 0 <= site < len(options):
        raise MlabError(
            f"bug kind {kind_id!r} has {len(options)} sites in {target!r}; site={site} is not one"
        )
    original = target_source(target)
    bugged = apply_edits(original, options[site].edits)
    return Bug(
        kind=chosen,
        target=target,
        seed=seed,
        site=site,
        original=original,
        bugged=bugged,
        lines=changed_lines(original, bugged),
        expected=tuple(_resolve(e, options[site]) for e in chosen.evidence),
    )
