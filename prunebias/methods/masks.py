"""Mask files: which weights or heads to remove (or which residual direction to project
out), in a compact, self-describing format.

A mask is one ``.npz`` file (numpy's zip of arrays, compressed):

- ``__meta__``: a JSON string with ``format`` ("prunebias-mask/1"), ``kind``
  ("neurons" | "heads" | "directions"), ``model`` (the identity from ``prunebias_model.json``),
  ``method`` details (direction, p_black, p_white, selection / score, k), ``sources``
  (the contexts it was learned on), ``combine`` ("single" | "pooled" | "common"),
  per-module ``counts`` and ``shapes``, and ``n_pruned`` / ``n_total``.
- neuron masks: one array per linear module, key ``layers.{L}.{module}``
  (module = q_proj ... down_proj): the boolean mask of the weight matrix (out x in),
  bit-packed with ``np.packbits`` over the flattened matrix (1 = prune).
- head masks: ``heads``, a bool array (layers x query heads), and ``scores``, the
  float32 ranking scores the heads were chosen by.
- race directions (kind ``directions``): ``direction``, a float32 vector (d_model) to
  project out of the residual stream (``prunebias.methods.directions``); nothing is counted as
  pruned (``n_pruned`` and ``n_total`` 0), the meta's ``method`` names its layer.
- cross-fitting (``localization.cross_fit``): the masks of the further folds (fold 1, ...,
  each learned on other names) sit beside fold 0's arrays under ``fold{k}/`` keys, their
  counts in the meta's ``fold_counts``; ``folds`` lists each fold's learning and evaluation
  names. Fold 0 is *the* mask (exported, scored against a plant, plotted); the others
  exist so that every name is evaluated under a mask that never saw it.

``read_mask`` returns the meta and the unpacked boolean arrays (and the float ones:
``scores``, ``direction``); ``check_model`` refuses
a mask made for another model.
"""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from prunebias.errors import ConfigError
from prunebias.files import atomic_path

FORMAT = "prunebias-mask/1"


@dataclass
class Mask:
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]  # bool arrays (neurons: per module; heads: "heads") + "scores"; directions: "direction"

    @property
    def kind(self) -> str:
        return self.meta["kind"]


def fold_key(fold: int, key: str) -> str:
    """The npz key of one array of a fold (fold 0: the key itself)."""
    return key if fold == 0 else f"fold{fold}/{key}"


def n_folds(meta: dict[str, Any]) -> int:
    """How many cross-fitting folds a mask file holds (1 without cross-fitting)."""
    return 1 + len(meta.get("fold_counts", []))


def _pack(kind: str, arrays: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, int], dict[str, list[int]]]:
    payload: dict[str, np.ndarray] = {}
    counts, shapes = {}, {}
    for key, arr in arrays.items():
        if arr.dtype == np.bool_:
            counts[key] = int(arr.sum())
            shapes[key] = list(arr.shape)
            payload[key] = np.packbits(arr.reshape(-1)) if kind == "neurons" else arr
        else:
            payload[key] = arr.astype(np.float32)
    return payload, counts, shapes


def write_mask(path: str | Path, kind: str, meta: dict[str, Any], arrays: dict[str, np.ndarray],
               folds: Sequence[dict[str, np.ndarray]] = ()) -> None:
    """Write a mask atomically; fills counts, shapes and totals into the meta.

    ``folds``: the masks of cross-fitting folds 1, 2, ... (``arrays`` is fold 0), with the
    same keys and shapes.
    """
    payload, counts, shapes = _pack(kind, arrays)
    fold_counts = []
    for k, extra in enumerate(folds, start=1):
        more, c, s = _pack(kind, extra)
        if s != shapes:
            raise ValueError(f"fold {k} has other arrays or shapes than fold 0")
        payload.update({fold_key(k, key): v for key, v in more.items()})
        fold_counts.append(c)
    _write_payload(path, kind, meta, payload, counts, shapes, fold_counts)


def _write_payload(path: str | Path, kind: str, meta: dict[str, Any], payload: dict[str, np.ndarray],
                   counts: dict[str, int], shapes: dict[str, list[int]],
                   fold_counts: Sequence[dict[str, int]] = ()) -> None:
    full = {**meta, "format": FORMAT, "kind": kind, "counts": counts, "shapes": shapes,
            "n_pruned": int(sum(counts.values())), "n_total": int(sum(int(np.prod(s)) for s in shapes.values()))}
    if fold_counts:
        full["fold_counts"] = list(fold_counts)
    payload = {**payload, "__meta__": np.array(json.dumps(full, sort_keys=True))}
    with atomic_path(path) as tmp:
        _write_npz(tmp, payload)


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like ``np.savez_compressed`` but byte-reproducible (fixed zip timestamps, sorted keys)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


@contextlib.contextmanager
def _opened(path: str | Path) -> Iterator[tuple[dict[str, Any], Any]]:
    """(meta, the lazily read npz) of a mask file; errors name the file and the fix."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            meta = json.loads(str(z["__meta__"]))
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')!r}")
            yield meta, z
    except FileNotFoundError:
        raise ConfigError(str(p), "mask file not found", "run snakemake to build it") from None
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(str(p), f"not a readable prunebias mask ({exc.__class__.__name__}: {exc})",
                          "delete the file and rerun snakemake") from exc


def read_mask(path: str | Path, fold: int = 0) -> Mask:
    """Read a mask file (one cross-fitting fold of it), unpacking bits; errors name the file.

    The meta's ``counts`` and ``n_pruned`` are those of the fold read.
    """
    with _opened(path) as (meta, z):
        if not 0 <= fold < n_folds(meta):
            raise ConfigError(str(path), f"the mask holds {n_folds(meta)} fold(s), not fold {fold}",
                              "delete the stale masks (results/masks) and rerun snakemake")
        if fold:
            counts = meta["fold_counts"][fold - 1]
            meta = {**meta, "counts": counts, "n_pruned": int(sum(counts.values())), "fold": fold}
        arrays = {}
        for key, shape in meta["shapes"].items():
            raw = z[fold_key(fold, key)]
            if meta["kind"] == "neurons":
                n = int(np.prod(shape))
                arrays[key] = np.unpackbits(raw, count=n).astype(bool).reshape(shape)
            else:
                arrays[key] = raw.astype(bool)
        prefix = "" if fold == 0 else fold_key(fold, "")
        for name in z.files:  # float arrays (scores, a direction): every other key of the fold
            key = name.removeprefix(prefix)
            if name.startswith(prefix) and "/" not in key and key != "__meta__" and key not in meta["shapes"]:
                arrays[key] = z[name]
    return Mask(meta, arrays)


def read_folds(path: str | Path) -> list[Mask]:
    """Every cross-fitting fold of a mask file (one Mask without cross-fitting)."""
    return [read_mask(path, k) for k in range(n_folds(read_meta(path)))]


def read_meta(path: str | Path) -> dict[str, Any]:
    """Only the meta of a mask file (no array is read)."""
    with _opened(path) as (meta, _):
        return meta


def check_model(mask: Mask, identity: dict[str, Any], where: str) -> None:
    """Refuse a mask learned on a different model (name, config hash or shapes)."""
    m = mask.meta.get("model", {})
    for key in ("config_sha256", "n_layers", "n_heads"):
        if m.get(key) != identity.get(key):
            raise ConfigError(where, f"mask was made for model '{m.get('name')}' ({key} {m.get(key)!r}), "
                              f"not for '{identity.get('name')}' ({identity.get(key)!r})",
                              "delete the stale masks (results/masks) and rerun snakemake")


def intersect_neuron_masks(masks: list[Mask]) -> dict[str, np.ndarray]:
    """The weights present in *every* mask (the common neuron mask of a pool), in memory."""
    keys = [k for k in masks[0].arrays if k != "scores"]
    return {k: np.logical_and.reduce([m.arrays[k] for m in masks]) for k in keys}


def write_common_neuron_mask(paths: Sequence[str | Path], out: str | Path, meta: dict[str, Any]) -> int:
    """Write the common neuron mask of the member files ``paths`` (``intersect_neuron_masks``
    on disk) and return its count, in bounded memory: the packed bits (1 bit per weight)
    of the result, ANDed with one member's one matrix at a time, so the peak is about one
    packed mask, whatever the number of members (8B model: 0.9 GB instead of 7 GB per
    unpacked member). Every member must come from the first one's model and shapes and hold
    as many cross-fitting folds; each fold is intersected with the same fold of the others."""
    first = read_meta(paths[0])
    if first["kind"] != "neurons":
        raise ConfigError(str(paths[0]), f"not a neuron mask ({first['kind']})", "combine neuron masks only")
    shapes, folds = first["shapes"], n_folds(first)
    keys = [fold_key(f, k) for f in range(folds) for k in shapes]
    with _opened(paths[0]) as (_, z):
        acc = {k: np.array(z[k], dtype=np.uint8) for k in keys}
    for p in paths[1:]:
        with _opened(p) as (m, z):
            check_model(Mask(m, {}), first.get("model", {}), str(p))
            if m["kind"] != "neurons" or m["shapes"] != shapes or n_folds(m) != folds:
                raise ConfigError(str(p), "a member mask of another kind, shape or number of folds than "
                                  + str(paths[0]), "delete the stale masks (results/masks) and rerun snakemake")
            for k in keys:
                np.bitwise_and(acc[k], z[k], out=acc[k])
    counts = [{k: int(np.bitwise_count(acc[fold_key(f, k)]).sum(dtype=np.int64)) for k in shapes}
              for f in range(folds)]
    _write_payload(out, "neurons", meta, acc, counts[0], shapes, counts[1:])
    return sum(counts[0].values())


def combine_mem_mb(path: str | Path, attempt: int = 1) -> int:
    """Memory for combining neuron masks like the member ``path``: twice its packed size
    (the result and one matrix being read, with room) plus the interpreter, per attempt."""
    try:
        n = read_meta(path)["n_total"]
    except ConfigError:  # not built yet (a dry-run): a default
        return 1000 * attempt
    return int((2 * n / 8 / 2**20 + 500) * attempt)


def jaccard(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> tuple[float, float, int, int]:
    """(Jaccard, chance Jaccard, |A|, |B|) over all arrays of two masks."""
    inter = sum(int((a[k] & b[k]).sum()) for k in a)
    na, nb = sum(int(v.sum()) for v in a.values()), sum(int(v.sum()) for v in b.values())
    total = sum(v.size for v in a.values())
    union = na + nb - inter
    expected = na * nb / total if total else 0.0
    chance = expected / (na + nb - expected) if na + nb - expected > 0 else float("nan")
    return (inter / union if union else float("nan")), chance, na, nb


def pruned_by_module(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Pruned and total entries per (layer, module) of a neuron mask, from its meta alone
    (``counts`` and ``shapes``: no array is read, so this is cheap at any model size)."""
    rows = []
    for key, shape in meta["shapes"].items():
        _, layer, module = key.split(".")
        total = int(np.prod(shape))
        rows.append({"layer": int(layer), "module": module, "pruned": int(meta["counts"][key]), "total": total})
    return rows
