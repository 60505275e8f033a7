"""The workflow on a real one-node SLURM cluster through `snakemake --profile slurm`.

Installs Debian's slurm-wlm and munge when missing, starts the daemons inside a private
mount namespace (tests/slurm/cluster_test.sh) on ports of their own, beside an
unrelated controller on the default ports with a job of its own queued (DECOY=1), runs
the tiny-model workflow with GPUs switched off, and checks, among the job ids this run
submitted only, that every model job ran as a SLURM job.
"""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, tiny_config, tiny_localization

pytestmark = pytest.mark.slow
# record_provenance is light but runs where the model jobs run: it records that node's dtype and CPU
MODEL_RULES = {"prepare_model", "generate_baseline", "cache_activations", "score_neurons", "evaluate_pruned",
               "evaluate_reference", "measure_mask_stability", "record_provenance"}


def _ensure_slurm() -> None:
    if os.geteuid() != 0:
        pytest.skip("SLURM cluster test needs root (to install and start slurmctld/slurmd/munged)")
    if shutil.which("unshare") is None:
        pytest.skip("SLURM cluster test needs util-linux unshare")
    if shutil.which("slurmctld") is None or shutil.which("munged") is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        r = subprocess.run("apt-get update -qq && apt-get install -y -qq slurm-wlm munge", shell=True, env=env,
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            pytest.skip(f"could not install slurm-wlm and munge with apt-get: {r.stderr[-500:]}")


def test_workflow_runs_through_slurm(tiny_model_dir, tmp_path):
    _ensure_slurm()
    cfg = tiny_config(tiny_model_dir)
    cfg["localization"] = tiny_localization(batch_size=8, neurons={"directions": ["black"], "p": [[15, 15]]},
                                            heads={"scores": ["sum"], "k": [2]}, pools={}, auto_pools=[])
    cfg["evaluation"] = {"samples_per_name": 1, "random_controls": False}
    cfg["resources"] = {"model_threads": 1, "model_mem_mb": 1500, "model_runtime": 30, "gpu": 0}
    cfg_file = tmp_path / "cluster_config.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "DECOY": "1",
           "SNAKEMAKE": str(Path(sys.executable).parent / "snakemake")}
    start = time.time()
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "bash",
                           str(REPO / "tests/slurm/cluster_test.sh"), str(tmp_path), str(cfg_file)],
                          capture_output=True, text=True, timeout=900, env=env)
    elapsed = time.time() - start
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    # an unrelated controller ran beside ours: ours started it with a job queued, or one was there already
    assert (re.search(r"decoy controller jobs: \d+", proc.stdout) or "the default ports are taken" in proc.stdout), \
        proc.stdout[-3000:]
    print(f"cluster test took {elapsed:.0f} s")
    assert (tmp_path / "results/tables/tiny/transfer.csv").exists()
    ours = set(re.findall(r"submitted with SLURM jobid (\d+)", (tmp_path / "snakemake_slurm.log").read_text()))
    listed = [line.split("|") for line in (tmp_path / "slurm_jobs.txt").read_text().splitlines() if line]
    jobs = [(state, comment) for jobid, state, comment in listed if jobid in ours]  # judge only this run's jobs
    assert len(jobs) == len(ours) > 0, (ours, listed)
    by_rule: dict[str, list[str]] = {}
    groups = 0
    for state, comment in jobs:
        head = comment.split("_wildcards")[0].removeprefix("rule_")
        if head.startswith("per_context"):  # generate_baseline + cache_activations of a context, one job
            groups += 1
            rules = [r for r in ("generate_baseline", "cache_activations") if r in head]
            assert len(rules) == 2, comment
        else:
            rules = [head]
        for rule in rules:
            by_rule.setdefault(rule, []).append(state)
    assert groups == len(cfg["contexts"])
    n_ctx = len(cfg["contexts"])
    expected = {"prepare_model": 1, "generate_baseline": n_ctx, "cache_activations": n_ctx,
                "score_neurons": n_ctx, "evaluate_reference": n_ctx, "measure_mask_stability": 1,
                "evaluate_pruned": n_ctx * n_ctx}  # one per (mask source, target); the sources are the contexts
    for rule, count in expected.items():
        assert by_rule.get(rule, []) == ["COMPLETED"] * count, (rule, by_rule)
    assert set(by_rule) == MODEL_RULES  # light rules ran locally, not through sbatch
    table = pd.read_csv(tmp_path / "results/tables/tiny/baseline_bias.csv")
    assert len(table) == n_ctx
