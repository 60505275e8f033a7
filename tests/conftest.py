"""Shared fixtures: the tiny model and helpers to run the workflow in a scratch directory."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

if os.environ.get("PYTEST_XDIST_WORKER"):  # parallel workers: one thread each, set before torch loads
    os.environ.setdefault("OMP_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402  (after OMP_NUM_THREADS is set)
from tiny_model import build_tiny_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    from prunebias.model.modeling import load_model

    return load_model(tiny_model_dir, dtype="float32", device="cpu", threads=1)


def default_config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


# The tiny runs keep the small design they were written for where config.yaml's defaults
# (= the schema's) would add jobs: attribution beyond the neuron masks, capped caches,
# a side-effects sample, cross-fitting (tests/test_planted_bias.py runs it). A test that
# replaces `localization` wholesale merges these in.
TINY_LOCALIZATION = {"max_samples_per_name": None, "cross_fit": False,
                     "attribution": {"mlp_neurons": False, "patch_heads": [], "faithfulness_neurons": 0,
                                     "transfer": True}}


def tiny_localization(**keys) -> dict:
    """``TINY_LOCALIZATION`` with ``keys`` (an ``attribution`` dict is merged, not replaced)."""
    out = {**TINY_LOCALIZATION, **keys}
    out["attribution"] = {**TINY_LOCALIZATION["attribution"], **keys.get("attribution", {})}
    return out


def tiny_config(model_dir: Path, **changes) -> dict:
    """The default config pointed at the tiny model, with two small contexts."""
    cfg = default_config()
    cfg["model"] = {"name": "tiny", "source": str(model_dir), "dtype": "float32", "device": "cpu"}
    cfg["models"] = []  # the default's models (SmolLM2 and its plants) give way to the tiny model
    cfg["contexts"] = ["purchase-bicycle", "hiring-lawyer"]
    cfg["samples_per_name"] = 2
    cfg["names_file"] = "data/names/audit40.csv"  # 40 names keep the tiny runs short
    cfg["context_overrides"] = {c: {"range": [0, 1e15]} for c in cfg["contexts"]}
    cfg["resources"] = {"model_threads": 1}
    cfg["side_effects"] = {"masks": [], "limit": None}  # the default's masks are of the default contexts
    cfg["analysis"] = {"winsorize": [1, 99], "n_boot": 200}
    cfg["localization"] = tiny_localization(
        batch_size=8, neurons={"directions": ["black", "white"], "p": [[15, 15], [40, 35]]},
        heads={"scores": ["sum", "diff"], "k": [3]}, pools={"both": list(cfg["contexts"])},
        pool_masks=["common", "pooled"])
    cfg.update(changes)
    return cfg


# Stop before evaluation: baseline + localization only (keeps workflow tests short).
UNTIL = ("--omit-from", "evaluate_pruned", "evaluate_reference", "draw_controls")


def small_config(model_dir: Path) -> dict:
    """tiny_config with one neuron setting, one head setting and no pools."""
    cfg = tiny_config(model_dir)
    cfg["localization"] = tiny_localization(batch_size=8, neurons={"directions": ["black"], "p": [[15, 15]]},
                                            heads={"scores": ["sum"], "k": [2]}, pools={}, auto_pools=[])
    return cfg


def run_snakemake(workdir: Path, config: dict | None = None, *args: str, check: bool = True,
                  timeout: int = 900, snakefile: Path | None = None) -> subprocess.CompletedProcess:
    """Run the repository's Snakefile (or ``snakefile``) with ``workdir`` as working directory."""
    cmd = [SNAKEMAKE, "-s", str(snakefile or REPO / "Snakefile")]
    if config is not None:  # before the other options: --configfile takes several values
        cfgfile = workdir / "test_config.yaml"
        cfgfile.write_text(yaml.safe_dump(config))
        cmd += ["--configfile", str(cfgfile)]
    cmd += ["--directory", str(workdir), "--cores", "2"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def copy_workflow(code: Path) -> Path:
    """The workflow's code (Snakefile, rules, scripts, library, config, data, ...) copied to
    ``code``, for a test that edits it; run it with ``run_snakemake(..., snakefile=code / "Snakefile")``."""
    code.mkdir(parents=True)
    for part in ("Snakefile", "rules", "workflow_scripts", "prunebias", "config", "data", "report", "envs",
                 "profiles"):
        src = REPO / part
        (shutil.copytree(src, code / part, ignore=shutil.ignore_patterns("__pycache__")) if src.is_dir()
         else shutil.copy2(src, code / part))
    return code


def state_checksum(model) -> str:
    """SHA-256 over every parameter's bytes: proves that a restore after pruning is exact."""
    h = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
