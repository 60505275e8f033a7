"""Edits rerun exactly what depends on them, and nothing else."""

import copy as _copy
import re
import shutil

import pytest

from conftest import REPO, UNTIL, copy_workflow, run_snakemake, small_config

copy_config = _copy.deepcopy

pytestmark = pytest.mark.slow


def planned(proc) -> tuple[dict[str, int], set[str]]:
    """Jobs per rule and the contexts named in wildcards, from a dry-run's output."""
    out = proc.stdout + proc.stderr
    counts: dict[str, int] = {}
    if "Job stats:" in out:
        table = out.split("Job stats:")[1].split("\n\n")[0]
        for line in table.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total",):
                counts[parts[0]] = int(parts[1])
    contexts = set(re.findall(r"wildcards: .*?context=([\w-]+)", out)) | set(
        re.findall(r"wildcards: .*?source=([\w@-]+)", out))
    return counts, contexts


@pytest.fixture(scope="module")
def module_run(tiny_model_dir, tmp_path_factory):
    """One finished run for the module; each test gets its own copy (outputs, mtimes and
    Snakemake's metadata travel with it), so one test's edits never reach another."""
    work = tmp_path_factory.mktemp("incremental")
    cfg = small_config(tiny_model_dir)
    run_snakemake(work, cfg, *UNTIL)
    return work, cfg


@pytest.fixture()
def done_run(module_run, tmp_path):
    work, cfg = module_run
    copy = tmp_path / "work"
    shutil.copytree(work, copy, symlinks=True)  # copy2: modification times are kept
    return copy, copy_config(cfg)


def test_editing_one_context_reruns_only_that_context(done_run):
    work, cfg = done_run
    other = sorted(p for p in (work / "results").rglob("*hiring-lawyer*") if p.is_file())
    assert len(other) >= 5
    mtimes = {p: p.stat().st_mtime_ns for p in other}
    cfg["context_overrides"]["purchase-bicycle"]["answer_prefix"] = "I would offer $"
    counts, contexts = planned(run_snakemake(work, cfg, "-n", *UNTIL))
    assert counts == {"make_prompts": 1, "generate_baseline": 1, "cache_activations": 1, "score_neurons": 1,
                      "score_heads": 1, "summarize_baseline": 1, "measure_mask_stability": 1,
                      "plot_pruned": 1}, counts  # the what-was-pruned figure follows the masks
    assert contexts == {"purchase-bicycle"}
    run_snakemake(work, cfg, *UNTIL)
    assert {p: p.stat().st_mtime_ns for p in other} == mtimes
    assert "Nothing to be done" in (lambda p: p.stdout + p.stderr)(run_snakemake(work, cfg, "-n", *UNTIL))


def test_edits_rerun_their_dependants_only(done_run):
    work, cfg = done_run
    cfg["analysis"]["n_boot"] = 123  # analysis only
    counts, _ = planned(run_snakemake(work, cfg, "-n", *UNTIL))
    assert counts == {"summarize_baseline": 1}, counts
    cfg["analysis"]["n_boot"] = 200
    cfg["sampling"]["temperature"] = 0.7  # sampling: generation and everything after it
    counts, _ = planned(run_snakemake(work, cfg, "-n", *UNTIL))
    assert counts == {"generate_baseline": 2, "cache_activations": 2, "score_neurons": 2, "score_heads": 2,
                      "summarize_baseline": 1, "measure_mask_stability": 1, "plot_pruned": 1}, counts
    cfg["sampling"]["temperature"] = 0.6
    names = work / "names.csv"
    names.write_text((REPO / "data/names/audit40.csv").read_text().replace("Hunter,Becker", "Hunt,Becker"))
    cfg["names_file"] = str(names)  # names: every context's prompts and what follows
    counts, _ = planned(run_snakemake(work, cfg, "-n", *UNTIL))
    assert counts.get("make_prompts") == 2 and counts.get("generate_baseline") == 2, counts


def test_dag_and_rulegraph_render(done_run):
    work, cfg = done_run
    dag = run_snakemake(work, cfg, "--dag").stdout
    assert dag.lstrip().startswith("digraph") and "generate_baseline" in dag
    rg = run_snakemake(work, cfg, "--rulegraph").stdout
    assert "aggregate_transfer" in rg and "evaluate_pruned" in rg


def test_editing_an_imported_module_reruns_the_jobs_whose_code_it_is(done_run, tmp_path):
    """The workflow's code copied elsewhere plans nothing on a finished run; after an edit
    of the answer parser (imported by the scripts, not a script itself) it plans exactly
    the jobs whose scripts reach prunebias/audit/parsing.py through their imports."""
    from prunebias.workflow.code_version import code_files

    work, cfg = done_run
    code = copy_workflow(tmp_path / "code")
    # the data files where the finished run found them (inputs are resolved absolute paths)
    cfg["names_file"], cfg["scenarios_file"] = str(REPO / cfg["names_file"]), str(REPO / cfg["scenarios_file"])
    cfg["context_sets_file"] = str(REPO / cfg["context_sets_file"])
    cfg["evaluation"]["perplexity_text"] = str(REPO / cfg["evaluation"]["perplexity_text"])
    counts, _ = planned(run_snakemake(work, cfg, "-n", *UNTIL, snakefile=code / "Snakefile"))
    assert counts == {}, counts
    parser = code / "prunebias/audit/parsing.py"
    parser.write_text(parser.read_text() + "\n# an edit\n")
    proc = run_snakemake(work, cfg, "-n", *UNTIL, snakefile=code / "Snakefile")
    counts, _ = planned(proc)
    parts = re.split(r"^\s*rule (\w+):$", proc.stdout + proc.stderr, flags=re.M)  # text, rule, body, rule, ...
    jobs = [(rule, body.split("reason:")[1].splitlines()[0].strip()) for rule, body in zip(parts[1::2], parts[2::2])
            if "reason:" in body]
    changed = {rule for rule, reason in jobs if "Params have changed" in reason}  # not merely downstream
    reaches = {p.stem for p in (code / "workflow_scripts").glob("*.py") if parser in code_files(p, code)}
    assert "generate_baseline" in reaches and "make_prompts" not in reaches
    assert "generate_baseline" in changed and changed <= reaches, (changed, reaches)
    # every other planned job is downstream of those (its input is redone), none for its own code
    downstream = "Input files updated by another job"
    assert all(rule in changed or reason.startswith(downstream) for rule, reason in jobs), jobs
    assert "make_prompts" not in counts  # upstream of every parser use: nothing to redo
