"""The fault catalogue (issue 26): inputs a user gets wrong that were once accepted silently.

Each case is refused before any job (a dry-run) with the file or config key and the fix,
or, where only a job can know, by the job's first step with the same quality. The cases
and the words their messages must hold are listed here, one parametrized test each.
"""

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, default_config, run_snakemake, small_config


def _two_tasks_one_name(tmp: Path, cfg: dict) -> None:
    twin = tmp / "my_task.yaml"
    spec = yaml.safe_load((REPO / "data/side_effects/number_sense.yaml").read_text())
    spec["dataset_kwargs"]["data_files"]["test"] = str(REPO / "data/side_effects/name_choice_race.jsonl")
    twin.write_text(yaml.safe_dump(spec))  # other data, the same task: name
    cfg["side_effects"] = {"tasks": ["data/side_effects/number_sense.yaml", str(twin)],
                           "masks": ["neurons/black_b15_w15_global/purchase-bicycle"]}


def _override_typo(tmp: Path, cfg: dict) -> None:
    cfg["context_overrides"]["purchase-bicycle"]["answer_prefx"] = "My offer is $"


def _empty_perplexity_text(tmp: Path, cfg: dict) -> None:
    (tmp / "empty.txt").write_text("  \n")
    cfg["evaluation"] = {"perplexity_text": str(tmp / "empty.txt")}


def _one_name_per_group(tmp: Path, cfg: dict) -> None:
    names = pd.read_csv(REPO / cfg["names_file"])
    names.groupby(["race", "gender"]).head(1).to_csv(tmp / "names.csv", index=False)
    cfg["names_file"] = str(tmp / "names.csv")


DRY_RUN_CASES = {
    "two task files, one task name": (_two_tasks_one_name, ["side_effects.tasks", "number_sense", "own task"]),
    "misspelt context_overrides key": (_override_typo, ["context_overrides.purchase-bicycle.answer_prefx",
                                                        "neither a setting", "spelling"]),
    "empty perplexity text": (_empty_perplexity_text, ["empty.txt", "is empty", "evaluation.perplexity_text"]),
    "one name per race and gender under name_split": (_one_name_per_group, ["names.csv", "two names or more",
                                                                             "name_split: false"]),
}


def _brace_in_name(tmp: Path, cfg: dict) -> None:
    names = pd.read_csv(REPO / cfg["names_file"])
    names.loc[0, "first_name"] = "Jo{variation}"
    names.to_csv(tmp / "names.csv", index=False)
    cfg["names_file"] = str(tmp / "names.csv")


def _latin1_names(tmp: Path, cfg: dict) -> None:
    text = (REPO / cfg["names_file"]).read_text().splitlines()
    text[3] = text[3].replace(text[3].split(",")[0], "Jos\u00e9", 1)
    (tmp / "names.csv").write_bytes("\n".join(text).encode("latin-1") + b"\n")
    cfg["names_file"] = str(tmp / "names.csv")


def _truncated_task_data(tmp: Path, cfg: dict) -> None:
    lines = (REPO / "data/side_effects/number_sense.jsonl").read_text().splitlines()
    (tmp / "cut.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][: len(lines[3]) // 2] + "\n")
    spec = yaml.safe_load((REPO / "data/side_effects/number_sense.yaml").read_text())
    spec["dataset_kwargs"]["data_files"]["test"] = str(tmp / "cut.jsonl")
    (tmp / "cut.yaml").write_text(yaml.safe_dump(spec))
    cfg["side_effects"] = {"tasks": [str(tmp / "cut.yaml")], "masks": ["neurons/black_b15_w15_global/purchase-bicycle"]}


def _source_without_weights(tmp: Path, cfg: dict) -> None:
    src = Path(cfg["model"]["source"])
    (tmp / "model").mkdir()
    for f in src.iterdir():
        if f.suffix != ".safetensors":
            (tmp / "model" / f.name).write_bytes(f.read_bytes())
    cfg["model"]["source"] = str(tmp / "model")


def _gpt2_source(tmp: Path, cfg: dict) -> None:
    from transformers import GPT2Config

    (tmp / "gpt2").mkdir()
    GPT2Config(n_layer=2, n_embd=32, n_head=2).to_json_file(tmp / "gpt2" / "config.json")
    (tmp / "gpt2" / "model.safetensors").write_bytes(b"")  # the architecture is refused before the weights are read
    cfg["model"]["source"] = str(tmp / "gpt2")


DRY_RUN_CASES.update({
    "a model whose architecture is not supported": (_gpt2_source, [
        "model.source", "gpt2 model", "model.layers", "Llama-style"]),
    "a model directory whose weights were deleted": (_source_without_weights, [
        "model.source", "holds no weight file", "restore the weights"]),
    "a brace in a name": (_brace_in_name, ["names.csv", "row 2", "brace", "remove { and }"]),
    "a Latin-1 byte in the names file": (_latin1_names, ["names.csv", "line 4", "not UTF-8", "save the file as UTF-8"]),
    "a truncated task data file": (_truncated_task_data, ["cut.jsonl, line 4", "not JSON", "one JSON object per line"]),
})


@pytest.mark.parametrize("case", list(DRY_RUN_CASES))
def test_refused_before_any_job(case, tiny_model_dir, tmp_path):
    edit, words = DRY_RUN_CASES[case]
    cfg = small_config(tiny_model_dir)
    edit(tmp_path, cfg)
    proc = run_snakemake(tmp_path, cfg, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Invalid input" in out, out[-2000:]
    assert "Traceback" not in out, out[-2000:]
    for word in words:
        assert word in out, (word, out[-2000:])
    assert not (tmp_path / "results").exists()  # nothing ran


def test_dropping_hiring_lawyer_from_the_default_contexts_dry_runs(tmp_path):
    """issue 24: the shipped defaults that name a context (side_effects.masks, the context
    plant) follow `contexts`, so dropping one is one edit; the context plant, with no
    context left outside it, is left out of the run and the dry-run says so."""
    cfg = default_config()
    cfg["contexts"] = ["purchase-house"]
    proc = run_snakemake(tmp_path, cfg, "-n")
    out = proc.stdout + proc.stderr
    assert "hiring-lawyer" not in out.replace("planted-hiring", "")
    assert "measure_side_effects" in out and "planted-hiring is left out of this run" in out
    assert "model=planted-hiring" not in out and "model=planted-general" in out


def test_stale_keys_that_name_a_dropped_context_are_named_together(tmp_path):
    """Keys that name a context explicitly and no longer match `contexts`: one dry-run
    names them all (not one error per attempt)."""
    cfg = default_config()
    cfg["contexts"] = ["purchase-house"]
    cfg["side_effects"]["masks"] = ["neurons/black_b10_w10_global/hiring-lawyer"]
    cfg["models"][2]["plant"]["contexts"] = ["hiring-lawyer"]
    proc = run_snakemake(tmp_path, cfg, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out, out[-2000:]
    for word in ("2 keys name what this config does not have", "side_effects.masks",
                 "neurons/black_b10_w10_global/hiring-lawyer", "planted-hiring", ".plant.contexts"):
        assert word in out, (word, out[-2000:])


def test_a_prepared_model_that_lost_its_weights_is_refused(tiny_model_dir, tmp_path):
    """results/model/{name} written by prepare_model, then its weights deleted: Snakemake
    sees the folder and would not rebuild it; the dry-run names the folder and the fix."""
    cfg = small_config(tiny_model_dir)
    run_snakemake(tmp_path, cfg, "results/model/tiny")
    (tmp_path / "results/model/tiny/model.safetensors").unlink()
    proc = run_snakemake(tmp_path, cfg, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out, out[-2000:]
    for word in ("results/model/tiny", "holds no weight file", "delete the folder", "prepare_model"):
        assert word in out, (word, out[-2000:])
    # the fix works: without the folder the dry-run plans prepare_model again
    shutil.rmtree(tmp_path / "results/model/tiny")
    assert "prepare_model" in run_snakemake(tmp_path, cfg, "-n").stdout


def test_draw_controls_refuses_a_mask_made_for_another_model(tiny_model_dir, tmp_path):
    """A mask file replaced by one learned on another model: draw_controls stops at its
    first step with the file and the fix instead of writing controls for it."""
    from prunebias.methods.masks import read_mask, write_mask

    cfg = small_config(tiny_model_dir)
    mask = "results/masks/tiny/neurons/black_b15_w15_global/purchase-bicycle.npz"
    run_snakemake(tmp_path, cfg, mask)
    m = read_mask(tmp_path / mask)
    meta = {k: v for k, v in m.meta.items() if k not in ("counts", "shapes", "kind")}
    meta["model"] = {**meta["model"], "name": "other-model", "config_sha256": "0" * 64}
    write_mask(tmp_path / mask, m.kind, meta, m.arrays)  # newer than the controls' inputs
    proc = run_snakemake(tmp_path, cfg, "results/masks/tiny/random_neurons/black_b15_w15_global/purchase-bicycle/"
                         "draw0.npz", check=False)
    log = (tmp_path / "logs/tiny/draw_controls/neurons/black_b15_w15_global/purchase-bicycle.log").read_text()
    assert proc.returncode != 0
    for word in ("purchase-bicycle.npz", "made for model 'other-model'", "delete the stale masks"):
        assert word in log, (word, log[-2000:])
    assert not list((tmp_path / "results/masks/tiny/random_neurons").rglob("*.npz"))  # no control written
    proc = run_snakemake(tmp_path, cfg, "results/tables/tiny/pruned_by_layer.csv", check=False)
    log = (tmp_path / "logs/tiny/plot_pruned.log").read_text()  # issue 26: its error said nothing useful
    assert proc.returncode != 0
    for word in ("purchase-bicycle.npz", "made for model 'other-model'", "delete the stale masks"):
        assert word in log, (word, log[-2000:])


def test_head_k_beyond_the_model_fails_at_the_jobs_first_step(tiny_model_dir, tmp_path):
    """k = 500 on the tiny model: score_heads stops before reading the attention cache,
    naming the key and the model's head count (a mask of every head has no control)."""
    import json

    arch = json.loads((Path(tiny_model_dir) / "config.json").read_text())
    n_heads = arch["num_hidden_layers"] * arch["num_attention_heads"]
    cfg = small_config(tiny_model_dir)
    cfg["localization"]["heads"] = {"scores": ["sum"], "k": [500]}
    proc = run_snakemake(tmp_path, cfg, "results/masks/tiny/heads/sum_k500/purchase-bicycle.npz", check=False)
    log = (tmp_path / "logs/tiny/score_heads/purchase-bicycle.log").read_text()
    assert proc.returncode != 0
    assert f"k = 500 is not below the model's {n_heads} heads" in log and "localization.heads.k" in log, log
    assert not (tmp_path / "results/masks/tiny/heads").exists()


def test_cuda_on_a_node_without_it_names_the_key_and_the_fix():
    import torch

    from prunebias.errors import ConfigError
    from prunebias.model.modeling import choose_device

    if torch.cuda.is_available():
        pytest.skip("this node has CUDA")
    with pytest.raises(ConfigError, match="device: cuda.*no CUDA device.*device: auto"):
        choose_device("cuda")


def test_a_killed_jobs_temp_is_removed_by_the_next_attempt(tmp_path):
    from prunebias.files import atomic_path

    final = tmp_path / "model"
    stale = tmp_path / ".model.tmp-999999"  # a SIGKILLed prepare_model's half-written folder
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "weights.bin").write_bytes(b"x" * 1000)
    with atomic_path(final, is_dir=True) as tmp:
        (tmp / "config.json").write_text("{}")
    assert not stale.exists() and (final / "config.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_sigterm_removes_the_half_written_temp(tmp_path):
    """A job stopped by SIGTERM (a SLURM time limit) exits 143 and leaves no temp behind."""
    import signal
    import subprocess
    import sys
    import time

    script = (f"import sys, time; sys.path.insert(0, {str(REPO)!r})\n"
              "from prunebias.workflow.logs import setup_logging\nfrom prunebias.files import atomic_path\n"
              f"setup_logging(None)\nwith atomic_path({str(tmp_path / 'out')!r}, is_dir=True) as tmp:\n"
              "    (tmp / 'part').write_text('half'); print('writing', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("key", ["n_boot", "n_perm"])
def test_no_resamples_are_refused_by_the_schema(key, tiny_model_dir, tmp_path):
    """n_boot: 0 / n_perm: 0 gave NaN CIs and p-values with no note; the schema refuses them."""
    cfg = small_config(tiny_model_dir)
    cfg["analysis"][key] = 0
    proc = run_snakemake(tmp_path, cfg, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"['{key}']" in out and "less than the minimum of 20" in out, out[-2000:]
    assert "Traceback" not in out
