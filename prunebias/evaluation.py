"""Answers of a model under a list of masks (none = the unpruned reference) on one target, one model load.

Every mask answers exactly the same prompts with the same seeds (the first
``evaluation.samples_per_name`` samples of each name, seeds salted by "eval"), so each
pruned answer has an unpruned twin in the reference: common random numbers, and a
paired comparison.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from prunebias.answers import PROMPT_COLUMNS, generate_for_contexts
from prunebias.files import read_parquet, write_json, write_parquet
from prunebias.masks import Mask, check_model, read_mask, read_meta
from prunebias.modeling import load_model, read_identity
from prunebias.perplexity import perplexity
from prunebias.pruning import pruned
from prunebias.sampling import Sampling


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


def evaluation_job(groups: Sequence[EvalGroup], model_dir: str, prompt_path: str, text_path: str, params: Any,
                   threads: int, log: Any) -> None:
    """One evaluation job (rules ``evaluate_pruned`` and ``evaluate_reference``): one target,
    the masks of one source (or none), one model load. Files in, files out.

    Each mask group is read only when it is applied (one group's masks in memory at a
    time); every mask is checked against the model before the model is loaded. ``params``
    carries contexts, samples_per_name, eval_names, ablation, sampling, dtype, device and
    perplexity_max_tokens.
    """
    identity = read_identity(model_dir)
    for group in groups:
        for path in group.masks:
            check_model(Mask(read_meta(path), {}), identity, path)
    df = read_parquet(prompt_path, PROMPT_COLUMNS)
    target = df["context"].iloc[0]
    targets = {target: eval_prompts(df, params.samples_per_name, params.eval_names)}
    text = Path(text_path).read_text()
    model, tok = load_model(model_dir, params.dtype, params.device, threads)
    for group in groups:
        t0 = time.perf_counter()
        masks = [read_mask(p) for p in group.masks]
        kind = masks[0].kind if masks else None
        answers, infos = evaluate(model, tok, masks or [None], params.ablation, targets, params.contexts,
                                  Sampling(**params.sampling), text, params.perplexity_max_tokens)
        ablation = params.ablation if kind == "heads" else ("none" if kind is None else "zero")
        extra = {**group.labels, "ablation": ablation}
        mask_meta = ({k: v for k, v in masks[0].meta.items() if k not in ("counts", "shapes")} if masks else {})
        write_parquet(answers[target].assign(**extra), group.answers,
                      metadata={"model": identity, "mask": mask_meta, **extra})
        write_json({"draws": infos, **extra, "target": target, "kind": kind, "sources": mask_meta.get("sources"),
                    "method_params": mask_meta.get("method")}, group.info)
        log.info("%s %s %s on %s: %d mask(s), perplexity %s, %d answers in %.1f s", group.labels["method"],
                 group.labels["setting"], group.labels["source"], target, len(infos),
                 [round(i["perplexity"], 2) for i in infos], len(answers[target]), time.perf_counter() - t0)
