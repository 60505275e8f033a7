"""Warnings about a design that runs but cannot answer its question (pure; the dry-run
logs them, nothing is refused)."""

from __future__ import annotations

from typing import Any, Mapping

# The 2-core CPU default's answers per held-out name: on the planted models it shows a
# planted removal at home in only 2-5 of 6 seeds (benchmarks/RESULTS.md, "the ground
# truth over seeds"), so a study with GPUs should not keep it.
CPU_DEFAULT_ANSWERS = 4


def small_design_warning(config: Mapping[str, Any], models: Mapping[str, Mapping[str, Any]]) -> str:
    """A warning when a GPU study keeps the CPU default's evaluation size ("" otherwise)."""
    on_gpu = int(config["resources"].get("gpu") or 0) > 0 or any(m.get("device") == "cuda" for m in models.values())
    answers = int(config["evaluation"]["samples_per_name"])
    if not on_gpu or answers > CPU_DEFAULT_ANSWERS:
        return ""
    return (f"evaluation.samples_per_name is {answers}, the size of the 2-core CPU default: on the planted models "
            "that design shows a planted removal at home in only 2-5 of 6 seeds (benchmarks/RESULTS.md). "
            "A GPU study should start from config/paper.yaml (20 answers per held-out name, 100 baseline samples)")
