"""How much host memory a model job asks SLURM for, derived from the model's size.

A cluster kills a job that uses more than its ``mem_mb`` and leaves idle what it asks for
beyond that, so one number for every job and every model is wrong both ways (the
default model's positive control peaked at 6.5 GB against 6 GB asked; an 8B model's
attribution needs tens of GB of host memory for its float32 scores). The size is read
from the model's ``config.json`` (no weights are opened, nothing is imported from torch):
the materialized model's once ``prepare_model`` has run (Snakemake evaluates resources
when it submits a job), else the source's where it is a local directory or a cached hub
model (dry-runs), else unknown.

Per job role, in MB, times 1.2 for headroom:

- ``infer`` (generation, caching, scoring, evaluation): the interpreter, libraries and a
  batch (``BASE_MB``) plus the weights in the job's dtype (on a GPU job they pass
  through host memory while loading) plus the masks the job holds at once (``masks``:
  one byte per decoder linear weight each, e.g. an evaluation's control draws);
- ``prepare`` (``prepare_model``): two copies of the weights in their stored dtype (the
  size of a GGUF source is not read: ``UNKNOWN_MB``, ample for small GGUF models);
- ``attribution`` (``score_attribution``, the positive control): ``infer`` plus the
  float32 scores -W * dB/dW and the SNIP importance of every decoder linear weight
  (8 bytes each, kept on the host), plus, on a CPU job, the backward pass's activations:
  the candidate pass's logits over the vocabulary, scaled from the default model's
  measured peak (``CPU_GRAD_MB_PER_LOGIT``).
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from prunebias.errors import ConfigError

BASE_MB = 1500
HEADROOM = 1.2
UNKNOWN_MB = 8000  # the model's size is not known yet (a hub model not cached): a dry-run's placeholder
# The default model's score_attribution of purchase-house (SmolLM2-135M on CPU, batch 8 x
# 12 candidates, vocabulary 49,152; long candidates such as "100,000,000") peaked at 7.7 GB,
# 4.4 GB above its weights, scores and interpreter: per (batch x candidate x vocabulary
# entry) of the candidate pass, with room.
CPU_GRAD_MB_PER_LOGIT = 4800 / (8 * 12 * 49152)
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
ROLES = ("infer", "prepare", "attribution")


@dataclass(frozen=True)
class ModelSize:
    """Parameter counts of a decoder-only model, from its config."""

    n_params: int
    n_linear: int  # weights of the decoder layers' linear maps (what masks and attribution score)
    vocab: int
    stored_bytes: int = 4  # per weight as saved (config ``torch_dtype``)


def size_from_config(cfg: Mapping[str, Any]) -> ModelSize:
    """Llama-like parameter counts (the architectures ``check_architecture`` accepts):
    embeddings (and an untied output head), per layer the attention's q, k, v, o maps and
    the gated MLP's three maps, and the norms."""
    h, layers = int(cfg["hidden_size"]), int(cfg["num_hidden_layers"])
    heads = int(cfg["num_attention_heads"])
    kv = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or h // heads)
    inter, vocab = int(cfg["intermediate_size"]), int(cfg["vocab_size"])
    attn = h * heads * head_dim * 2 + h * kv * head_dim * 2
    linear = layers * (attn + 3 * h * inter)
    embed = vocab * h * (1 if cfg.get("tie_word_embeddings", False) else 2)
    stored = DTYPE_BYTES.get(str(cfg.get("torch_dtype") or cfg.get("dtype") or "float32"), 4)
    return ModelSize(n_params=linear + embed + layers * 2 * h + h, n_linear=linear, vocab=vocab, stored_bytes=stored)


def read_size(model_dir: str | Path) -> ModelSize | None:
    """The size of the model whose ``config.json`` is in ``model_dir``; None if it is not there
    or lacks a field."""
    path = Path(model_dir) / "config.json"
    try:
        return size_from_config(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def source_size(kind: str, location: str) -> ModelSize | None:
    """The size of a model source before ``prepare_model``: a local directory's config, or a
    hub model's in the local Hugging Face cache; None for a GGUF file or an uncached model."""
    if kind == "dir":
        return read_size(location)
    if kind == "hub":
        try:
            from huggingface_hub import try_to_load_from_cache  # here: only a hub source needs huggingface_hub

            hit = try_to_load_from_cache(location, "config.json")
        except Exception:  # an old or missing hub client: unknown, not an error
            return None
        return read_size(Path(hit).parent) if isinstance(hit, str) else None
    return None


# GGUF metadata value types: fixed-size ones by struct format; 8 is a string, 9 an array
_GGUF_FIXED = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def gguf_block_count(path: str | Path) -> int | None:
    """``<arch>.block_count`` from a GGUF file's metadata, reading the header only (the
    ``gguf`` package's reader maps every tensor: seconds for a dry-run)."""
    with open(path, "rb") as f:
        def take(fmt: str) -> Any:
            size = struct.calcsize("<" + fmt)
            return struct.unpack("<" + fmt, f.read(size))[0]

        def text() -> str:
            return f.read(take("Q")).decode("utf-8", "replace")

        def value(kind: int) -> Any:
            if kind in _GGUF_FIXED:
                return take(_GGUF_FIXED[kind])
            if kind == 8:
                return text()
            if kind == 9:
                inner, count = take("I"), take("Q")
                if inner in _GGUF_FIXED:  # skip the array without reading it element by element
                    f.seek(count * struct.calcsize("<" + _GGUF_FIXED[inner]), 1)
                else:
                    for _ in range(count):
                        value(inner)
                return None
            raise ValueError(f"unknown GGUF value type {kind}")

        if f.read(4) != b"GGUF":
            raise ValueError("not a GGUF file")
        take("I")  # version
        take("Q")  # tensor count
        found: dict[str, Any] = {}
        for _ in range(take("Q")):
            key = text()
            found[key] = value(take("I"))
            arch = found.get("general.architecture")
            if arch and f"{arch}.block_count" in found:
                return int(found[f"{arch}.block_count"])
    return None


def source_layers(kind: str, location: str, gguf_file: str | None = None) -> int | None:
    """The decoder layer count of a model source before ``prepare_model``, without its
    weights: ``num_hidden_layers`` of a directory's (or a cached hub model's) config, or the
    ``<arch>.block_count`` of a GGUF file's header; None when it cannot be told."""
    if kind == "gguf" and gguf_file:
        try:
            return gguf_block_count(Path(location) / gguf_file)
        except (OSError, ValueError, struct.error):  # an unusual header: prepare_model will tell
            return None
    if kind == "dir":
        cfg = Path(location) / "config.json"
    elif kind == "hub":
        try:
            from huggingface_hub import try_to_load_from_cache  # here: only a hub source needs huggingface_hub

            hit = try_to_load_from_cache(location, "config.json")
        except Exception:
            return None
        if not isinstance(hit, str):
            return None
        cfg = Path(hit)
    else:
        return None
    try:
        return int(json.loads(cfg.read_text())["num_hidden_layers"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_plant_layer(layer: int, n_layers: int | None, source: str, where: str) -> None:
    """A plant's layer must be one of its source model's decoder layers (unknown: the
    plant_model job checks it when it loads the model)."""
    if n_layers is not None and not 0 <= layer < n_layers:
        raise ConfigError(where, f"layer {layer} is not a layer of '{source}', which has {n_layers} (0-{n_layers - 1})",
                          f"choose a layer from 0 to {n_layers - 1} (the default plants use a late layer, "
                          "about three quarters deep)")


def weight_bytes(dtype: str, on_gpu: bool) -> int:
    """Bytes per weight as the job holds them: ``auto`` is bf16 on a GPU and float32 on a CPU
    (``modeling.choose_dtype``; CPUs with native bf16 use less)."""
    if dtype == "auto":
        return 2 if on_gpu else 4
    return DTYPE_BYTES[dtype]


def job_mem_mb(size: ModelSize | None, role: str, *, on_gpu: bool, dtype: str = "auto",
               grad_batch: int = 8, grid_size: int = 12, masks: int = 0) -> int:
    """Host memory (MB) of one model job of ``role`` (module docstring); ``UNKNOWN_MB`` when
    the size is unknown. ``grad_batch`` x ``grid_size``: the attribution's candidate pass;
    ``masks``: neuron masks held at once."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    if size is None:
        return UNKNOWN_MB
    mb = 2.0 ** -20
    if role == "prepare":  # the weights as stored, loaded and written (not the job's dtype)
        need = BASE_MB + 2 * size.n_params * size.stored_bytes * mb
    else:
        need = BASE_MB + (size.n_params * weight_bytes(dtype, on_gpu) + masks * size.n_linear) * mb
    if role == "attribution":
        need += size.n_linear * 8 * mb
        if not on_gpu:
            need += CPU_GRAD_MB_PER_LOGIT * grad_batch * grid_size * size.vocab
    return int(math.ceil(need * HEADROOM / 100) * 100)
