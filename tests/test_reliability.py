"""Interrupted runs lose nothing, reruns are byte-identical, text-only models do not crash."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, SNAKEMAKE, UNTIL, run_snakemake, small_config
from tiny_model import build_text_only_model

pytestmark = pytest.mark.slow


def outputs(work: Path) -> dict[str, bytes]:
    files = [p for p in (work / "results").rglob("*") if p.is_file() and "benchmarks" not in p.parts]
    return {str(p.relative_to(work)): p.read_bytes() for p in files if not p.name.startswith(".")}


@pytest.fixture(scope="module")
def reference(tiny_model_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("ref")
    run_snakemake(work, small_config(tiny_model_dir), *UNTIL)
    return outputs(work)


def test_same_config_gives_byte_identical_outputs(reference, tiny_model_dir, tmp_path):
    run_snakemake(tmp_path, small_config(tiny_model_dir), *UNTIL)
    again = outputs(tmp_path)
    model_files = {k for k in again if k.startswith("results/model/")}
    assert {k for k in again if k not in model_files} == {k for k in reference if k not in model_files}
    for key in reference:
        if key not in model_files:
            assert again[key] == reference[key], key


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_kill_mid_job_then_resume(reference, tiny_model_dir, tmp_path, sig):
    cfg = small_config(tiny_model_dir)
    (tmp_path / "test_config.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "1",
           "--configfile", str(tmp_path / "test_config.yaml"), *UNTIL]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    marker = tmp_path / "logs" / "tiny" / "cache_activations"
    deadline = time.time() + 300
    while time.time() < deadline and not (marker.exists() and any(marker.iterdir())):
        time.sleep(0.2)
    assert marker.exists(), "cache_activations never started"
    time.sleep(1.0)  # inside the job: model loading or the forward passes
    os.killpg(proc.pid, sig)
    proc.wait(timeout=300)  # SIGTERM: Snakemake stops its jobs first (slow on a busy machine)
    # whatever exists now under a final name must be complete and readable
    for p in (tmp_path / "results").rglob("*.parquet"):
        if not p.name.startswith("."):
            pd.read_parquet(p)
    if sig == signal.SIGKILL:  # a hard kill leaves Snakemake's lock: the user unlocks, as documented
        run_snakemake(tmp_path, cfg, "--unlock")
    run_snakemake(tmp_path, cfg, *UNTIL)
    resumed = outputs(tmp_path)
    for key, data in reference.items():
        if not key.startswith("results/model/"):
            assert resumed.get(key) == data, key


def test_model_that_answers_only_text(tmp_path_factory):
    model_dir = build_text_only_model(tmp_path_factory.mktemp("textonly") / "model")
    work = tmp_path_factory.mktemp("textonly_wf")
    cfg = small_config(model_dir)
    cfg["contexts"] = ["purchase-bicycle", "purchase-car"]
    cfg["context_overrides"] = {}
    cfg["samples_per_name"] = 1  # every answer is text: one per name shows it
    cfg["evaluation"] = {"samples_per_name": 1, "random_controls": False}
    run_snakemake(work, cfg)
    base = pd.read_csv(work / "results/tables/tiny/baseline_bias.csv")
    assert (base.anomaly_rate == 1.0).all()
    assert base.smd.isna().all() and base.note.str.contains("fewer than 2").all()
    transfer = pd.read_csv(work / "results/tables/tiny/transfer.csv")
    assert len(transfer) == 2 * 2 * 2 and transfer.bias_reduction.isna().all()
    assert (transfer.anomaly_rate_pruned == 1.0).all()
