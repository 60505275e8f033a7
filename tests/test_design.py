"""A GPU study that keeps the CPU default's small design is warned (issue 24)."""

from conftest import default_config, run_snakemake
from prunebias.design import small_design_warning


def test_the_warning_needs_a_gpu_and_the_small_design():
    cfg = default_config()
    cpu = {"m": {"device": "auto"}}
    assert small_design_warning(cfg, cpu) == ""  # the CPU default itself: no warning
    gpu = small_design_warning({**cfg, "resources": {**cfg["resources"], "gpu": 1}}, cpu)
    assert "evaluation.samples_per_name is 4" in gpu and "config/paper.yaml" in gpu
    assert small_design_warning(cfg, {"m": {"device": "cuda"}})  # a model on cuda is a GPU study too
    big = {**cfg, "resources": {**cfg["resources"], "gpu": 1}, "evaluation": {**cfg["evaluation"], "samples_per_name": 20}}
    assert small_design_warning(big, cpu) == ""


def test_the_dry_run_says_it(tmp_path):
    cfg = default_config()
    cfg["resources"]["gpu"] = 1
    proc = run_snakemake(tmp_path, cfg, "-n")
    assert "start from config/paper.yaml" in proc.stdout + proc.stderr
