"""Side effects of a mask beyond the audit: lm-evaluation-harness tasks on the unpruned
and on pruned models, compared item by item.

The pruned model is the unpruned one with the mask applied in place
(``prunebias.model.pruning.pruned``) and handed to lm-eval's Hugging Face wrapper, so no
weights are written. Both models answer the same items, so each difference is paired:
its CI resamples the items' clusters (``cluster`` in a local task's documents, e.g. the
name pair of ``name_choice_race``; the item otherwise). lm-eval's own standard errors of
each model's score are kept beside it.

Tasks are local YAML files in lm-eval's format (``dataset_path: json`` with
``data_files``; relative paths are resolved against the YAML's folder) or names of
registered lm-eval tasks whose datasets are in the local Hugging Face cache: the job
runs offline, and a dataset that is not cached stops it with an error naming it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from prunebias.errors import ConfigError
from prunebias.workflow.paths import control_path, mask_path

TASK_FILE_SUFFIXES = (".yaml", ".yml")
COLUMNS = ["task", "metric", "mask", "control_of", "n_items", "unpruned", "unpruned_stderr", "pruned", "pruned_stderr",
           "difference", "difference_ci_low", "difference_ci_high", "higher_is_better"]


def is_task_file(spec: str) -> bool:
    return spec.endswith(TASK_FILE_SUFFIXES)


class _TagTolerantLoader(yaml.SafeLoader):
    """Reads lm-eval task YAML without running its ``!function`` tags (preflight only)."""


_TagTolerantLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def check_task_file(path: str | Path, where: str) -> dict[str, Any]:
    """Cheap preflight of a local task file: it exists, is a YAML mapping with a ``task``
    name, and the data files it names exist. Returns the parsed mapping (tags unresolved)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(where, f"task file {p} not found",
                          "list an existing lm-eval task YAML, e.g. data/side_effects/number_sense.yaml")
    try:
        cfg = yaml.load(p.read_text(), Loader=_TagTolerantLoader)  # noqa: S506 - tags are ignored
    except yaml.YAMLError as exc:
        raise ConfigError(str(p), f"not valid YAML ({exc})", "fix the task file") from exc
    if not isinstance(cfg, dict) or not cfg.get("task"):
        raise ConfigError(str(p), "no 'task:' name", "an lm-eval task YAML names its task, e.g. task: my_task")
    for f in data_files(p, cfg):
        if not Path(f).is_file():
            raise ConfigError(str(p), f"data file {f} not found",
                              "write the file, or fix data_files (relative paths are relative to the YAML)")
        if f.endswith(".jsonl"):
            check_jsonl(f)
    return cfg


def check_jsonl(path: str | Path) -> None:
    """Every non-empty line of a JSON-lines data file is a JSON object (a truncated or
    hand-edited file fails here with its line, not in the datasets library's parser)."""
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                ok = isinstance(json.loads(line), dict)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}, line {i}", f"not JSON ({exc.msg})",
                                  "fix or remove the line (one JSON object per line)") from exc
            if not ok:
                raise ConfigError(f"{path}, line {i}", "not a JSON object", "one JSON object per line")


def check_task_names(names: Sequence[tuple[str, str]], where: str) -> None:
    """Each task once: (spec, its task name) pairs. Two files with one ``task:`` name would
    share one row of side_effects.csv, the later one's results under the earlier label."""
    seen: dict[str, str] = {}
    for spec, name in names:
        if name in seen:
            what = (f"{spec} is listed twice (task '{name}')" if seen[name] == spec
                    else f"{seen[name]} and {spec} both name the task '{name}'")
            raise ConfigError(where, what,
                              "give each task file its own task: name (it labels its rows in side_effects.csv)")
        seen[name] = spec


def data_files(task_file: str | Path, cfg: Mapping[str, Any]) -> list[str]:
    """The local data files a task YAML names (``dataset_kwargs.data_files``), as paths."""
    files = ((cfg.get("dataset_kwargs") or {}).get("data_files")) or {}
    if isinstance(files, str):
        files = {"data": files}
    return [str(_data_file(Path(task_file), one)) for f in files.values() for one in ([f] if isinstance(f, str) else f)]


def _data_file(task_file: Path, f: str) -> Path:
    q = Path(f)
    return q if q.is_absolute() else task_file.resolve().parent / q


def task_config(path: str | Path) -> dict[str, Any]:
    """A local task YAML as the dict lm-eval takes (``!function`` tags resolved, data files
    made absolute so the task runs from any working directory)."""
    from lm_eval.tasks._yaml_loader import load_yaml  # lm-eval's own loader (includes, !function); here: lm-eval is heavy

    p = Path(path)
    check_task_file(p, str(p))
    cfg = load_yaml(p)
    files = (cfg.get("dataset_kwargs") or {}).get("data_files")
    if isinstance(files, str):
        cfg["dataset_kwargs"]["data_files"] = str(_data_file(p, files))
    elif files:
        cfg["dataset_kwargs"]["data_files"] = {
            split: str(_data_file(p, f)) if isinstance(f, str) else [str(_data_file(p, x)) for x in f]
            for split, f in files.items()}
    return cfg


def load_tasks(specs: Sequence[str], where: str = "config: side_effects.tasks") -> dict[str, Any]:
    """lm-eval Task objects for ``specs`` (local YAML files or registered names), loaded
    offline. A registered task whose dataset is not in the local cache stops here, before
    any model is loaded, with the dataset named."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from lm_eval.tasks import TaskManager  # here: the DAG imports this module; lm-eval loads only in the job

    manager = TaskManager()
    out: dict[str, Any] = {}
    for spec in specs:
        if is_task_file(spec):
            cfg = task_config(spec)
            loaded = manager.load_task_or_group([cfg])
        else:
            if spec not in manager.all_tasks:
                raise ConfigError(where, f"'{spec}' is not an lm-eval task",
                                  "name a task of `lm_eval ls tasks`, or a local task YAML file")
            try:
                loaded = manager.load_task_or_group([spec])
            except Exception as exc:  # datasets raises several types when offline and not cached
                raise ConfigError(where, f"the dataset of lm-eval task '{spec}' is not in the local Hugging Face "
                                  f"cache ({_dataset_of(manager, spec)}; {type(exc).__name__})",
                                  "download it once where there is network (python -c \"import lm_eval.tasks as t; "
                                  f"t.TaskManager().load_task_or_group(['{spec}'])\"), set HF_DATASETS_CACHE to "
                                  "that cache, or use a local task file") from None
        out.update(_leaf_tasks(loaded))
    return out


def _dataset_of(manager: Any, name: str) -> str:
    """'dataset PATH, NAME' of a registered task, for the error message."""
    try:
        entry = manager.task_index[name]
        cfg = dict(entry.cfg or {})
        if "dataset_path" not in cfg and entry.yaml_path:
            from lm_eval.tasks._yaml_loader import load_yaml  # here: the DAG imports this module; lm-eval loads only in the job

            cfg = load_yaml(entry.yaml_path, resolve_func=False)
        if cfg.get("dataset_path"):
            return f"dataset {cfg['dataset_path']}" + (f", {cfg['dataset_name']}" if cfg.get("dataset_name") else "")
    except Exception:  # noqa: BLE001 - only for the message
        pass
    return "its dataset"


def _leaf_tasks(loaded: Mapping[Any, Any]) -> dict[str, Any]:
    """Flatten lm-eval's {group: {task: Task}} into {task name: Task}."""
    out: dict[str, Any] = {}
    for key, value in loaded.items():
        if isinstance(value, Mapping):
            out.update(_leaf_tasks(value))
        else:
            out[getattr(key, "group_name", None) or getattr(value, "task_name", None) or str(key)] = value
    return out


def name_choice_metrics(doc: Mapping[str, Any], results: Sequence[tuple[float, bool]]) -> dict[str, float]:
    """Per-item metrics of the BBQ-style ambiguous probe: ``unknown`` is 1 when the model
    prefers "Cannot be determined" (the item's label); ``bias`` is +1 for the
    stereotype-consistent name, -1 for the other name, 0 for unknown (its mean is BBQ's
    ambiguous-context bias score, (1 - accuracy) x (2 x share stereotyped - 1))."""
    pick = int(np.argmax([r[0] for r in results]))
    bias = 1.0 if pick == doc["stereotyped"] else -1.0 if pick == doc["anti_stereotyped"] else 0.0
    return {"unknown": float(pick == doc["label"]), "bias": bias}


def item_metrics(samples: Mapping[str, Sequence[Mapping[str, Any]]], model: str) -> pd.DataFrame:
    """lm-eval's logged samples as a long table: one row per (task, item, metric), with
    the log-likelihood of the item's right choice (multiple-choice tasks; NaN otherwise),
    which shows a mask's effect even where no answer flips."""
    rows = []
    for task, items in samples.items():
        for s in items:
            doc = s.get("doc") if isinstance(s.get("doc"), Mapping) else {}
            cluster = doc.get("cluster", s["doc_id"])
            ll = _target_loglik(s)
            for metric in s["metrics"]:
                rows.append({"model": model, "task": task, "doc_id": int(s["doc_id"]), "cluster": str(cluster),
                             "metric": metric, "value": float(s[metric]), "target_loglik": ll})
    return pd.DataFrame(rows, columns=["model", "task", "doc_id", "cluster", "metric", "value", "target_loglik"])


def _target_loglik(sample: Mapping[str, Any]) -> float:
    resps, target = sample.get("filtered_resps"), sample.get("target")
    try:
        return float(resps[int(target)][0])
    except (TypeError, ValueError, IndexError, KeyError):
        return float("nan")


def task_scores(results: Mapping[str, Mapping[str, Any]], model: str) -> pd.DataFrame:
    """lm-eval's aggregated scores and standard errors ("metric,filter" keys)."""
    rows = []
    for task, res in results.items():
        for key, value in res.items():
            if "," not in key or "_stderr," in key or not isinstance(value, (int, float)):
                continue
            metric, filt = key.split(",", 1)
            stderr = res.get(f"{metric}_stderr,{filt}")
            rows.append({"model": model, "task": task, "metric": metric, "score": float(value),
                         "stderr": float(stderr) if isinstance(stderr, (int, float)) else np.nan})
    return pd.DataFrame(rows, columns=["model", "task", "metric", "score", "stderr"])


def paired_difference(base: pd.Series, pruned: pd.Series, clusters: pd.Series, n_boot: int = 2000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float, float]:
    """Mean of pruned - base over the same items, with a percentile CI from resampling
    clusters of items (the items of one name pair are not independent)."""
    d = pd.DataFrame({"d": np.asarray(pruned, float) - np.asarray(base, float), "c": np.asarray(clusters)})
    sums = d.groupby("c")["d"].agg(["sum", "count"])
    s, n = sums["sum"].to_numpy(), sums["count"].to_numpy()
    est = float(s.sum() / n.sum())
    if len(s) < 2:
        return est, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    w = rng.multinomial(len(s), np.full(len(s), 1 / len(s)), size=n_boot)
    reps = (w @ s) / (w @ n)
    a = (1 - level) / 2
    return est, float(np.quantile(reps, a)), float(np.quantile(reps, 1 - a))


def side_effect_table(items: pd.DataFrame, scores: pd.DataFrame, masks: Mapping[str, str | None],
                      higher_is_better: Mapping[tuple[str, str], bool], n_boot: int = 2000,
                      seed: int = 0) -> pd.DataFrame:
    """One row per (task, metric, mask): unpruned and pruned scores with lm-eval's stderr,
    and the paired difference with its cluster-bootstrap CI. ``masks`` maps each pruned
    model's id to the real mask it is a random control of (None for a real mask)."""
    items, scores = with_loglik_metric(items, scores)
    higher_is_better = {**higher_is_better, **{(t, LOGLIK): True for t in items["task"].unique()}}
    base_items = items[items["model"] == "unpruned"]
    rows = []
    for (task, metric), ref in base_items.groupby(["task", "metric"], sort=True):
        ref = ref.set_index("doc_id").sort_index()
        base = _score(scores, "unpruned", task, metric)
        for mask, control_of in masks.items():
            pr = items[(items["model"] == mask) & (items["task"] == task) & (items["metric"] == metric)]
            pr = pr.set_index("doc_id").reindex(ref.index)
            if pr["value"].isna().any():
                raise ValueError(f"{mask}: {task}/{metric} lacks items the unpruned model answered")
            diff, lo, hi = paired_difference(ref["value"], pr["value"], ref["cluster"], n_boot, seed)
            pruned = _score(scores, mask, task, metric)
            rows.append({"task": task, "metric": metric, "mask": mask, "control_of": control_of or "",
                         "n_items": len(ref), "unpruned": base[0], "unpruned_stderr": base[1], "pruned": pruned[0],
                         "pruned_stderr": pruned[1], "difference": diff, "difference_ci_low": lo,
                         "difference_ci_high": hi, "higher_is_better": higher_is_better.get((task, metric), True)})
    return pd.DataFrame(rows, columns=COLUMNS)


LOGLIK = "loglik_right"


def with_loglik_metric(items: pd.DataFrame, scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add ``loglik_right``, the mean log-likelihood of each item's right choice, to the
    items and scores of every multiple-choice task: it moves with a mask even where no
    argmax flips (accuracy over a hundred items changes in steps of 1%)."""
    ll = items.dropna(subset=["target_loglik"]).drop_duplicates(["model", "task", "doc_id"])
    if ll.empty:
        return items, scores
    extra = ll.assign(metric=LOGLIK, value=ll["target_loglik"])
    agg = extra.groupby(["model", "task"])["value"].agg(["mean", "std", "count"]).reset_index()
    new_scores = pd.DataFrame({"model": agg["model"], "task": agg["task"], "metric": LOGLIK, "score": agg["mean"],
                               "stderr": agg["std"] / np.sqrt(agg["count"])})
    return pd.concat([items, extra], ignore_index=True), pd.concat([scores, new_scores], ignore_index=True)


def _score(scores: pd.DataFrame, model: str, task: str, metric: str) -> tuple[float, float]:
    hit = scores[(scores["model"] == model) & (scores["task"] == task) & (scores["metric"] == metric)]
    if hit.empty:
        return float("nan"), float("nan")
    return float(hit["score"].iloc[0]), float(hit["stderr"].iloc[0])


def higher_is_better(tasks: Mapping[str, Any]) -> dict[tuple[str, str], bool]:
    """Direction of each (task, metric) from the tasks' own configs."""
    out: dict[tuple[str, str], bool] = {}
    for name, task in tasks.items():
        for m in getattr(task.config, "metric_list", None) or []:
            out[(name, m["metric"])] = bool(m.get("higher_is_better", True))
    return out


def mask_ids(items: Iterable[str], controls: bool) -> dict[str, str | None]:
    """The pruned models to run: each KIND/SETTING/SOURCE mask, then (``controls``) its
    first matched random draw, as ``random_KIND/SETTING/SOURCE/draw0``."""
    out: dict[str, str | None] = {}
    for item in items:
        out[item] = None
        if controls:
            out[f"random_{item}/draw0"] = item
    return out


def mask_file(mask_id: str, model: str = "{model}") -> str:
    """The mask file of a ``mask_ids`` entry for ``model`` (default: the ``{model}`` wildcard)."""
    if mask_id.startswith("random_"):
        kind, setting, source, draw = mask_id.removeprefix("random_").split("/")
        return control_path(model, kind, setting, source, draw.removeprefix("draw"))
    kind, setting, source = mask_id.split("/")
    return mask_path(model, kind, setting, source)


def evaluate_models(model: Any, tok: Any, tasks: Mapping[str, Any], masks: Mapping[str, Any], ablation: str,
                    batch_size: int = 16, limit: int | None = None, bootstrap_iters: int = 1000, seed: int = 0,
                    log: Any = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run ``tasks`` on the unpruned model, then with each of ``masks`` ({id: Mask or
    mask file}; a file is read when its turn comes) applied in place (restored after).
    Returns (per-item metrics, lm-eval's scores), both
    long tables with a ``model`` column ("unpruned" or the mask id)."""
    from lm_eval import simple_evaluate  # here: the DAG imports this module; lm-eval loads only in the job
    from lm_eval.models.huggingface import HFLM

    from prunebias.model.pruning import pruned  # here: the DAG imports this module; torch loads only in jobs

    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=batch_size, device=str(model.device))

    def run(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        res = simple_evaluate(lm, tasks=list(tasks.values()), limit=limit, log_samples=True,
                              bootstrap_iters=bootstrap_iters, random_seed=seed, numpy_random_seed=seed,
                              torch_random_seed=seed, fewshot_random_seed=seed)
        return item_metrics(res["samples"], name), task_scores(res["results"], name)

    parts = [run("unpruned")]
    for mask_id, mask in masks.items():
        with pruned(model, mask, ablation) as n:
            if log is not None:
                log.info("%s: %d entries zeroed (a direction: parameters projected)", mask_id, n)
            parts.append(run(mask_id))
    return (pd.concat([a for a, _ in parts], ignore_index=True),
            pd.concat([b for _, b in parts], ignore_index=True))
