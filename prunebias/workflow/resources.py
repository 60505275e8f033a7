"""Cluster resources of the model jobs, from config ``resources``: what SLURM is asked for.

Memory is the configured ``model_mem_mb``, or with ``auto`` derived per job from the
model's size and the job's role (``prunebias.model.model_size``).

Memory and runtime grow with the attempt (Snakemake's ``--retries``, set in the SLURM
profile), so a job killed for memory or time is resubmitted with twice, then three
times as much. GPUs are requested only when configured (``--gpus``, or ``--gres`` with
``gpu_request: gres``), and a GPU job goes to
``gpu_partition`` when one is named: CPU jobs stay on the site's default partition (or
``cpu_partition``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from prunebias.model.model_size import ModelSize, job_mem_mb, read_size


def grows(base: int) -> Callable[..., int]:
    """A resource callable: ``base`` times the attempt (1, 2, 3, ...)."""
    def per_attempt(wildcards: Any, attempt: int = 1) -> int:
        return int(base) * int(attempt)
    return per_attempt


def model_mem(res: Mapping[str, Any], role: str = "infer", model_dir: str | Path | None = None,
              fallback: ModelSize | None = None, dtype: str = "auto", device: str = "auto",
              grad_batch: int = 8, grid_size: int = 12, masks: int = 0) -> Callable[..., int]:
    """``mem_mb`` of a model job of ``role``: ``res["model_mem_mb"]`` when it is a number, else
    derived from the model's size (``model_size.job_mem_mb``), read when Snakemake submits
    the job from ``model_dir`` (the materialized model) or, before that exists, ``fallback``
    (the source's size, e.g. for a dry-run); times the attempt either way. ``masks``: neuron
    masks the job holds at once."""
    if res["model_mem_mb"] != "auto":
        return grows(res["model_mem_mb"])
    on_gpu = res["gpu"] > 0 and device != "cpu"

    def per_attempt(wildcards: Any, attempt: int = 1) -> int:
        size = (read_size(model_dir) if model_dir is not None else None) or fallback
        return job_mem_mb(size, role, on_gpu=on_gpu, dtype=dtype, grad_batch=grad_batch,
                          grid_size=grid_size, masks=masks) * int(attempt)
    return per_attempt


def model_resources(res: Mapping[str, Any], mem: Callable[..., int] | None = None) -> dict[str, Any]:
    """Resources of every job that loads the model; ``mem``: its ``mem_mb`` (``model_mem``;
    default: the configured number, or the inference role's derived memory)."""
    out: dict[str, Any] = {"mem_mb": mem or model_mem(res), "runtime": grows(res["model_runtime"])}
    if res["gpu"] > 0:
        if res.get("gpu_request", "gpus") == "gres":  # sites that reject --gpus: --gres=gpu[:model]:N
            out["gres"] = ":".join(["gpu", *([res["gpu_model"]] if res["gpu_model"] else []), str(res["gpu"])])
        else:
            out["gpu"] = res["gpu"]
            if res["gpu_model"]:
                out["gpu_model"] = res["gpu_model"]
        if res.get("gpu_partition"):
            out["slurm_partition"] = res["gpu_partition"]
    elif res.get("cpu_partition"):
        out["slurm_partition"] = res["cpu_partition"]
    return out


def light_resources(res: Mapping[str, Any], runtime: int = 30) -> dict[str, Any]:
    """Resources of a job that does not load the model (e.g. ``combine_masks``)."""
    out: dict[str, Any] = {"runtime": grows(runtime)}
    if res.get("cpu_partition"):
        out["slurm_partition"] = res["cpu_partition"]
    return out
