"""Answers of a model under a list of masks (none = the unpruned reference) on one target, one model load.

Every mask answers exactly the same prompts with the same seeds (the first
``evaluation.samples_per_name`` samples of each name, seeds salted by "eval"), so each
pruned answer has an unpruned twin in the reference: common random numbers, and a
paired comparison. With cross-fitting (``localization.cross_fit``) a mask file holds one
mask per fold, and each fold's mask answers only the names of its fold: every name once,
under a mask that did not learn on it; the answers carry a ``fold`` column.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from prunebias.audit.answers import PROMPT_COLUMNS, generate_for_contexts
from prunebias.errors import ConfigError
from prunebias.files import read_parquet, write_json, write_parquet
from prunebias.methods.masks import Mask, check_model, jaccard, n_folds, read_mask, read_meta
from prunebias.model.modeling import load_model, read_identity
from prunebias.audit.names import Fold
from prunebias.model.perplexity import perplexity
from prunebias.model.pruning import pruned
from prunebias.model.sampling import Sampling


def eval_prompts(prompts: pd.DataFrame, samples_per_name: int, names: Sequence[str] | None = None) -> pd.DataFrame:
    """The evaluation subset of a context's prompts (optionally only the held-out ``names``)."""
    keep = prompts["sample"] < samples_per_name
    if names is not None:
        keep &= prompts["name"].isin(list(names))
    return prompts[keep].reset_index(drop=True)


def evaluate(model: Any, tok: Any, masks: Sequence[Mask | None], ablation: str, targets: dict[str, pd.DataFrame],
             contexts: dict[str, dict], settings: Sampling, text: str, max_tokens: int
             ) -> tuple[dict[str, pd.DataFrame], list[dict[str, Any]]]:
    """Answers per target (a ``draw`` column numbers the masks) and one info dict per mask.

    Each mask is applied once, answers every target and is undone exactly before the next.
    """
    frames: dict[str, list[pd.DataFrame]] = {t: [] for t in targets}
    infos = []
    for draw, mask in enumerate(masks):
        # no mask: the reference answers with the model as loaded (nothing zeroed)
        with (contextlib.nullcontext(0) if mask is None else pruned(model, mask, ablation)) as n_zeroed:
            ppl = perplexity(model, tok, text, max_tokens=max_tokens)
            got = generate_for_contexts(model, tok, targets, settings, "eval", contexts)
            for target in targets:
                frames[target].append(got[target].assign(draw=draw))
        meta = mask.meta if mask is not None else {}
        infos.append({"draw": draw, "perplexity": ppl, "n_zeroed": int(n_zeroed),
                      "n_pruned": int(meta.get("n_pruned", 0)), "n_total": int(meta.get("n_total", 0))})
    return {t: pd.concat(f, ignore_index=True) for t, f in frames.items()}, infos



@dataclass(frozen=True)
class EvalGroup:
    """One mask (or the reference, ``masks`` empty) and its control draws evaluated on one
    target: the files it reads and writes. ``labels`` (method, setting, source) become
    columns and metadata beside the answers."""

    labels: dict[str, str]
    masks: list[str]
    answers: str
    info: str


def merge_fold_infos(per_fold: Sequence[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One info dict per draw from the folds' (fold 0's counts; the perplexity is the mean
    over the folds' masks, each fold's beside it)."""
    out = []
    for draws in zip(*per_fold):
        info = dict(draws[0])
        if len(draws) > 1:
            info["perplexity"] = float(sum(d["perplexity"] for d in draws) / len(draws))
            info["perplexity_folds"] = [d["perplexity"] for d in draws]
            info["n_pruned_folds"] = [d["n_pruned"] for d in draws]
        out.append(info)
    return out


def fold_overlap(path: str) -> float:
    """Jaccard overlap of a mask file's first two folds (NaN with one fold): how much of
    what a method finds depends on which names it learned on."""
    meta = read_meta(path)
    if n_folds(meta) < 2 or meta["kind"] == "directions":  # a direction's folds: its meta's method.fold_cosine
        return float("nan")
    a, b = (read_mask(path, k).arrays for k in (0, 1))
    keys = [k for k in a if k != "scores"]
    return jaccard({k: a[k] for k in keys}, {k: b[k] for k in keys})[0]


def evaluation_job(groups: Sequence[EvalGroup], model_dir: str, prompt_path: str, text_path: str, params: Any,
                   threads: int, log: Any) -> None:
    """One evaluation job (rules ``evaluate_pruned`` and ``evaluate_reference``): one target,
    the masks of one source (or none), one model load. Files in, files out.

    Each mask group is read only when it is applied (one group's masks, one fold, in memory
    at a time); every mask is checked against the model (and the folds) before the model
    is loaded. ``params`` carries contexts, samples_per_name, folds (each fold's evaluated
    names), ablation, sampling, dtype, device and perplexity_max_tokens.

    The reference answers fold by fold too: each fold's names in the same batches as under
    that fold's masks. In bfloat16 a batch's padding moves the logits, so a reference batched
    over every name differs from one batched per fold (22% of the answers on a planted
    model, benchmarks/RESULTS.md): per fold, a pruned answer and its reference twin differ
    by the mask only.
    """
    folds: list[Fold] = list(params.folds)
    identity = read_identity(model_dir)
    for group in groups:
        for path in group.masks:
            meta = read_meta(path)
            check_model(Mask(meta, {}), identity, path)
            if n_folds(meta) != len(folds):
                raise ConfigError(path, f"the mask holds {n_folds(meta)} fold(s), the config {len(folds)}",
                                  "delete the stale masks (results/masks) and rerun snakemake")
    df = read_parquet(prompt_path, PROMPT_COLUMNS)
    target = df["context"].iloc[0]
    text = Path(text_path).read_text()
    model, tok = load_model(model_dir, params.dtype, params.device, threads)
    for group in groups:
        t0 = time.perf_counter()
        frames, per_fold, kind, mask_meta = [], [], None, {}
        for k, fold in enumerate(folds):
            targets = {target: eval_prompts(df, params.samples_per_name, fold.evaluate)}
            masks = [read_mask(p, k) for p in group.masks]
            answers, infos = evaluate(model, tok, masks or [None], params.ablation, targets, params.contexts,
                                      Sampling(**params.sampling), text, params.perplexity_max_tokens)
            frames.append(answers[target].assign(fold=k))
            per_fold.append(infos)
            if k == 0 and masks:
                kind = masks[0].kind
                mask_meta = {key: v for key, v in masks[0].meta.items() if key not in ("counts", "shapes")}
        infos = merge_fold_infos(per_fold)
        ablation = {"heads": params.ablation, "directions": "project", None: "none"}.get(kind, "zero")
        extra = {**group.labels, "ablation": ablation}
        got = pd.concat(frames, ignore_index=True)
        write_parquet(got.assign(**extra), group.answers, metadata={"model": identity, "mask": mask_meta, **extra})
        overlap = fold_overlap(group.masks[0]) if group.masks and len(folds) > 1 else float("nan")
        write_json({"draws": infos, **extra, "target": target, "kind": kind, "sources": mask_meta.get("sources"),
                    "method_params": mask_meta.get("method"), "folds": len(per_fold), "fold_jaccard": overlap},
                   group.info)
        log.info("%s %s %s on %s: %d mask(s), %d fold(s), perplexity %s, %d answers in %.1f s",
                 group.labels["method"], group.labels["setting"], group.labels["source"], target, len(infos),
                 len(per_fold), [round(i["perplexity"], 2) for i in infos], len(got), time.perf_counter() - t0)
