"""benchmarks/bench_gpu.py (what gpu_check.sh runs on a GPU node) works end to end: a CPU
smoke run on the tiny model measures every stage and prices a design from its dry-run."""

import json
import subprocess
import sys

from conftest import REPO, default_config


def test_device_check_measures_every_stage_and_prices_the_design(tmp_path, tiny_model_dir):
    out = tmp_path / "check.json"
    cmd = [sys.executable, str(REPO / "benchmarks/bench_gpu.py"), "--model", str(tiny_model_dir), "--device", "cpu",
           "--dtype", "float32", "--prompts", "8", "--batch", "4", "--cache-batch", "4", "--attr-prompts", "2",
           "--design", str(REPO / "config/config.yaml"), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["device"] == "cpu" and res["prompts"] == 8
    for key in ("generation_answers_per_s", "cache_prompts_per_s", "eval_answers_per_s", "attribution_s_per_prompt"):
        assert res[key] > 0, key
    design = res["design"]  # the default config: 2 contexts x 64 names x 4 samples; 2 sources x 2 targets
    assert (design["contexts"], design["names"], design["baseline_answers"]) == (2, 64, 512)
    draws = default_config()["evaluation"]["random_draws"]
    assert design["evaluate_jobs"] == 12 and design["draws"] == draws and design["model_jobs"] > design["evaluate_jobs"]
    # a neuron mask and a race direction per source (no head masks in the default),
    # cross-fitted: every one of the 64 names is answered once per target, under the fold's
    # mask that did not learn on it
    assert (design["real_masks_per_eval_job"], design["answers_per_mask_and_target"]) == (2, 64 * 4)
    assert design["device_hours_total"] > 0 and "device hours" in proc.stdout


def test_gpu_check_refuses_a_machine_without_cuda():
    proc = subprocess.run(["bash", str(REPO / "benchmarks/gpu_check.sh")], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    import torch

    if torch.cuda.is_available():  # pragma: no cover - a GPU machine runs the check itself
        return
    assert proc.returncode == 2 and "no CUDA device" in proc.stderr and "--device cpu" in proc.stderr
