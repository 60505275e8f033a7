"""Shared helpers for the benchmark scripts: the default model, real prompts, peak memory."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "benchmarks" / "out"


def prepared_model_dir() -> Path:
    """The materialized default model (prepared once with Snakemake if missing)."""
    import yaml

    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    name = (cfg.get("models") or [cfg.get("model")])[0]["name"]  # the first (a loaded) model
    d = REPO / "results" / "model" / name
    if not (d / "config.json").exists():
        subprocess.run([str(Path(sys.executable).parent / "snakemake"), "--cores", "2", str(d.relative_to(REPO))],
                       cwd=REPO, check=True)
    return d


def prompts(context: str = "purchase-bicycle", samples_per_name: int = 1, seed: int = 1):
    """Real prompts of the default names list for one context."""
    import yaml

    from prunebias.audit.contexts import resolve_context
    from prunebias.audit.prompts import build_prompts
    from prunebias.audit.names import load_names

    scen = yaml.safe_load((REPO / "data/scenarios.yaml").read_text())
    ctx = resolve_context(context, scen)
    return ctx, build_prompts(ctx, load_names(REPO / "data/names/audit40.csv"), samples_per_name, seed)


@contextmanager
def peak_rss() -> Iterator[dict]:
    """Sample this process's RSS every 5 ms; yields a dict that gets ``peak_mb`` and ``base_mb``."""
    proc = psutil.Process()
    out = {"base_mb": proc.memory_info().rss / 2**20, "peak_mb": 0.0}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            out["peak_mb"] = max(out["peak_mb"], proc.memory_info().rss / 2**20)
            time.sleep(0.005)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        yield out
    finally:
        stop.set()
        t.join()
        out["peak_mb"] = max(out["peak_mb"], proc.memory_info().rss / 2**20)


def save(name: str, result: dict) -> None:
    """Write ``benchmarks/out/{name}.json`` and print the result."""
    import json

    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
