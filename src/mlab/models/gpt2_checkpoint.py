"""GPT-2 weights in and out: HuggingFace state dicts and the ``save_pretrained`` directory format.

A ``save_pretrained`` directory holds ``config.json`` (the shape: ``n_layer``, ``n_embd``, ...)
and ``model.safetensors`` (every tensor by name; https://github.com/huggingface/safetensors: a
JSON header of names, dtypes, shapes and byte offsets, then the raw bytes, with no pickle to
execute). HuggingFace writes a ``GPT2LMHeadModel``'s tensors as ``transformer.h.0.attn...``
and leaves out ``lm_head.weight``, which is tied to ``transformer.wte.weight``. The
checkpoint OpenAI's ``gpt2`` has on the hub was saved from a ``GPT2Model``: its names have no
``transformer.`` prefix, and it still carries the causal-mask buffers ``h.N.attn.bias`` (and
``attn.masked_bias``) that older versions of transformers kept. :func:`hf_gpt2_key` maps
all of these onto our names; the layouts already agree (both keep OpenAI's ``Conv1D``
``(in, out)`` weights), so no tensor is transposed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import Tensor

from mlab.errors import ConfigError, DataError, StateDictError
from mlab.models.gpt2 import GPT2Config, GPT2LMHeadModel
from mlab.models.resnet import load_checked_state_dict

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "from_pretrained",
    "hf_gpt2_key",
    "load_hf_state_dict",
    "save_pretrained",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TIED = "lm_head.weight"
_BASE_MODEL = re.compile(r"(wte|wpe|ln_f|h\.\d+)\..+")
_MASK_BUFFER = re.compile(r"(transformer\.)?h\.\d+\.attn\.(bias|masked_bias)")


def hf_gpt2_key(name: str) -> str | None:
    """Our name for the tensor that a HuggingFace GPT-2 checkpoint calls ``name``, or None
    for the old causal-mask buffers (``h.N.attn.bias``, ``h.N.attn.masked_bias``), which
    hold no weights.

    ``GPT2LMHeadModel`` names (``transformer.…``, ``lm_head.weight``) are ours already; a
    ``GPT2Model`` name (``wte.weight``, ``h.3.mlp.c_fc.bias``, ``ln_f.bias``) gets the
    ``transformer.`` prefix. Anything else raises ``DataError`` naming it.

    >>> hf_gpt2_key("h.0.attn.c_attn.weight"), hf_gpt2_key("h.0.attn.bias")
    ('transformer.h.0.attn.c_attn.weight', None)
    """
    if _MASK_BUFFER.fullmatch(name):
        return None
    if name == TIED or (name.startswith("transformer.") and _BASE_MODEL.fullmatch(name[12:])):
        return name
    if _BASE_MODEL.fullmatch(name):
        return "transformer." + name
    raise DataError(
        f"{name!r} is not a tensor of HuggingFace's GPT2Model or GPT2LMHeadModel (a GPT-2 "
        "checkpoint with another head, such as GPT2ForSequenceClassification's 'score', "
        "does not load into a language model)"
    )


def _layers(names: Iterable[str]) -> int:
    found = {int(m[1]) for n in names if (m := re.search(r"\bh\.(\d+)\.", n))}
    return max(found) + 1 if found else 0


def load_hf_state_dict(model: GPT2LMHeadModel, state_dict: Mapping[str, Tensor]) -> None:
    """Load a HuggingFace GPT-2 state dict (``GPT2LMHeadModel``'s or ``GPT2Model``'s, with or
    without the tied ``lm_head.weight``) into ``model``, strictly: every name renamed by
    :func:`hf_gpt2_key`, shapes checked, nothing changed unless everything fits.

    A tied head stays tied: ``lm_head.weight``, when present, must equal the token
    embedding. A checkpoint of another size raises ``StateDictError`` naming the keys and
    both layer counts.
    """
    renamed = {new: v for k, v in state_dict.items() if (new := hf_gpt2_key(k)) is not None}
    head = renamed.pop(TIED, None)
    embedding = renamed.get("transformer.wte.weight")
    if head is not None and embedding is not None and not torch.equal(head, embedding):
        raise StateDictError(
            "lm_head.weight differs from transformer.wte.weight: this GPT-2 ties its head to "
            "the token embedding, so a checkpoint with an untied head does not fit"
        )
    try:
        load_checked_state_dict(GPT2LMHeadModelWeights(model), renamed)
    except StateDictError as err:
        ours, theirs = model.config.n_layer, _layers(renamed)
        if ours != theirs:
            raise StateDictError(
                f"the checkpoint has {theirs} layers but the model {ours}: build the model "
                f"from the checkpoint's config.json (from_pretrained does). {err}"
            ) from None
        raise


class GPT2LMHeadModelWeights(torch.nn.Module):
    """A GPT-2's tensors without the tied head's second name, for the strict loader."""

    def __init__(self, model: GPT2LMHeadModel) -> None:
        super().__init__()
        self.transformer = model.transformer


def save_pretrained(model: GPT2LMHeadModel, directory: str | Path) -> Path:
    """Write ``model`` as HuggingFace does: ``config.json`` and ``model.safetensors`` (names
    ``transformer.…``, the tied head left out) in ``directory``, created if needed.
    ``transformers.GPT2LMHeadModel.from_pretrained(directory)`` loads it. Returns the path."""
    from safetensors.torch import save_file

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    config = model.config.to_hf_dict()
    (path / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k != TIED}
    save_file(tensors, str(path / WEIGHTS_NAME), metadata={"format": "pt"})
    return path


def _resolve(name_or_path: str | Path) -> Path:
    """A local directory as is; otherwise a hub name (``"gpt2"``), fetched into the
    HuggingFace cache (or found there when offline)."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if path.exists() or str(name_or_path).startswith((".", "/")):
        raise DataError(f"{str(path)!r} is not a directory holding {CONFIG_NAME}")
    from huggingface_hub import snapshot_download  # comes with transformers (the nlp extra)

    try:
        return Path(
            snapshot_download(str(name_or_path), allow_patterns=[CONFIG_NAME, WEIGHTS_NAME])
        )
    except Exception as err:  # offline, unknown name, no network: one message for all
        raise DataError(
            f"{str(name_or_path)!r} is neither a local directory nor a model found on the "
            f"HuggingFace hub or in its cache ({type(err).__name__}: {err}). Give the path of "
            "a directory written by save_pretrained, or go online once to fetch 'gpt2'"
        ) from None


def from_pretrained(name_or_path: str | Path) -> GPT2LMHeadModel:
    """A GPT-2 built from a ``save_pretrained`` directory (ours or HuggingFace's): the shape
    from its ``config.json``, the weights from its ``model.safetensors``. A hub name such as
    ``"gpt2"`` is downloaded (once, into HuggingFace's cache). The model is in eval mode.

    A missing file, a corrupt or truncated safetensors file, or a config this GPT-2 does not
    support raises ``DataError`` / ``ConfigError`` naming the file and the fix."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = _resolve(name_or_path)
    config_file, weights_file = path / CONFIG_NAME, path / WEIGHTS_NAME
    for file in (config_file, weights_file):
        if not file.is_file():
            raise DataError(
                f"{file} is missing: a save_pretrained directory holds {CONFIG_NAME} and "
                f"{WEIGHTS_NAME} (older checkpoints with only pytorch_model.bin: load them "
                "with transformers and save_pretrained them again)"
            )
    try:
        config = GPT2Config.from_hf(json.loads(config_file.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError, KeyError) as err:
        raise ConfigError(f"{config_file} is not a valid GPT-2 config.json: {err}") from None
    try:
        state = load_file(str(weights_file))
    except (SafetensorError, OSError) as err:
        raise DataError(
            f"{weights_file} is not a readable safetensors file ({err}): it is corrupt or "
            "was cut short; save or download it again"
        ) from None
    model = GPT2LMHeadModel(config)
    load_hf_state_dict(model, state)
    return model.eval()
