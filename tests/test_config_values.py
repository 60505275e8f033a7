"""--config overrides of nested booleans and numbers reach the schema typed."""

import pytest
import yaml

from conftest import REPO, default_config, run_snakemake
from prunebias.workflow.config_values import coerce_strings

SCHEMA = yaml.safe_load((REPO / "config/schema.yaml").read_text())


def test_nested_strings_become_the_types_the_schema_wants():
    cfg = {"model": {"allow_download": "true", "name": "123"}, "seed": "7",
           "analysis": {"winsorize": ["1", "99.5"], "n_boot": "200"},
           "localization": {"neurons": {"p": [["40", "35"]]}, "attribution": {"neurons": "false"}},
           "contexts": ["purchase-car"]}
    changed = coerce_strings(cfg, SCHEMA)
    assert cfg["model"] == {"allow_download": True, "name": "123"}  # a name stays a string
    assert cfg["seed"] == 7 and cfg["analysis"] == {"winsorize": [1, 99.5], "n_boot": 200}
    assert cfg["localization"]["neurons"]["p"] == [[40, 35]] and cfg["localization"]["attribution"]["neurons"] is False
    assert "model.allow_download" in changed and "model.name" not in changed
    bad = {"model": {"allow_download": "maybe"}, "analysis": {"winsorize": "null"}}
    coerce_strings(bad, SCHEMA)
    assert bad["model"]["allow_download"] == "maybe" and bad["analysis"]["winsorize"] is None


def test_dry_run_with_a_nested_boolean_override(tmp_path):
    proc = run_snakemake(tmp_path, default_config(), "-n", "--config", "sampling={stop_after_number: false}",
                         "analysis={n_boot: 50}", check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_an_uncached_hub_model_warns_in_a_dry_run_and_stops_prepare_model(tmp_path):
    """Dry-runs and lint of a paper config work before the weights are downloaded; the real
    run stops in prepare_model, and its log says why and how to fix it."""
    cfg = default_config()
    cfg["models"] = [{"name": "nosuch", "source": "prunebias-tests/no-such-model"}]
    dry = run_snakemake(tmp_path, cfg, "-n", check=False)
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "not in the local Hugging Face cache" in dry.stdout + dry.stderr
    real = run_snakemake(tmp_path, cfg, "results/model/nosuch", check=False)
    assert real.returncode != 0
    log = (tmp_path / "logs/nosuch/prepare_model.log").read_text()
    assert "not in the local Hugging Face cache" in log and "allow_download" in log
    assert not (tmp_path / "results/model/nosuch").exists()


@pytest.mark.parametrize("paper", ["config/paper.yaml", "config/paper_code.yaml"])
def test_paper_configs_dry_run_without_the_model(tmp_path, paper):
    """The paper configs plan their whole DAG before Llama-3-8B is downloaded (HF offline here)."""
    proc = run_snakemake(tmp_path, None, "-n", "--configfile", str(REPO / "config/config.yaml"), str(REPO / paper),
                         check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "prepare_model" in proc.stdout and "evaluate_pruned" in proc.stdout


def test_the_comparison_config_plans_every_family(tmp_path):
    """make compare's config (on top of config.yaml) plans a mask of every family of the
    comparison, its controls and their evaluation (docs/comparison.md)."""
    proc = run_snakemake(tmp_path, None, "-n", "--configfile", str(REPO / "config/config.yaml"),
                         str(REPO / "config/compare.yaml"), check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for job in ("score_neurons", "score_heads", "score_attribution", "score_directions", "draw_controls",
                "evaluate_pruned", "aggregate_transfer"):
        assert job in proc.stdout, job
