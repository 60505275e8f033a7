"""Several models side by side: each runs the audit under its own folders, adding one
leaves the other's results as they were, and the cross-model table sets them side by side."""

import pandas as pd
import pytest

from conftest import run_snakemake, small_config
from tiny_model import build_planted_model

pytestmark = pytest.mark.slow

STAGES = ("baseline", "activations", "masks", "eval", "tables", "plots")


def test_a_second_model_runs_beside_the_first_and_they_are_compared(tiny_model_dir, tmp_path):
    planted_dir = build_planted_model(tmp_path / "planted_model")
    work = tmp_path / "work"
    work.mkdir()
    cfg = small_config(planted_dir)
    cfg.update(contexts=["purchase-bicycle"], context_overrides={"purchase-bicycle": {"range": [0, 100]}},
               use_surnames=True, samples_per_name=1)  # the plant rides on the surname Washington
    cfg["evaluation"] = {"samples_per_name": 1, "random_controls": False}
    cfg["model"]["name"] = "planted"
    run_snakemake(work, cfg)
    first = sorted(p for stage in STAGES for p in (work / "results" / stage / "planted").rglob("*") if p.is_file())
    assert len(first) > 10
    mtimes = {p: p.stat().st_mtime_ns for p in first}

    cfg["models"] = [cfg["model"], {"name": "plain", "source": str(tiny_model_dir), "dtype": "float32",
                                    "device": "cpu"}]
    run_snakemake(work, cfg)
    assert {p: p.stat().st_mtime_ns for p in first} == mtimes  # the first model's results are kept as they were
    assert (work / "results/tables/plain/transfer.csv").exists() and (work / "results/masks/plain").is_dir()
    models = pd.read_csv(work / "results/tables/models.csv", keep_default_na=False, na_values=[""])
    assert list(models.columns[:2]) == ["model", "model_source"] and set(models.model) == {"planted", "plain"}
    for name in ("planted", "plain"):
        own = pd.read_csv(work / f"results/tables/{name}/headline.csv", keep_default_na=False, na_values=[""])
        got = models[models.model == name].drop(columns=["model", "model_source"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, own, check_dtype=False)
    planted = models[(models.model == "planted") & (models.section == "baseline")].iloc[0]
    assert planted["item"] == "purchase-bicycle" and planted.ci_low > 1  # the planted bias, far from 0
    assert (work / "results/plots/models.png").stat().st_size > 5000
    assert "Nothing to be done" in (lambda p: p.stdout + p.stderr)(run_snakemake(work, cfg, "-n"))


def test_two_models_with_one_name_stop_the_dry_run(tiny_model_dir, tmp_path):
    cfg = small_config(tiny_model_dir)
    cfg["models"] = [cfg["model"], {**cfg["model"], "dtype": "bfloat16"}]
    proc = run_snakemake(tmp_path, cfg, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "config: models" in out and "given twice" in out and "its own name" in out
