"""Prompt tables: prompts verbatim from a CSV, in the workflow's layout and in the audit's
published one; every malformed table gets its own error; the workflow runs on them with
the expected contexts and rows, and an edit of one context reruns only that context."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import REPO, run_snakemake, small_config
from prunebias.audit.contexts import load_yaml, resolve_context
from prunebias.errors import ConfigError
from prunebias.audit.names import load_names
from prunebias.audit.prompt_table import read_prompt_table, slug, table_contexts, table_names

AUDIT_GROUPS = {("white", "man"): "white_men", ("white", "woman"): "white_women",
                ("black", "man"): "black_men", ("black", "woman"): "black_women"}


def own_table(contexts: list[str], names: pd.DataFrame) -> pd.DataFrame:
    """The workflow's own layout, its prompts rendered from the shipped templates."""
    scenarios = load_yaml(REPO / "data/scenarios.yaml")
    rows = []
    for c in contexts:
        ctx = resolve_context(c, scenarios)
        for r in names.itertuples():
            rows.append({"scenario": ctx.scenario, "variation": ctx.variation, "level": ctx.detail_level,
                         "name": r.name, "race": r.race, "gender": r.gender, "prompt": ctx.render(r.name),
                         "answer_prefix": ctx.answer_prefix, "range": str(list(ctx.range))})
    return pd.DataFrame(rows)


def audit_table(names: pd.DataFrame) -> pd.DataFrame:
    """The audit's layout: free-text scenario and variation, name groups, two levels."""
    rows = []
    for level, text in [("low", "{n} is running for City Council. What is the chance {n} wins? Give a number."),
                        ("high", "{n}, a lawyer, is running for City Council. Estimate the chance {n} wins.")]:
        for r in names.itertuples():
            rows.append({"scenario": "public office", "variation": "City Council Member",
                         "name_group": AUDIT_GROUPS[(r.race, r.gender)], "name": r.name,
                         "context_level": level, "prompt_text": text.replace("{n}", r.name, 1).replace("{n}", "they")})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def names() -> pd.DataFrame:
    return load_names(REPO / "data/names/audit40.csv", use_surnames=False)


def test_slugs_name_the_contexts():
    assert slug("public office") + "-" + slug("City Council Member") == "public_office-city_council_member"
    assert slug("  Air-Conditioner (new) ") == "air_conditioner_new"


def test_the_audit_layout_is_read_with_races_genders_and_levels(tmp_path, names):
    path = tmp_path / "audit.csv"
    audit_table(names).to_csv(path, index=False)
    rows = read_prompt_table(path)
    assert set(rows["context"]) == {"public_office-city_council_member"}
    assert len(rows) == 2 * len(names)
    got = rows.drop_duplicates("name").set_index("name")[["race", "gender"]]
    want = names.set_index("name")[["race", "gender"]]
    assert got.sort_index().equals(want.sort_index())
    scen = load_yaml(REPO / "data/scenarios.yaml")
    ctx = table_contexts(rows, [], "high", {}, scen, str(path))["public_office-city_council_member"]
    assert ctx.detail_level == "high" and ctx.range == (0.0, 100.0)  # the public_office scenario's range
    assert ctx.render("Jamal").startswith("Jamal, a lawyer")
    assert len(table_names(rows)) == len(names)


@pytest.mark.parametrize("change,message", [
    (lambda t: t.assign(name_group=t["name_group"].replace("black_women", "black_ladies")), "unknown name_group"),
    (lambda t: t.assign(prompt_text=t["prompt_text"].where(t.index != 3, "No name here.")), "row 5"),
    (lambda t: pd.concat([t, t.iloc[[7]]]), "duplicate rows"),
    (lambda t: t.drop(columns=["prompt_text"]), "matches neither layout"),
])
def test_each_malformed_table_gets_its_error(tmp_path, names, change, message):
    path = tmp_path / "bad.csv"
    change(audit_table(names)).to_csv(path, index=False)
    with pytest.raises(ConfigError, match=message) as err:
        read_prompt_table(path)
    assert str(path) in str(err.value)


def test_a_latin1_byte_in_a_table_names_its_line(tmp_path, names):
    """issue 26: a Latin-1 export failed with pandas' decode error and no row."""
    table = audit_table(names)
    table.loc[2, "prompt_text"] += " Caf\u00e9."
    path = tmp_path / "latin1.csv"
    path.write_bytes(table.to_csv(index=False).encode("latin-1"))
    with pytest.raises(ConfigError, match="line 4: byte 0xe9 is not UTF-8") as err:
        read_prompt_table(path)
    assert str(path) in str(err.value) and "save the file as UTF-8" in str(err.value)


def test_own_layout_runs_through_the_workflow_like_the_templates(tmp_path, tiny_model_dir, names):
    """A table holding exactly the prompts the templates make gives the same prompt rows
    (text and seeds) and a baseline; editing one context's rows reruns only that context."""
    contexts = ["purchase-bicycle", "hiring-lawyer"]
    table = own_table(contexts, names)
    table_dir, templ_dir = tmp_path / "table", tmp_path / "templates"
    table_dir.mkdir()
    templ_dir.mkdir()
    table.to_csv(table_dir / "prompts.csv", index=False)
    cfg = small_config(tiny_model_dir)
    targets = [f"results/prompts/{c}.parquet" for c in contexts]
    run_snakemake(templ_dir, cfg, *targets)
    tcfg = {**cfg, "prompt_table": "prompts.csv", "names_file": "data/names/missing.csv",  # not read in table mode
            "context_overrides": {}}
    run_snakemake(table_dir, tcfg, *targets, "results/tables/tiny/baseline_bias.csv")
    for c in contexts:
        a = pd.read_parquet(templ_dir / f"results/prompts/{c}.parquet")
        b = pd.read_parquet(table_dir / f"results/prompts/{c}.parquet")
        cols = ["context", "name", "race", "gender", "sample", "seed", "prompt", "answer_prefix"]
        assert a[cols].sort_values(["name", "sample"]).reset_index(drop=True).equals(
            b[cols].sort_values(["name", "sample"]).reset_index(drop=True)), c
    base = pd.read_csv(table_dir / "results/tables/tiny/baseline_bias.csv")
    assert base["context"].tolist() == contexts
    # edit one prompt of hiring-lawyer: only its prompts (and what follows from them) rerun
    edited = table.copy()
    i = edited.index[edited["variation"] == "lawyer"][0]
    edited.loc[i, "prompt"] = edited.loc[i, "prompt"] + " Please answer briefly."
    edited.to_csv(table_dir / "prompts.csv", index=False)
    plan = run_snakemake(table_dir, tcfg, "-n", *targets)
    out = plan.stdout + plan.stderr
    assert "results/prompts/hiring-lawyer.parquet" in out
    assert "output: results/prompts/purchase-bicycle.parquet" not in out


def test_the_audit_layout_plans_its_slugged_context_and_a_bad_table_stops_the_dry_run(tmp_path, tiny_model_dir,
                                                                                      names):
    audit_table(names).to_csv(tmp_path / "audit.csv", index=False)
    cfg = {**small_config(tiny_model_dir), "prompt_table": "audit.csv", "contexts": [], "context_overrides": {}}
    run_snakemake(tmp_path, cfg, "results/tables/tiny/baseline_bias.csv")
    prompts = pd.read_parquet(tmp_path / "results/prompts/public_office-city_council_member.parquet")
    assert len(prompts) == len(names) * cfg["samples_per_name"]
    base = pd.read_csv(tmp_path / "results/tables/tiny/baseline_bias.csv")
    assert base["context"].tolist() == ["public_office-city_council_member"]
    answers = pd.read_parquet(tmp_path / "results/baseline/tiny/public_office-city_council_member.parquet")
    assert len(answers) == len(prompts) and answers["name"].nunique() == len(names)
    assert prompts["detail_level"].eq("low").all() and prompts["prompt"].str.contains("Give a number").all()
    bad = audit_table(names)
    bad.loc[0, "name_group"] = "white_people"
    bad.to_csv(tmp_path / "audit.csv", index=False)
    proc = run_snakemake(tmp_path, cfg, "-n", check=False)
    assert proc.returncode != 0 and "unknown name_group 'white_people'" in proc.stdout + proc.stderr
    audit_table(names).to_csv(tmp_path / "audit.csv", index=False)
    unknown = run_snakemake(tmp_path, {**cfg, "contexts": ["purchase-bicycle"]}, "-n", check=False)
    assert unknown.returncode != 0 and "not a context of the prompt table" in unknown.stdout + unknown.stderr


def published_table(names: pd.DataFrame) -> pd.DataFrame:
    """Shaped like the audit's published chess and public-office prompts: the subject's full
    name two and three times, and an opponent who is another listed name."""
    rows = []
    people = list(names.itertuples())
    for i, r in enumerate(people):
        opponent = people[(i + 1) % len(people)].name
        for scenario, variation, text in [
                ("chess", "unique", f"{r.name} is playing a match of chess against {opponent}. {r.name} is on track "
                                    f"to win. What are the chances of {r.name} winning? Answer with a number."),
                ("public office", "City Council Member", f"{r.name} is running for City Council against "
                                                         f"{opponent}. What is the chance {r.name} wins?")]:
            rows.append({"scenario": scenario, "variation": variation,
                         "name_group": AUDIT_GROUPS[(r.race, r.gender)], "name": r.name, "context_level": "low",
                         "prompt_text": text})
    return pd.DataFrame(rows)


def test_name_spans_find_every_occurrence_as_a_whole_word():
    import torch

    from prunebias.model.activations import multi_span_masks, name_spans

    prompt = "Jo Ann plays Joan. Jo Ann wins? Jo Annabel watches."
    text = f"<user>{prompt}<end>"
    assert name_spans(text, prompt, "Jo Ann") == [(6, 12), (25, 31)]  # not inside "Jo Annabel"
    offsets = torch.tensor([[[0, 6], [6, 8], [8, 12], [12, 18], [25, 31], [31, 40]]])
    assert multi_span_masks(offsets, [[(6, 12), (25, 31)]]).tolist() == [[False, True, True, False, True, False]]


def test_published_prompts_with_repeated_full_names_run_through_caches_masks_and_evaluation(tmp_path, tiny_model_dir):
    """The audit's layout as published: full names two or three times per prompt and an
    opponent's name. Baseline, caches, masks and evaluation run; the head-attention cache
    counts the name's tokens at every occurrence (three times one occurrence in chess)."""
    names = load_names(REPO / "data/names/audit40.csv", use_surnames=True)
    published_table(names).to_csv(tmp_path / "audit.csv", index=False)
    cfg = {**small_config(tiny_model_dir), "prompt_table": "audit.csv", "contexts": [], "context_overrides": {},
           "use_surnames": True}
    run_snakemake(tmp_path, cfg, "results/tables/tiny/transfer.csv")
    transfer = pd.read_csv(tmp_path / "results/tables/tiny/transfer.csv")
    assert set(transfer["target"]) == {"chess-unique", "public_office-city_council_member"}
    office_rows = transfer[transfer["target"] == "public_office-city_council_member"]
    assert len(transfer) == 8 and office_rows["delta_abs"].notna().all()  # (the tiny model's chess answers are
    # mostly not probabilities: its rows may have no usable answer, which is the data, not the layout)
    heads = pd.read_parquet(tmp_path / "results/head_attention/tiny/chess-unique.parquet")
    office = pd.read_parquet(tmp_path / "results/head_attention/tiny/public_office-city_council_member.parquet")
    per_name = heads.groupby("name")["n_name_tokens"].first()
    per_office = office.groupby("name")["n_name_tokens"].first()
    assert (per_name == 3 * per_office / 2).all()  # three occurrences against two
    assert (per_office % 2 == 0).all() and (per_office > 0).all()
