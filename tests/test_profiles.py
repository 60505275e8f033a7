"""Cluster settings: the SLURM profile's values hold, and model jobs ask SLURM for what the config says."""

import pytest
import yaml

from conftest import REPO, default_config
from prunebias.workflow.resources import light_resources, model_resources

# settings a cluster run depends on; the workflow profile (applied over --profile) must not set them
CLUSTER_KEYS = {"executor", "jobs", "latency-wait", "retries", "default-resources", "set-resources", "cores",
                "slurm-status-command", "slurm-init-seconds-before-status-checks"}


def test_the_workflow_profile_sets_nothing_the_slurm_profile_needs():
    """Snakemake applies profiles/default over `--profile slurm`: any key both set, the
    workflow profile's value wins silently (it once cut latency-wait from 60 s to 15 s)."""
    default = yaml.safe_load((REPO / "profiles/default/config.yaml").read_text())
    slurm = yaml.safe_load((REPO / "slurm/config.yaml").read_text())
    assert not CLUSTER_KEYS & set(default), sorted(CLUSTER_KEYS & set(default))
    assert {k: default[k] for k in set(default) & set(slurm)} == {k: slurm[k] for k in set(default) & set(slurm)}
    assert slurm["latency-wait"] >= 60 and slurm["retries"] >= 1
    assert "slurm_partition" not in slurm["default-resources"]  # not every job on the GPU partition


def test_model_jobs_grow_with_the_attempt_and_ask_for_gpus_only_when_configured():
    res = {**default_config()["resources"], "model_mem_mb": 6000, "model_runtime": 60}
    cpu = model_resources(res)
    assert cpu["mem_mb"](None, 1) == 6000 and cpu["mem_mb"](None, 3) == 18000 and cpu["runtime"](None, 2) == 120
    assert "gpu" not in cpu and "gres" not in cpu and "slurm_partition" not in cpu
    gpu = model_resources({**res, "gpu": 1, "gpu_model": "h200", "gpu_partition": "gpu", "cpu_partition": "cpu"})
    assert (gpu["gpu"], gpu["gpu_model"], gpu["slurm_partition"]) == (1, "h200", "gpu")
    gres = model_resources({**res, "gpu": 2, "gpu_model": "", "gpu_request": "gres"})
    assert gres["gres"] == "gpu:2" and "gpu" not in gres
    assert model_resources({**res, "gpu": 1, "gpu_model": "a100", "gpu_request": "gres"})["gres"] == "gpu:a100:1"
    assert model_resources({**res, "cpu_partition": "cpu"})["slurm_partition"] == "cpu"
    assert light_resources({**res, "cpu_partition": "short"})["slurm_partition"] == "short"


@pytest.mark.parametrize("path", ["config/paper.yaml", "config/paper_code.yaml"])
def test_paper_configs_send_only_gpu_jobs_to_the_gpu_partition(path):
    res = yaml.safe_load((REPO / path).read_text())["resources"]
    assert res["gpu"] >= 1 and res["gpu_partition"] and not res.get("cpu_partition")
