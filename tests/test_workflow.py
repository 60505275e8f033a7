"""The workflow through Snakemake itself: tiny-model run, dry-run, lint, bad config."""


import pandas as pd
import pytest

from conftest import REPO, UNTIL, default_config, run_snakemake, tiny_config

TABLE_COLUMNS = ["effect", "n_white", "n_black", "names_white", "names_black", "mean_white", "mean_black", "diff",
                 "smd", "smd_ci_low", "smd_ci_high", "log_smd", "cliffs_delta", "p_perm", "mde", "underpowered",
                 "mwu_p", "anomaly_rate", "anomaly_rate_white", "anomaly_rate_black", "anomaly_p_perm"]


def cross_fit_config(model_dir):
    """tiny_config with cross-fitting: every mask file holds the masks of both name halves."""
    cfg = tiny_config(model_dir)
    cfg["localization"]["cross_fit"] = True
    return cfg


@pytest.fixture(scope="module")
def tiny_run(tiny_model_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("wf")
    # baseline and localization only; evaluation is covered by the planted-bias test
    run_snakemake(work, cross_fit_config(tiny_model_dir), *UNTIL)
    return work


def test_tiny_workflow_produces_tables(tiny_run):
    work = tiny_run
    table = pd.read_csv(work / "results/tables/tiny/baseline_bias.csv")
    assert list(table.context) == ["purchase-bicycle", "hiring-lawyer"]
    assert set(TABLE_COLUMNS) <= set(table.columns)
    by_gender = pd.read_csv(work / "results/tables/tiny/baseline_bias_by_gender.csv")
    assert len(by_gender) == 4 and set(by_gender.gender) == {"man", "woman"}
    for ctx in table.context:
        prompts = pd.read_parquet(work / f"results/prompts/{ctx}.parquet")
        assert len(prompts) == 40 * 2
        answers = pd.read_parquet(work / f"results/baseline/tiny/{ctx}.parquet")
        assert {"response", "value", "answer_kind", "anomaly", "outcome", "seed"} <= set(answers.columns)
        assert len(answers) == len(prompts)
        row = table.set_index("context").loc[ctx]
        assert row.n_white + row.n_black == int((~answers.anomaly).sum())
        assert row.anomaly_rate == pytest.approx(answers.anomaly.mean())
        assert (work / f"logs/tiny/generate_baseline/{ctx}.log").stat().st_size > 0
    assert not list((work / "results").rglob(".*.tmp-*")), "temporary files left behind"
    assert (work / "results/model/tiny/prunebias_model.json").exists()


def test_tiny_workflow_produces_masks(tiny_run):
    """Per-context, pooled and common masks; with cross-fitting the common mask of a pool
    intersects fold k of its members with fold k only."""
    from prunebias.methods.masks import read_folds, read_mask

    work = tiny_run
    acts = pd.read_parquet(work / "results/activations/tiny/purchase-bicycle.parquet")
    assert len(acts) == 80 * 2 * 4  # prompts x layers x sites
    settings = ["black_b15_w15_global", "black_b40_w35_global", "white_b15_w15_global", "white_b40_w35_global"]
    for v in settings:
        per_ctx = [read_mask(work / f"results/masks/tiny/neurons/{v}/{c}.npz")
                   for c in ("purchase-bicycle", "hiring-lawyer")]
        common = read_mask(work / f"results/masks/tiny/neurons/{v}/common@both.npz")
        pooled = read_mask(work / f"results/masks/tiny/neurons/{v}/pooled@both.npz")
        assert common.meta["sources"] == ["purchase-bicycle", "hiring-lawyer"]
        assert pooled.meta["sources"] == ["purchase-bicycle", "hiring-lawyer"] and pooled.meta["combine"] == "pooled"
        for key, arr in common.arrays.items():
            assert (arr == (per_ctx[0].arrays[key] & per_ctx[1].arrays[key])).all()
        members = [read_folds(work / f"results/masks/tiny/neurons/{v}/{c}.npz") for c in ("purchase-bicycle", "hiring-lawyer")]
        common_1 = read_folds(work / f"results/masks/tiny/neurons/{v}/common@both.npz")[1]
        for key, arr in common_1.arrays.items():
            assert (arr == (members[0][1].arrays[key] & members[1][1].arrays[key])).all()
        assert len(read_folds(work / f"results/masks/tiny/neurons/{v}/pooled@both.npz")) == 2
        assert per_ctx[0].meta["n_total"] == 2 * (32 * 32 * 2 + 32 * 16 * 2 + 3 * 32 * 64)
        assert 0 < per_ctx[0].meta["n_pruned"] < per_ctx[0].meta["n_total"]
    for v in ["sum_k3", "diff_k3"]:
        for src in ["purchase-bicycle", "hiring-lawyer", "pooled@both", "common@both"]:
            for m in read_folds(work / f"results/masks/tiny/heads/{v}/{src}.npz"):
                assert m.arrays["heads"].shape == (2, 4) and m.arrays["heads"].sum() == 3


def test_rerun_is_a_no_op(tiny_run, tiny_model_dir):
    proc = run_snakemake(tiny_run, cross_fit_config(tiny_model_dir), "-n", *UNTIL)
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_default_config_dry_run(tmp_path):
    cfg = default_config()
    proc = run_snakemake(tmp_path, cfg, "-n")
    out = proc.stdout + proc.stderr
    n_models = len(cfg["models"])  # SmolLM2 and its two plants
    for rule, count in [("prepare_model", 1), ("plant_model", 2), ("make_prompts", len(cfg["contexts"])),
                        ("generate_baseline", n_models * len(cfg["contexts"])), ("summarize_baseline", n_models),
                        ("score_planted_recall", 2)]:
        assert any(line.split() == [rule, str(count)] for line in out.splitlines()), (rule, out[-2000:])
    assert not (tmp_path / "results").exists()


def test_lint_is_clean():
    proc = run_snakemake(REPO, None, "--lint")
    assert proc.returncode == 0


@pytest.mark.parametrize("change,message", [
    (lambda c: c.update(modle={"name": "x"}), "modle"),
    (lambda c: c.update(samples_per_name=0), "samples_per_name"),
    (lambda c: c.update(contexts=["purchase-spaceship"]), "unknown variation 'spaceship'"),
    (lambda c: c.update(contexts=["Purchase Car"]), "Purchase Car"),
    (lambda c: c["models"][0].update(source="/nonexistent/model"), "does not exist"),
    (lambda c: c.update(context_overrides={"purchase-house": {"template": "Buy a house."}}), "exactly once"),
    (lambda c: c.update(names_file="data/names/missing.csv"), "names file not found"),
    (lambda c: c["analysis"].update(winsorize=[99, 1]), "winsorize"),
    (lambda c: c.update(export=["neurons/black_b99_w1_global/purchase-house"]), "is not a mask this config learns"),
    (lambda c: c.update(export=["neurons/black_b15_w15_global/purchase-house/x"]), "export"),
    (lambda c: c["side_effects"].update(masks=["heads/sum_k10/purchase-car"]), "side_effects.masks"),
    (lambda c: c["side_effects"].update(tasks=["data/side_effects/missing.yaml"]), "task file"),
])
def test_bad_config_fails_before_any_job(tmp_path, change, message):
    cfg = default_config()
    change(cfg)
    proc = run_snakemake(tmp_path, cfg, "-n", check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_a_local_scenarios_file_works_with_the_shipped_context_sets(tmp_path):
    """Each data file resolves on its own: a scenarios file in the working directory plus the
    workflow's context sets (the old code looked for both beside the scenarios file)."""
    (tmp_path / "my_scenarios.yaml").write_text((REPO / "data/scenarios.yaml").read_text())
    cfg = default_config()
    cfg.update(scenarios_file="my_scenarios.yaml", context_sets=["audit"], contexts=[])
    proc = run_snakemake(tmp_path, cfg, "-n", "results/prompts/purchase-car.parquet")
    assert "make_prompts" in proc.stdout + proc.stderr


def test_the_dose_response_figure_is_planned_only_with_two_doses(tmp_path, tiny_model_dir):
    from conftest import small_config, tiny_config

    two = run_snakemake(tmp_path, tiny_config(tiny_model_dir), "-n", "results/tables/tiny/transfer.csv")
    assert "results/plots/tiny/dose_response.png" in two.stdout + two.stderr  # p 15 and 40
    one = run_snakemake(tmp_path, small_config(tiny_model_dir), "-n", "results/tables/tiny/transfer.csv")
    assert "dose_response.png" not in one.stdout + one.stderr
