"""Cluster resources of the model jobs, from config ``resources``: what SLURM is asked for.

Memory and runtime grow with the attempt (Snakemake's ``--retries``, set in the SLURM
profile), so a job killed for memory or time is resubmitted with twice, then three
times as much. GPUs are requested only when configured (``--gpus``, or ``--gres`` with
``gpu_request: gres``), and a GPU job goes to
``gpu_partition`` when one is named: CPU jobs stay on the site's default partition (or
``cpu_partition``).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping


def grows(base: int) -> Callable[..., int]:
    """A resource callable: ``base`` times the attempt (1, 2, 3, ...)."""
    def per_attempt(wildcards: Any, attempt: int = 1) -> int:
        return int(base) * int(attempt)
    return per_attempt


def model_resources(res: Mapping[str, Any]) -> dict[str, Any]:
    """Resources of every job that loads the model."""
    out: dict[str, Any] = {"mem_mb": grows(res["model_mem_mb"]), "runtime": grows(res["model_runtime"])}
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
